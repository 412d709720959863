/**
 * What a peer may send: the checks every input from the network passes before
 * it touches the agent (docs/design.md "Bad input"). A per-peer token bucket of
 * messages and bytes, a size limit per kind of message, a full decode, and for
 * a ledger update its entry count and root types — whole or not at all. What
 * fails is dropped, counted for `/metrics`, and logged once per peer and kind
 * (a flooding peer must not flood the log).
 */
import * as Y from 'yjs'
import { formatSize, MAP_EPOCH, SEED_CLIENT_ID, shortId } from '../crdt/index.ts'
import type { Clock, PeerIdStr } from './types.ts'
import { decodeMessage, type WireMessage } from './wire.ts'

/**
 * The ledger's own root types; an update that creates any other root is
 * refused. Not the epoch's seed (`epoch`): a peer builds it or fetches it
 * whole with the epoch's document, and a peer's update never writes it
 * (docs/design.md "Compaction: epochs").
 */
export const LEDGER_ROOTS = new Set(['nodes', 'reservations', 'releases', 'capacity', 'membership', 'epochs'])

export type DropKind = 'invalid' | 'oversized' | 'throttled'

export interface InputLimits {
  /** Largest ledger update accepted from a peer, in bytes. */
  maxUpdateBytes: number
  /** Most Yjs entries in one update. */
  maxUpdateEntries: number
  /** Per-peer budget: messages and bytes per second (one second of burst). */
  messagesPerSecond: number
  bytesPerSecond: number
}

export interface DropCounters {
  droppedOversized: number
  droppedInvalid: number
  droppedThrottled: number
}

export interface InputGuardDeps {
  clock: Clock
  log: (line: string) => void
  counters: DropCounters
  limits: InputLimits
}

/** Peers tracked for budgets and logged drops before the tables start over (a bound, not a policy). */
const MAX_TRACKED_PEERS = 10_000

export class InputGuard {
  private readonly deps: InputGuardDeps
  private readonly buckets = new Map<PeerIdStr, { messages: number, bytes: number, atMs: number }>()
  private readonly droppedLogged = new Set<string>()

  constructor (deps: InputGuardDeps) {
    this.deps = deps
  }

  get limits (): InputLimits {
    return this.deps.limits
  }

  /** A peer's message within its budget and `maxBytes`, decoded; undefined when dropped. */
  admit (from: PeerIdStr, data: Uint8Array, maxBytes: number, what: string): WireMessage | undefined {
    if (!this.withinBudget(from, data.length)) {
      this.deps.counters.droppedThrottled++
      this.drop(from, 'throttled', `peer exceeds ${this.deps.limits.messagesPerSecond} messages or ${formatSize(this.deps.limits.bytesPerSecond)} per second`)
      return undefined
    }
    if (data.length > maxBytes) {
      this.drop(from, 'oversized', `${what} of ${data.length} bytes exceeds ${maxBytes}`)
      return undefined
    }
    return this.decode(from, data)
  }

  /** Decode a message (no budget: a request stream is bounded by the network layer); undefined when malformed. */
  decode (from: PeerIdStr, data: Uint8Array): WireMessage | undefined {
    try {
      return decodeMessage(data)
    } catch (error) {
      this.drop(from, 'invalid', (error as Error).message)
      return undefined
    }
  }

  /**
   * Whether a peer's ledger update may be applied: within the size and entry
   * limits, decodable in full, and writing only to ledger root types — with
   * `whole` (an epoch's document fetched whole) also its seed, under the
   * seed's own client id only.
   */
  acceptsUpdate (from: PeerIdStr, update: Uint8Array, options: { whole?: boolean } = {}): boolean {
    const { maxUpdateBytes, maxUpdateEntries } = this.deps.limits
    if (update.length > maxUpdateBytes) {
      this.drop(from, 'oversized', `update of ${update.length} bytes exceeds ${maxUpdateBytes}`)
      return false
    }
    let decoded
    try {
      decoded = Y.decodeUpdate(update)
    } catch (error) {
      this.drop(from, 'invalid', `undecodable Yjs update (${(error as Error).message})`)
      return false
    }
    if (decoded.structs.length > maxUpdateEntries) {
      this.drop(from, 'oversized', `update with ${decoded.structs.length} entries exceeds ${maxUpdateEntries}`)
      return false
    }
    for (const struct of decoded.structs) {
      const parent = (struct as { parent?: unknown }).parent
      if (options.whole === true && parent === MAP_EPOCH && struct.id.client === SEED_CLIENT_ID) continue
      if (typeof parent === 'string' && !LEDGER_ROOTS.has(parent)) {
        this.drop(from, 'invalid', `update writes to unknown root '${parent.slice(0, 40)}'`)
        return false
      }
    }
    return true
  }

  /** Count a dropped input, and say so once per peer and kind. */
  drop (from: PeerIdStr, kind: DropKind, reason: string): void {
    if (kind === 'oversized') this.deps.counters.droppedOversized++
    else if (kind === 'invalid') this.deps.counters.droppedInvalid++
    const key = `${from}/${kind}`
    if (!this.droppedLogged.has(key) && this.droppedLogged.size < MAX_TRACKED_PEERS) {
      this.droppedLogged.add(key)
      this.deps.log(`dropped ${kind} input from ${shortId(from)}: ${reason} (counted in /metrics; logged once per peer)`)
    }
  }

  /** Token bucket per peer (one second of burst), refilled by elapsed time. */
  private withinBudget (from: PeerIdStr, size: number): boolean {
    const now = this.deps.clock.now()
    const rate = this.deps.limits.messagesPerSecond
    // The burst must hold the largest legal update, or it could never arrive by gossip.
    const byteRate = Math.max(this.deps.limits.bytesPerSecond, this.deps.limits.maxUpdateBytes + 16)
    let bucket = this.buckets.get(from)
    if (bucket === undefined) {
      if (this.buckets.size > MAX_TRACKED_PEERS) this.buckets.clear()
      bucket = { messages: rate, bytes: byteRate, atMs: now }
      this.buckets.set(from, bucket)
    }
    const elapsed = Math.max(0, now - bucket.atMs) / 1000
    bucket.messages = Math.min(rate, bucket.messages + elapsed * rate)
    bucket.bytes = Math.min(byteRate, bucket.bytes + elapsed * byteRate)
    bucket.atMs = now
    if (bucket.messages < 1 || bucket.bytes < size) return false
    bucket.messages -= 1
    bucket.bytes -= size
    return true
  }
}
