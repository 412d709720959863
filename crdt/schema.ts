/**
 * The replicated state: one Y.Doc per cluster (docs/design.md "State").
 *
 * | map            | key                         | writer            | value                |
 * | -------------- | --------------------------- | ----------------- | -------------------- |
 * | `nodes`        | node id                     | that node only    | {@link Heartbeat}    |
 * | `reservations` | `<deployment id>@<creator>` | once, its creator | {@link Reservation}  |
 * | `releases`     | `<id>@<creator>@<by>`       | whoever releases  | {@link Release}      |
 * | `capacity`     | `<node id>/<seq>`           | that node only    | {@link CapacityEvent}|
 * | `membership`   | `<kind>/<writer>/<seq>`, `request/<node>` | the writer | {@link MembershipRecord} |
 *
 * Membership (docs/design.md "Membership as views"): a joiner writes a
 * `request` naming a sponsor; the sponsor writes `admit` in its own stream; a
 * member proposes an eviction (`propose`) and every other member writes an
 * `ack` with the highest position it holds of each target's stream. Leave is a
 * capacity event with state `left` in the leaver's own stream.
 *
 * Write discipline: every write is one `Y.Map.set` of one plain object in its own
 * transaction. A heartbeat overwrites the node's own key, so the document stays
 * flat under heartbeats (measured in the crdt benchmark).
 *
 * No key has two writers. Keyed by deployment id alone (the first design), two
 * concurrent reservations of one id would leave Yjs to keep one (by client id),
 * which can replace a reservation after its verdict was final; so here both are
 * kept under `<id>@<creator>` and `resolve()` gives the id to the earlier HLC —
 * the later one is `rejected: IdTaken`, on every peer, unless the earlier one
 * had ended before it (docs/design.md "Resolution", docs/decisions.md).
 *
 * Values arrive from peers and may be anything. Readers never trust them: the
 * `validate*` functions turn a malformed value into a reason string, which
 * `resolve()` reports as an `invalid` verdict the same way on every peer.
 */
import * as Y from 'yjs'
import { isHlc, stampedBy, type HlcString } from './hlc.ts'
import { PlacementError } from './errors.ts'
import { fingerprint } from './digest.ts'

export type NodeId = string
export type ReservationId = string

export const MAP_NODES = 'nodes'
export const MAP_RESERVATIONS = 'reservations'
export const MAP_RELEASES = 'releases'
export const MAP_CAPACITY = 'capacity'
export const MAP_MEMBERSHIP = 'membership'
/** Proposals for the next epoch (docs/design.md "Compaction: epochs"): `<epoch>@<proposer>` → {@link EpochProposal}. */
export const MAP_EPOCHS = 'epochs'

/**
 * `cordoned`: the node keeps what runs on it but takes no new placements (its
 * pressure ladder at refuse or evict, docs/design.md "Pressure ladder").
 */
export type NodeState = 'active' | 'cordoned' | 'draining' | 'left'
const NODE_STATES: ReadonlySet<string> = new Set(['active', 'cordoned', 'draining', 'left'])

/** A node's live figures, overwritten on its own key. For alerts, display and finality — never admission. */
export interface Heartbeat {
  totalBytes: number
  floorBytes: number
  allocatableBytes: number
  availableBytes: number
  usedBytes: number
  hlc: HlcString
  seq: number
  state: NodeState
  labels: Record<string, string>
  version: string
  /** Where peers can dial this node (multiaddrs with /p2p/), so the mesh does not hang on the bootstrap node. */
  addrs?: string[]
  /**
   * The writer's completeness line when it wrote this beacon: it held every
   * member's writes stamped at or below it. A decision is final once a strict
   * majority of its view has announced a line at or past it (docs/design.md).
   */
  seen?: HlcString
  /** Its pressure ladder when not `ok` (docs/design.md "Pressure ladder"): answers placing here carry a warning. */
  pressure?: 'warn' | 'refuse' | 'evict'
  /**
   * What the reservations running here use, by id, as last measured in their
   * cgroups; rewritten only when a figure moves past the publish threshold
   * (docs/design.md "Enforcement"). Display and alerts only, never admission.
   */
  usage?: Record<ReservationId, ReservationUsageFigures>
}

/** One reservation's measured usage in a node record. */
export interface ReservationUsageFigures {
  usedBytes: number
  peakBytes?: number
  /** Processes OOM-killed because it ran out of its own limit. */
  oomKills?: number
}

