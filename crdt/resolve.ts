/**
 * `resolve()`: the replicated state in, one verdict per reservation out
 * (docs/design.md "Resolution"). A deterministic replay of one totally ordered
 * log, like Bayou replaying tentative writes: every decision depends only on
 * the events before it, so a later event can add a new outcome (release,
 * eviction) but never rewrite an earlier decision.
 *
 * The log: admissions, capacity events, evictions, releases and reservations,
 * sorted by (HLC, kind, key); only writes of members count (crdt/views.ts).
 * The replay starts from an empty cluster. Nothing here
 * reads a clock, the environment or randomness: two peers holding the same
 * document compute the same result, whatever order they received it in.
 */
import type * as Y from 'yjs'
import { fingerprint } from './digest.ts'
import { compareHlc, encodeHlc, hlcWallMs, stampedBy, type HlcString } from './hlc.ts'
import { HeadroomIndex, lowerBound, place, shortId, type PlacementNode } from './placement.ts'
import {
  entryKey, readLedger, splitEntryKey, validateCapacity, validateHeartbeat, validateMembership, validateRelease, validateReservation,
  type AdmissionRequest, type Beacon, type AdmitRecord, type CapacityEvent, type Heartbeat, type InvalidCode, type LedgerSnapshot,
  type MembershipRecord, type NodeId, type NodeState, type Placement, type Release, type Reservation, type ReservationId, validateProposal, type EpochProposal
} from './schema.ts'
import { formatSize } from './size.ts'
import { computeMembership, viewAt, type Interval, type Membership, type MembershipIssue, type ProposalState, type StandingCode, type View } from './views.ts'

export type VerdictStatus = 'admitted' | 'rejected' | 'evicted' | 'released' | 'invalid' | 'queued'
/** `queued`: not decided yet — it waits in the log for room (docs/design.md "Bounds and the queue"). */
export type Decision = 'admitted' | 'rejected' | 'invalid' | 'queued'

/** Stable reason codes: clients and tests match on these, never on the human text. */
export type ReasonCode =
  | 'Fits'
  | 'InsufficientMemory'
  | 'NoNodeFits'
  | 'LostConcurrentConflict'
  | 'UnknownNode'
  | 'NodeNotActive'
  | 'NodeUndersized'
  | 'CreatorEvicted'
  | 'CreatorNotMember'
  | 'CreatorLeft'
  | 'IdTaken'
  | 'Released'
  | 'NodeEvicted'
  | 'NodeLeft'
  | 'NodeDraining'
  | 'CapacityLost'
  | 'Shrunk'
  | 'Queued'
  | 'QueueTimeout'
  | 'Withdrawn'
  | InvalidCode

export interface Verdict {
  id: ReservationId
  /** The ledger key (`<id>@<creator>`) of the entry this verdict is about. */
  key: string
  /** Current status: the decision, possibly later moved to `released` or `evicted`. */
  status: VerdictStatus
  /** Decided at the reservation's point in the log; never changes once final. */
  decision: Decision
  decisionCode: ReasonCode
  decisionReason: string
  /** Nodes chosen by the decision (empty when rejected). */
  nodes: NodeId[]
  /** Nodes it runs on now (an `all` reservation also lands on nodes that joined later). */
  runningOn: NodeId[]
  /** Code and human reason of the current status (equal to the decision's until it ends or is shrunk). */
  code: ReasonCode
  reason: string
  /** Reservation that took the memory, for `LostConcurrentConflict` and `IdTaken`. */
  winner?: ReservationId
  bytes: number
  placement?: Placement
  priority: number
  creator: NodeId
  hlc?: HlcString
  labels: Record<string, string>
  /** Stamp of the release or eviction that ended it. */
  endedHlc?: HlcString
  /** Least it may be shrunk to on capacity loss (docs/design.md "Bounds and the queue"). */
  minBytes?: number
  /** The limit in force: `bytes`, or less once shrunk toward `minBytes`. What the agent applies to the running cgroup. */
  effectiveBytes: number
  /** Stamp of the capacity event that last shrank it. */
  shrunkHlc?: HlcString
  /** Asked to wait in the log for room (`--queue`). */
  queue?: boolean
  /** While queued: 1 for the first in line, counted over entries still waiting. */
  queuePosition?: number
  /** While queued: how many wait in all. */
  queueLength?: number
  /** A queued entry times out at this stamp (its own wall time plus its timeout). */
  queueExpiresHlc?: HlcString
  /** Where it was admitted: its own stamp, or the point in the log where the queue let it in. */
  admittedHlc?: HlcString
  /**
   * The point in the log its decision was made: its own stamp, or — for a
   * queued entry — the event that admitted, expired or withdrew it. Finality is
   * judged at this point: the decision depends on the log up to it only.
   */
  decidedHlc?: HlcString
  /** Final: nothing any member can still write changes the decision (docs/design.md "Finality"). */
  final: boolean
  /** What a tentative verdict waits for: members' clocks, their confirmations, an open view change, or (queued) room. */
  waitingOn?: 'clocks' | 'confirmations' | 'view-change' | 'capacity'
  /** Members it waits for (clocks not past it, or not yet confirmed past it). */
  waitsFor: NodeId[]
  /** Epoch of the view in force at its stamp. */
  view?: number
}

/** One node as the replay leaves it, merged with its latest heartbeat. */
export interface NodeView extends PlacementNode {
  /** In the current view: admitted, not left, not evicted. */
  member: boolean
  /** Membership by the log: `member`, `left`, `evicted`, or `none` (never admitted). */
  standing: 'member' | 'left' | 'evicted' | 'none'
  /** Stamp of its (latest) admission. */
  joinedHlc?: HlcString
  sponsor?: NodeId
  /** The cut of its eviction: its writes after this sequence number do not count. */
  cutSeq?: number
  /** Completeness line its latest beacon announced. */
  seen?: HlcString
  /** Sum of the `all` reservations this node must carry (docs/design.md "Undersized nodes"). */
  allNeedBytes: number
  /** Memory it lacks to carry them; 0 unless undersized. */
  deficitBytes: number
  /** Reservation ids running here. */
  reservations: ReservationId[]
  heartbeat?: Heartbeat
  /** Latest stamp of any write by this node: how far its stream has reached this peer. */
  lastHlc?: HlcString
  /** Highest sequence number seen from this node. */
  lastSeq: number
  /**
   * How far this peer holds the node's stream by its clock: its latest write,
   * or a later beacon whose position this peer holds (it will write nothing
   * at or below that). What an eviction acknowledgement gives for it.
   */
  heldTo?: HlcString
}

/** An entry other than a reservation that resolution refused or ignored. */
export interface LedgerIssue {
  map: 'nodes' | 'releases' | 'capacity' | 'membership' | 'epochs'
  key: string
  code: InvalidCode | StandingCode | MembershipIssue['code']
  reason: string
}

export interface Resolution {
  /** One verdict per deployment id: the entry holding the id now (the latest counted entry that took it). */
  verdicts: Map<ReservationId, Verdict>
  /**
   * Every other entry: those that lost their id to the entry holding it
   * (`IdTaken`), those that held it before and ended before a later entry
   * took it, and entries that do not count or are invalid where a counted
   * entry holds the id.
   */
  conflicts: Verdict[]
  /** `verdicts` and `conflicts` in one list (the replay's): for a walk over every entry without copying both. */
  all: readonly Verdict[]
  nodes: Map<NodeId, NodeView>
  /** Members of the current view, sorted. */
  members: NodeId[]
  /** The current view. */
  view: View
  /** Every view in log order (`views[v.view]` is the view a verdict was decided in). */
  views: View[]
  /** Eviction proposals: open ones (and what they wait for), done, void and refused. */
  proposals: ProposalState[]
  /** Open admission requests (the node is not a member). */
  requests: AdmissionRequest[]
  /** This peer's completeness line: it holds every member's writes stamped at or below it. */
  seen?: HlcString
  /** Verdicts of the current view with an HLC at or below this are final. */
  watermark?: HlcString
  /** Latest stamp in the log. */
  latestHlc?: HlcString
  /** Tentative (not yet final) verdicts, invalid ones excepted. */
  pending: number
  /** The earliest-stamped of those (by the stamp that decided it): what a stalled finality waits on first. */
  oldestPending?: Verdict
  /** The latest-stamped of those (by its own stamp): what `fit()` says an answer waits on, without a walk over every verdict per question. */
  latestPending?: Verdict
  issues: LedgerIssue[]
  counts: Record<VerdictStatus, number>
  /** Fingerprint of every verdict's decision and status: equal digests, equal answers. */
  digest: string
}

