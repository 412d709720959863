/**
 * Small request/response exchanges over direct messages (docs/design.md
 * "Liveness"): the failure detector's pings and ping-reqs, about a dozen
 * bytes each, travel on the long-lived direct stream to a peer as a `call`
 * and its `reply`, matched by id, instead of opening a stream (and
 * negotiating its protocol) for every probe. A call that cannot go direct —
 * no direct streams, no connection — is not made: the caller uses a
 * request stream instead.
 */
import type { Clock, PeerIdStr, TimerHandle } from './types.ts'
import { encodeMessage, MSG_CALL, MSG_REPLY } from './wire.ts'

export interface DirectCallsDeps {
  clock: Clock
  /** A direct message to `peer`; false when it cannot go (Network.send). */
  send: (peer: PeerIdStr, bytes: Uint8Array) => boolean
}

interface Pending {
  peer: PeerIdStr
  resolve: (body: Uint8Array | undefined) => void
  timer: TimerHandle
}

/** Ids wrap well below 2^32 (a varint of at most 5 bytes). */
const MAX_ID = 0x7fff_ffff

export class DirectCalls {
  private nextId = 1
  private readonly pending = new Map<number, Pending>()

  constructor (private readonly deps: DirectCallsDeps) {}

  /**
   * Send `body` to `peer` as a call. Resolves with the reply's body, or
   * undefined when none came within `timeoutMs`; returns undefined at once
   * when the call could not be sent (use a request stream then).
   */
  call (peer: PeerIdStr, body: Uint8Array, timeoutMs: number): Promise<Uint8Array | undefined> | undefined {
    const id = this.nextId
    this.nextId = this.nextId >= MAX_ID ? 1 : this.nextId + 1
    if (!this.deps.send(peer, encodeMessage({ type: MSG_CALL, id, body }))) return undefined
    return new Promise(resolve => {
      const timer = this.deps.clock.setTimeout(() => {
        this.pending.delete(id)
        resolve(undefined)
      }, timeoutMs)
      this.pending.set(id, { peer, resolve, timer })
    })
  }

  /** Answer a call of `peer`'s. */
  reply (peer: PeerIdStr, id: number, body: Uint8Array): boolean {
    return this.deps.send(peer, encodeMessage({ type: MSG_REPLY, id, body }))
  }

  /** A reply arrived from `from`: true when it answered one of this node's open calls to `from`. */
  replied (from: PeerIdStr, id: number, body: Uint8Array): boolean {
    const pending = this.pending.get(id)
    if (pending === undefined || pending.peer !== from) return false
    this.pending.delete(id)
    this.deps.clock.clearTimeout(pending.timer)
    pending.resolve(body)
    return true
  }

  /** Stop: every open call resolves with no answer. */
  stop (): void {
    for (const pending of this.pending.values()) {
      this.deps.clock.clearTimeout(pending.timer)
      pending.resolve(undefined)
    }
    this.pending.clear()
  }
}
