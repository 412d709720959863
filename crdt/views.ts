/**
 * Membership as a sequence of views (docs/design.md "Membership as views").
 *
 * A pure pass over the membership records and leaves, in log order, that says
 * for every write of every node whether it counts: the writer was a member
 * at that stamp (admitted before it, not left before it, and not beyond the
 * cut of an eviction that ended that membership). `resolve()` replays only
 * writes that count, and inserts the view changes (admissions, evictions) at
 * their point in the log.
 *
 * - Admission: a member (the sponsor) writes `admit(node, capacity)` in its own
 *   stream; the first node of a cluster admits itself, into an empty view only.
 * - Leave: the node's own capacity event with state `left`; final.
 * - Eviction as a flush: a proposal for view V (by digest) takes effect when
 *   every member of V outside the targets has acknowledged it and they are a
 *   strict majority of V, at the stamp of the last acknowledgement; the cut of
 *   each target is the highest position acknowledged. A view change in between
 *   makes the proposal void. An operator may force a proposal (no majority).
 *
 * A cut decides which of a target's writes count wherever they sort, also
 * before the eviction's own stamp. Cuts depend on which acknowledgements count,
 * which depends on earlier cuts, so the pass is repeated with the previous
 * pass's cuts until they no longer move (in practice twice; bounded, and
 * deterministic either way since every peer runs the same passes).
 */
import { compareHlc, encodeHlc, hlcWallMs, type HlcString } from './hlc.ts'
import {
  ViewDigest, type AdmissionRequest, type AdmitRecord, type CapacityEvent, type EvictionAck, type EvictionProposal,
  type MembershipRecord, type NodeId, type StreamPosition
} from './schema.ts'

/** Why a node's write does not count. */
export type StandingCode = 'CreatorNotMember' | 'CreatorLeft' | 'CreatorEvicted'

/** One stretch of membership of a node: from its admission to its leave or eviction. */
export interface Interval {
  node: NodeId
  /** Epoch of the view its admission made, and of the view its end made. */
  admitEpoch: number
  endEpoch?: number
  admitHlc: HlcString
  admitKey: string
  sponsor: NodeId
  allocatableBytes: number
  end?: { kind: 'left', hlc: HlcString } | { kind: 'evicted', hlc: HlcString, cut: number, proposal: string, forced: boolean }
}

/**
 * A view: the members from `hlc` on, until the next view. Members are listed
 * on first use (a replay makes one view per admission; most are never asked
 * for their members, and listing every one would cost O(N²) per replay).
 */
export class View {
  private list?: readonly NodeId[]

  constructor (
    readonly epoch: number,
    /** Stamp of the change that made it ('' for the empty view before the first admission). */
    readonly hlc: HlcString,
    readonly digest: string,
    readonly size: number,
    readonly cause: string,
    private readonly intervals: Map<NodeId, Interval[]>
  ) {}

  /** Its members, sorted. */
  get members (): readonly NodeId[] {
    if (this.list === undefined) {
      const out: NodeId[] = []
      for (const [node, list] of this.intervals) {
        if (list.some(i => i.admitEpoch <= this.epoch && (i.endEpoch === undefined || i.endEpoch > this.epoch))) out.push(node)
      }
      this.list = Object.freeze(out.sort())
    }
    return this.list
  }

  has (node: NodeId): boolean {
    return this.intervals.get(node)?.some(i => i.admitEpoch <= this.epoch && (i.endEpoch === undefined || i.endEpoch > this.epoch)) === true
  }

  toJSON (): object {
    return { epoch: this.epoch, hlc: this.hlc, digest: this.digest, size: this.size, cause: this.cause, members: this.members }
  }
}

export type ProposalStatus = 'open' | 'done' | 'void' | 'refused'

/**
 * An eviction takes effect only when every acknowledgement it needs is
 * stamped within this long of the proposal (docs/design.md "Membership as
 * views"). Later ones do not count, so a proposal that a member never
 * acknowledges (it still hears the target) cannot stay open for ever: once a
 * peer holds every member's stream past the deadline it knows the outcome,
 * and stops holding its own line back for it. A protocol constant: every
 * peer must use the same one.
 */
export const PROPOSAL_TTL_MS = 20_000

/** The stamp past which a proposal stamped `hlc` takes no acknowledgement (above every stamp of that millisecond). */
export function proposalDeadline (hlc: HlcString): HlcString {
  return encodeHlc({ wallMs: hlcWallMs(hlc) + PROPOSAL_TTL_MS, counter: 999_999, node: '\uffff' })
}

