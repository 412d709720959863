/**
 * Epochs (docs/design.md "Compaction: epochs"): the ledger moves to a new Yjs
 * document seeded with a checkpoint, so what ended before the checkpoint's cut
 * leaves memory and disk on every peer.
 *
 * - A member proposes epoch e + 1 by writing a {@link EpochProposal} (its
 *   stable cut and the checkpoint digest it computed there) in the `epochs` map
 *   of epoch e's document, a write of its stream like any other.
 * - Every peer takes the earliest-stamped proposal for e + 1 whose stamp is at
 *   or below its finality watermark (so every proposal stamped before it is
 *   known: the choice is the same everywhere) and whose cut is stable here,
 *   computes the checkpoint at that cut itself, and moves only when the digests
 *   are equal. A different digest is alerted and nothing is removed.
 * - The new document is {@link seedEpoch}'s seed — one transaction under
 *   client id 0 holding the checkpoint, byte for byte the same on every peer,
 *   so the seeds merge as one — then {@link carryOver}: what the checkpoint
 *   does not summarise, each peer copying what it holds under its own client
 *   id (copies of one key hold the same value, so whichever Yjs keeps, the
 *   ledger reads the same).
 *
 * Resolution in epoch e + 1 starts from the checkpoint
 * ({@link epochOf}, then `replayFrom`): verdicts are those of the
 * whole history less the entries that ended at or before the cut.
 */
import * as Y from 'yjs'
import { checkpointIntact, type Checkpoint } from './checkpoint.ts'
import { compareHlc, isHlc, type HlcString } from './hlc.ts'
import type { Resolution, Verdict } from './resolve.ts'
import {
  entryKey, ledgerMaps, MAP_EPOCHS, proposalKey, validateCapacity, validateProposal, validateRelease, validateReservation,
  type EpochProposal
} from './schema.ts'

/** The seed of an epoch's document: key {@link SEED_KEY} → {@link EpochSeed}. */
export const MAP_EPOCH = 'epoch'
export const SEED_KEY = 'seed'
/** Client id of the seed transaction: the same on every peer, so every peer's seed is the same struct. Writers use random non-zero ids. */
export const SEED_CLIENT_ID = 0

/** What seeds an epoch's document. */
export interface EpochSeed {
  epoch: number
  /** The proposal it follows (`<epoch>@<proposer>`). */
  proposal: string
  checkpoint: Checkpoint
}

/**
 * The proposal for `epoch` every peer takes: the earliest-stamped one that
 * counts (its proposer a member when it wrote it: the replay's
 * `proposals`), once its stamp is at or below `watermark` — every proposal
 * stamped before it is then held here, so every peer picks the same.
 * Undefined while there is none or it is not settled yet.
 */
export function settledProposal (proposals: readonly EpochProposal[], epoch: number, watermark: HlcString | undefined): EpochProposal | undefined {
  let earliest: EpochProposal | undefined
  for (const p of proposals) {
    if (p.epoch !== epoch) continue
    if (earliest === undefined || compareHlc(p.hlc, earliest.hlc) < 0) earliest = p
  }
  if (earliest === undefined || watermark === undefined || compareHlc(earliest.hlc, watermark) > 0) return undefined
  return earliest
}

/** The seed of an epoch as one Yjs update: the same bytes on every peer for the same proposal and checkpoint. */
export function seedEpoch (proposal: EpochProposal, checkpoint: Checkpoint): Uint8Array {
  const doc = new Y.Doc({ gc: true })
  doc.clientID = SEED_CLIENT_ID
  const seed: EpochSeed = { epoch: proposal.epoch, proposal: proposalKey(proposal), checkpoint }
  doc.getMap(MAP_EPOCH).set(SEED_KEY, seed)
  const update = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return update
}

/** The epoch a document is in and the checkpoint it starts from (epoch 0 has none); throws when the seed is damaged. */
export function epochOf (doc: Y.Doc): { epoch: number, checkpoint?: Checkpoint, proposal?: string } {
  const raw = doc.getMap(MAP_EPOCH).get(SEED_KEY)
  if (raw === undefined) return { epoch: 0 }
  const seed = raw as Partial<EpochSeed>
  if (typeof seed.epoch !== 'number' || !Number.isSafeInteger(seed.epoch) || seed.epoch < 1 || typeof seed.proposal !== 'string' ||
    typeof seed.checkpoint !== 'object' || seed.checkpoint === null || !checkpointIntact(seed.checkpoint)) {
    throw new RangeError('the epoch seed of this document is damaged (its checkpoint does not match its digest, or a field is missing)')
  }
  return { epoch: seed.epoch, checkpoint: seed.checkpoint, proposal: seed.proposal }
}

