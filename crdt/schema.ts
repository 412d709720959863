/**
 * The replicated state: one Y.Doc per cluster (DESIGN.md §3).
 *
 * | map            | key                         | writer            | value                |
 * | -------------- | --------------------------- | ----------------- | -------------------- |
 * | `nodes`        | node id                     | that node only    | {@link Heartbeat}    |
 * | `reservations` | `<deployment id>@<creator>` | once, its creator | {@link Reservation}  |
 * | `releases`     | `<deployment id>@<by>`      | whoever releases  | {@link Release}      |
 * | `capacity`     | `<node id>/<seq>`           | that node only    | {@link CapacityEvent}|
 * | `membership`   | `join/<node>`, `evict/<node>/<by>` | joiner / evictor | {@link MembershipRecord} |
 *
 * Write discipline: every write is one `Y.Map.set` of one plain object in its own
 * transaction. A heartbeat overwrites the node's own key, so the document stays
 * flat under heartbeats (measured in the crdt benchmark).
 *
 * No key has two writers. DESIGN.md §3 keys reservations by deployment id and
 * lets Yjs keep one of two concurrent writes (by client id); that choice can
 * replace a reservation after its verdict was final, so here both writes are
 * kept under `<id>@<creator>` and `resolve()` gives the id to the earlier HLC —
 * the later one is `rejected: IdTaken`, on every peer (docs/decisions.md).
 *
 * Values arrive from peers and may be anything. Readers never trust them: the
 * `validate*` functions turn a malformed value into a reason string, which
 * `resolve()` reports as an `invalid` verdict the same way on every peer.
 */
import * as Y from 'yjs'
import { isHlc, type HlcString } from './hlc.ts'
import { PlacementError } from './errors.ts'

export type NodeId = string
export type ReservationId = string

export const MAP_NODES = 'nodes'
export const MAP_RESERVATIONS = 'reservations'
export const MAP_RELEASES = 'releases'
export const MAP_CAPACITY = 'capacity'
export const MAP_MEMBERSHIP = 'membership'

export type NodeState = 'active' | 'draining' | 'left'
const NODE_STATES: ReadonlySet<string> = new Set(['active', 'draining', 'left'])

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
}

export interface Release {
  id: ReservationId
  hlc: HlcString
  by: NodeId
  seq: number
}

/** A change of a node's allocatable memory or state: what `resolve()` replays. */
export interface CapacityEvent {
  node: NodeId
  allocatableBytes: number
  state: NodeState
  hlc: HlcString
  seq: number
}

export interface JoinRecord {
  kind: 'join'
  node: NodeId
  /** The member this node synced with before writing; itself for the first node of a cluster. */
  sponsor: NodeId
  hlc: HlcString
  seq: number
}

export interface EvictionRecord {
  kind: 'evict'
  node: NodeId
  /** The last sequence number seen from `node`; its writes after this are ignored. */
  lastSeq: number
  by: NodeId
  hlc: HlcString
  seq: number
}

export type MembershipRecord = JoinRecord | EvictionRecord

/** Plain-object copy of the five maps; what `resolve()` reads. Values are untrusted. */
export interface LedgerSnapshot {
  nodes: Record<string, unknown>
  reservations: Record<string, unknown>
  releases: Record<string, unknown>
  capacity: Record<string, unknown>
  membership: Record<string, unknown>
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
const reservationCache = new WeakMap<object, { key: string, result: Validated<Reservation> }>()

export function validateReservation (key: string, value: unknown): Validated<Reservation> {
  if (typeof value !== 'object' || value === null) return validateReservationUncached(key, value)
  const cached = reservationCache.get(value)
  if (cached !== undefined && cached.key === key) return cached.result
  const result = validateReservationUncached(key, value)
  reservationCache.set(value, { key, result })
  return result
}

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
  return {
    ok: true,
    value: { id: value.id, bytes: value.bytes, placement: placement.value, priority, hlc: value.hlc, creator: value.creator, seq: value.seq, labels }
  }
}

export function validateRelease (key: string, value: unknown): Validated<Release> {
  if (!isObject(value)) return fail('InvalidValue', `release must be an object, got ${describe(value)}`)
  if (typeof value.id !== 'string' || !RESERVATION_ID_PATTERN.test(value.id) || key !== entryKey(value.id, String(value.by))) {
    return fail('InvalidId', `release id ${describe(value.id)} does not match its key`)
  }
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `release hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isNodeId(value.by)) return fail('InvalidValue', `release 'by' must be a node id, got ${describe(value.by)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `release seq must be a non-negative integer, got ${describe(value.seq)}`)
  return { ok: true, value: { id: value.id, hlc: value.hlc, by: value.by, seq: value.seq } }
}