// ---------------------------------------------------------------- the replay

const KIND_JOIN = 0
const KIND_CAPACITY = 1
const KIND_EVICT = 2
const KIND_RELEASE = 3
const KIND_RESERVATION = 4
/** A queued entry's timeout: a point of the log derived from the entry itself (docs/design.md "Bounds and the queue"). */
const KIND_EXPIRE = 5

type LogEvent =
  | { kind: typeof KIND_JOIN, hlc: HlcString, key: string, record: AdmitRecord }
  | { kind: typeof KIND_CAPACITY, hlc: HlcString, key: string, event: CapacityEvent }
  | { kind: typeof KIND_EVICT, hlc: HlcString, key: string, nodes: NodeId[], forced: boolean }
  | { kind: typeof KIND_RELEASE, hlc: HlcString, key: string, release: Release }
  | { kind: typeof KIND_RESERVATION, hlc: HlcString, key: string, reservation: Reservation }
  | { kind: typeof KIND_EXPIRE, hlc: HlcString, key: string }

export interface Slot extends PlacementNode {
  state: PlacementNode['state']
  charges: Map<ReservationId, Reservation>
  /** The last few reservations admitted here, newest last (for naming a conflict's winner). */
  recent: Reservation[]
  joinedHlc?: HlcString
  sponsor?: NodeId
}

export interface Running {
  key: string
  reservation: Reservation
  verdict: Verdict
  nodes: NodeId[]
  /** Charged on each of its nodes: `bytes`, or less once shrunk. */
  effectiveBytes: number
}

/** An entry waiting in the queue, in log order (first come, first served by stamp). */
export interface Waiting {
  key: string
  reservation: Reservation
  verdict: Verdict
}

/** How far back, per node, to look for the reservation that took the memory. */
const WINNER_LOOKBACK = 8

export class Replay {
  readonly slots = new Map<NodeId, Slot>()
  readonly running = new Map<ReservationId, Running>()
  /** Releases earlier in the log than the entry they end, by entry key. */
  readonly pendingReleases = new Map<string, HlcString>()
  readonly issues: LedgerIssue[] = []
  /** Sum of the admitted `all` reservations, which every schedulable node carries. */
  allNeedBytes = 0
  /** Queued entries still waiting, in log order (docs/design.md "Bounds and the queue"). */
  readonly queue = new Map<string, Waiting>()
  /** Memory was freed or capacity changed since the queue was last tried. */
  private roomMayHaveGrown = false
  private readonly index = new HeadroomIndex()
  private readonly lookup = (id: NodeId): Slot | undefined => this.slots.get(id)

  /** File every slot in the headroom index: after a replay's state was restored from a checkpoint (crdt/checkpoint.ts). */
  reindex (): void {
    for (const slot of this.slots.values()) this.index.update(slot)
  }

  /** An admission: the node is a member from here, with the capacity its sponsor wrote. */
  admit (record: AdmitRecord): void {
    let slot = this.slots.get(record.node)
    if (slot === undefined) {
      slot = { id: record.node, state: 'unknown', allocatableBytes: 0, committedBytes: 0, undersized: false, charges: new Map(), recent: [] }
      this.slots.set(record.node, slot)
    } else {
      // Coming back after a leave or an eviction: a new membership, nothing carried over.
      slot.state = 'unknown'
      slot.allocatableBytes = 0
      slot.undersized = false
    }
    slot.joinedHlc = record.hlc
    slot.sponsor = record.by
    this.capacity({ node: record.node, allocatableBytes: record.allocatableBytes, state: 'active', hlc: record.hlc, seq: record.seq }, `admission of ${record.node}`)
  }

  capacity (event: CapacityEvent, key: string): void {
    this.roomMayHaveGrown = true
    const slot = this.slots.get(event.node)
    if (slot === undefined) {
      this.issues.push({ map: 'capacity', key, code: 'CreatorNotMember', reason: `capacity event of ${shortId(event.node)} before its admission` })
      return
    }
    if (slot.state === 'evicted') return
    if (event.state === 'draining' || event.state === 'left') {
      this.vacate(slot, event.state === 'left' ? 'NodeLeft' : 'NodeDraining', event.hlc)
      slot.state = event.state
      slot.allocatableBytes = event.allocatableBytes
      slot.undersized = false
      this.index.update(slot)
      return
    }
    // `active` or `cordoned` (docs/design.md "Pressure ladder"): a cordoned node
    // keeps what it runs and shrinks by the same rule, but takes nothing new —
    // not even new `all` reservations, which it takes on when active again.
    const wasCarrying = (slot.state === 'active' || slot.state === 'cordoned') && !slot.undersized
    const wasActive = slot.state === 'active' && !slot.undersized
    slot.state = event.state
    slot.allocatableBytes = event.allocatableBytes
    if (wasCarrying && event.allocatableBytes < this.allBytesOn(slot)) {
      // docs/design.md "Undersized nodes": shrinking below the `all` deploys
      // does not evict them; the node is marked undersized (add memory or be
      // evicted) and stops carrying them here.
      this.dropAllCharges(slot)
      slot.undersized = true
    }
    this.index.update(slot)
    this.shrinkToFit(slot, event.hlc)
    if (slot.state === 'active' && (slot.undersized || !wasActive)) this.tryCarryAll(slot)
    this.index.update(slot)
  }

  /** The `all` reservations a node carries now (all of them, unless it was cordoned when some were admitted). */
  private allBytesOn (slot: Slot): number {
    let bytes = 0
    for (const reservation of slot.charges.values()) if (reservation.placement.kind === 'all') bytes += reservation.bytes
    return bytes
  }

  evict (node: NodeId, hlc: HlcString): void {
    const slot = this.slots.get(node)
    if (slot === undefined || slot.state === 'evicted') return
    this.roomMayHaveGrown = true
    this.vacate(slot, 'NodeEvicted', hlc)
    slot.state = 'evicted'
    slot.allocatableBytes = 0
    slot.undersized = false
    this.index.update(slot)
  }

  /**
   * A release ends exactly the entry it names; one naming an entry that lost
   * its id ends nothing. One that names its entry's stamp (`of`, always
   * earlier than its own) ends only that entry, met earlier in the log, or
   * nothing: a later entry under the same key (after a compaction) is another
   * reservation.
   */
  release (release: Release): void {
    const key = entryKey(release.id, release.creator)
    const names = (entry: Reservation): boolean => release.of === undefined || release.of === entry.hlc
    const waiting = this.queue.get(key)
    if (waiting !== undefined && names(waiting.reservation)) {
      this.queue.delete(key)
      decideAt(waiting.verdict, 'rejected', 'Withdrawn', `withdrawn from the queue at ${release.hlc} by ${shortId(release.by)} before it was admitted`, release.hlc)
      return
    }
    const run = this.running.get(release.id)
    if (run !== undefined && run.key === key && names(run.reservation)) {
      this.end(run, 'released', 'Released', `released at ${release.hlc} by ${shortId(release.by)}`, release.hlc)
      return
    }
    // A release earlier in the log than its reservation: the reservation is
    // released the moment it is admitted. Earliest release wins. (One naming
    // a stamp met its entry earlier in the log, or has none to meet.)
    if (release.of === undefined && !this.pendingReleases.has(key)) this.pendingReleases.set(key, release.hlc)
  }

