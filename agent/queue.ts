/**
 * The agent's part in queue timeouts (docs/design.md "Bounds and the queue").
 * `resolve()` times a queued entry out at its own stamp plus its timeout, once
 * the document holds an entry stamped at or after that point. In a quiet
 * cluster nothing may be written for a long time, so the creator's agent
 * withdraws its own queued entry (a release, stamped by its clock, hence past
 * the point) once its clock is past the timeout: the log reaches the point,
 * and the entry times out there — the same on every peer.
 */
import { hlcWallMs, type NodeId, type Resolution, type ReservationId } from '../crdt/index.ts'

/** Ids of `self`'s own queued entries whose timeout is behind `nowMs`. */
export function timedOutQueued (res: Pick<Resolution, 'verdicts'>, self: NodeId, nowMs: number): ReservationId[] {
  const out: ReservationId[] = []
  for (const v of res.verdicts.values()) {
    if (v.status === 'queued' && v.creator === self && v.queueExpiresHlc !== undefined && hlcWallMs(v.queueExpiresHlc) < nowMs) out.push(v.id)
  }
  return out.sort()
}