export interface ProposalState {
  key: string
  by: NodeId
  hlc: HlcString
  targets: NodeId[]
  force: boolean
  /** Proposed by an operator, not by a silence timeout. */
  manual: boolean
  status: ProposalStatus
  /** Why void or refused. */
  reason?: string
  /** Members of the view it was proposed for. */
  viewMembers: NodeId[]
  /** Members (outside the targets) whose acknowledgement is in, the proposer included. */
  acked: NodeId[]
  /** Members whose acknowledgement it still waits for. */
  waitingFor: NodeId[]
  /** Highest position acknowledged so far per target: the cut if it completes now. */
  positions: Record<NodeId, StreamPosition>
  /** Each acknowledgement's positions, by member (the proposer's own included). */
  acks: Record<NodeId, Record<NodeId, StreamPosition>>
  /** Stamp at which it took effect. */
  effectiveHlc?: HlcString
  /** Acknowledgements stamped after this do not count ({@link PROPOSAL_TTL_MS}). */
  deadline: HlcString
}

export type MembershipEffect =
  | { kind: 'admit', hlc: HlcString, key: string, record: AdmitRecord }
  | { kind: 'evict', hlc: HlcString, key: string, nodes: NodeId[], forced: boolean }

export interface MembershipIssue {
  key: string
  code: 'SponsorNotMember' | 'SelfAdmission' | 'AlreadyMember' | 'NotAMember' | 'ProposalRefused' | StandingCode
  reason: string
}

export interface Membership {
  intervals: Map<NodeId, Interval[]>
  /** Every view in log order; `views[0]` is the empty view. */
  views: View[]
  proposals: ProposalState[]
  /** The latest valid admission request of each node. */
  requests: AdmissionRequest[]
  effects: MembershipEffect[]
  issues: MembershipIssue[]
  /** Whether a write of `node` at (`hlc`, `seq`) counts; the reason when it does not. */
  standing: (node: NodeId, hlc: HlcString, seq: number) => StandingCode | undefined
}

export interface Leave { key: string, event: CapacityEvent }

/** Most passes; cuts settle after the second in every case the tests construct. */
const MAX_PASSES = 6

export function computeMembership (records: Array<{ key: string, record: MembershipRecord }>, leaves: Leave[]): Membership {
  const events: PassEvent[] = []
  const requests = new Map<NodeId, AdmissionRequest>()
  for (const { key, record } of records) {
    if (record.kind === 'request') {
      requests.set(record.node, record)
      continue
    }
    events.push({ order: ORDER[record.kind], hlc: record.hlc, key, record })
  }
  for (const { key, event } of leaves) events.push({ order: ORDER.leave, hlc: event.hlc, key, event })
  events.sort((a, b) => compareHlc(a.hlc, b.hlc) || a.order - b.order || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))

  let cuts = new Map<string, number>()
  let result = pass(events, cuts)
  for (let i = 1; i < MAX_PASSES && !sameCuts(result.cuts, cuts); i++) {
    cuts = result.cuts
    result = pass(events, cuts)
  }
  const { intervals } = result
  return {
    intervals,
    views: result.views,
    proposals: result.proposals,
    requests: [...requests.values()].sort((a, b) => (a.node < b.node ? -1 : 1)),
    effects: result.effects,
    issues: result.issues,
    standing: (node, hlc, seq) => standingIn(intervals.get(node), hlc, seq, result.cuts)
  }
}

// ---------------------------------------------------------------- the pass

const ORDER = { admit: 0, leave: 1, propose: 2, ack: 3 } as const

type PassEvent =
  | { order: 0 | 2 | 3, hlc: HlcString, key: string, record: AdmitRecord | EvictionProposal | EvictionAck }
  | { order: 1, hlc: HlcString, key: string, event: CapacityEvent }

interface Open {
  state: ProposalState
  record: EvictionProposal
  digest: string
  acks: Map<NodeId, Record<NodeId, StreamPosition>>
  /** Members of the view outside the targets: whose acknowledgements it needs. */
  remaining: Set<NodeId>
  /** How many of them have acknowledged. */
  ackedCount: number
}

interface PassResult {
  intervals: Map<NodeId, Interval[]>
  views: View[]
  proposals: ProposalState[]
  effects: MembershipEffect[]
  issues: MembershipIssue[]
  /** Cut per interval (by admission key) of every completed eviction. */
  cuts: Map<string, number>
}