  reserve (key: string, reservation: Reservation, verdict: Verdict): void {
    const result = place(this.slots.values(), this.lookup, reservation.bytes, reservation.placement, this.index)
    if (!result.ok && reservation.queue === true) {
      if (this.pendingReleases.has(key)) {
        decideAt(verdict, 'rejected', 'Withdrawn', `withdrawn: released at ${this.pendingReleases.get(key)!} (the release sorts before the reservation), and it did not fit`, reservation.hlc)
        return
      }
      // It waits: no decision yet (docs/design.md "Bounds and the queue").
      decide(verdict, 'queued', 'Queued', `queued: ${result.reason.replace(/^rejected: /, '')}`)
      verdict.decidedHlc = undefined
      this.queue.set(key, { key, reservation, verdict })
      return
    }
    if (!result.ok) {
      const winner = this.findWinner(reservation, result.blocking)
      if (winner !== undefined) {
        const node = winner.node
        decide(verdict, 'rejected', 'LostConcurrentConflict',
          `rejected: lost to '${winner.reservation.id}' (${formatSize(winner.reservation.bytes)}, earlier in the log) on node ${shortId(node)}; needs ${formatSize(reservation.bytes)}, headroom was ${formatSize(winner.room)}`)
        verdict.winner = winner.reservation.id
      } else {
        decide(verdict, 'rejected', result.code, result.reason)
      }
      return
    }
    decide(verdict, 'admitted', 'Fits', result.reason)
    this.start(key, reservation, verdict, result.nodes, reservation.hlc)
  }

  /**
   * A queued entry's timeout: it leaves the queue rejected, at the stamp its
   * own wall time plus its timeout — a point of the log, the same on every
   * peer, never a reading of a local clock.
   */
  expire (key: string, hlc: HlcString): void {
    const waiting = this.queue.get(key)
    if (waiting === undefined) return
    this.queue.delete(key)
    decideAt(waiting.verdict, 'rejected', 'QueueTimeout',
      `rejected: waited in the queue from ${waiting.reservation.hlc} to ${hlc} (timeout ${waiting.reservation.queueTimeoutMs} ms) and never fitted; ${waiting.verdict.reason.replace(/^queued: /, 'last: ')}`, hlc)
  }

  /**
   * After a point in the log that freed memory or changed capacity, try the
   * queue in log order (first come, first served): each entry that fits now is
   * admitted here; one that does not keeps its place and the next is tried.
   */
  drainQueue (hlc: HlcString): void {
    if (!this.roomMayHaveGrown || this.queue.size === 0) {
      this.roomMayHaveGrown = false
      return
    }
    this.roomMayHaveGrown = false
    for (const waiting of [...this.queue.values()]) {
      const { key, reservation, verdict } = waiting
      const result = place(this.slots.values(), this.lookup, reservation.bytes, reservation.placement, this.index)
      if (!result.ok) {
        verdict.reason = verdict.decisionReason = `queued: ${result.reason.replace(/^rejected: /, '')}`
        continue
      }
      this.queue.delete(key)
      decideAt(verdict, 'admitted', 'Fits', `admitted from the queue at ${hlc} (queued at ${reservation.hlc}): ${result.reason.replace(/^admitted /, '')}`, hlc)
      this.start(key, reservation, verdict, result.nodes, hlc)
    }
    this.roomMayHaveGrown = false
  }

  /** Charge an admitted reservation on its nodes from `hlc` on. */
  private start (key: string, reservation: Reservation, verdict: Verdict, nodes: NodeId[], hlc: HlcString): void {
    verdict.nodes = nodes
    verdict.admittedHlc = hlc
    const run: Running = { key, reservation, verdict, nodes: [...nodes], effectiveBytes: reservation.bytes }
    this.running.set(reservation.id, run)
    for (const id of nodes) this.charge(this.slots.get(id)!, reservation)
    if (reservation.placement.kind === 'all') this.allNeedBytes += reservation.bytes
    const releasedAt = this.pendingReleases.get(key)
    if (releasedAt !== undefined) {
      this.end(run, 'released', 'Released', `released at ${releasedAt} (the release sorts before the reservation)`, hlc)
    }
  }

  /** Finish: copy running nodes into verdicts; number the queue. */
  finish (): void {
    for (const run of this.running.values()) run.verdict.runningOn = [...run.nodes].sort()
    let position = 0
    for (const { verdict } of this.queue.values()) {
      verdict.queuePosition = ++position
      verdict.queueLength = this.queue.size
    }
  }

  // -------------------------------------------------------------- helpers

  private charge (slot: Slot, reservation: Reservation): void {
    slot.charges.set(reservation.id, reservation)
    slot.committedBytes += reservation.bytes
    slot.recent.push(reservation)
    if (slot.recent.length > WINNER_LOOKBACK) slot.recent.shift()
    this.index.update(slot)
  }

  private uncharge (slot: Slot, reservation: Reservation, bytes = reservation.bytes): void {
    if (slot.charges.delete(reservation.id)) {
      slot.committedBytes -= bytes
      this.roomMayHaveGrown = true
      this.index.update(slot)
    }
  }

  /** End a running reservation everywhere it runs. */
  private end (run: Running, status: 'released' | 'evicted', code: ReasonCode, reason: string, hlc: HlcString): void {
    this.running.delete(run.reservation.id)
    for (const id of run.nodes) {
      const slot = this.slots.get(id)
      if (slot !== undefined) this.uncharge(slot, run.reservation, run.effectiveBytes)
    }
    run.nodes = []
    run.verdict.status = status
    run.verdict.code = code
    run.verdict.reason = reason
    run.verdict.endedHlc = hlc
    if (run.reservation.placement.kind === 'all') {
      this.allNeedBytes -= run.reservation.bytes
      // Less to carry: an undersized node may now carry the rest.
      for (const slot of this.slots.values()) if (slot.undersized && slot.state === 'active') this.tryCarryAll(slot)
    }
  }

  /** A node leaves the placement set: its reservations end, `all` ones only lose this node. */
  private vacate (slot: Slot, code: 'NodeLeft' | 'NodeDraining' | 'NodeEvicted', hlc: HlcString): void {
    const what = code === 'NodeLeft' ? 'left' : code === 'NodeDraining' ? 'is draining' : 'was evicted'
    for (const reservation of [...slot.charges.values()]) {
      const run = this.running.get(reservation.id)!
      if (reservation.placement.kind === 'all') {
        this.uncharge(slot, reservation)
        run.nodes = run.nodes.filter(id => id !== slot.id)
      } else {
        this.end(run, 'evicted', code, `evicted: node ${shortId(slot.id)} ${what} (at ${hlc})`, hlc)
      }
    }
  }

  private dropAllCharges (slot: Slot): void {
    for (const reservation of [...slot.charges.values()]) {
      if (reservation.placement.kind !== 'all') continue
      this.uncharge(slot, reservation)
      const run = this.running.get(reservation.id)!
      run.nodes = run.nodes.filter(id => id !== slot.id)
    }
  }

  /**
   * docs/design.md "Capacity loss" and "Bounds and the queue": shrink what has
   * a minimum toward it, then evict what still does not fit — both lowest
   * priority first, then latest HLC first.
   */
  private shrinkToFit (slot: Slot, hlc: HlcString): void {
    if (slot.committedBytes <= slot.allocatableBytes) return
    const allocatable = slot.allocatableBytes
    const shrinkable = [...slot.charges.values()]
      .filter(r => r.placement.kind !== 'all' && r.minBytes !== undefined && this.running.get(r.id)!.effectiveBytes > r.minBytes)
      .sort(shrinkOrder)
    for (const reservation of shrinkable) {
      const excess = slot.committedBytes - slot.allocatableBytes
      if (excess <= 0) break
      const run = this.running.get(reservation.id)!
      const from = run.effectiveBytes
      const cut = Math.min(from - reservation.minBytes!, excess)
      run.effectiveBytes = from - cut
      // One limit per reservation: a spread one is shrunk on every node it runs on.
      for (const id of run.nodes) {
        const on = this.slots.get(id)!
        on.committedBytes -= cut
        this.index.update(on)
      }
      this.roomMayHaveGrown = true
      const v = run.verdict
      v.effectiveBytes = run.effectiveBytes
      v.shrunkHlc = hlc
      v.code = 'Shrunk'
      v.reason = `shrunk from ${formatSize(from)} to ${formatSize(run.effectiveBytes)} (limit ${formatSize(reservation.bytes)}, minimum ${formatSize(reservation.minBytes!)}): node ${shortId(slot.id)} shrank to ${formatSize(allocatable)} allocatable (at ${hlc}); lowest priority, latest first`
    }
    if (slot.committedBytes <= slot.allocatableBytes) return
    const victims = [...slot.charges.values()]
      .filter(r => r.placement.kind !== 'all')
      .sort((a, b) => a.priority - b.priority || compareHlc(b.hlc, a.hlc) || (a.id < b.id ? -1 : 1))
    for (const reservation of victims) {
      if (slot.committedBytes <= slot.allocatableBytes) break
      const before = slot.allocatableBytes
      this.end(this.running.get(reservation.id)!, 'evicted', 'CapacityLost',
        `evicted: node ${shortId(slot.id)} shrank to ${formatSize(before)} allocatable (at ${hlc}); lowest priority, latest first`, hlc)
    }
  }

