/**
 * Checkpoints (docs/design.md "Checkpoints"): the resolved state at a stable
 * cut C — every decision stamped at or before C is final — so resolution can
 * start there instead of at the beginning of the log.
 *
 * A checkpoint holds what later resolution reads of the log up to C: each
 * node's slot (state, allocatable, committed, what it is charged with, the
 * last few admissions that name a conflict's winner), the reservations
 * running or queued at C with their verdicts (they hold their ids: a later
 * entry of one loses it, `IdTaken`, while every other id is free after C),
 * releases still waiting for their entry, how far each node's stream
 * reached, and what the entries that ended before C add to the counts and to
 * rent. Nothing in it grows with the reservations ever made, only with the
 * live ones and the members (docs/decisions.md "Ids are free again once
 * their entry has ended"), but for a release stamped before an entry that
 * never counts. Membership records and heartbeats are not folded in:
 * resolution still reads them from the document (they grow with members,
 * not with reservations).
 *
 * It is a function of the document's counted entries at or before C only, so
 * every peer that computes it at the same C gets the same {@link Checkpoint.digest};
 * and {@link resolveFrom} a checkpoint plus the document gives the verdicts of
 * a resolution of the whole document, less the entries that ended before C.
 */
import type * as Y from 'yjs'
import { fingerprint } from './digest.ts'
import { compareHlc, type HlcString } from './hlc.ts'
import { rentLine } from './rent.ts'
import {
  finishResolution, replayLedger,
  type CutState, type FinalityOptions, type Replay, type ReplayBase, type Replayed, type Resolution, type Running, type Slot, type Verdict, type VerdictStatus
} from './resolve.ts'
import { readLedger, type LedgerSnapshot, type NodeId, type Reservation, type ReservationId } from './schema.ts'

/**
 * 2: ids of ended entries are no longer kept (an id is free again once its
 * entry ended). Version 1 (which also listed every id ever owned, `owners`)
 * is still read: its live entries hold their ids the same way, and the list
 * is ignored.
 */
export const CHECKPOINT_VERSION = 2

/** A node's slot at the cut. */
export interface CheckpointSlot {
  id: NodeId
  state: Slot['state']
  allocatableBytes: number
  committedBytes: number
  undersized: boolean
  joinedHlc?: HlcString
  sponsor?: NodeId
  /** Ids charged here, in the order they were charged (all of them running at the cut). */
  charges: ReservationId[]
  /** The last admissions here, newest last (ended ones too: they decide which entry a conflict names). */
  recent: Reservation[]
}

/** A verdict as a checkpoint keeps it: without what finality and the end of a replay recompute. */
export type CheckpointVerdict = Omit<Verdict, 'final' | 'waitsFor' | 'waitingOn' | 'view' | 'runningOn' | 'queuePosition' | 'queueLength'>

export interface Checkpoint {
  /** {@link CHECKPOINT_VERSION} when taken here; 1 in one taken before ids became free again (read, never written). */
  version: typeof CHECKPOINT_VERSION | 1
  /** The stable cut: the state after every counted entry stamped at or before it. */
  cut: HlcString
  /** Slots in the order the replay created them (placement breaks ties by it). */
  slots: CheckpointSlot[]
  /** Reservations running at the cut, in admission order. */
  running: Array<{ key: string, reservation: Reservation, verdict: CheckpointVerdict, nodes: NodeId[], effectiveBytes: number }>
  /** Entries waiting in the queue at the cut, in log order. */
  queue: Array<{ key: string, reservation: Reservation, verdict: CheckpointVerdict }>
  /**
   * Releases stamped before the entry they end, while no counted entry of that
   * key is stamped at or before the cut (whether a non-member's entry of it
   * has arrived must not matter: it never counts, and it can arrive late).
   */
  pendingReleases: Array<[string, HlcString]>
  allNeedBytes: number
  /** How far counted entries at or before the cut reach in each node's stream, sorted by node. */
  streams: Array<[NodeId, { hlc?: HlcString, seq: number }]>
  /** Entries that ended at or before the cut: left out of later resolutions, kept as totals. */
  ended: { counts: Record<VerdictStatus, number>, byteSeconds: number }
  /** Fingerprint of everything above: equal on every peer for the same cut. */
  digest: string
}

/**
 * The latest cut this peer can take a checkpoint at: its finality watermark,
 * kept below the earliest decision not yet final (a verdict of an older view
 * waits on that view's majority) and below the timeout of every entry still
 * queued (a timeout takes effect only once the document has reached its
 * stamp, which a peer's own clock can pass first: docs/design.md "Bounds and
 * the queue"). Undefined while nothing is final.
 */
