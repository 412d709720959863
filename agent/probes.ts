/**
 * The failure detector's messages on the wire (docs/design.md "Liveness"):
 * ping → pong, ping-req → pong or error, and suspicions published to the
 * members. agent/liveness.ts decides whom to probe and what a silence means;
 * this module carries its probes as direct calls (agent/calls.ts) when the
 * peer has a direct stream, else as request streams, and answers the probes
 * of others. A pong carries the answerer's wall clock: every answer is also a
 * clock-offset sample.
 */
import { decodeHlc, encodeHlc, isHlc, shortId, stampInRange } from '../crdt/index.ts'
import type { DirectCalls } from './calls.ts'
import type { DropKind } from './input.ts'
import type { FailureDetector, IndirectAnswer } from './liveness.ts'
import type { Clock, Network, PeerIdStr } from './types.ts'
import { decodeMessage, encodeMessage, MSG_ERROR, MSG_PING, MSG_PING_REQ, MSG_PONG, MSG_SUSPECT, type WireMessage } from './wire.ts'

export interface ProbeDeps {
  self: PeerIdStr
  clock: Clock
  network: Pick<Network, 'request' | 'publish'>
  calls: DirectCalls
  detector: () => FailureDetector
  /** Members of the current view: only they suspect and are suspected. */
  isMember: (node: PeerIdStr) => boolean
  /** How long a direct ping waits (the preset's failure-detector timeout). */
  probeTimeoutMs: () => number
  /** Largest request sent as a direct call. */
  maxCallBytes: number
  stopped: () => boolean
  /** A peer's wall clock as its answer gave it, at most half a round trip late. */
  offsetSample: (peer: PeerIdStr, wallMs: number) => void
  drop: (from: PeerIdStr, kind: DropKind, reason: string) => void
  counters: { bytesIn: number, bytesOut: number, suspicionsDropped: number }
}

export type ProbeMessage = Extract<WireMessage, { type: typeof MSG_PING | typeof MSG_PING_REQ }>

export class Probes {
  constructor (private readonly deps: ProbeDeps) {}

  /** Ping `peer` (saying it is suspected, with the suspicion's stamp, when it is); true on a pong. */
  async ping (peer: PeerIdStr, timeoutMs: number, suspicion?: string): Promise<boolean> {
    const reply = await this.request(peer, encodeMessage(suspicion === undefined ? { type: MSG_PING } : { type: MSG_PING, suspicion }), timeoutMs, { direct: true })
    if (reply?.type !== MSG_PONG) return false
    this.deps.detector().heard(peer)
    // Half the round trip is the most the answer can be late; a sample may only show a peer behind, never hide one ahead.
    this.deps.offsetSample(peer, reply.wallMs)
    return true
  }

  /** Ask `via` to ping `target` for this node (SWIM's ping-req). */
  async pingVia (via: PeerIdStr, target: PeerIdStr, timeoutMs: number): Promise<IndirectAnswer> {
    const reply = await this.request(via, encodeMessage({ type: MSG_PING_REQ, target }), 2 * timeoutMs + this.deps.probeTimeoutMs(), { direct: true })
    if (reply === undefined) return 'none'
    return reply.type === MSG_PONG ? 'ack' : 'nack'
  }

  /** Answer a probe, asked by a stream request or a direct call. */
  async answer (from: PeerIdStr, message: ProbeMessage): Promise<Uint8Array> {
    if (message.type === MSG_PING) {
      // A ping that says this node is suspected: refute it (the ping's sender is the suspector's buddy).
      if (message.suspicion !== undefined && isHlc(message.suspicion)) this.deps.detector().suspected(from, this.deps.self, message.suspicion)
      return this.pong()
    }
    const acked = message.target !== this.deps.self && await this.ping(message.target, this.deps.probeTimeoutMs())
    return acked ? this.pong() : encodeMessage({ type: MSG_ERROR, reason: 'no answer' })
  }

  /**
   * A small exchange: a direct call when asked for and the peer has a direct
   * stream, else (and for beacon pulls, whose answers may be large) a request
   * stream. Undefined when there is no answer in time or it does not decode.
   */
  async request (peer: PeerIdStr, request: Uint8Array, timeoutMs: number, options: { direct?: boolean } = {}): Promise<WireMessage | undefined> {
    const { counters } = this.deps
    if (this.deps.stopped()) return undefined
    const direct = options.direct === true && request.length <= this.deps.maxCallBytes ? this.deps.calls.call(peer, request, timeoutMs) : undefined
    if (direct !== undefined) {
      counters.bytesOut += request.length
      const reply = await direct
      if (reply === undefined) return undefined
      counters.bytesIn += reply.length
      try {
        return decodeMessage(reply)
      } catch {
        return undefined
      }
    }
    // The agent's clock, not AbortSignal.timeout: in the simulator it is virtual.
    const controller = new AbortController()
    const timer = this.deps.clock.setTimeout(() => { controller.abort(new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
    try {
      counters.bytesOut += request.length
      const reply = await this.deps.network.request(peer, request, { signal: controller.signal })
      counters.bytesIn += reply.length
      return decodeMessage(reply)
    } catch {
      return undefined
    } finally {
      this.deps.clock.clearTimeout(timer)
    }
  }

  /** Publish this node's suspicion of `target` to every member. */
  async announce (target: PeerIdStr, stamp: string): Promise<void> {
    const { wallMs, counter } = decodeHlc(stamp)
    const bytes = encodeMessage({ type: MSG_SUSPECT, suspector: this.deps.self, target, wallMs, counter })
    this.deps.counters.bytesOut += bytes.length
    await this.deps.network.publish(bytes).catch(() => {})
  }

  /** A member's published suspicion: counted by the detector when it is a member's, of a member, and named by its publisher. */
  onSuspicion (from: PeerIdStr, message: { suspector: string, target: string, wallMs: number, counter: number }): void {
    const { isMember } = this.deps
    if (message.suspector !== from || !isMember(from) || !isMember(message.target) || !stampInRange(message.wallMs, message.counter)) {
      this.deps.counters.suspicionsDropped++
      this.deps.drop(from, 'invalid', message.suspector !== from ? `suspicion names ${shortId(message.suspector)} but was published by ${shortId(from)}` : 'suspicion from or of a non-member')
      return
    }
    this.deps.detector().suspected(from, message.target, encodeHlc({ wallMs: message.wallMs, counter: message.counter, node: from }))
  }

  private pong (): Uint8Array {
    return encodeMessage({ type: MSG_PONG, wallMs: Math.max(0, Math.round(this.deps.clock.now())) })
  }
}