export type Placement =
  | { kind: 'any' }
  | { kind: 'node', node: NodeId }
  | { kind: 'all' }
  | { kind: 'spread', count: number }

export interface Reservation {
  id: ReservationId
  bytes: number
  placement: Placement
  /** Higher survives longer on capacity loss. Default 0. */
  priority: number
  hlc: HlcString
  creator: NodeId
  seq: number
  labels: Record<string, string>
  /**
   * The least it may be shrunk to on capacity loss (docs/design.md "Bounds and
   * the queue"); absent: never shrunk, only evicted. 1 ≤ minBytes ≤ bytes.
   */
  minBytes?: number
  /** Wait in the log for room instead of being rejected when it does not fit at its point. */
  queue?: boolean
  /** With `queue`: give up this long (by the stamps' wall time) after its own stamp. */
  queueTimeoutMs?: number
}

/** Longest queue timeout a reservation may carry: 30 days. */
export const MAX_QUEUE_TIMEOUT_MS = 30 * 24 * 3_600_000

/** Ends exactly one reservation entry: `<id>@<creator>` (a release can never end another creator's entry of the same id). */
export interface Release {
  id: ReservationId
  /** Creator of the entry this release ends. */
  creator: NodeId
  hlc: HlcString
  by: NodeId
  seq: number
  /**
   * The stamp of the entry it ends, earlier than the release's own. After a
   * compaction the same node may write the id again (a new entry with the same
   * key and a later stamp); a release naming the old entry's stamp ends
   * nothing of the new one. Without it (agents before it, or an entry stamped
   * after the releasing peer's clock) it ends whichever entry of the key it
   * meets, as before.
   */
  of?: HlcString
}

/** A change of a node's allocatable memory or state: what `resolve()` replays. */
export interface CapacityEvent {
  node: NodeId
  allocatableBytes: number
  state: NodeState
  hlc: HlcString
  seq: number
}

/** A joiner asks `sponsor` to admit it, with the capacity it brings. Not a view change by itself. */
export interface AdmissionRequest {
  kind: 'request'
  node: NodeId
  sponsor: NodeId
  allocatableBytes: number
  hlc: HlcString
  seq: number
}

/**
 * The sponsor admits `node` in its own stream: `node` is a member from this
 * stamp, with this initial capacity; anything it wrote stamped before is
 * ignored. The first node of a cluster admits itself (only into an empty view).
 */
export interface AdmitRecord {
  kind: 'admit'
  node: NodeId
  by: NodeId
  allocatableBytes: number
  hlc: HlcString
  seq: number
}

/**
 * A member's beacon on the clock channel (docs/design.md "Clock channel"). It
 * is not a ledger entry: it says where the member's stream stands, so that a
 * peer holding that much of the stream knows it holds every write the member
 * will ever stamp at or below `hlc`.
 */
export interface Beacon {
  /** A stamp of the member's clock: it never stamps a write at or below it, even after a restart. */
  hlc: HlcString
  /** The member's stream position then: every write it stamped at or below `hlc` is at or below `seq`. */
  seq: number
  /** The member's completeness line then: what it announces for finality. */
  seen?: HlcString
}

/** How far a member holds another node's stream: its highest sequence number and latest stamp. */
export interface StreamPosition {
  seq: number
  hlc?: HlcString
}

/**
 * Propose evicting `targets` from the view whose digest is `view`. The
 * proposer's `positions` count as its own acknowledgement. `force` (operator
 * only) takes effect at once without a majority: the record says so.
 */
export interface EvictionProposal {
  kind: 'propose'
  targets: NodeId[]
  /** {@link viewDigest} of the view the proposal is for; void once the view changed. */
  view: string
  positions: Record<NodeId, StreamPosition>
  force?: boolean
  /** Proposed by an operator (`memgossip evict`), not by a silence timeout: members acknowledge it whatever their own timers say. */
  manual?: boolean
  by: NodeId
  hlc: HlcString
  seq: number
}

/** A member acknowledges a proposal with the highest position it holds of each target's stream. */
export interface EvictionAck {
  kind: 'ack'
  /** Membership key of the proposal. */
  proposal: string
  positions: Record<NodeId, StreamPosition>
  by: NodeId
  hlc: HlcString
  seq: number
}

export type MembershipRecord = AdmissionRequest | AdmitRecord | EvictionProposal | EvictionAck