  /** An active node takes on every admitted `all` reservation if it can, else stays undersized. */
  private tryCarryAll (slot: Slot): void {
    if (this.allNeedBytes === 0) {
      slot.undersized = false
      this.index.update(slot)
      return
    }
    if (slot.allocatableBytes - slot.committedBytes < this.allNeedBytes - this.allBytesOn(slot)) {
      slot.undersized = true
      this.index.update(slot)
      return
    }
    slot.undersized = false
    this.index.update(slot)
    for (const run of this.running.values()) {
      if (run.reservation.placement.kind !== 'all' || slot.charges.has(run.reservation.id)) continue
      this.charge(slot, run.reservation)
      run.nodes.push(slot.id)
    }
  }

  /**
   * The reservation that took the memory: the latest admitted one, from another
   * creator, whose absence would have let this one fit on a blocking node. The
   * API only writes what fits in the creator's view, so such a loss means the
   * creator had not seen the winner: a concurrent conflict
   * (docs/design.md "The y/z race").
   */
  private findWinner (reservation: Reservation, blocking: NodeId[]): { reservation: Reservation, node: NodeId, room: number } | undefined {
    let candidates: Slot[]
    if (reservation.placement.kind === 'any' || reservation.placement.kind === 'spread') {
      candidates = [...this.slots.values()].filter(s => s.state === 'active' && !s.undersized)
    } else {
      candidates = blocking.map(id => this.slots.get(id)).filter((s): s is Slot => s !== undefined)
      // For `all`, the winner must unblock the tightest node.
      candidates.sort((a, b) => (a.allocatableBytes - a.committedBytes) - (b.allocatableBytes - b.committedBytes) || (a.id < b.id ? -1 : 1))
      candidates = candidates.slice(0, 1)
    }
    let found: { reservation: Reservation, node: NodeId, room: number } | undefined
    for (const slot of candidates) {
      const room = slot.allocatableBytes - slot.committedBytes
      for (let i = slot.recent.length - 1; i >= 0; i--) {
        const other = slot.recent[i]
        // Charged here now, this very entry: an ended one of the same id (an id taken again) holds nothing.
        if (slot.charges.get(other.id) !== other || other.creator === reservation.creator || room + other.bytes < reservation.bytes) continue
        if (found === undefined || compareHlc(other.hlc, found.reservation.hlc) > 0) found = { reservation: other, node: slot.id, room }
        break
      }
    }
    return found
  }
}

/** Shrink order: lowest priority first, then the latest stamp first, then by id (the same on every peer). */
function shrinkOrder (a: Reservation, b: Reservation): number {
  return a.priority - b.priority || compareHlc(b.hlc, a.hlc) || (a.id < b.id ? -1 : 1)
}

/**
 * docs/design.md "Resolution": a counted entry stamped `hlc` takes an id from
 * the entry holding it only when that entry has ended — released, evicted,
 * rejected, timed out of the queue or withdrawn — at a stamp strictly before
 * `hlc`. A rule of the log alone, evaluated at the new entry's point: every
 * end stamped before it has been replayed there, so every peer decides alike,
 * and the decision rests on the log before `hlc`, like any other (final once
 * that prefix is, docs/decisions.md "Ids are free again once their entry has
 * ended"). A holder still running or queued there keeps the id.
 */
function takesId (holder: Verdict, hlc: HlcString): boolean {
  const end = holder.status === 'released' || holder.status === 'evicted'
    ? holder.endedHlc
    : holder.status === 'rejected' ? holder.decidedHlc : undefined
  return end !== undefined && compareHlc(end, hlc) < 0
}

/** Decide a queued entry at a later point of the log. */
function decideAt (verdict: Verdict, decision: Decision, code: ReasonCode, reason: string, hlc: HlcString): void {
  decide(verdict, decision, code, reason)
  verdict.decidedHlc = hlc
}

function decide (verdict: Verdict, decision: Decision, code: ReasonCode, reason: string): void {
  verdict.decision = decision
  verdict.status = decision
  verdict.decisionCode = code
  verdict.code = code
  verdict.decisionReason = reason
  verdict.reason = reason
}

function newVerdict (key: string, reservation: Reservation): Verdict {
  return {
    id: reservation.id,
    key,
    status: 'rejected',
    decision: 'rejected',
    decisionCode: 'InsufficientMemory',
    decisionReason: '',
    nodes: [],
    runningOn: [],
    code: 'InsufficientMemory',
    reason: '',
    bytes: reservation.bytes,
    placement: reservation.placement,
    priority: reservation.priority,
    creator: reservation.creator,
    hlc: reservation.hlc,
    labels: reservation.labels,
    effectiveBytes: reservation.bytes,
    ...(reservation.minBytes !== undefined ? { minBytes: reservation.minBytes } : {}),
    ...(reservation.queue === true ? { queue: true } : {}),
    ...(reservation.queueTimeoutMs !== undefined ? { queueExpiresHlc: expiryStamp(reservation) } : {}),
    decidedHlc: reservation.hlc,
    final: false,
    waitsFor: []
  }
}

/** The stamp a queued entry times out at: its own wall time plus its timeout, counter 0, its creator's name. */
function expiryStamp (reservation: Reservation): HlcString {
  return encodeHlc({ wallMs: hlcWallMs(reservation.hlc) + reservation.queueTimeoutMs!, counter: 0, node: reservation.creator })
}

function invalidVerdict (key: string, raw: unknown, code: InvalidCode, reason: string): Verdict {
  const { id, writer } = splitEntryKey(key)
  const value = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>
  return {
    id,
    key,
    status: 'invalid',
    decision: 'invalid',
    decisionCode: code,
    decisionReason: `invalid: ${reason}`,
    nodes: [],
    runningOn: [],
    code,
    reason: `invalid: ${reason}`,
    bytes: typeof value.bytes === 'number' && Number.isSafeInteger(value.bytes) ? value.bytes : 0,
    priority: 0,
    creator: writer,
    labels: {},
    effectiveBytes: 0,
    final: false,
    waitsFor: []
  }
}

/** Who computes a resolution: finality is about what this peer holds (docs/design.md "Finality"). */
export interface FinalityOptions {
  /** The peer computing it. Its own stream is complete up to its clock. */
  self?: NodeId
  /** Its hybrid clock now: everything it writes later sorts after this. */
  selfClock?: HlcString
  /**
   * Beacons this peer holds from each member (the clock channel; not ledger
   * entries). A member's clock counts up to the latest beacon whose position
   * this peer's copy of its stream has reached, and its announcement is the
   * latest line any of them carried.
   */
  beacons?: ReadonlyMap<NodeId, readonly Beacon[]>
}


/** Resolve a document or a snapshot read from one. */
export function resolve (input: Y.Doc | LedgerSnapshot, options: FinalityOptions = {}): Resolution {
  const snapshot = isSnapshot(input) ? input : readLedger(input)
  return finishResolution(replayLedger(snapshot), snapshot.nodes, options)
}

/** The decision part of a resolution: everything but heartbeats. */
export interface Replayed {
  verdicts: Map<ReservationId, Verdict>
  conflicts: Verdict[]
  all: Verdict[]
  /** Opaque replay state (node slots) that {@link finishResolution} reads. */
  replay: Replay
  membership: Membership
  streams: Map<NodeId, { hlc?: HlcString, seq: number }>
  issues: LedgerIssue[]
  counts: Record<VerdictStatus, number>
  latestHlc?: HlcString
  /** Epoch proposals written by members (docs/design.md "Compaction: epochs"). */
  proposals: EpochProposal[]
  digest: string
}