function pass (events: PassEvent[], previousCuts: Map<string, number>): PassResult {
  const members = new Set<NodeId>()
  const digest = new ViewDigest()
  const intervals = new Map<NodeId, Interval[]>()
  const views: View[] = [new View(0, '', digest.value(), 0, 'empty', intervals)]
  const proposals: ProposalState[] = []
  const open = new Map<string, Open>()
  const effects: MembershipEffect[] = []
  const issues: MembershipIssue[] = []
  const cuts = new Map<string, number>()
  const standing = (node: NodeId, hlc: HlcString, seq: number): StandingCode | undefined => standingIn(intervals.get(node), hlc, seq, previousCuts)
  const current = (): View => views[views.length - 1]
  const newView = (hlc: HlcString, cause: string): void => {
    views.push(new View(views.length, hlc, digest.value(), members.size, cause, intervals))
  }
  const join = (node: NodeId): void => { members.add(node); digest.add(node) }
  const part = (node: NodeId): void => { members.delete(node); digest.remove(node) }
  const lastInterval = (node: NodeId): Interval | undefined => {
    const list = intervals.get(node)
    return list?.[list.length - 1]
  }

  const evict = (hlc: HlcString, o: Open, forced: boolean): void => {
    const nodes = o.record.targets
    for (const node of nodes) {
      const cut = o.state.positions[node]?.seq ?? 0
      const interval = lastInterval(node)!
      interval.end = { kind: 'evicted', hlc, cut, proposal: o.state.key, forced }
      interval.endEpoch = views.length
      cuts.set(interval.admitKey, cut)
      part(node)
    }
    o.state.status = 'done'
    o.state.effectiveHlc = hlc
    o.state.waitingFor = []
    open.delete(o.state.key)
    effects.push({ kind: 'evict', hlc, key: o.state.key, nodes: [...nodes], forced })
    newView(hlc, `${forced ? 'forced eviction' : 'eviction'} of ${nodes.join(', ')}`)
  }

  /** Apply an acknowledgement's positions (the maximum per target). */
  const absorb = (o: Open, by: NodeId, positions: Record<NodeId, StreamPosition>): void => {
    o.acks.set(by, positions)
    o.state.acks[by] = positions
    if (o.remaining.has(by)) o.ackedCount++
    for (const target of o.record.targets) {
      const p = positions[target]
      const best = o.state.positions[target]
      if (p !== undefined && (best === undefined || p.seq > best.seq)) o.state.positions[target] = p
    }
  }

  /** Who acknowledged and who it waits for, listed once its outcome is known (acks come one by one; listing each time cost O(N²)). */
  const list = (o: Open): void => {
    const remaining = [...o.remaining].sort()
    o.state.acked = remaining.filter(m => o.acks.has(m))
    o.state.waitingFor = remaining.filter(m => !o.acks.has(m))
  }

  const complete = (o: Open, hlc: HlcString): void => {
    if (o.ackedCount < o.remaining.size) return
    list(o)
    // A strict majority of the old view must remain: a minority side of a
    // partition can never evict the majority, and a 2 | 2 split evicts nobody.
    if (2 * o.state.acked.length <= o.state.viewMembers.length) {
      o.state.status = 'refused'
      o.state.reason = `the ${o.state.acked.length} remaining member(s) are not a strict majority of the view of ${o.state.viewMembers.length}`
      open.delete(o.state.key)
      return
    }
    evict(hlc, o, false)
  }

  for (const e of events) {
    if (e.order === ORDER.leave) {
      const { event } = e
      if (standing(event.node, event.hlc, event.seq) !== undefined || !members.has(event.node)) continue
      part(event.node)
      const interval = lastInterval(event.node)!
      interval.end = { kind: 'left', hlc: event.hlc }
      interval.endEpoch = views.length
      newView(event.hlc, `leave of ${event.node}`)
      continue
    }
    const record = e.record
    if (record.kind === 'admit') {
      if (record.by === record.node) {
        if (members.size > 0) {
          issues.push({ key: e.key, code: 'SelfAdmission', reason: `${record.node} admitted itself into a view of ${members.size}; a node admits itself only as the first of a cluster` })
          continue
        }
      } else {
        const code = standing(record.by, record.hlc, record.seq)
        if (code !== undefined || !members.has(record.by)) {
          issues.push({ key: e.key, code: 'SponsorNotMember', reason: `sponsor ${record.by} of ${record.node} was not a member at ${record.hlc} (${code ?? 'not in the view'})` })
          continue
        }
      }
      if (members.has(record.node)) {
        issues.push({ key: e.key, code: 'AlreadyMember', reason: `${record.node} was already a member` })
        continue
      }
      join(record.node)
      const list = intervals.get(record.node) ?? []
      list.push({ node: record.node, admitEpoch: views.length, admitHlc: record.hlc, admitKey: e.key, sponsor: record.by, allocatableBytes: record.allocatableBytes })
      intervals.set(record.node, list)
      effects.push({ kind: 'admit', hlc: record.hlc, key: e.key, record })
      newView(record.hlc, `admission of ${record.node} by ${record.by}`)
      continue
    }

    const writerCode = standing(record.by, record.hlc, record.seq)
    if (writerCode !== undefined || !members.has(record.by)) {
      if (record.kind === 'propose') issues.push({ key: e.key, code: 'NotAMember', reason: `proposal by ${record.by}, not a member at ${record.hlc} (${writerCode ?? 'not in the view'})` })
      continue
    }
    if (record.kind === 'propose') {
      const view = current()
      const state: ProposalState = {
        key: e.key,
        by: record.by,
        hlc: record.hlc,
        targets: record.targets,
        force: record.force === true,
        manual: record.manual === true,
        status: 'open',
        viewMembers: [...members].sort(),
        acked: [],
        waitingFor: [],
        positions: {},
        acks: {},
        deadline: proposalDeadline(record.hlc)
      }
      proposals.push(state)
      const refuse = (reason: string): void => {
        state.status = 'refused'
        state.reason = reason
        issues.push({ key: e.key, code: 'ProposalRefused', reason })
      }
      if (record.view !== view.digest) { state.status = 'void'; state.reason = 'proposed for a view that had already changed'; continue }
      if (record.targets.includes(record.by)) { refuse('a member cannot propose its own eviction (leave instead)'); continue }
      const outside = record.targets.filter(t => !members.has(t))
      if (outside.length > 0) { refuse(`targets not in the view: ${outside.join(', ')}`); continue }
      const targets = new Set(record.targets)
      const o: Open = { state, record, digest: view.digest, acks: new Map(), remaining: new Set(state.viewMembers.filter(m => !targets.has(m))), ackedCount: 0 }
      absorb(o, record.by, record.positions)
      if (state.force) { evict(record.hlc, o, true); continue }
      open.set(e.key, o)
      complete(o, record.hlc)
      continue
    }
    // An acknowledgement.
    const o = open.get(record.proposal)
    if (o === undefined) continue
    if (o.digest !== current().digest) {
      o.state.status = 'void'
      o.state.reason = 'the view changed before it completed'
      open.delete(o.state.key)
      list(o)
      continue
    }
    if (!o.remaining.has(record.by) || o.acks.has(record.by)) continue
    if (record.hlc > o.state.deadline) continue
    absorb(o, record.by, record.positions)
    complete(o, record.hlc)
  }
  for (const o of open.values()) {
    list(o)
    if (o.digest !== current().digest) {
      o.state.status = 'void'
      o.state.reason = 'the view changed before it completed'
    }
  }
  return { intervals, views, proposals, effects, issues, cuts }
}

/**
 * A write counts when the last admission of its writer before it is not ended
 * by a leave before it, nor by an eviction whose cut lies below it.
 */
function standingIn (list: Interval[] | undefined, hlc: HlcString, seq: number, cuts: Map<string, number>): StandingCode | undefined {
  if (list === undefined) return 'CreatorNotMember'
  for (let i = list.length - 1; i >= 0; i--) {
    const interval = list[i]
    if (interval.admitHlc >= hlc) continue
    if (interval.end?.kind === 'left' && hlc > interval.end.hlc) return 'CreatorLeft'
    const cut = interval.end?.kind === 'evicted' ? interval.end.cut : cuts.get(interval.admitKey)
    if (cut !== undefined && seq > cut) return 'CreatorEvicted'
    return undefined
  }
  return 'CreatorNotMember'
}

function sameCuts (a: Map<string, number>, b: Map<string, number>): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (b.get(k) !== v) return false
  return true
}

/** The view in force at stamp `hlc`: the last change at or before it. */
export function viewAt (views: View[], hlc: HlcString): View {
  let lo = 0
  let hi = views.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (views[mid].hlc <= hlc) lo = mid
    else hi = mid - 1
  }
  return views[lo]
}