export function stableCut (res: Resolution): HlcString | undefined {
  const watermark = res.watermark
  if (watermark === undefined) return undefined
  /** The cut must stay strictly below this. */
  let limit: HlcString | undefined
  const below = (t: HlcString): void => { if (limit === undefined || compareHlc(t, limit) < 0) limit = t }
  for (const v of res.all) {
    if (v.status === 'queued') {
      if (v.queueExpiresHlc !== undefined) below(v.queueExpiresHlc)
      continue
    }
    if (v.final || v.status === 'invalid' || v.hlc === undefined) continue
    below(v.decidedHlc ?? v.hlc)
  }
  if (limit === undefined || compareHlc(limit, watermark) > 0) return watermark
  // The latest final decision before the limit (a cut is only a point to compare stamps with).
  let cut: HlcString | undefined
  for (const v of res.all) {
    if (!v.final || v.hlc === undefined) continue
    const t = v.decidedHlc ?? v.hlc
    if (compareHlc(t, limit) < 0 && compareHlc(t, watermark) <= 0 && (cut === undefined || compareHlc(t, cut) > 0)) cut = t
  }
  return cut
}

/**
 * The checkpoint at `cut` of a document (or a snapshot read from one),
 * optionally starting from an earlier checkpoint `from` (its cut must be
 * before `cut`). The caller picks a stable cut ({@link stableCut}); at any
 * other the checkpoint is still well defined, but a later write can change
 * what it summarises.
 */
export function takeCheckpoint (input: Y.Doc | LedgerSnapshot, cut: HlcString, from?: Checkpoint): Checkpoint {
  if (from !== undefined && compareHlc(from.cut, cut) >= 0) throw new RangeError(`checkpoint cut ${cut} is not after the earlier checkpoint's ${from.cut}`)
  const snapshot = isSnapshot(input) ? input : readLedger(input)
  let taken: Checkpoint | undefined
  replayLedger(snapshot, { ...(from !== undefined ? { base: baseOf(from) } : {}), cut, atCut: state => { taken = capture(state, from) } })
  return taken!
}

/**
 * Resolve from a checkpoint: replay only the entries after its cut (and
 * those that do not count, whatever their stamp), from the state it holds.
 * The verdicts are those of `resolve()` on the same document, less the
 * entries that ended at or before the cut; the counts include those.
 */
export function resolveFrom (checkpoint: Checkpoint, input: Y.Doc | LedgerSnapshot, options: FinalityOptions = {}): Resolution {
  const snapshot = isSnapshot(input) ? input : readLedger(input)
  return finishResolution(replayFrom(checkpoint, snapshot), snapshot.nodes, options)
}

/** The replay half of {@link resolveFrom} (an agent caches it and re-runs only finality as beacons arrive). */
export function replayFrom (checkpoint: Checkpoint, snapshot: Omit<LedgerSnapshot, 'nodes'>): Replayed {
  const replayed = replayLedger(snapshot, { base: baseOf(checkpoint) })
  // The replay's counts are its own: added to in place (a copy of the whole
  // would compute its digest, which is left until it is read).
  for (const [status, n] of Object.entries(checkpoint.ended.counts) as Array<[VerdictStatus, number]>) replayed.counts[status] += n
  return replayed
}

/** Rent accrued at or before the cut by the entries that ended there: add it to a bill of a resolution from the checkpoint. */
export function endedRentByteSeconds (checkpoint: Checkpoint): number {
  return checkpoint.ended.byteSeconds
}

/** True when the checkpoint's digest matches its content (a damaged or forged one does not). */
export function checkpointIntact (checkpoint: Checkpoint): boolean {
  return (checkpoint.version === CHECKPOINT_VERSION || checkpoint.version === 1) && digestOf(checkpoint) === checkpoint.digest
}

// ---------------------------------------------------------------- capture and restore

const VERDICT_DERIVED = ['final', 'waitsFor', 'waitingOn', 'view', 'runningOn', 'queuePosition', 'queueLength'] as const

function keptVerdict (verdict: Verdict): CheckpointVerdict {
  const copy: Record<string, unknown> = { ...verdict }
  for (const field of VERDICT_DERIVED) delete copy[field]
  return copy as CheckpointVerdict
}

function liveVerdict (kept: CheckpointVerdict): Verdict {
  return { ...structuredClone(kept), final: false, waitsFor: [], runningOn: [] }
}