const STANDING_TEXT: Record<StandingCode, string> = {
  CreatorNotMember: 'was not a member when it wrote this (not admitted yet, or never)',
  CreatorLeft: 'had left the cluster when it wrote this',
  CreatorEvicted: 'was evicted and this write came after the cut of its stream'
}

/**
 * Where a replay starts when it does not start from an empty cluster: the
 * state at a stable cut, from a checkpoint (crdt/checkpoint.ts, docs/design.md
 * "Checkpoints"). Counted entries stamped at or before `cut` are not replayed:
 * their effect is in the restored state.
 */
export interface ReplayBase {
  cut: HlcString
  /** How far counted entries at or before the cut reach in each node's stream. */
  streams: ReadonlyMap<NodeId, { hlc?: HlcString, seq: number }>
  /**
   * Put the replay in the state at the cut; returns the verdicts of the
   * entries live there (running or queued): they hold their ids, and no
   * entry that ended at or before the cut holds one for an entry after it.
   */
  restore: (replay: Replay) => Verdict[]
}

/** The replay's state at a cut, handed to {@link ReplayOptions.atCut}: read it at once, the replay goes on. */
export interface CutState {
  cut: HlcString
  replay: Replay
  /** Verdicts of the counted entries stamped at or before the cut (after the base's cut, plus those live at it), `IdTaken` losers included. */
  counted: Verdict[]
  /** How far counted entries at or before the cut (after the base's cut) reach in each node's stream. */
  streams: Map<NodeId, { hlc?: HlcString, seq: number }>
  /** Releases still waiting for their entry that can still meet it: no entry of that key is stamped at or before the cut. */
  pendingReleases: Array<[string, HlcString]>
}

export interface ReplayOptions {
  /** Start from the state at a cut instead of an empty cluster. */
  base?: ReplayBase
  /** Observe the state at this stamp: after every event at or before it, before any after it. */
  cut?: HlcString
  atCut?: (state: CutState) => void
}