/** Verdict codes of entries that do not count (their creator's standing): judged again in every epoch, so they are carried. */
const NOT_COUNTED = new Set(['CreatorNotMember', 'CreatorLeft', 'CreatorEvicted'])

/**
 * Copy into `to` (an epoch's seeded document) what of `from` (the previous
 * epoch's) the checkpoint at `cut` does not summarise:
 * - every membership record (membership is computed over the whole log);
 * - capacity events stamped after the cut, and every `left` event (membership reads them);
 * - reservations stamped after the cut, those live at the cut (running or
 *   queued then, whatever they are now: the writer's duplicate check and
 *   listings read the document), and those that do not count or are invalid
 *   (judged again, the same way) — every one but those that ended, counted,
 *   at or before the cut;
 * - releases of the reservations kept, and releases stamped after the cut;
 * - node records (figures and addresses: the newest each peer holds);
 * - the proposals of the epoch entered (their proposers' stream positions).
 *
 * `verdicts` are the previous epoch's resolution: which entries ended counted
 * at or before the cut. When it is not given (a peer adopting an epoch it
 * could not compute), only what is stamped after the cut is copied, with the
 * membership records and node records. Returns how many entries were copied.
 */
export function carryOver (from: Y.Doc, to: Y.Doc, cut: HlcString, options: { verdicts?: Pick<Resolution, 'verdicts' | 'conflicts'>, origin?: unknown } = {}): number {
  const src = ledgerMaps(from)
  const dst = ledgerMaps(to)
  const after = (hlc: unknown): boolean => typeof hlc === 'string' && isHlc(hlc) && compareHlc(hlc, cut) > 0
  let byKey: Map<string, Verdict> | undefined
  if (options.verdicts !== undefined) {
    byKey = new Map()
    for (const v of [...options.verdicts.verdicts.values(), ...options.verdicts.conflicts]) byKey.set(v.key, v)
  }
  const keptEntries = new Set<string>()
  let copied = 0
  const copy = (map: Y.Map<unknown>, key: string, value: unknown): void => {
    if (map.has(key)) return
    map.set(key, value)
    copied++
  }
  to.transact(() => {
    for (const [key, value] of src.membership.entries()) copy(dst.membership, key, value)
    for (const [key, value] of src.nodes.entries()) copy(dst.nodes, key, value)
    for (const [key, value] of src.capacity.entries()) {
      const v = validateCapacity(key, value)
      if (!v.ok) continue
      if (after(v.value.hlc) || v.value.state === 'left') copy(dst.capacity, key, value)
    }
    for (const [key, value] of src.reservations.entries()) {
      const v = validateReservation(key, value)
      let keep: boolean
      if (!v.ok) keep = byKey !== undefined
      else if (after(v.value.hlc)) keep = true
      else if (byKey === undefined) keep = false
      else {
        const verdict = byKey.get(key)
        // Dropped only when it ended, counted, at or before the cut (then the checkpoint holds all of it).
        const end = verdict?.status === 'rejected' ? verdict.decidedHlc : verdict?.endedHlc
        keep = verdict === undefined || verdict.status === 'admitted' || verdict.status === 'queued' || verdict.status === 'invalid' ||
          (verdict.code !== undefined && NOT_COUNTED.has(verdict.code)) || end === undefined || after(end)
      }
      if (!keep) continue
      keptEntries.add(key)
      copy(dst.reservations, key, value)
    }
    const epochs = to.getMap(MAP_EPOCHS)
    for (const [key, value] of from.getMap(MAP_EPOCHS).entries()) {
      const v = validateProposal(key, value)
      if (v.ok && after(v.value.hlc)) copy(epochs, key, value)
    }
    for (const [key, value] of src.releases.entries()) {
      const v = validateRelease(key, value)
      if (!v.ok) continue
      if (after(v.value.hlc) || keptEntries.has(entryKey(v.value.id, v.value.creator)) || !src.reservations.has(entryKey(v.value.id, v.value.creator))) copy(dst.releases, key, value)
    }
  }, options.origin)
  return copied
}