function capture (state: CutState, from: Checkpoint | undefined): Checkpoint {
  const { replay } = state
  const live = new Set<string>()
  for (const run of replay.running.values()) live.add(run.key)
  for (const key of replay.queue.keys()) live.add(key)
  const counts: Record<VerdictStatus, number> = from !== undefined
    ? { ...from.ended.counts }
    : { admitted: 0, rejected: 0, evicted: 0, released: 0, invalid: 0, queued: 0 }
  let byteSeconds = from?.ended.byteSeconds ?? 0
  for (const verdict of state.counted) {
    if (live.has(verdict.key)) continue
    counts[verdict.status]++
    // Ended at or before the cut: its rent is complete (runningOn is unused for an ended entry).
    byteSeconds += rentLine(verdict, 0, 0, 0)?.byteSeconds ?? 0
  }
  const streams = new Map((from?.streams ?? []).map(([node, s]) => [node, { ...s }]))
  for (const [node, s] of state.streams) {
    const known = streams.get(node)
    if (known === undefined) streams.set(node, { ...s })
    else {
      if (s.hlc !== undefined && (known.hlc === undefined || s.hlc > known.hlc)) known.hlc = s.hlc
      if (s.seq > known.seq) known.seq = s.seq
    }
  }
  const body: Omit<Checkpoint, 'digest'> = JSON.parse(JSON.stringify({
    version: CHECKPOINT_VERSION,
    cut: state.cut,
    slots: [...replay.slots.values()].map(slot => ({
      id: slot.id,
      state: slot.state,
      allocatableBytes: slot.allocatableBytes,
      committedBytes: slot.committedBytes,
      undersized: slot.undersized,
      joinedHlc: slot.joinedHlc,
      sponsor: slot.sponsor,
      charges: [...slot.charges.keys()],
      recent: slot.recent
    })),
    running: [...replay.running.values()].map(run => ({ key: run.key, reservation: run.reservation, verdict: keptVerdict(run.verdict), nodes: run.nodes, effectiveBytes: run.effectiveBytes })),
    queue: [...replay.queue.values()].map(w => ({ key: w.key, reservation: w.reservation, verdict: keptVerdict(w.verdict) })),
    pendingReleases: state.pendingReleases,
    allNeedBytes: replay.allNeedBytes,
    streams: [...streams].sort(byFirst),
    ended: { counts, byteSeconds }
  }))
  return { ...body, digest: digestOf(body) }
}

function baseOf (checkpoint: Checkpoint): ReplayBase {
  return {
    cut: checkpoint.cut,
    streams: new Map(checkpoint.streams),
    restore: replay => restore(checkpoint, replay)
  }
}

function restore (checkpoint: Checkpoint, replay: Replay): Verdict[] {
  const verdicts: Verdict[] = []
  const running = new Map<ReservationId, Running>()
  for (const r of checkpoint.running) {
    const verdict = liveVerdict(r.verdict)
    verdicts.push(verdict)
    const run: Running = { key: r.key, reservation: structuredClone(r.reservation), verdict, nodes: [...r.nodes], effectiveBytes: r.effectiveBytes }
    running.set(run.reservation.id, run)
    replay.running.set(run.reservation.id, run)
  }
  for (const s of checkpoint.slots) {
    const charges = new Map<ReservationId, Reservation>()
    for (const id of s.charges) charges.set(id, running.get(id)!.reservation)
    replay.slots.set(s.id, {
      id: s.id,
      state: s.state,
      allocatableBytes: s.allocatableBytes,
      committedBytes: s.committedBytes,
      undersized: s.undersized,
      charges,
      recent: s.recent.map(r => running.get(r.id)?.key === `${r.id}@${r.creator}` ? running.get(r.id)!.reservation : structuredClone(r)),
      ...(s.joinedHlc !== undefined ? { joinedHlc: s.joinedHlc } : {}),
      ...(s.sponsor !== undefined ? { sponsor: s.sponsor } : {})
    })
  }
  for (const w of checkpoint.queue) {
    const verdict = liveVerdict(w.verdict)
    verdicts.push(verdict)
    replay.queue.set(w.key, { key: w.key, reservation: structuredClone(w.reservation), verdict })
  }
  for (const [key, hlc] of checkpoint.pendingReleases) replay.pendingReleases.set(key, hlc)
  replay.allNeedBytes = checkpoint.allNeedBytes
  replay.reindex()
  return verdicts
}

// ---------------------------------------------------------------- digest

function digestOf (checkpoint: Omit<Checkpoint, 'digest'> & { digest?: string }): string {
  const { digest: _, ...body } = checkpoint
  return fingerprint(canonical(body))
}

/** JSON with object keys sorted (array order is part of the state). */
function canonical (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

function byFirst<T> (a: [string, T], b: [string, T]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

function isSnapshot (input: Y.Doc | LedgerSnapshot): input is LedgerSnapshot {
  return (input as LedgerSnapshot).reservations !== undefined && typeof (input as Y.Doc).getMap !== 'function'
}