/** The node whose stream a membership record belongs to. */
export function membershipWriter (record: MembershipRecord): NodeId {
  return record.kind === 'request' ? record.node : record.by
}

/** Membership key of a record: `request/<node>`, else `<kind>/<writer>/<seq>` (one writer per key). */
export function membershipKey (record: MembershipRecord): string {
  return record.kind === 'request' ? `request/${record.node}` : `${record.kind}/${record.by}/${record.seq}`
}

/**
 * The digest that names a view: an order-independent sum of its members'
 * fingerprints (four 32-bit lanes) and their count, so a replay keeps it up
 * to date in O(1) per admission or removal instead of hashing the whole
 * member list at every view change.
 */
export function viewDigest (members: Iterable<NodeId>): string {
  const digest = new ViewDigest()
  for (const m of members) digest.add(m)
  return digest.value()
}

const laneCache = new Map<string, Uint32Array>()

function lanesOf (node: NodeId): Uint32Array {
  let lanes = laneCache.get(node)
  if (lanes === undefined) {
    const hex = fingerprint(node)
    lanes = new Uint32Array([0, 8, 16, 24].map(i => parseInt(hex.slice(i, i + 8), 16)))
    if (laneCache.size > 100_000) laneCache.clear()
    laneCache.set(node, lanes)
  }
  return lanes
}

/** A view digest kept up to date as members come and go. */
export class ViewDigest {
  private readonly sum = new Uint32Array(4)
  private count = 0

  add (node: NodeId): void {
    const lanes = lanesOf(node)
    for (let i = 0; i < 4; i++) this.sum[i] = (this.sum[i] + lanes[i]) >>> 0
    this.count++
  }

  remove (node: NodeId): void {
    const lanes = lanesOf(node)
    for (let i = 0; i < 4; i++) this.sum[i] = (this.sum[i] - lanes[i]) >>> 0
    this.count--
  }

  value (): string {
    return `${this.count}-${[...this.sum].map(h => h.toString(16).padStart(8, '0')).join('')}`
  }
}

/** Plain-object copy of the maps; what `resolve()` reads. Values are untrusted. */
export interface LedgerSnapshot {
  nodes: Record<string, unknown>
  reservations: Record<string, unknown>
  releases: Record<string, unknown>
  capacity: Record<string, unknown>
  membership: Record<string, unknown>
  /** Epoch proposals: read for the proposers' stream positions (older snapshots have none). */
  epochs?: Record<string, unknown>
}

/**
 * A member's proposal to move the ledger to epoch `epoch`, seeded with the
 * checkpoint at `cut` (docs/design.md "Compaction: epochs"). A write of its
 * proposer's stream like any other (stamp and position), so a peer whose
 * finality line passes its stamp holds it.
 */
export interface EpochProposal {
  /** The epoch it proposes (the current one plus one). */
  epoch: number
  /** The proposer's stable cut. */
  cut: HlcString
  /** The digest of the checkpoint at `cut`, as the proposer computed it. */
  digest: string
  proposer: NodeId
  hlc: HlcString
  seq: number
}

export function proposalKey (proposal: Pick<EpochProposal, 'epoch' | 'proposer'>): string {
  return `${proposal.epoch}@${proposal.proposer}`
}

/** A proposal as read from a peer's document, or the reason it is not one. */
export function validateProposal (key: string, value: unknown): Validated<EpochProposal> {
  if (typeof value !== 'object' || value === null) return fail('InvalidValue', `epoch proposal ${key} is not an object`)
  const v = value as Record<string, unknown>
  if (typeof v.epoch !== 'number' || !Number.isSafeInteger(v.epoch) || v.epoch < 1) return fail('InvalidValue', `epoch proposal ${key} has no valid epoch number`)
  if (typeof v.cut !== 'string' || !isHlc(v.cut)) return fail('InvalidHlc', `epoch proposal ${key} has no valid cut`)
  if (typeof v.hlc !== 'string' || !isHlc(v.hlc)) return fail('InvalidHlc', `epoch proposal ${key} has no valid stamp`)
  if (typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq) || v.seq < 1) return fail('InvalidValue', `epoch proposal ${key} has no valid stream position`)
  if (typeof v.digest !== 'string' || v.digest.length === 0 || v.digest.length > 128) return fail('InvalidValue', `epoch proposal ${key} has no valid digest`)
  if (typeof v.proposer !== 'string' || key !== proposalKey({ epoch: v.epoch, proposer: v.proposer })) return fail('InvalidValue', `epoch proposal ${key} is filed under another key than its epoch and proposer`)
  if (!stampedBy(v.hlc, v.proposer)) return fail('InvalidHlc', `epoch proposal ${key} is stamped by another node than its proposer`)
  if (v.cut >= v.hlc) return fail('InvalidHlc', `epoch proposal ${key} names a cut at or after its own stamp`)
  return { ok: true, value: { epoch: v.epoch, cut: v.cut, digest: v.digest, proposer: v.proposer, hlc: v.hlc, seq: v.seq } }
}

