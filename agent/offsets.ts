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
 */
import type { Clock, PeerIdStr } from './types.ts'

/** How long the largest sample of a peer stands before a smaller one replaces it. */
export const OFFSET_WINDOW_MS = 30_000

export class ClockOffsets {
  /** Behind the median by more than this, writes are refused; ahead of it by more, a member is alerted. */
  readonly maxOffsetMs: number
  private readonly clock: Clock
  private readonly samples = new Map<PeerIdStr, { sampleMs: number, atMs: number }>()
  private median = 0

  constructor (clock: Clock, maxOffsetMs: number) {
    this.clock = clock
    this.maxOffsetMs = maxOffsetMs
  }

  /** A stamp of `peer`'s clock at `wallMs`, read now: its clock is at least that far ahead of ours (negative: behind). */
  sample (peer: PeerIdStr, wallMs: number): void {
    const now = this.clock.now()
    const sampleMs = wallMs - now
    const previous = this.samples.get(peer)
    if (previous === undefined || sampleMs > previous.sampleMs || now - previous.atMs > OFFSET_WINDOW_MS) this.samples.set(peer, { sampleMs, atMs: now })
  }

  /** Whether any stamp of `peer` has been read. */
  has (peer: PeerIdStr): boolean {
    return this.samples.has(peer)
  }

  /** Recompute the median over the peers `counts` (the live members), once per refresh; no allocation per member. */
  update (counts: (peer: PeerIdStr) => boolean): void {
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

  /** Peers whose clocks run ahead of the median by more than the maximum offset, with how far. */
  ahead (): Array<[PeerIdStr, number]> {
    const out: Array<[PeerIdStr, number]> = []
    for (const [peer, o] of this.samples) if (o.sampleMs - this.median > this.maxOffsetMs) out.push([peer, Math.round(o.sampleMs - this.median)])
    return out
  }
}