export function validateCapacity (key: string, value: unknown): Validated<CapacityEvent> {
  if (!isObject(value)) return fail('InvalidValue', `capacity event must be an object, got ${describe(value)}`)
  if (!isNodeId(value.node) || key !== `${value.node}/${String(value.seq)}`) return fail('InvalidId', `capacity key ${JSON.stringify(key)} does not match node/seq`)
  if (!isByteCount(value.allocatableBytes)) return fail('InvalidSize', `allocatableBytes must be a non-negative integer, got ${describe(value.allocatableBytes)}`)
  if (typeof value.state !== 'string' || !NODE_STATES.has(value.state)) return fail('InvalidValue', `state must be active, draining or left, got ${describe(value.state)}`)
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `capacity hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `capacity seq must be a non-negative integer, got ${describe(value.seq)}`)
  return { ok: true, value: { node: value.node, allocatableBytes: value.allocatableBytes, state: value.state as NodeState, hlc: value.hlc, seq: value.seq } }
}

export function validateMembership (key: string, value: unknown): Validated<MembershipRecord> {
  if (!isObject(value)) return fail('InvalidValue', `membership record must be an object, got ${describe(value)}`)
  if (!isNodeId(value.node)) return fail('InvalidValue', `membership node must be a node id, got ${describe(value.node)}`)
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `membership hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `membership seq must be a non-negative integer, got ${describe(value.seq)}`)
  if (value.kind === 'join') {
    if (!isNodeId(value.sponsor)) return fail('InvalidValue', `join sponsor must be a node id, got ${describe(value.sponsor)}`)
    if (key !== `join/${value.node}`) return fail('InvalidId', `join key ${JSON.stringify(key)} does not match its node`)
    return { ok: true, value: { kind: 'join', node: value.node, sponsor: value.sponsor, hlc: value.hlc, seq: value.seq } }
  }
  if (value.kind === 'evict') {
    if (!isSeq(value.lastSeq)) return fail('InvalidValue', `eviction lastSeq must be a non-negative integer, got ${describe(value.lastSeq)}`)
    if (!isNodeId(value.by) || key !== `evict/${value.node}/${value.by}`) return fail('InvalidId', `eviction key ${JSON.stringify(key)} does not match node/by`)
    return { ok: true, value: { kind: 'evict', node: value.node, lastSeq: value.lastSeq, by: value.by, hlc: value.hlc, seq: value.seq } }
  }
  return fail('InvalidValue', `unknown membership kind ${describe(value.kind)}`)
}

export function validateHeartbeat (value: unknown): Validated<Heartbeat> {
  if (!isObject(value)) return fail('InvalidValue', `heartbeat must be an object, got ${describe(value)}`)
  for (const field of ['totalBytes', 'floorBytes', 'allocatableBytes', 'availableBytes', 'usedBytes'] as const) {
    if (!isByteCount(value[field])) return fail('InvalidSize', `heartbeat ${field} must be a non-negative integer, got ${describe(value[field])}`)
  }
  if (!isHlc(value.hlc)) return fail('InvalidHlc', `heartbeat hlc is not a valid stamp: ${describe(value.hlc)}`)
  if (!isSeq(value.seq)) return fail('InvalidValue', `heartbeat seq must be a non-negative integer, got ${describe(value.seq)}`)
  if (typeof value.state !== 'string' || !NODE_STATES.has(value.state)) return fail('InvalidValue', `heartbeat state must be active, draining or left, got ${describe(value.state)}`)
  const labels = validateLabels(value.labels)
  if (labels === undefined) return fail('InvalidValue', 'heartbeat labels must be an object of short strings')
  const addrs = value.addrs
  if (addrs !== undefined && (!Array.isArray(addrs) || addrs.length > MAX_ADDRS || addrs.some(a => typeof a !== 'string' || a.length > MAX_LABEL_LENGTH))) {
    return fail('InvalidValue', `heartbeat addrs must be at most ${MAX_ADDRS} multiaddr strings`)
  }
  return { ok: true, value: { ...(value as unknown as Heartbeat), labels, version: typeof value.version === 'string' ? value.version : '' } }
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

function mapToRecord (map: Y.Map<unknown>): Record<string, unknown> {
  // Null prototype: a peer may name a key `__proto__`, which on a plain object
  // would replace the prototype instead of adding an entry.
  const out: Record<string, unknown> = Object.create(null)
  // Values are plain JSON (ContentAny); a peer could still put a shared type
  // there, which we hand on as its JSON form so validation can refuse it.
  for (const [key, value] of map.entries()) {
    out[key] = value instanceof Y.AbstractType ? value.toJSON() : value
  }
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
    membership: mapToRecord(maps.membership)
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
  setOne(doc, MAP_RELEASES, entryKey(release.id, release.by), release, origin)
}

export function writeCapacity (doc: Y.Doc, event: CapacityEvent, origin?: unknown): void {
  setOne(doc, MAP_CAPACITY, `${event.node}/${event.seq}`, event, origin)
}

export function writeJoin (doc: Y.Doc, record: Omit<JoinRecord, 'kind'>, origin?: unknown): void {
  setOne(doc, MAP_MEMBERSHIP, `join/${record.node}`, { kind: 'join', ...record }, origin)
}

export function writeEviction (doc: Y.Doc, record: Omit<EvictionRecord, 'kind'>, origin?: unknown): void {
  setOne(doc, MAP_MEMBERSHIP, `evict/${record.node}/${record.by}`, { kind: 'evict', ...record }, origin)
}