export function writeProposal (doc: Y.Doc, proposal: EpochProposal, origin?: unknown): void {
  setOne(doc, MAP_EPOCHS, proposalKey(proposal), proposal, origin)
}

export const MAX_ID_LENGTH = 128
/** Deployment ids: letters, digits and `._:/-`, 1–128 characters. */
export const RESERVATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/
const MAX_LABELS = 32
const MAX_LABEL_LENGTH = 256
const MAX_SPREAD = 1024
/** Addresses a heartbeat may carry. */
export const MAX_ADDRS = 16

// ---------------------------------------------------------------- validation

export type Validated<T> = { ok: true, value: T } | { ok: false, code: InvalidCode, reason: string }
export type InvalidCode = 'InvalidSize' | 'InvalidPlacement' | 'InvalidValue' | 'InvalidHlc' | 'InvalidId'

function fail<T> (code: InvalidCode, reason: string): Validated<T> {
  return { ok: false, code, reason }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function isByteCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isSeq (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isNodeId (value: unknown): value is NodeId {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_ID_LENGTH
}

function validateLabels (value: unknown): Record<string, string> | undefined {
  if (value === undefined) return {}
  if (!isObject(value)) return undefined
  const entries = Object.entries(value)
  if (entries.length > MAX_LABELS) return undefined
  for (const [k, v] of entries) {
    if (typeof v !== 'string' || k.length > MAX_LABEL_LENGTH || v.length > MAX_LABEL_LENGTH) return undefined
  }
  return value as Record<string, string>
}

export function validatePlacement (value: unknown): Validated<Placement> {
  if (!isObject(value)) return fail('InvalidPlacement', `placement must be an object, got ${describe(value)}`)
  switch (value.kind) {
    case 'any': return { ok: true, value: { kind: 'any' } }
    case 'all': return { ok: true, value: { kind: 'all' } }
    case 'node':
      if (!isNodeId(value.node)) return fail('InvalidPlacement', `placement 'node' needs a node id, got ${describe(value.node)}`)
      return { ok: true, value: { kind: 'node', node: value.node } }
    case 'spread':
      if (typeof value.count !== 'number' || !Number.isSafeInteger(value.count) || value.count < 1 || value.count > MAX_SPREAD) {
        return fail('InvalidPlacement', `placement 'spread' needs an integer count in 1..${MAX_SPREAD}, got ${describe(value.count)}`)
      }
      return { ok: true, value: { kind: 'spread', count: value.count } }
    default:
      return fail('InvalidPlacement', `unknown placement kind ${describe(value.kind)} (expected any, node, all or spread)`)
  }
}

/** `<id>@<creator>`: the ledger key of a reservation or release. */
export function entryKey (id: ReservationId, writer: NodeId): string {
  return `${id}@${writer}`
}

/** `<id>@<creator>@<by>`: the ledger key of a release of the entry `<id>@<creator>`. */
export function releaseKey (id: ReservationId, creator: NodeId, by: NodeId): string {
  return `${id}@${creator}@${by}`
}

/** Split an entry key; the id never contains `@`, so the first `@` separates. */
export function splitEntryKey (key: string): { id: string, writer: string } {
  const at = key.indexOf('@')
  return at < 0 ? { id: key, writer: '' } : { id: key.slice(0, at), writer: key.slice(at + 1) }
}

/**
 * Validation results by value object. Yjs hands out the same object for an entry
 * on every read, and entries are write-once, so a replica that resolves after
 * every update validates each entry once instead of every time.
 */
function cachedByValue<T> (validate: (key: string, value: unknown) => Validated<T>): (key: string, value: unknown) => Validated<T> {
  const cache = new WeakMap<object, { key: string, result: Validated<T> }>()
  return (key, value) => {
    if (typeof value !== 'object' || value === null) return validate(key, value)
    const cached = cache.get(value)
    if (cached !== undefined && cached.key === key) return cached.result
    const result = validate(key, value)
    cache.set(value, { key, result })
    return result
  }
}

export const validateReservation = cachedByValue(validateReservationUncached)

function validateReservationUncached (key: string, value: unknown): Validated<Reservation> {
  if (!isObject(value)) return fail('InvalidValue', `reservation must be an object, got ${describe(value)}`)
  if (typeof value.id !== 'string' || !RESERVATION_ID_PATTERN.test(value.id) || key !== entryKey(value.id, String(value.creator))) {
    return fail('InvalidId', `reservation id ${describe(value.id)} does not match its key or the id pattern`)
  }
  if (!isByteCount(value.bytes) || value.bytes === 0) return fail('InvalidSize', `bytes must be a positive integer, got ${describe(value.bytes)}`)
  const placement = validatePlacement(value.placement)
  if (!placement.ok) return placement
  const priority = value.priority ?? 0
  if (typeof priority !== 'number' || !Number.isSafeInteger(priority)) return fail('InvalidValue', `priority must be an integer, got ${describe(priority)}`)
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isNodeId(value.creator)) return fail('InvalidValue', `creator must be a node id, got ${describe(value.creator)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `seq must be a non-negative integer, got ${describe(value.seq)}`)
  const labels = validateLabels(value.labels)
  if (labels === undefined) return fail('InvalidValue', 'labels must be an object of at most 32 short strings')
  const reservation: Reservation = { id: value.id, bytes: value.bytes, placement: placement.value, priority, hlc: value.hlc, creator: value.creator, seq: value.seq, labels }
  // Bounds and the queue (docs/design.md "Bounds and the queue"): set only when present, so older entries read as before.
  if (value.minBytes !== undefined) {
    if (!isByteCount(value.minBytes) || value.minBytes === 0) return fail('InvalidSize', `minBytes must be a positive integer, got ${describe(value.minBytes)}`)
    if (value.minBytes > value.bytes) return fail('InvalidSize', `minBytes (${value.minBytes}) must not exceed bytes (${value.bytes})`)
    reservation.minBytes = value.minBytes
  }
  if (value.queue !== undefined) {
    if (typeof value.queue !== 'boolean') return fail('InvalidValue', `queue must be true or false, got ${describe(value.queue)}`)
    if (value.queue) reservation.queue = true
  }
  if (value.queueTimeoutMs !== undefined) {
    if (reservation.queue !== true) return fail('InvalidValue', 'queueTimeoutMs needs queue: true')
    if (!isByteCount(value.queueTimeoutMs) || value.queueTimeoutMs === 0 || value.queueTimeoutMs > MAX_QUEUE_TIMEOUT_MS) {
      return fail('InvalidValue', `queueTimeoutMs must be an integer in 1..${MAX_QUEUE_TIMEOUT_MS}, got ${describe(value.queueTimeoutMs)}`)
    }
    reservation.queueTimeoutMs = value.queueTimeoutMs
  }
  return { ok: true, value: reservation }
}

export function validateRelease (key: string, value: unknown): Validated<Release> {
  if (!isObject(value)) return fail('InvalidValue', `release must be an object, got ${describe(value)}`)
  if (!isNodeId(value.creator)) return fail('InvalidValue', `release must name the creator of the entry it ends, got ${describe(value.creator)}`)
  if (typeof value.id !== 'string' || !RESERVATION_ID_PATTERN.test(value.id) || key !== releaseKey(value.id, value.creator, String(value.by))) {
    return fail('InvalidId', `release id ${describe(value.id)} does not match its key`)
  }
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `release hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isNodeId(value.by)) return fail('InvalidValue', `release 'by' must be a node id, got ${describe(value.by)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `release seq must be a non-negative integer, got ${describe(value.seq)}`)
  if (value.of !== undefined && !(isHlc(value.of) && value.of < value.hlc)) {
    return fail('InvalidHlc', `release 'of' must be the stamp of the entry it ends, earlier than the release's own (${value.hlc}), got ${describe(value.of)}`)
  }
  const release: Release = { id: value.id, creator: value.creator, hlc: value.hlc, by: value.by, seq: value.seq }
  if (value.of !== undefined) release.of = value.of
  return { ok: true, value: release }
}

export function validateCapacity (key: string, value: unknown): Validated<CapacityEvent> {
  if (!isObject(value)) return fail('InvalidValue', `capacity event must be an object, got ${describe(value)}`)
  if (!isNodeId(value.node) || key !== `${value.node}/${String(value.seq)}`) return fail('InvalidId', `capacity key ${JSON.stringify(key)} does not match node/seq`)
  if (!isByteCount(value.allocatableBytes)) return fail('InvalidSize', `allocatableBytes must be a non-negative integer, got ${describe(value.allocatableBytes)}`)
  if (typeof value.state !== 'string' || !NODE_STATES.has(value.state)) return fail('InvalidValue', `state must be active, cordoned, draining or left, got ${describe(value.state)}`)
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `capacity hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `capacity seq must be a non-negative integer, got ${describe(value.seq)}`)
  return { ok: true, value: { node: value.node, allocatableBytes: value.allocatableBytes, state: value.state as NodeState, hlc: value.hlc, seq: value.seq } }
}

const MAX_TARGETS = 1024

function validatePositions (value: unknown): Record<NodeId, StreamPosition> | undefined {
  if (!isObject(value)) return undefined
  const entries = Object.entries(value)
  if (entries.length > MAX_TARGETS) return undefined
  const out: Record<NodeId, StreamPosition> = Object.create(null)
  for (const [node, raw] of entries) {
    if (!isNodeId(node) || !isObject(raw) || !isSeq(raw.seq) || (raw.hlc !== undefined && !isHlc(raw.hlc))) return undefined
    out[node] = raw.hlc === undefined ? { seq: raw.seq } : { seq: raw.seq, hlc: raw.hlc }
  }
  return out
}

const MEMBERSHIP_KINDS: ReadonlySet<unknown> = new Set(['request', 'admit', 'propose', 'ack'])

/** Membership records are write-once too: validated once per value object. */
export const validateMembership = cachedByValue(validateMembershipUncached)

function validateMembershipUncached (key: string, value: unknown): Validated<MembershipRecord> {
  if (!isObject(value)) return fail('InvalidValue', `membership record must be an object, got ${describe(value)}`)
  if (!MEMBERSHIP_KINDS.has(value.kind)) return fail('InvalidValue', `unknown membership kind ${describe(value.kind)} (expected request, admit, propose or ack)`)
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `membership hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `membership seq must be a non-negative integer, got ${describe(value.seq)}`)
  const { hlc, seq } = value
  let record: MembershipRecord
  switch (value.kind) {
    case 'request':
      if (!isNodeId(value.node) || !isNodeId(value.sponsor)) return fail('InvalidValue', 'admission request needs node and sponsor ids')
      if (!isByteCount(value.allocatableBytes)) return fail('InvalidSize', `admission request allocatableBytes must be a non-negative integer, got ${describe(value.allocatableBytes)}`)
      record = { kind: 'request', node: value.node, sponsor: value.sponsor, allocatableBytes: value.allocatableBytes, hlc, seq }
      break
    case 'admit':
      if (!isNodeId(value.node) || !isNodeId(value.by)) return fail('InvalidValue', 'admission needs node and by ids')
      if (!isByteCount(value.allocatableBytes)) return fail('InvalidSize', `admission allocatableBytes must be a non-negative integer, got ${describe(value.allocatableBytes)}`)
      record = { kind: 'admit', node: value.node, by: value.by, allocatableBytes: value.allocatableBytes, hlc, seq }
      break
    case 'propose': {
      if (!isNodeId(value.by)) return fail('InvalidValue', `proposal 'by' must be a node id, got ${describe(value.by)}`)
      const targets = value.targets
      if (!Array.isArray(targets) || targets.length === 0 || targets.length > MAX_TARGETS || !targets.every(isNodeId) || new Set(targets).size !== targets.length) {
        return fail('InvalidValue', 'eviction proposal needs 1..1024 distinct target node ids')
      }
      if (typeof value.view !== 'string' || value.view.length > 64) return fail('InvalidValue', 'eviction proposal needs a view digest')
      const positions = validatePositions(value.positions)
      if (positions === undefined) return fail('InvalidValue', 'eviction proposal positions must map node ids to { seq, hlc }')
      if (value.force !== undefined && typeof value.force !== 'boolean') return fail('InvalidValue', 'eviction proposal force must be a boolean')
      if (value.manual !== undefined && typeof value.manual !== 'boolean') return fail('InvalidValue', 'eviction proposal manual must be a boolean')
      record = { kind: 'propose', targets: [...targets].sort(), view: value.view, positions, by: value.by, hlc, seq }
      if (value.force === true) record.force = true
      if (value.manual === true) record.manual = true
      break
    }
    case 'ack': {
      if (!isNodeId(value.by)) return fail('InvalidValue', `ack 'by' must be a node id, got ${describe(value.by)}`)
      if (typeof value.proposal !== 'string' || value.proposal.length > 3 * MAX_ID_LENGTH) return fail('InvalidValue', 'ack must name a proposal key')
      const positions = validatePositions(value.positions)
      if (positions === undefined) return fail('InvalidValue', 'ack positions must map node ids to { seq, hlc }')
      record = { kind: 'ack', proposal: value.proposal, positions, by: value.by, hlc, seq }
      break
    }
    default:
      return fail('InvalidValue', `unknown membership kind ${describe(value.kind)}`)
  }
  if (key !== membershipKey(record)) return fail('InvalidId', `membership key ${JSON.stringify(key)} does not match its record (expected ${JSON.stringify(membershipKey(record))})`)
  const writer = membershipWriter(record)
  if (!stampedBy(hlc, writer)) return fail('InvalidHlc', `membership stamp ${describe(hlc)} is not its writer's`)
  return { ok: true, value: record }
}

