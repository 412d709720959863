/**
 * Compaction by epochs, the agent's side (docs/design.md "Compaction:
 * epochs"; the pure part is crdt/epoch.ts): when to propose the next epoch,
 * when this peer can move to it, and the document it moves to — built here
 * from the proposal, or fetched whole from a peer already there.
 *
 * The agent owns the document and swaps it ({@link EpochDecision}); this
 * module only decides and builds.
 */
import * as Y from 'yjs'
import {
  carryOver, checkpointIntact, compareHlc, epochOf, proposalKey, readLedger, seedEpoch, settledProposal, shortId, stableCut, takeCheckpoint,
  type Checkpoint, type EpochProposal, type Replayed, type Resolution
} from '../crdt/index.ts'
import type { Clock } from './types.ts'

/** Origin of the carry-over transaction: neither a local write (not appended, not sent) nor a peer's. */
export const ORIGIN_CARRY = Symbol('carry-over')

/** The ledger can move: the new epoch's document, ready to replace the current one. */
export interface EpochDecision {
  epoch: number
  doc: Y.Doc
  checkpoint: Checkpoint
  /** Entries copied from the old document. */
  carried: number
  /** Built here from a settled proposal, or fetched from a peer already in the epoch. */
  how: 'built' | 'fetched'
}

export interface EpochSettings {
  /** Propose the next epoch once at least this many entries ended at or before the stable cut since the current epoch began. */
  compactAfterEnded: number
  /** Look for a proposal to make at most this often (a checkpoint is a replay of the epoch's document). */
  checkEveryMs: number
}

export interface EpochDeps {
  self: string
  clock: Clock
  /** A new client id for this peer's writes in a new document. */
  clientId: () => number
  log: (line: string) => void
  /** A settled proposal whose digest differs from this peer's checkpoint at its cut. */
  mismatch: (message: string) => void
}

const ENDED = new Set(['released', 'rejected', 'evicted'])

export class Epochs {
  /** The epoch the ledger is in and the checkpoint it started from (none in epoch 0). */
  epoch = 0
  checkpoint?: Checkpoint
  /** A proposal this peer will not follow (its checkpoint differs): the alert stands, nothing is removed. */
  private refused?: string
  /** Why, for the alert (until the ledger moves on). */
  mismatch?: string
  private lastLookMs = -Infinity
  /** The checkpoint this peer proposed the next epoch with: a function of the log up to its cut, so not computed again when the proposal settles. */
  private proposed?: Checkpoint

  constructor (private readonly deps: EpochDeps, readonly settings: EpochSettings) {}

  /** Read the epoch from a restored document; throws when its seed is damaged. */
  restore (doc: Y.Doc): void {
    const { epoch, checkpoint } = epochOf(doc)
    this.epoch = epoch
    this.checkpoint = checkpoint
  }

  /**
   * The proposal this peer should write now, if any: it is the member of the
   * view with the lowest id (one proposer at a time; another member takes
   * over when a view change removes it), no proposal for the next epoch is
   * in the document yet, and enough ended at or before its stable cut.
   */
  toPropose (doc: Y.Doc, res: Resolution, replayed: Replayed): { epoch: number, cut: string, digest: string } | undefined {
    const now = this.deps.clock.now()
    if (now - this.lastLookMs < this.settings.checkEveryMs) return undefined
    this.lastLookMs = now
    const next = this.epoch + 1
    if (res.members.length === 0 || [...res.members].sort()[0] !== this.deps.self) return undefined
    if (replayed.proposals.some(p => p.epoch === next)) return undefined
    let ended = 0
    for (const v of replayed.all) if (ENDED.has(v.status)) ended++
    if (ended < this.settings.compactAfterEnded) return undefined
    const cut = stableCut(res)
    if (cut === undefined || (this.checkpoint !== undefined && compareHlc(cut, this.checkpoint.cut) <= 0)) return undefined
    this.proposed = this.checkpointAt(doc, cut)
    return { epoch: next, cut, digest: this.proposed.digest }
  }

  /** The checkpoint of the current epoch's document at `cut`, chained from the epoch's own. */
  checkpointAt (doc: Y.Doc, cut: string): Checkpoint {
    return takeCheckpoint(readLedger(doc), cut, this.checkpoint)
  }

