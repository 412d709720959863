/**
 * How far this host's clock is from its peers' (docs/design.md "Clocks").
 *
 * A fresh stamp from a peer, read at our wall time, says its clock is at
 * least that far ahead of ours (delivery delay only makes the sample
 * smaller). The largest sample of the last 30 s is kept per peer, so an old
 * stamp arriving by sync does not hide a skew. The median over the live
 * members is the cluster's clock as this host sees it: behind it by more than
 * the maximum offset, the agent refuses writes (they would be stamped in the
 * past); a member ahead of it by more is alerted.
 *
 * The median is recomputed only when an input moved — a sample by 10 ms or
 * more, a member's liveness, the view — and at least once a second, not on
 * every refresh: at a few hundred members it was 5 % of a virtual peer's
 * time.
 */
import type { Clock, PeerIdStr } from './types.ts'

/** How long the largest sample of a peer stands before a smaller one replaces it. */
export const OFFSET_WINDOW_MS = 30_000
/** The median is recomputed at least this often, whatever moved. */
const RECOMPUTE_EVERY_MS = 1000
/**
 * A sample that moved by less than this waits for the next second: samples
 * jitter by the delivery delay with every stamp, and the offsets that matter
 * (a write refused, an alert) are hundreds of ms.
 */
const MOVED_MS = 10

export class ClockOffsets {
  private readonly clock: Clock
  private readonly samples = new Map<PeerIdStr, { sampleMs: number, atMs: number }>()
  private median = 0
  private stale = true
  private computedAtMs = -Infinity
  private viewSeen: unknown

  constructor (clock: Clock) {
    this.clock = clock
  }

  /** A stamp of `peer` read now: its clock is at least `sampleMs` ahead of ours (negative: behind). */
  sample (peer: PeerIdStr, sampleMs: number): void {
    const now = this.clock.now()
    const previous = this.samples.get(peer)
    if (previous === undefined || sampleMs > previous.sampleMs || now - previous.atMs > OFFSET_WINDOW_MS) {
      if (previous === undefined || Math.abs(previous.sampleMs - sampleMs) >= MOVED_MS) this.stale = true
      this.samples.set(peer, { sampleMs, atMs: now })
    }
  }

  /** Whether any stamp of `peer` has been read. */
  has (peer: PeerIdStr): boolean {
    return this.samples.has(peer)
  }

  /** Which members count may have changed (a member's liveness moved). */
  invalidate (): void {
    this.stale = true
  }

  /**
   * The median offset of the peers `counts` (live members of `view`), when an
   * input moved since the last time, `view` is another one, or a second
   * passed.
   */
  update (view: unknown, counts: (peer: PeerIdStr) => boolean): void {
    const now = this.clock.now()
    if (!this.stale && view === this.viewSeen && now - this.computedAtMs < RECOMPUTE_EVERY_MS) return
    this.stale = false
    this.viewSeen = view
    this.computedAtMs = now
    const values = new Float64Array(this.samples.size)
    let n = 0
    for (const [peer, o] of this.samples) if (counts(peer)) values[n++] = o.sampleMs
    this.median = n === 0 ? 0 : values.subarray(0, n).sort()[Math.floor(n / 2)]
  }

  /** The live members' median offset: positive when their clocks are ahead of this host's. */
  get medianMs (): number {
    return this.median
  }

  /** This host's clock behind the cluster's, in ms; 0 when not behind. */
  get behindMs (): number {
    return Math.max(0, this.median)
  }

  /** Peers whose clocks run ahead of the median by more than `maxOffsetMs`, with how far. */
  ahead (maxOffsetMs: number): Array<[PeerIdStr, number]> {
    const out: Array<[PeerIdStr, number]> = []
    for (const [peer, o] of this.samples) if (o.sampleMs - this.median > maxOffsetMs) out.push([peer, Math.round(o.sampleMs - this.median)])
    return out
  }
}