/** A node record (by its node's key); a node replaces its record with a new value, never changes one in place. */
export const validateHeartbeat = cachedByValue((_node: string, value: unknown) => validateHeartbeatUncached(value))

function validateHeartbeatUncached (value: unknown): Validated<Heartbeat> {
  if (!isObject(value)) return fail('InvalidValue', `heartbeat must be an object, got ${describe(value)}`)
  for (const field of ['totalBytes', 'floorBytes', 'allocatableBytes', 'availableBytes', 'usedBytes'] as const) {
    if (!isByteCount(value[field])) return fail('InvalidSize', `heartbeat ${field} must be a non-negative integer, got ${describe(value[field])}`)
  }
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `heartbeat hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `heartbeat seq must be a non-negative integer, got ${describe(value.seq)}`)
  if (typeof value.state !== 'string' || !NODE_STATES.has(value.state)) return fail('InvalidValue', `heartbeat state must be active, cordoned, draining or left, got ${describe(value.state)}`)
  const labels = validateLabels(value.labels)
  if (labels === undefined) return fail('InvalidValue', 'heartbeat labels must be an object of short strings')
  const addrs = value.addrs
  if (addrs !== undefined && (!Array.isArray(addrs) || addrs.length > MAX_ADDRS || addrs.some(a => typeof a !== 'string' || a.length > MAX_LABEL_LENGTH))) {
    return fail('InvalidValue', `heartbeat addrs must be at most ${MAX_ADDRS} multiaddr strings`)
  }
  if (value.seen !== undefined && !isHlc(value.seen)) return fail('InvalidHlc', `heartbeat seen is not a valid stamp: ${describe(value.seen)}`)
  if (value.pressure !== undefined && !['warn', 'refuse', 'evict'].includes(value.pressure as string)) {
    return fail('InvalidValue', `heartbeat pressure must be warn, refuse or evict, got ${describe(value.pressure)}`)
  }
  if (value.usage !== undefined && !validUsage(value.usage)) {
    return fail('InvalidValue', `heartbeat usage must map at most ${MAX_USAGE_ENTRIES} reservation ids to { usedBytes, peakBytes?, oomKills? } byte counts`)
  }
  return { ok: true, value: { ...(value as unknown as Heartbeat), labels, version: typeof value.version === 'string' ? value.version : '' } }
}

/** Reservations a node record may carry usage for (the writer keeps the largest). */
export const MAX_USAGE_ENTRIES = 4096

function validUsage (value: unknown): boolean {
  if (!isObject(value)) return false
  const entries = Object.entries(value)
  if (entries.length > MAX_USAGE_ENTRIES) return false
  return entries.every(([id, u]) => RESERVATION_ID_PATTERN.test(id) && isObject(u) && isByteCount(u.usedBytes) &&
    (u.peakBytes === undefined || isByteCount(u.peakBytes)) && (u.oomKills === undefined || isByteCount(u.oomKills)))
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  try {
    const text = JSON.stringify(value)
    return text.length > 64 ? `${text.slice(0, 61)}...` : text
  } catch {
    return typeof value
  }
}

// ---------------------------------------------------------------- placement text

/** Parse `any`, `all`, `node:<id>` or `spread:<k>`; throws {@link PlacementError}. */
export function parsePlacement (text: string): Placement {
  if (text === 'any' || text === '') return { kind: 'any' }
  if (text === 'all') return { kind: 'all' }
  if (text.startsWith('node:')) {
    const node = text.slice(5)
    if (!isNodeId(node)) throw new PlacementError(`placement 'node:' needs a node id, e.g. node:12D3KooW…`)
    return { kind: 'node', node }
  }
  if (text.startsWith('spread:')) {
    const count = Number(text.slice(7))
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_SPREAD || !/^\d+$/.test(text.slice(7))) {
      throw new PlacementError(`placement 'spread:<k>' needs an integer k in 1..${MAX_SPREAD}, got '${text.slice(7)}'`)
    }
    return { kind: 'spread', count }
  }
  throw new PlacementError(`unknown placement '${text}'; accepted: any, all, node:<id>, spread:<k>`)
}

export function formatPlacement (placement: Placement): string {
  switch (placement.kind) {
    case 'node': return `node:${placement.node}`
    case 'spread': return `spread:${placement.count}`
    default: return placement.kind
  }
}

// ---------------------------------------------------------------- reading and writing

export interface LedgerMaps {
  nodes: Y.Map<unknown>
  reservations: Y.Map<unknown>
  releases: Y.Map<unknown>
  capacity: Y.Map<unknown>
  membership: Y.Map<unknown>
}

export function ledgerMaps (doc: Y.Doc): LedgerMaps {
  return {
    nodes: doc.getMap(MAP_NODES),
    reservations: doc.getMap(MAP_RESERVATIONS),
    releases: doc.getMap(MAP_RELEASES),
    capacity: doc.getMap(MAP_CAPACITY),
    membership: doc.getMap(MAP_MEMBERSHIP)
  }
}

/**
 * A ledger map's value as plain data. Values are plain JSON (ContentAny); a
 * peer could still put a shared type there, which is handed on as its JSON
 * form so validation can refuse it.
 */
export function plainValue (value: unknown): unknown {
  return value instanceof Y.AbstractType ? value.toJSON() : value
}

function mapToRecord (map: Y.Map<unknown>): Record<string, unknown> {
  // Null prototype: a peer may name a key `__proto__`, which on a plain object
  // would replace the prototype instead of adding an entry.
  const out: Record<string, unknown> = Object.create(null)
  for (const [key, value] of map.entries()) out[key] = plainValue(value)
  return out
}

/** One map of the ledger as a plain (null-prototype) record. */
export function readMapRecord (doc: Y.Doc, name: string): Record<string, unknown> {
  return mapToRecord(doc.getMap(name))
}

/** Copy the ledger out of the document (the values are shared, not cloned: treat as read-only). */
export function readLedger (doc: Y.Doc): LedgerSnapshot {
  const maps = ledgerMaps(doc)
  return {
    nodes: mapToRecord(maps.nodes),
    reservations: mapToRecord(maps.reservations),
    releases: mapToRecord(maps.releases),
    capacity: mapToRecord(maps.capacity),
    membership: mapToRecord(maps.membership),
    epochs: readMapRecord(doc, MAP_EPOCHS)
  }
}

/** Each writer is one `set` in its own transaction; `origin` tags it so receivers can tell local from remote. */
function setOne (doc: Y.Doc, mapName: string, key: string, value: object, origin?: unknown): void {
  doc.transact(() => { doc.getMap(mapName).set(key, value) }, origin)
}

export function writeHeartbeat (doc: Y.Doc, node: NodeId, heartbeat: Heartbeat, origin?: unknown): void {
  setOne(doc, MAP_NODES, node, heartbeat, origin)
}

export function writeReservation (doc: Y.Doc, reservation: Reservation, origin?: unknown): void {
  setOne(doc, MAP_RESERVATIONS, entryKey(reservation.id, reservation.creator), reservation, origin)
}

export function writeRelease (doc: Y.Doc, release: Release, origin?: unknown): void {
  setOne(doc, MAP_RELEASES, releaseKey(release.id, release.creator, release.by), release, origin)
}

export function writeCapacity (doc: Y.Doc, event: CapacityEvent, origin?: unknown): void {
  setOne(doc, MAP_CAPACITY, `${event.node}/${event.seq}`, event, origin)
}

export function writeMembership (doc: Y.Doc, record: MembershipRecord, origin?: unknown): void {
  setOne(doc, MAP_MEMBERSHIP, membershipKey(record), record, origin)
}