/** Replay the log (reservations, releases, capacity, membership); heartbeats are not read. */
export function replayLedger (snapshot: Omit<LedgerSnapshot, 'nodes'>, options: ReplayOptions = {}): Replayed {
  const { base, cut } = options
  /** Counted entries at or before the base's cut are in the restored state, not replayed. */
  const inBase = (hlc: HlcString): boolean => base !== undefined && compareHlc(hlc, base.cut) <= 0
  const byCut = (hlc: HlcString): boolean => cut !== undefined && compareHlc(hlc, cut) <= 0
  const cutStreams = new Map<NodeId, { hlc?: HlcString, seq: number }>()
  const advanceTo = (streams: Map<NodeId, { hlc?: HlcString, seq: number }>, node: NodeId, hlc: HlcString | undefined, seq: number): void => {
    const s = streams.get(node)
    if (s === undefined) streams.set(node, { hlc, seq })
    else {
      if (hlc !== undefined && (s.hlc === undefined || hlc > s.hlc)) s.hlc = hlc
      if (seq > s.seq) s.seq = seq
    }
  }
  /** A counted entry at or before the cut (not in the base): part of the state the cut observes. */
  const counted = (node: NodeId, hlc: HlcString, seq: number): void => {
    if (byCut(hlc) && !inBase(hlc)) advanceTo(cutStreams, node, hlc, seq)
  }
  const issues: LedgerIssue[] = []
  const log: LogEvent[] = []
  /** Latest stamp and highest seq per writer: how far its stream has reached this peer. */
  const streams = new Map<NodeId, { hlc?: HlcString, seq: number }>()
  const advance = (node: NodeId, hlc: HlcString, seq: number): void => { advanceTo(streams, node, hlc, seq) }
  for (const [node, s] of base?.streams ?? []) advanceTo(streams, node, s.hlc, s.seq)

  const records: Array<{ key: string, record: MembershipRecord }> = []
  for (const [key, raw] of Object.entries(snapshot.membership)) {
    const v = validateMembership(key, raw)
    if (!v.ok) { issues.push({ map: 'membership', key, code: v.code, reason: v.reason }); continue }
    records.push({ key, record: v.value })
    advance(v.value.kind === 'request' ? v.value.node : v.value.by, v.value.hlc, v.value.seq)
  }
  const capacity: Array<{ key: string, event: CapacityEvent }> = []
  for (const [key, raw] of Object.entries(snapshot.capacity)) {
    const v = validateCapacity(key, raw)
    if (!v.ok) { issues.push({ map: 'capacity', key, code: v.code, reason: v.reason }); continue }
    advance(v.value.node, v.value.hlc, v.value.seq)
    capacity.push({ key, event: v.value })
  }
  const membership = computeMembership(records, capacity.filter(c => c.event.state === 'left'))
  // Epoch proposals: positions of their proposers' streams, and the ones
  // that count (written by a member) for crdt/epoch.ts settledProposal.
  const proposals: EpochProposal[] = []
  for (const [key, raw] of Object.entries(snapshot.epochs ?? {})) {
    const v = validateProposal(key, raw)
    if (!v.ok) { issues.push({ map: 'epochs', key, code: v.code, reason: v.reason }); continue }
    advance(v.value.proposer, v.value.hlc, v.value.seq)
    if (membership.standing(v.value.proposer, v.value.hlc, v.value.seq) === undefined) proposals.push(v.value)
  }
  for (const issue of membership.issues) issues.push({ map: 'membership', ...issue })
  for (const effect of membership.effects) {
    if (inBase(effect.hlc)) continue
    if (effect.kind === 'admit') log.push({ kind: KIND_JOIN, hlc: effect.hlc, key: effect.key, record: effect.record })
    else log.push({ kind: KIND_EVICT, hlc: effect.hlc, key: effect.key, nodes: effect.nodes, forced: effect.forced })
  }
  const standing = membership.standing

  for (const { key, event } of capacity) {
    const code = standing(event.node, event.hlc, event.seq)
    if (code !== undefined) {
      issues.push({ map: 'capacity', key, code, reason: `capacity event ignored: ${shortId(event.node)} ${STANDING_TEXT[code]}` })
      continue
    }
    if (inBase(event.hlc)) continue
    counted(event.node, event.hlc, event.seq)
    log.push({ kind: KIND_CAPACITY, hlc: event.hlc, key, event })
  }

  for (const [key, raw] of Object.entries(snapshot.releases)) {
    const v = validateRelease(key, raw)
    if (!v.ok) { issues.push({ map: 'releases', key, code: v.code, reason: v.reason }); continue }
    advance(v.value.by, v.value.hlc, v.value.seq)
    const code = standing(v.value.by, v.value.hlc, v.value.seq)
    if (code !== undefined) {
      issues.push({ map: 'releases', key, code, reason: `release ignored: ${shortId(v.value.by)} ${STANDING_TEXT[code]}` })
      continue
    }
    if (inBase(v.value.hlc)) continue
    counted(v.value.by, v.value.hlc, v.value.seq)
    log.push({ kind: KIND_RELEASE, hlc: v.value.hlc, key, release: v.value })
  }

  // Reservations: every entry that counts enters the log, and takes its id at
  // its point there unless the entry holding the id has not ended before it
  // (IdTaken; see `takesId`). An entry that does not count (its creator was
  // not a member then) holds nothing: it is rejected with the reason, for good.
  const conflicts: Verdict[] = []
  const invalid: Verdict[] = []
  const expiries: LogEvent[] = []
  const valid: Array<{ key: string, reservation: Reservation, code?: StandingCode }> = []
  /**
   * Keys of counted entries stamped at or before the cut: a release waiting
   * for one of them can never meet it. Only counted ones: a non-member's
   * entry can arrive after any cut, whatever its stamp (it never reaches the
   * replay, so a release waiting for it is inert either way), and the state
   * at a cut must not depend on whether it has arrived yet.
   */
  const stampedByCut = new Set<string>()
  for (const [key, raw] of Object.entries(snapshot.reservations)) {
    const v = validateReservation(key, raw)
    if (!v.ok) { invalid.push(invalidVerdict(key, raw, v.code, v.reason)); continue }
    const reservation = v.value
    advance(reservation.creator, reservation.hlc, reservation.seq)
    const code = standing(reservation.creator, reservation.hlc, reservation.seq)
    if (code === undefined && byCut(reservation.hlc)) stampedByCut.add(key)
    if (code === undefined && inBase(reservation.hlc)) continue
    valid.push({ key, reservation, code })
    if (code === undefined) counted(reservation.creator, reservation.hlc, reservation.seq)
  }
  const byKey = new Map<string, Verdict>()
  const outsiders: Verdict[] = []
  const replay = new Replay()
  const cutCounted: Verdict[] = []
  /**
   * The entry holding each id: the latest that took it, in log order. One
   * restored from a base is live at its cut (running or queued); the entries
   * that ended at or before the cut hold nothing for any entry after it.
   */
  const holders = new Map<ReservationId, Verdict>()
  /** Entries that held their id and ended before a later entry took it. */
  const former: Verdict[] = []
  for (const verdict of base?.restore(replay) ?? []) {
    holders.set(verdict.id, verdict)
    // Live at the base's cut: counted there, and it may end before this cut.
    cutCounted.push(verdict)
    // A queued entry carried over still times out at its own point of the log.
    if (verdict.status === 'queued' && verdict.queueExpiresHlc !== undefined) expiries.push({ kind: KIND_EXPIRE, hlc: verdict.queueExpiresHlc, key: verdict.key })
  }
  for (const { key, reservation, code } of valid) {
    const verdict = newVerdict(key, reservation)
    byKey.set(key, verdict)
    if (code !== undefined) {
      decide(verdict, 'rejected', code, `rejected: creator ${shortId(reservation.creator)} ${STANDING_TEXT[code]}`)
      outsiders.push(verdict)
      continue
    }
    if (byCut(reservation.hlc)) cutCounted.push(verdict)
    log.push({ kind: KIND_RESERVATION, hlc: reservation.hlc, key, reservation })
    if (reservation.queue === true && reservation.queueTimeoutMs !== undefined) expiries.push({ kind: KIND_EXPIRE, hlc: verdict.queueExpiresHlc!, key })
  }
  /** A counted entry at its point in the log: it takes its id, or loses it to the entry holding it. */
  const reserve = (key: string, reservation: Reservation): void => {
    const verdict = byKey.get(key)!
    const holder = holders.get(reservation.id)
    if (holder !== undefined && !takesId(holder, reservation.hlc)) {
      decide(verdict, 'rejected', 'IdTaken', `rejected: id '${reservation.id}' is held by ${shortId(holder.creator)}'s entry (${holder.hlc}), which had not ended before this one; an id is free again once the entry holding it has ended`)
      verdict.winner = reservation.id
      conflicts.push(verdict)
      return
    }
    if (holder !== undefined) former.push(holder)
    holders.set(reservation.id, verdict)
    replay.reserve(key, reservation, verdict)
  }

  // A queue timeout is a point of the log only once the document has reached
  // it: it holds an entry stamped at or after it (any valid entry, counted or
  // not, so the evidence never goes away — a cut cannot take it back). Before
  // that a write stamped earlier may still admit the entry, so it is shown
  // queued, not timed out; the creator's agent withdraws it once its clock is
  // past, so a quiet cluster reaches the point too. Its decision rests on the
  // log up to the timeout only, and is final like any decision at that stamp.
  let reached = ''
  for (const stream of streams.values()) if (stream.hlc !== undefined && stream.hlc > reached) reached = stream.hlc
  for (const expiry of expiries) if (expiry.hlc <= reached) log.push(expiry)
  log.sort((a, b) => compareHlc(a.hlc, b.hlc) || a.kind - b.kind || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  const observe = (): void => {
    if (cut === undefined) return
    const pendingReleases = [...replay.pendingReleases].filter(([key]) => !stampedByCut.has(key))
    options.atCut?.({ cut, replay, counted: cutCounted, streams: cutStreams, pendingReleases })
  }
  let observed = cut === undefined
  for (const event of log) {
    if (!observed && compareHlc(event.hlc, cut!) > 0) { observe(); observed = true }
    switch (event.kind) {
      case KIND_JOIN: replay.admit(event.record); break
      case KIND_CAPACITY: replay.capacity(event.event, event.key); break
      case KIND_EVICT: for (const node of event.nodes) replay.evict(node, event.hlc); break
      case KIND_RELEASE: replay.release(event.release); break
      case KIND_RESERVATION: reserve(event.key, event.reservation); break
      case KIND_EXPIRE: replay.expire(event.key, event.hlc); break
    }
    replay.drainQueue(event.hlc)
  }
  if (!observed) observe()
  replay.finish()
  issues.push(...replay.issues)

  // One verdict per id: the entry holding it now; those that held it before
  // and ended are kept with the conflicts. Entries that do not count and
  // invalid ones take an id only when no counted entry holds it (earliest
  // stamp, then key).
  const verdicts = new Map(holders)
  conflicts.push(...former)
  outsiders.sort((a, b) => compareHlc(a.hlc!, b.hlc!) || (a.key < b.key ? -1 : 1))
  for (const verdict of [...outsiders, ...invalid]) {
    if (verdicts.has(verdict.id)) conflicts.push(verdict)
    else verdicts.set(verdict.id, verdict)
  }

  const counts: Record<VerdictStatus, number> = { admitted: 0, rejected: 0, evicted: 0, released: 0, invalid: 0, queued: 0 }
  const all = [...verdicts.values(), ...conflicts]
  for (const verdict of all) {
    counts[verdict.status]++
    if (verdict.hlc !== undefined) verdict.view = viewAt(membership.views, verdict.hlc).epoch
  }
  let latestHlc: HlcString | undefined
  for (const s of streams.values()) if (s.hlc !== undefined && (latestHlc === undefined || s.hlc > latestHlc)) latestHlc = s.hlc
  let digest: string | undefined
  return {
    verdicts,
    conflicts,
    all,
    replay,
    membership,
    streams,
    issues,
    counts,
    latestHlc,
    proposals,
    // Computed when first read: it sorts and prints every verdict, and most
    // replays (one per ledger change) are never asked for it.
    get digest () { return (digest ??= digestVerdicts(all)) }
  }
}

/** Above every stamp: a stream that is complete (a node that left, or an evicted one held up to its cut). */
const COMPLETE = '\uffff'

/** `waitsFor` of a verdict that waits for nobody: one frozen list, not a new one per verdict per resolution. */
const NONE: NodeId[] = Object.freeze([]) as unknown as NodeId[]

/**
 * Add what beacons decide — finality, node figures — to a replay. Beacons
 * (heartbeats) never change a decision, so a peer that just heard one runs
 * only this (cheap) part; the replay runs when a ledger entry changed.
 *
 * A decision at stamp t is final at this peer when (docs/design.md "Finality"):
 * 1. this peer holds every write that can sort before t: for every node that
 *    was ever a member, its stream has reached t here (or is complete: it left,
 *    or was evicted and is held up to its cut) — the peer's *completeness line*
 *    is at or past t; and
 * 2. a strict majority of the view in force at t has announced, in a beacon, a
 *    completeness line at or past t. Any eviction needs every remaining member
 *    of a strict majority to acknowledge it with the highest position it
 *    holds, so at least one acknowledgement covers every write before t: no
 *    cut can fall below a write this decision counted.
 * While this peer holds an open eviction of E that it acknowledged, E's stream
 * counts only up to the acknowledged position, so its line never runs ahead of
 * what it promised the flush.
 */
export function finishResolution (replayed: Replayed, nodesMap: Record<string, unknown>, options: FinalityOptions = {}): Resolution {
  const { replay, verdicts, conflicts, all, membership } = replayed
  const issues: LedgerIssue[] = [...replayed.issues]
  // Runs once per beacon batch on every peer, over every member: the replay's
  // stream positions are shared, not copied, and replaced where a record is ahead.
  const streams = new Map<NodeId, { readonly hlc?: HlcString, readonly seq: number }>(replayed.streams)
  const heartbeats = new Map<NodeId, Heartbeat>()
  const announced = new Map<NodeId, HlcString>()
  for (const key in nodesMap) {
    const v = validateHeartbeat(key, nodesMap[key])
    if (!v.ok) { issues.push({ map: 'nodes', key, code: v.code, reason: v.reason }); continue }
    const beat = v.value
    heartbeats.set(key, beat)
    const stream = streams.get(key)
    if (stream === undefined) streams.set(key, { hlc: beat.hlc, seq: beat.seq })
    else if (stream.hlc === undefined || beat.hlc > stream.hlc || beat.seq > stream.seq) {
      streams.set(key, { hlc: stream.hlc === undefined || beat.hlc > stream.hlc ? beat.hlc : stream.hlc, seq: Math.max(beat.seq, stream.seq) })
    }
    if (beat.seen !== undefined && stampedBy(beat.hlc, key) && membership.standing(key, beat.hlc, beat.seq) === undefined) announced.set(key, beat.seen)
  }
  // Beacons: a member's clock counts once this peer holds its stream up to the
  // beacon's position; its announcement counts while its writes would.
  const beaconLines = new Map<NodeId, HlcString>()
  // Only the highest line of each kind matters, so whether a beacon counts
  // (the costly part: up to 16 beacons of every member, on every resolution)
  // is asked only of one that would raise a line; newest first (each list
  // rises by stamp and line), the first that counts usually settles both.
  for (const [node, list] of options.beacons ?? []) {
    const held = streams.get(node)?.seq ?? 0
    for (let i = list.length - 1; i >= 0; i--) {
      const beacon = list[i]
      const covers = held >= beacon.seq && beacon.hlc > (beaconLines.get(node) ?? '')
      const announces = beacon.seen !== undefined && beacon.seen > (announced.get(node) ?? '')
      if (!covers && !announces) continue
      if (!stampedBy(beacon.hlc, node) || membership.standing(node, beacon.hlc, beacon.seq) !== undefined) continue
      if (covers) beaconLines.set(node, beacon.hlc)
      if (announces) announced.set(node, beacon.seen!)
    }
  }

  // This peer's completeness line, node by node.
  const { self, selfClock } = options
  const reach = new Map<NodeId, HlcString>()
  const open = new Set<NodeId>()
  for (const [node, list] of membership.intervals) {
    const last = list[list.length - 1]
    const stream = streams.get(node)
    let line: HlcString
    if (last.end?.kind === 'left') line = COMPLETE
    else if (last.end?.kind === 'evicted') line = (stream?.seq ?? 0) >= last.end.cut ? COMPLETE : (stream?.hlc ?? '')
    else {
      line = stream?.hlc ?? ''
      const beaconLine = beaconLines.get(node)
      if (beaconLine !== undefined && beaconLine > line) line = beaconLine
      if (node === self && selfClock !== undefined && selfClock > line) line = selfClock
      // Not a member before its admission: nothing of it is missing below that.
      if (last.admitHlc > line) line = last.admitHlc
      open.add(node)
    }
    reach.set(node, line)
  }
  // Open evictions this peer acknowledged cap their targets' lines at what it
  // acknowledged — until it holds every other member's stream past the
  // proposal's deadline: then no acknowledgement can still arrive in time,
  // and the proposal can never take effect.
  const live = membership.proposals.filter(p => p.status === 'open' && !linePast(reach, p.targets, p.deadline))
  for (const [target, cap] of acknowledgedCaps(live, self)) {
    if (!open.has(target) || cap >= (reach.get(target) ?? '')) continue
    // Never below its admission: nothing it stamped before counts anyway.
    const admitted = membership.intervals.get(target)!.at(-1)!.admitHlc
    reach.set(target, cap > admitted ? cap : admitted)
  }
  let seen: HlcString | undefined
  for (const line of reach.values()) if (seen === undefined || line < seen) seen = line
  // Nothing complete (a member never heard: line '') or everything (no member left): no line to announce.
  if (seen === COMPLETE || seen === '') seen = undefined
  // Its own line counts as announced: it holds what it holds now.
  if (self !== undefined && seen !== undefined && current(membership).has(self) && seen > (announced.get(self) ?? '')) announced.set(self, seen)

  // The majority line of each view: the (⌊n/2⌋+1)-th highest announced line.
  const majorityLine = new Map<number, HlcString | undefined>()
  const lineOf = (view: View): HlcString | undefined => {
    if (majorityLine.has(view.epoch)) return majorityLine.get(view.epoch)
    const lines = view.members.map(m => announced.get(m)).filter((h): h is HlcString => h !== undefined).sort().reverse()
    const need = Math.floor(view.members.length / 2) + 1
    const line = view.members.length > 0 && lines.length >= need ? lines[need - 1] : undefined
    majorityLine.set(view.epoch, line)
    return line
  }

  const openTargets = new Set<NodeId>()
  for (const p of live) for (const t of p.targets) openTargets.add(t)
  // Ranked on first use: most resolutions have no tentative verdict at all.
  let behindRanked: ((hlc: HlcString) => NodeId[]) | undefined
  const behind = (hlc: HlcString): NodeId[] => (behindRanked ??= rankBelow([...reach.entries()]))(hlc)
  const unconfirmed = new Map<number, (hlc: HlcString) => NodeId[]>()
  let pending = 0
  let oldestPending: Verdict | undefined
  let oldestStamp = ''
  let latestPending: Verdict | undefined
  for (const verdict of all) {
    verdict.final = false
    verdict.waitsFor = NONE
    verdict.waitingOn = undefined
    if (verdict.hlc === undefined) continue
    if (verdict.status === 'queued') {
      // Not decided yet: it waits for room, which only a later entry can make.
      verdict.waitingOn = 'capacity'
      continue
    }
    // A queued entry's decision rests on the log up to the point that decided it (docs/design.md "Bounds and the queue").
    const t = verdict.decidedHlc ?? verdict.hlc
    const view = viewAt(membership.views, t)
    const majority = lineOf(view)
    if (seen !== undefined && t <= seen && majority !== undefined && t <= majority) {
      verdict.final = true
      continue
    }
    if (verdict.status !== 'invalid') {
      pending++
      if (oldestPending === undefined || t < oldestStamp) { oldestPending = verdict; oldestStamp = t }
      if (latestPending === undefined || verdict.hlc > latestPending.hlc!) latestPending = verdict
    }
    if (seen === undefined || t > seen) {
      verdict.waitsFor = behind(t)
      verdict.waitingOn = openTargets.size > 0 && verdict.waitsFor.some(id => openTargets.has(id)) ? 'view-change' : 'clocks'
    } else {
      let ranker = unconfirmed.get(view.epoch)
      if (ranker === undefined) {
        ranker = rankBelow(view.members.map(m => [m, announced.get(m) ?? '']))
        unconfirmed.set(view.epoch, ranker)
      }
      verdict.waitsFor = ranker(t)
      verdict.waitingOn = 'confirmations'
    }
  }

  const now = current(membership)
  const majority = lineOf(now)
  const watermark = seen !== undefined && majority !== undefined ? (seen < majority ? seen : majority) : undefined
  const nodes = buildNodeViews(replay, membership, heartbeats, streams, announced, beaconLines)
  const members = [...now.members]
  return {
    verdicts,
    conflicts,
    all,
    nodes,
    members,
    view: now,
    views: membership.views,
    proposals: membership.proposals,
    requests: membership.requests.filter(r => !now.has(r.node)),
    seen,
    watermark,
    latestHlc: replayed.latestHlc,
    pending,
    ...(oldestPending !== undefined ? { oldestPending } : {}),
    ...(latestPending !== undefined ? { latestPending } : {}),
    issues,
    counts: replayed.counts,
    get digest () { return replayed.digest }
  }
}

/**
 * The latest stamp of any node's stream at or below `maxWallMs`: what a node
 * merges into its clock after an update. A stamp further ahead (a peer whose
 * clock runs fast) is not merged, so it cannot drag this node's clock into
 * the future; the peer is alerted instead (docs/design.md "Clocks").
 */
export function latestWithin (res: Pick<Resolution, 'nodes'>, maxWallMs: number): HlcString | undefined {
  // Runs on every refresh: nearly always the latest stamp is within bounds, so
  // one pass of comparisons and one parse, and the filtered pass only when not.
  let newest: HlcString | undefined
  for (const node of res.nodes.values()) {
    const h = node.lastHlc
    if (h !== undefined && (newest === undefined || h > newest)) newest = h
  }
  if (newest === undefined || hlcWallMs(newest) <= maxWallMs) return newest
  let latest: HlcString | undefined
  for (const node of res.nodes.values()) {
    const h = node.lastHlc
    if (h !== undefined && hlcWallMs(h) <= maxWallMs && (latest === undefined || h > latest)) latest = h
  }
  return latest
}

function current (membership: Membership): View {
  return membership.views[membership.views.length - 1]
}

/** Over the live proposals this peer acknowledged (or made): each target's stream counts only up to the least position it gave. */
function acknowledgedCaps (live: ProposalState[], self: NodeId | undefined): Map<NodeId, HlcString> {
  const caps = new Map<NodeId, HlcString>()
  if (self === undefined) return caps
  for (const p of live) {
    const given = p.acks[self]
    if (given === undefined) continue
    for (const target of p.targets) {
      const hlc = given[target]?.hlc ?? ''
      const cap = caps.get(target)
      if (cap === undefined || hlc < cap) caps.set(target, hlc)
    }
  }
  return caps
}

/** This peer holds every node's stream but the targets' past `hlc`. */
function linePast (reach: Map<NodeId, HlcString>, targets: NodeId[], hlc: HlcString): boolean {
  for (const [node, line] of reach) if (!targets.includes(node) && line < hlc) return false
  return true
}

/**
 * `below(t)`: the nodes (in id order) whose line is before `t`. Nodes are
 * ranked once by line, so the nodes below any `t` are always the first k of
 * that ranking: one answer per k, computed once and shared (frozen) by every
 * verdict with that k. Tentative verdicts are many right after a burst of
 * writes, and filtering every member for every one of them cost
 * O(verdicts × members) per resolution (600 × 1,000 per peer in a 1,000-peer
 * simulation).
 */
function rankBelow (entries: Array<[NodeId, HlcString]>): (hlc: HlcString) => NodeId[] {
  const sorted = [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const ids = sorted.map(e => e[0])
  const lines = sorted.map(e => e[1])
  const order = ids.map((_, i) => i).sort((a, b) => (lines[a] < lines[b] ? -1 : lines[a] > lines[b] ? 1 : a - b))
  const ordered = order.map(i => lines[i])
  const rank = new Array<number>(ids.length)
  order.forEach((member, position) => { rank[member] = position })
  const byCount = new Map<number, NodeId[]>()
  return (hlc) => {
    const k = lowerBound(ordered, hlc)
    let list = byCount.get(k)
    if (list === undefined) {
      list = Object.freeze(ids.filter((_, i) => rank[i] < k)) as NodeId[]
      byCount.set(k, list)
    }
    return list
  }
}

/** What a node's view is built from, besides the replay (fixed while it is reused). */
interface NodeViewInputs {
  heartbeat?: Heartbeat
  lastHlc?: HlcString
  lastSeq: number
  seen?: HlcString
  heldTo?: HlcString
}

/**
 * The node views last built over each replay, with what they were built from.
 * Views are built on every resolution — once per beacon batch, on every peer,
 * for every node — and between two batches most nodes' figures stand still:
 * such a view is handed out again rather than built anew (a view is never
 * changed once built). A new replay starts afresh.
 */
const nodeViewCache = new WeakMap<Replay, { views: Map<NodeId, { inputs: NodeViewInputs, view: NodeView }>, ids: NodeId[] }>()

function sameInputs (a: NodeViewInputs, b: NodeViewInputs): boolean {
  return a.heartbeat === b.heartbeat && a.lastHlc === b.lastHlc && a.lastSeq === b.lastSeq && a.seen === b.seen && a.heldTo === b.heldTo
}

function buildNodeViews (replay: Replay, membership: Membership, heartbeats: Map<NodeId, Heartbeat>, streams: ReadonlyMap<NodeId, { readonly hlc?: HlcString, readonly seq: number }>, announced: Map<NodeId, HlcString>, beaconLines: Map<NodeId, HlcString>): Map<NodeId, NodeView> {
  let cache = nodeViewCache.get(replay)
  if (cache === undefined) {
    // The nodes of the replay and of its membership, in id order: fixed for the replay, sorted once.
    const ids = [...replay.slots.keys()]
    for (const id of membership.intervals.keys()) if (!replay.slots.has(id)) ids.push(id)
    cache = { views: new Map(), ids: ids.sort() }
    nodeViewCache.set(replay, cache)
  }
  const cached = cache.views
  const views = new Map<NodeId, NodeView>()
  // A node known only by its record (not admitted, no capacity event) is rare: only then is the list merged anew.
  let ids = cache.ids
  const extra: NodeId[] = []
  for (const id of heartbeats.keys()) if (!replay.slots.has(id) && !membership.intervals.has(id)) extra.push(id)
  if (extra.length > 0) ids = [...ids, ...extra].sort()
  for (const id of ids) {
    const stream = streams.get(id)
    const beaconLine = beaconLines.get(id)
    const inputs: NodeViewInputs = {
      heartbeat: heartbeats.get(id),
      lastHlc: stream?.hlc,
      lastSeq: stream?.seq ?? 0,
      seen: announced.get(id),
      heldTo: beaconLine !== undefined && (stream?.hlc === undefined || beaconLine > stream.hlc) ? beaconLine : stream?.hlc
    }
    const last = cached.get(id)
    if (last !== undefined && sameInputs(last.inputs, inputs)) {
      views.set(id, last.view)
      continue
    }
    const view = buildNodeView(id, replay, membership, inputs)
    cached.set(id, { inputs, view })
    views.set(id, view)
  }
  return views
}

function buildNodeView (id: NodeId, replay: Replay, membership: Membership, inputs: NodeViewInputs): NodeView {
  const slot = replay.slots.get(id)
  const last: Interval | undefined = membership.intervals.get(id)?.at(-1)
  const standing = last === undefined ? 'none' : last.end === undefined ? 'member' : last.end.kind
  const state = slot?.state ?? 'unknown'
  const allocatable = slot?.allocatableBytes ?? 0
  const committed = slot?.committedBytes ?? 0
  const undersized = slot?.undersized ?? false
  const allNeed = state === 'active' ? replay.allNeedBytes : 0
  return {
    id,
    state,
    allocatableBytes: allocatable,
    committedBytes: committed,
    undersized,
    member: standing === 'member',
    standing,
    joinedHlc: last?.admitHlc,
    sponsor: last?.sponsor,
    cutSeq: last?.end?.kind === 'evicted' ? last.end.cut : undefined,
    seen: inputs.seen,
    allNeedBytes: allNeed,
    deficitBytes: undersized ? Math.max(0, allNeed - (allocatable - committed)) : 0,
    reservations: slot !== undefined ? [...slot.charges.keys()].sort() : [],
    heartbeat: inputs.heartbeat,
    lastHlc: inputs.lastHlc,
    lastSeq: inputs.lastSeq,
    heldTo: inputs.heldTo
  }
}

/** The digest covers what every peer must agree on: decisions and current statuses. */
export function digestVerdicts (verdicts: Iterable<Verdict>): string {
  // Map iteration order differs between replicas; the key order does not.
  const sorted = [...verdicts].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  let text = ''
  for (const v of sorted) {
    text += `${v.key}\t${v.status}\t${v.decisionCode}\t${v.code}\t${v.nodes.join(',')}\t${v.runningOn.join(',')}\t${v.endedHlc ?? ''}`
    // Bounds and the queue: only when they differ from the plain case, so digests of ledgers without them are unchanged.
    if (v.effectiveBytes !== v.bytes && v.status !== 'invalid') text += `\teffective=${v.effectiveBytes}`
    if (v.decidedHlc !== undefined && v.decidedHlc !== v.hlc) text += `\tdecided=${v.decidedHlc}`
    text += '\n'
  }
  return `${sorted.length}-${fingerprint(text)}`
}

function isSnapshot (input: Y.Doc | LedgerSnapshot): input is LedgerSnapshot {
  return (input as LedgerSnapshot).reservations !== undefined && typeof (input as Y.Doc).getMap !== 'function'
}

export type { NodeState }