  /**
   * The next epoch's document when this peer can move to it now: the
   * settled proposal for it (crdt/epoch.ts) has a cut that is stable here,
   * and this peer's own checkpoint there has the proposal's digest.
   */
  next (doc: Y.Doc, res: Resolution, replayed: Replayed): EpochDecision | undefined {
    const proposal = settledProposal(replayed.proposals, this.epoch + 1, res.watermark)
    if (proposal === undefined || this.refused === proposalKey(proposal)) return undefined
    const cut = stableCut(res)
    if (cut === undefined || compareHlc(cut, proposal.cut) < 0) return undefined
    const checkpoint = this.proposed?.cut === proposal.cut ? this.proposed : this.checkpointAt(doc, proposal.cut)
    if (checkpoint.digest !== proposal.digest) {
      this.refused = proposalKey(proposal)
      this.mismatch = `the checkpoint at ${proposal.cut} for epoch ${proposal.epoch} has digest ${checkpoint.digest} here and ${proposal.digest} at ${shortId(proposal.proposer)}: this peer stays in epoch ${this.epoch} and removes nothing`
      this.deps.mismatch(this.mismatch)
      return undefined
    }
    return this.build(doc, proposal, checkpoint, res)
  }

  /**
   * The document of a later epoch, fetched whole from a peer already in it
   * (this peer missed the move: down, partitioned or joining): its seed must
   * be intact and of that epoch; what this peer holds after the seed's cut
   * is carried over. Undefined, with the reason logged, when it is not.
   */
  adopt (doc: Y.Doc, epoch: number, update: Uint8Array, from: string, known: readonly EpochProposal[] = []): EpochDecision | undefined {
    const next = new Y.Doc({ gc: true })
    let seed: ReturnType<typeof epochOf>
    try {
      Y.applyUpdate(next, update)
      seed = epochOf(next)
    } catch (error) {
      this.deps.log(`epoch ${epoch} from ${shortId(from)} not adopted: ${(error as Error).message}`)
      next.destroy()
      return undefined
    }
    if (seed.epoch !== epoch || seed.checkpoint === undefined || !checkpointIntact(seed.checkpoint)) {
      this.deps.log(`epoch ${epoch} from ${shortId(from)} not adopted: its document is of epoch ${seed.epoch}`)
      next.destroy()
      return undefined
    }
    // What this peer holds of the move must agree with it: a proposal it holds
    // for that epoch under the seed's key names the seed's checkpoint.
    const named = known.find(p => p.epoch === epoch && proposalKey(p) === seed.proposal)
    if (named !== undefined && (named.digest !== seed.checkpoint.digest || named.cut !== seed.checkpoint.cut)) {
      this.deps.log(`epoch ${epoch} from ${shortId(from)} not adopted: its checkpoint (${seed.checkpoint.cut}, ${seed.checkpoint.digest.slice(0, 12)}) is not the one its proposal names`)
      next.destroy()
      return undefined
    }
    next.clientID = this.deps.clientId()
    const carried = carryOver(doc, next, seed.checkpoint.cut, { origin: ORIGIN_CARRY })
    return { epoch, doc: next, checkpoint: seed.checkpoint, carried, how: 'fetched' }
  }

  /** The ledger moved: later proposals are for the epoch after this one. */
  moved (decision: EpochDecision): void {
    this.epoch = decision.epoch
    this.checkpoint = decision.checkpoint
    this.refused = undefined
    this.mismatch = undefined
    this.proposed = undefined
    this.lastLookMs = -Infinity
  }

  private build (doc: Y.Doc, proposal: EpochProposal, checkpoint: Checkpoint, res: Resolution): EpochDecision {
    const next = new Y.Doc({ gc: true })
    Y.applyUpdate(next, seedEpoch(proposal, checkpoint))
    next.clientID = this.deps.clientId()
    const carried = carryOver(doc, next, proposal.cut, { verdicts: res, origin: ORIGIN_CARRY })
    return { epoch: proposal.epoch, doc: next, checkpoint, carried, how: 'built' }
  }
}
