/**
 * The HTTP API's contract, written once (docs/design.md "Interfaces"): every
 * route with its method, path, query, body and answers, the error codes with
 * the HTTP status each maps to, and a zod schema per shape that gives both the
 * server's validation and the TypeScript type the CLI reads. The OpenAPI
 * document (`GET /v1/openapi.json`, docs/openapi.json) is generated from it.
 *
 * It imports nothing of libp2p or the agent, so the CLI can load it cheaply
 * (the CLI imports its types only). Request fields are listed in one object
 * each: adding an optional field is one line there.
 *
 * Sizes and placements are parsed here, once, on the way in: a request schema
 * turns `size` ("2GiB") or `bytes` into an integer `bytes`, and the placement
 * text into a {@link Placement}.
 */
import { z } from 'zod'
import { MAX_QUEUE_TIMEOUT_MS, parsePlacement, RESERVATION_ID_PATTERN, type Placement } from '../../crdt/schema.ts'
import { parseSize } from '../../crdt/size.ts'

// ------------------------------------------------------------------ errors

/**
 * Every error code the API answers with, and its HTTP status. Error answers
 * are `{ error, detail, field? }`; clients match on `error`, never on `detail`.
 */
export const ERROR_STATUS = {
  /** The body is not a JSON object. */
  InvalidJson: 400,
  /** A body field or query parameter this route does not take (a typo, or a newer client than this agent). */
  UnknownField: 400,
  InvalidId: 400,
  InvalidSize: 400,
  InvalidPlacement: 400,
  /** `node:<id>` names a node this agent has never heard of. */
  UnknownNode: 400,
  InvalidPriority: 400,
  InvalidLabels: 400,
  InvalidStatus: 400,
  InvalidNode: 400,
  InvalidForce: 400,
  InvalidSince: 400,
  InvalidPrice: 400,
  /** `min`/`minBytes`: not a size, zero, or above the size (docs/design.md "Bounds and the queue"). */
  InvalidMin: 400,
  InvalidQueue: 400,
  InvalidQueueTimeout: 400,
  /** `cgroup` of a usage request is not a path (docs/design.md "Enforcement"). */
  InvalidCgroup: 400,
  /** The agent refused the request as input (e.g. an agent evicting itself). */
  BadRequest: 400,
  Unauthorized: 401,
  /** Host or Origin is not this agent's (DNS rebinding, cross-site requests). */
  ForbiddenHost: 403,
  ForbiddenOrigin: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  /** The reservation id is already in the ledger. */
  IdExists: 409,
  BodyTooLarge: 413,
  UnsupportedMediaType: 415,
  Internal: 500,
  /** The agent cannot write now: not a member yet, read-only after a disk failure, stopping. */
  Unavailable: 503,
  /** `--ack peers:K` not reached in time; the write is durable locally. */
  AckTimeout: 504
} as const

export type ErrorCode = keyof typeof ERROR_STATUS
const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]]

/** An API refusal: its stable code, the status that code maps to, what was wrong, and the field. */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  readonly status: number

  constructor (readonly code: ErrorCode, message: string, readonly field?: string) {
    super(message)
    this.status = ERROR_STATUS[code]
  }
}

export const ErrorBody = z.object({
  error: z.enum(ERROR_CODES),
  /** What was wrong, for people. */
  detail: z.string(),
  /** The body field or query parameter that was wrong. */
  field: z.string().optional()
}).meta({ description: 'An error answer: a stable code, a human detail, and the field it names.' })

// ------------------------------------------------------------------ request fields

/** The error code an invalid value of each body field or query parameter gets (`BadRequest` for any other). */
const FIELD_ERRORS: Record<string, ErrorCode> = {
  id: 'InvalidId',
  size: 'InvalidSize',
  bytes: 'InvalidSize',
  placement: 'InvalidPlacement',
  priority: 'InvalidPriority',
  labels: 'InvalidLabels',
  status: 'InvalidStatus',
  node: 'InvalidNode',
  force: 'InvalidForce',
  since: 'InvalidSince',
  pricePerGiBHour: 'InvalidPrice',
  min: 'InvalidMin',
  minBytes: 'InvalidMin',
  queue: 'InvalidQueue',
  queueTimeoutMs: 'InvalidQueueTimeout',
  cgroup: 'InvalidCgroup'
}

const MAX_LABELS = 32
const MAX_LABEL_LENGTH = 256

/** A transform step that turns a thrown parse error into a validation issue with its message. */
function parsed<In, Out> (parse: (value: In) => Out) {
  return (value: In, ctx: z.RefinementCtx): Out => {
    try {
      return parse(value)
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message })
      return z.NEVER
    }
  }
}

const ReservationId = z.string({ error: "'id' must be 1-128 characters of letters, digits and . _ : / - (starting with a letter or digit)" })
  .regex(RESERVATION_ID_PATTERN, { error: "'id' must be 1-128 characters of letters, digits and . _ : / - (starting with a letter or digit)" })
  .meta({ description: 'Deployment id: 1-128 of letters, digits and . _ : / - (starting with a letter or digit).', example: 'web-1' })

/** `size` as text: "512MiB", "2GiB", "2Gi", "1.5GB" or bytes; parsed to an integer. */
const SizeText = z.string({ error: "'size' must be a string such as \"2GiB\"; use 'bytes' for an integer" })
  .transform(parsed(parseSize))
  .meta({ description: 'Size as text: 512MiB, 2GiB (IEC), 2Gi (Kubernetes), 1.5GB (SI decimal), or bytes.', example: '2GiB' })

const ByteCount = z.int({ error: "'bytes' must be a non-negative integer" })
  .min(0, { error: "'bytes' must be a non-negative integer" })
  .meta({ description: 'Size as an integer number of bytes (instead of size).' })

const PlacementText = z.string({ error: "'placement' must be a string: any, all, node:<id> or spread:<k>" })
  .transform(parsed(parsePlacement))
  .meta({ description: 'any (best fit on one node, the default), all (every active node), node:<id> (pinned), spread:<k> (k distinct nodes).', example: 'spread:2' })

const Labels = z.record(
  z.string().max(MAX_LABEL_LENGTH, { error: `label names must be at most ${MAX_LABEL_LENGTH} characters` }),
  z.string({ error: `label values must be strings of at most ${MAX_LABEL_LENGTH} characters` }).max(MAX_LABEL_LENGTH, { error: `label values must be strings of at most ${MAX_LABEL_LENGTH} characters` }),
  { error: "'labels' must be an object of strings" }
).refine(labels => Object.keys(labels).length <= MAX_LABELS, { error: `at most ${MAX_LABELS} labels` })
  .meta({ description: `Up to ${MAX_LABELS} labels, names and values of at most ${MAX_LABEL_LENGTH} characters.` })

/** The size and placement fields every sizing request shares. */
const SIZE_FIELDS = {
  size: SizeText.optional(),
  bytes: ByteCount.optional(),
  placement: PlacementText.optional()
}

/** `size` xor `bytes`, greater than zero; placement defaults to `any`. */
function sized<T extends { size?: number, bytes?: number, placement?: Placement }> (
  value: T, ctx: z.RefinementCtx
): Omit<T, 'size' | 'bytes' | 'placement'> & { bytes: number, placement: Placement } {
  const { size, bytes, placement, ...rest } = value
  if (size !== undefined && bytes !== undefined) ctx.addIssue({ code: 'custom', message: "give either 'size' or 'bytes', not both", path: ['size'] })
  else if (size === undefined && bytes === undefined) ctx.addIssue({ code: 'custom', message: "missing 'size' (e.g. \"2GiB\") or 'bytes'", path: ['size'] })
  else if ((size ?? bytes) === 0) ctx.addIssue({ code: 'custom', message: 'size must be greater than zero', path: [size !== undefined ? 'size' : 'bytes'] })
  else return { ...rest, bytes: (size ?? bytes)!, placement: placement ?? { kind: 'any' } }
  return z.NEVER
}

/** `POST /v1/fit`: would a deploy of this size fit now? */
export const FitRequest = z.strictObject({
  ...SIZE_FIELDS
}).transform(sized).meta({ description: "A size (either 'size' or 'bytes') and a placement." })

/**
 * Bounds and the queue (docs/design.md "Bounds and the queue"): `min` xor
 * `minBytes`, at most the size, becomes `minBytes`; `queueTimeoutMs` only with
 * `queue`.
 */
function bounded<T extends { bytes: number, min?: number, minBytes?: number, queue?: boolean, queueTimeoutMs?: number }> (
  value: T, ctx: z.RefinementCtx
): Omit<T, 'min'> {
  const { min, ...rest } = value
  if (min !== undefined && value.minBytes !== undefined) {
    ctx.addIssue({ code: 'custom', message: "give either 'min' or 'minBytes', not both", path: ['min'] })
    return z.NEVER
  }
  const minBytes = min ?? value.minBytes
  const field = min !== undefined ? 'min' : 'minBytes'
  if (minBytes !== undefined && minBytes > value.bytes) {
    ctx.addIssue({ code: 'custom', message: `the minimum (${minBytes} bytes) is above the size (${value.bytes} bytes): it must be at most the limit`, path: [field] })
    return z.NEVER
  }
  if (value.queueTimeoutMs !== undefined && value.queue !== true) {
    ctx.addIssue({ code: 'custom', message: "'queueTimeoutMs' needs 'queue': true", path: ['queueTimeoutMs'] })
    return z.NEVER
  }
  return minBytes === undefined ? rest : { ...rest, minBytes }
}

const MinText = z.string({ error: "'min' must be a size string such as \"1GiB\"; use 'minBytes' for an integer" })
  .transform(parsed(parseSize))
  .refine(n => n > 0, { error: 'the minimum must be greater than zero' })
  .meta({ description: 'The least it may be shrunk to on capacity loss, as text (like size); at most the size.', example: '1GiB' })

/** `POST /v1/reservations`: reserve memory for a deployment. */
export const ReserveRequest = z.strictObject({
  id: ReservationId,
  ...SIZE_FIELDS,
  priority: z.int({ error: "'priority' must be an integer" }).default(0).meta({ description: 'On capacity loss lower priorities are evicted first (default 0).' }),
  labels: Labels.default({}),
  min: MinText.optional(),
  minBytes: z.int({ error: "'minBytes' must be a positive integer" }).min(1, { error: "'minBytes' must be a positive integer" }).optional()
    .meta({ description: 'The least it may be shrunk to on capacity loss, in bytes (instead of min); at most the size. Default: never shrunk, only evicted.' }),
  queue: z.boolean({ error: "'queue' must be true or false" }).optional()
    .meta({ description: 'When it does not fit now, write it to wait in the log for room (first come, first served); never when it can never fit.' }),
  queueTimeoutMs: z.int({ error: `'queueTimeoutMs' must be an integer from 1 to ${MAX_QUEUE_TIMEOUT_MS} (30 days)` })
    .min(1, { error: `'queueTimeoutMs' must be an integer from 1 to ${MAX_QUEUE_TIMEOUT_MS} (30 days)` })
    .max(MAX_QUEUE_TIMEOUT_MS, { error: `'queueTimeoutMs' must be an integer from 1 to ${MAX_QUEUE_TIMEOUT_MS} (30 days)` })
    .optional()
    .meta({ description: "With queue: give up this long after its stamp (by the ledger's stamps)." })
}).transform(sized).transform(bounded).meta({ description: "A deployment id, a size (either 'size' or 'bytes'), a placement, priority and labels; optionally a minimum and a place in the queue." })

/** `POST /v1/evict`: propose evicting a member. */
export const EvictRequest = z.strictObject({
  node: z.string({ error: "'node' must be a node id" }).min(1, { error: "'node' must be a node id" }),
  force: z.boolean({ error: "'force' must be true or false" }).default(false)
    .meta({ description: 'Take effect at once, without a majority (a cluster of two, an even split).' })
})

const VERDICT_STATUSES = ['admitted', 'rejected', 'evicted', 'released', 'invalid', 'queued'] as const
export const VerdictStatus = z.enum(VERDICT_STATUSES)

/** `GET /v1/reservations?node=&status=` */
export const ListQuery = z.strictObject({
  node: z.string().optional().meta({ description: 'Only reservations placed on (or running on) this node id.' }),
  status: z.enum(VERDICT_STATUSES, { error: 'status must be admitted, rejected, evicted, released, invalid or queued' }).optional()
})

/** `GET /v1/rent?since=&pricePerGiBHour=` */
export const RentQuery = z.strictObject({
  since: z.string()
    .transform(parsed((text: string) => {
      const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text)
      if (!Number.isFinite(ms)) throw new Error("'since' must be ms since the epoch or an ISO date")
      return ms
    }))
    .optional()
    .meta({ description: 'Start of the billing window: ms since the epoch or an ISO date.' }),
  pricePerGiBHour: z.string()
    .transform(parsed((text: string) => {
      const price = Number(text)
      if (text.trim() === '' || !Number.isFinite(price) || price < 0) throw new Error("'pricePerGiBHour' must be a non-negative number")
      return price
    }))
    .optional()
    .meta({ description: "Price of one GiB held for one hour (default: the agent's)." })
})

/** The `{id}` of `/v1/reservations/{id}`, percent-decoded. */
export const IdParams = z.strictObject({ id: ReservationId })

/**
 * `POST /v1/reservations/{id}/usage`: `memgossip run` names the reservation's
 * cgroup; the agent checks the path and reads the files itself (docs/design.md
 * "Enforcement").
 */
export const UsageRequest = z.strictObject({
  cgroup: z.string({ error: "'cgroup' must be the absolute path of the reservation's cgroup directory" })
    .min(1, { error: "'cgroup' must be the absolute path of the reservation's cgroup directory" })
    .meta({ description: 'The cgroup directory, absolute and normalized, below /sys/fs/cgroup, named memgossip-<id>.', example: '/sys/fs/cgroup/user.slice/memgossip-web-1' })
})

/** The `{file}` of `/ui/{file}`: a file of the page (docs/design.md "Interfaces"); an unknown one is a 404. */
export const UiFileParams = z.strictObject({ file: z.string().meta({ description: 'A file of the page, e.g. app.js.', example: 'app.js' }) })

/** Request bodies as a client sends them (before parsing). */
export type FitRequestIn = z.input<typeof FitRequest>
export type ReserveRequestIn = z.input<typeof ReserveRequest>
export type EvictRequestIn = z.input<typeof EvictRequest>
export type UsageRequestIn = z.input<typeof UsageRequest>

/**
 * The first issue of a failed parse as an {@link ApiError}: the field it names,
 * that field's error code, and the message the schema gave it.
 */
export function toApiError (error: z.ZodError, where: 'body' | 'query' | 'path'): ApiError {
  const issue = error.issues[0]
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]
    const what = where === 'query' ? 'query parameter' : 'field'
    return new ApiError('UnknownField', `unknown ${what} '${key.slice(0, 80)}'`, key)
  }
  const field = typeof issue.path[0] === 'string' ? issue.path[0] : undefined
  if (where === 'body' && field === undefined) return new ApiError('InvalidJson', 'request body must be a JSON object')
  return new ApiError((field !== undefined ? FIELD_ERRORS[field] : undefined) ?? 'BadRequest', issue.message, field)
}

// ------------------------------------------------------------------ answers

const NodeId = z.string().meta({ description: 'A node id (libp2p peer id).' })
const Hlc = z.string().meta({ description: 'A hybrid-logical-clock stamp.' })
const Bytes = z.int().min(0)

const ReasonCode = z.enum([
  'Fits', 'InsufficientMemory', 'NoNodeFits', 'LostConcurrentConflict', 'UnknownNode', 'NodeNotActive', 'NodeUndersized',
  'CreatorEvicted', 'CreatorNotMember', 'CreatorLeft', 'IdTaken', 'Released', 'NodeEvicted', 'NodeLeft', 'NodeDraining',
  'CapacityLost', 'Shrunk', 'Queued', 'QueueTimeout', 'Withdrawn', 'InvalidSize', 'InvalidPlacement', 'InvalidValue', 'InvalidHlc', 'InvalidId'
]).meta({ description: 'Stable reason code: clients match on it, never on the human reason.' })
const PlacementCode = z.enum(['Fits', 'InsufficientMemory', 'NoNodeFits', 'UnknownNode', 'NodeNotActive', 'NodeUndersized', 'NeverFits'])
  .meta({ description: 'NeverFits: larger than any member could ever hold as it stands (nothing is written, queued or not).' })
const NodeFitReason = z.enum(['Fits', 'InsufficientMemory', 'Cordoned', 'Draining', 'Left', 'Evicted', 'Undersized', 'NotJoined'])
const WaitingOn = z.enum(['clocks', 'confirmations', 'view-change', 'capacity'])
  .meta({ description: "What a tentative answer waits for: members' clocks, their confirmations, an open view change, or (queued) room." })
const NodeState = z.enum(['active', 'cordoned', 'draining', 'left', 'evicted', 'unknown', 'undersized'])
  .meta({ description: 'cordoned: keeps what runs, takes nothing new (its pressure ladder at refuse or evict).' })
const PressureLevel = z.enum(['ok', 'warn', 'refuse', 'evict'])
  .meta({ description: "A node's pressure ladder, by its available memory against its floor (docs/design.md \"Pressure ladder\")." })

/** One node's measurement of a reservation (docs/design.md "Enforcement"). */
export const UsageEntry = z.object({
  node: NodeId,
  usedBytes: Bytes,
  peakBytes: Bytes.optional().meta({ description: 'Highest charge seen, where the kernel reports one.' }),
  oomKills: z.int().min(0).optional().meta({ description: 'Processes OOM-killed because it ran out of its own limit (the offender).' }),
  live: z.boolean().meta({ description: "Read now by the asked agent; false: as that node's record last said (it moves past a threshold only)." })
})
const Liveness = z.enum(['alive', 'suspect', 'dead', 'self'])

/** One verdict (`GET /v1/reservations/{id}`): integer `…Bytes`, `size` for people. */
export const Verdict = z.object({
  id: z.string(),
  status: VerdictStatus,
  /** Nothing any member can still write changes the decision (docs/design.md "Finality"). */
  final: z.boolean(),
  waitingOn: WaitingOn.optional(),
  waitsFor: z.array(NodeId),
  view: z.int().optional().meta({ description: 'Epoch of the view it was decided in.' }),
  code: ReasonCode,
  reason: z.string(),
  decision: z.enum(['admitted', 'rejected', 'invalid', 'queued']),
  decisionCode: ReasonCode,
  decisionReason: z.string(),
  nodes: z.array(NodeId).meta({ description: 'Nodes chosen by the decision (empty when rejected).' }),
  runningOn: z.array(NodeId).meta({ description: 'Nodes it runs on now.' }),
  bytes: Bytes,
  size: z.string(),
  placement: z.string().optional(),
  priority: z.int(),
  creator: NodeId,
  hlc: Hlc.optional(),
  labels: z.record(z.string(), z.string()),
  winner: z.string().optional().meta({ description: 'The reservation that took the memory (LostConcurrentConflict, IdTaken).' }),
  endedHlc: Hlc.optional().meta({ description: 'Stamp of the release or eviction that ended it.' }),
  // Bounds and the queue (docs/design.md "Bounds and the queue").
  minBytes: Bytes.optional().meta({ description: 'The least it may be shrunk to on capacity loss.' }),
  effectiveBytes: Bytes.meta({ description: 'The limit in force: bytes, or less once shrunk toward minBytes.' }),
  shrunkHlc: Hlc.optional().meta({ description: 'Stamp of the capacity event that last shrank it.' }),
  queue: z.boolean().optional().meta({ description: 'Asked to wait in the queue.' }),
  queuePosition: z.int().optional().meta({ description: 'While queued: 1 for the first in line.' }),
  queueLength: z.int().optional().meta({ description: 'While queued: how many wait in all.' }),
  queueExpiresHlc: Hlc.optional().meta({ description: 'A queued entry times out at this stamp.' }),
  admittedHlc: Hlc.optional().meta({ description: 'Where it was admitted: its own stamp, or where the queue let it in.' }),
  decidedHlc: Hlc.optional().meta({ description: 'The point in the log its decision was made (finality is judged there).' }),
  usage: z.array(UsageEntry).optional()
    .meta({ description: 'What it uses, per node where it was measured in its cgroup (empty until measured; listed and single verdicts carry it).' })
})

/** The dry-run answer (`POST /v1/fit`, and `answer` of a reservation). */
export const FitAnswer = z.object({
  fits: z.boolean(),
  code: PlacementCode,
  reason: z.string(),
  bytes: Bytes,
  size: z.string(),
  placement: z.string(),
  nodes: z.array(NodeId).meta({ description: 'Where it would land.' }),
  histogram: z.string().meta({ example: '3/5 nodes fit: 2 InsufficientMemory' }),
  histogramCounts: z.partialRecord(NodeFitReason, z.int()),
  perNode: z.array(z.object({
    node: NodeId,
    state: NodeState,
    allocatableBytes: Bytes,
    committedBytes: Bytes,
    headroomBytes: z.int(),
    fit: NodeFitReason,
    chosen: z.boolean(),
    headroomAfterBytes: z.int().optional()
  })),
  warnings: z.array(z.string()),
  final: z.boolean().meta({ description: 'Every verdict the answer was judged on is final.' }),
  waitingOn: WaitingOn.optional(),
  waitsFor: z.array(NodeId)
})

/**
 * The answer to `POST /v1/reservations`, yes or no (docs/decisions.md "One
 * shape for no"): 201 when the entry was written, 200 when it did not fit in
 * this agent's view and nothing was written. `status` is the one field that
 * says whether the deployment got its memory.
 */
export const ReserveAnswer = z.object({
  id: z.string(),
  /** An entry is in the ledger (201); false: it did not fit here, nothing was written (200). */
  written: z.boolean(),
  /** `admitted`, `queued` (written, waiting for room), or `rejected` (written and rejected, or not written). */
  status: VerdictStatus,
  code: z.union([ReasonCode, PlacementCode]),
  reason: z.string(),
  /** The answer can no longer change: a final verdict, or a refusal that wrote nothing. */
  final: z.boolean(),
  /** The verdict, when written. */
  verdict: Verdict.optional(),
  /** The fit answer it was judged by. */
  answer: FitAnswer,
  warnings: z.array(z.string()),
  /** With `--ack peers:K`: how many peers confirmed they hold it. */
  ackedPeers: z.int().optional()
})

export const ReservationList = z.object({
  reservations: z.array(Verdict),
  pending: z.int(),
  verdictsDigest: z.string()
})

export const Health = z.object({
  ok: z.boolean(),
  self: NodeId,
  joined: z.boolean(),
  readOnly: z.string().optional()
})

export const NodeInfo = z.object({
  id: NodeId,
  state: NodeState,
  member: z.boolean(),
  liveness: Liveness,
  heartbeatAgeMs: z.number().optional(),
  totalBytes: Bytes,
  allocatableBytes: Bytes,
  committedBytes: Bytes,
  headroomBytes: z.int(),
  availableBytes: Bytes,
  usedBytes: Bytes,
  floorBytes: Bytes,
  undersized: z.boolean(),
  pressure: PressureLevel,
  reservationsUsedBytes: Bytes.optional().meta({ description: 'What the reservations running there use, as its record last said (absent: nothing measured).' }),
  allNeedBytes: Bytes,
  deficitBytes: Bytes,
  /** How many reservations run there. */
  reservations: z.int(),
  labels: z.record(z.string(), z.string()),
  version: z.string()
})

export const NodeList = z.object({ nodes: z.array(NodeInfo) })

export const Capacity = z.object({
  members: z.int(),
  totalBytes: Bytes,
  allocatableBytes: Bytes,
  committedBytes: Bytes,
  headroomBytes: z.int(),
  availableBytes: Bytes,
  pending: z.int(),
  counts: z.record(VerdictStatus, z.int()),
  verdictsDigest: z.string(),
  nodes: z.array(NodeInfo)
})

export const State = z.object({
  self: NodeId,
  cluster: z.string(),
  joined: z.boolean().meta({ description: 'A member of the current view.' }),
  standing: z.enum(['member', 'left', 'evicted', 'none']),
  readOnly: z.string().optional(),
  writesRefused: z.string().optional().meta({ description: 'Why writes are refused now (disk, identity, clock), if they are.' }),
  members: z.array(NodeId),
  view: z.object({ epoch: z.int(), members: z.array(NodeId), digest: z.string(), since: Hlc.optional(), cause: z.string() }),
  viewChanges: z.array(z.object({
    proposal: z.string(),
    kind: z.string(),
    targets: z.array(NodeId),
    by: NodeId,
    since: Hlc,
    acknowledged: z.array(NodeId),
    waitingFor: z.array(NodeId),
    majorityOf: z.int()
  })),
  admissionRequests: z.array(z.object({ node: NodeId, sponsor: NodeId, since: Hlc })),
  clock: z.object({ behindMs: z.number(), maxOffsetMs: z.number(), peersAheadMs: z.record(z.string(), z.number()) }),
  seen: Hlc.optional().meta({ description: "This peer's completeness line." }),
  peers: z.array(NodeId),
  reservations: z.int(),
  pending: z.int(),
  verdictsDigest: z.string(),
  watermark: z.string().optional(),
  ledgerBytes: Bytes,
  floorBytes: Bytes,
  floorRule: z.string(),
  allocatableBytes: Bytes
})

export const Alert = z.object({
  key: z.string(),
  kind: z.enum(['MemoryPressure', 'PressureLevel', 'ReservationNearLimit', 'NodeCommittedHigh', 'UnaccountedUsage', 'NodeUndersized', 'StorageFailed', 'ClockSkew', 'IdentityConflict', 'NotAMember', 'EvictionBlocked', 'CheckpointMismatch', 'FinalityStalled']),
  node: NodeId,
  message: z.string(),
  setting: z.string().meta({ description: 'The setting an operator would change.' })
})

export const AlertList = z.object({ alerts: z.array(Alert) })

export const Rent = z.object({
  lines: z.array(z.object({
    id: z.string(),
    creator: NodeId,
    status: VerdictStatus,
    bytes: Bytes,
    nodeCount: z.int(),
    startMs: z.number(),
    endMs: z.number(),
    byteSeconds: z.number(),
    cost: z.number()
  })),
  totalByteSeconds: z.number(),
  totalCost: z.number(),
  pricePerGiBHour: z.number(),
  sinceMs: z.number(),
  nowMs: z.number()
})

/** `GET /v1/reservations/{id}/usage`: what it uses, per node where it was measured. */
export const UsageList = z.object({
  id: z.string(),
  usage: z.array(UsageEntry)
})

/** `POST /v1/reservations/{id}/usage`: the cgroup named, as the agent read it just now. */
export const UsageReading = z.object({
  id: z.string(),
  cgroup: z.string().meta({ description: 'The cgroup directory read.' }),
  reservedBytes: Bytes.meta({ description: 'What the ledger charges for it here.' }),
  usedBytes: Bytes,
  peakBytes: Bytes.optional().meta({ description: 'Highest charge seen; absent where the kernel reports none.' }),
  limitBytes: Bytes.optional().meta({ description: 'The limit in force in the cgroup; absent when unlimited.' }),
  exceededLimitKills: z.int().min(0).meta({ description: 'Processes OOM-killed because it ran out of its own limit (offender).' }),
  hostKills: z.int().min(0).meta({ description: 'Processes OOM-killed by the host while within its limit (bystander).' }),
  atMs: z.number().meta({ description: 'When it was read (ms since the epoch).' })
})

export const EvictAnswer = z.object({
  node: NodeId,
  proposal: z.string(),
  force: z.boolean(),
  status: z.enum(['open', 'done', 'void', 'refused']),
  waitingFor: z.array(NodeId),
  detail: z.string()
})

/** The data of each server-sent event of `GET /v1/events`, by event name. */
export const EVENTS = {
  hello: z.object({ self: NodeId, alerts: z.array(Alert), verdictsDigest: z.string() }),
  verdict: z.object({ type: z.literal('verdict'), id: z.string(), status: VerdictStatus, final: z.boolean(), code: z.string(), reason: z.string(), nodes: z.array(NodeId) }),
  alert: z.object({ type: z.literal('alert'), state: z.enum(['raised', 'cleared']), alert: Alert }),
  peer: z.object({ type: z.literal('peer'), state: z.enum(['connected', 'disconnected']), peer: NodeId }),
  joined: z.object({ type: z.literal('joined'), sponsor: NodeId }),
  membership: z.object({ type: z.literal('membership'), state: z.enum(['admitted', 'left', 'evicted']), node: NodeId, by: NodeId.optional() }),
  liveness: z.object({ type: z.literal('liveness'), node: NodeId, state: Liveness }),
  /** An OOM kill inside a reservation's cgroup on `node`: `limit` its own limit ran out (offender), `host` killed within it (bystander). */
  oom: z.object({
    type: z.literal('oom'), node: NodeId, id: z.string(), cause: z.enum(['limit', 'host']), kills: z.int().min(1),
    reservedBytes: Bytes, peakBytes: Bytes.optional(), message: z.string()
  }),
  /** `node`'s pressure ladder stepped from one level to another. */
  pressure: z.object({ type: z.literal('pressure'), node: NodeId, from: PressureLevel, level: PressureLevel, availableBytes: Bytes, message: z.string() })
}

export type ErrorJson = z.infer<typeof ErrorBody>
export type VerdictJson = z.infer<typeof Verdict>
export type FitAnswerJson = z.infer<typeof FitAnswer>
export type ReserveAnswerJson = z.infer<typeof ReserveAnswer>
export type ReservationListJson = z.infer<typeof ReservationList>
export type HealthJson = z.infer<typeof Health>
export type NodeJson = z.infer<typeof NodeInfo>
export type NodeListJson = z.infer<typeof NodeList>
export type CapacityJson = z.infer<typeof Capacity>
export type StateJson = z.infer<typeof State>
export type AlertJson = z.infer<typeof Alert>
export type AlertListJson = z.infer<typeof AlertList>
export type RentJson = z.infer<typeof Rent>
export type EvictAnswerJson = z.infer<typeof EvictAnswer>
export type UsageJson = z.infer<typeof UsageEntry>
export type UsageListJson = z.infer<typeof UsageList>
export type UsageReadingJson = z.infer<typeof UsageReading>
/** One event of the stream: its name and its data. */
export type ApiEvent = { [K in keyof typeof EVENTS]: { event: K, data: z.infer<(typeof EVENTS)[K]> } }[keyof typeof EVENTS]

// ------------------------------------------------------------------ routes

export type Method = 'GET' | 'POST' | 'DELETE'

/** The content types of the routes that do not answer JSON. */
export type Produces = 'text/plain; version=0.0.4' | 'text/event-stream' | 'text/html; charset=utf-8' | 'text/javascript; charset=utf-8' | 'text/css; charset=utf-8' | 'image/svg+xml'

export interface RouteSpec {
  method: Method
  /** OpenAPI-style path; `{id}` is a path parameter. */
  path: string
  summary: string
  /** Served without the bearer token. */
  public?: boolean
  params?: z.ZodType
  query?: z.ZodType
  body?: z.ZodType
  /** JSON answers by HTTP status. */
  responses?: Readonly<Record<number, z.ZodType>>
  /** A non-JSON answer: its content type, or the types it may have (the handler writes it). */
  produces?: Produces | readonly Produces[]
  /** Error codes this route answers with besides the ones every route may give (401, 403, 415, 413, 500). */
  errors?: readonly ErrorCode[]
}

/**
 * The route table. The server dispatches on it and derives its 404 and 405
 * answers (with `Allow`) from it; the OpenAPI document is generated from it.
 * Routes sharing a path are listed together, in the order `Allow` names them.
 */
export const ROUTES = {
  health: {
    method: 'GET', path: '/healthz', public: true,
    summary: 'Liveness for load balancers: 200 while the agent can write, 503 when read-only.',
    responses: { 200: Health, 503: Health }
  },
  metrics: {
    method: 'GET', path: '/metrics', produces: 'text/plain; version=0.0.4',
    summary: 'Prometheus text: peers, members, gossip and sync counters, verdicts, alerts, HTTP errors.'
  },
  openapi: {
    method: 'GET', path: '/v1/openapi.json',
    summary: 'This document: the API contract as OpenAPI 3.1.',
    responses: { 200: z.record(z.string(), z.unknown()) }
  },
  state: {
    method: 'GET', path: '/v1/state',
    summary: 'This agent: its view, open view changes, admission requests, clock offset, peers, floor.',
    responses: { 200: State }
  },
  nodes: {
    method: 'GET', path: '/v1/nodes',
    summary: 'Every node: memory figures, state, liveness, heartbeat age.',
    responses: { 200: NodeList }
  },
  capacity: {
    method: 'GET', path: '/v1/capacity',
    summary: 'Cluster totals over members, verdict counts, pending verdicts.',
    responses: { 200: Capacity }
  },
  alerts: {
    method: 'GET', path: '/v1/alerts',
    summary: 'Active alerts.',
    responses: { 200: AlertList }
  },
  events: {
    method: 'GET', path: '/v1/events', produces: 'text/event-stream',
    summary: 'Server-sent events: hello, verdict, alert, peer, joined, membership, liveness, oom, pressure.'
  },
  rent: {
    method: 'GET', path: '/v1/rent', query: RentQuery,
    summary: 'The bill: byte-seconds and cost per admitted reservation, from the ledger alone.',
    responses: { 200: Rent },
    errors: ['UnknownField', 'InvalidSince', 'InvalidPrice']
  },
  fit: {
    method: 'POST', path: '/v1/fit', body: FitRequest,
    summary: 'Dry run: would a deploy of this size fit now, where, and why not. Writes nothing.',
    responses: { 200: FitAnswer },
    errors: ['InvalidJson', 'UnknownField', 'InvalidSize', 'InvalidPlacement', 'UnknownNode']
  },
  evict: {
    method: 'POST', path: '/v1/evict', body: EvictRequest,
    summary: 'Propose evicting a member; 202 while other members acknowledge, 200 once it took effect.',
    responses: { 200: EvictAnswer, 202: EvictAnswer },
    errors: ['InvalidJson', 'UnknownField', 'InvalidNode', 'InvalidForce', 'BadRequest', 'NotFound', 'Unavailable']
  },
  listReservations: {
    method: 'GET', path: '/v1/reservations', query: ListQuery,
    summary: 'Reservations as this agent resolves them, oldest first.',
    responses: { 200: ReservationList },
    errors: ['UnknownField', 'InvalidStatus']
  },
  reserve: {
    method: 'POST', path: '/v1/reservations', body: ReserveRequest,
    summary: 'Reserve memory: 201 written (admitted, or rejected), 200 did not fit here and nothing was written.',
    responses: { 201: ReserveAnswer, 200: ReserveAnswer },
    errors: ['InvalidJson', 'UnknownField', 'InvalidId', 'InvalidSize', 'InvalidPlacement', 'UnknownNode', 'InvalidPriority', 'InvalidLabels', 'InvalidMin', 'InvalidQueue', 'InvalidQueueTimeout', 'IdExists', 'Unavailable', 'AckTimeout']
  },
  getReservation: {
    method: 'GET', path: '/v1/reservations/{id}', params: IdParams,
    summary: 'One verdict, as this agent resolves it.',
    responses: { 200: Verdict },
    errors: ['InvalidId', 'NotFound']
  },
  release: {
    method: 'DELETE', path: '/v1/reservations/{id}', params: IdParams,
    summary: 'Release a reservation (its memory is free for what comes after it in the log).',
    responses: { 200: Verdict },
    errors: ['InvalidId', 'NotFound', 'IdExists', 'Unavailable']
  },
  usage: {
    method: 'GET', path: '/v1/reservations/{id}/usage', params: IdParams,
    summary: 'What a reservation uses, per node where it was measured: read now here, else as that node\'s record last said.',
    responses: { 200: UsageList },
    errors: ['InvalidId']
  },
  watchUsage: {
    method: 'POST', path: '/v1/reservations/{id}/usage', params: IdParams, body: UsageRequest,
    summary: "Name the cgroup of a reservation running here (memgossip run does): the agent reads it now and at every sample (usage, peak, OOM kills).",
    responses: { 200: UsageReading },
    errors: ['InvalidId', 'InvalidJson', 'UnknownField', 'InvalidCgroup', 'BadRequest', 'NotFound']
  },
  // The browser page (docs/design.md "Interfaces"): its files hold no cluster data and are served
  // without the token, which a browser cannot add to a navigation; the page sends it on its API calls.
  ui: {
    method: 'GET', path: '/ui', public: true, produces: 'text/html; charset=utf-8',
    summary: 'The live view of the cluster in a browser; it reads this API with the token it asks for.',
    errors: ['NotFound']
  },
  uiFile: {
    method: 'GET', path: '/ui/{file}', public: true, params: UiFileParams,
    produces: ['text/javascript; charset=utf-8', 'text/css; charset=utf-8', 'text/html; charset=utf-8', 'image/svg+xml'],
    summary: 'A file of the page (its modules, style sheet and icon).',
    errors: ['NotFound']
  }
} as const satisfies Record<string, RouteSpec>

export type RouteName = keyof typeof ROUTES

/** Error codes any route may answer with. */
export const COMMON_ERRORS: readonly ErrorCode[] = ['Unauthorized', 'ForbiddenHost', 'ForbiddenOrigin', 'UnsupportedMediaType', 'BodyTooLarge', 'Internal']

/** The named schemas the OpenAPI document lists as components. */
export const SCHEMAS = {
  requests: { FitRequest, ReserveRequest, EvictRequest, UsageRequest },
  responses: {
    Error: ErrorBody, Verdict, FitAnswer, ReserveAnswer, ReservationList, Health, Node: NodeInfo, NodeList, Capacity, State, Alert, AlertList, Rent, EvictAnswer,
    HelloEvent: EVENTS.hello, VerdictEvent: EVENTS.verdict, AlertEvent: EVENTS.alert, PeerEvent: EVENTS.peer, JoinedEvent: EVENTS.joined, MembershipEvent: EVENTS.membership, LivenessEvent: EVENTS.liveness,
    Usage: UsageEntry, UsageList, UsageReading, OomEvent: EVENTS.oom, PressureEvent: EVENTS.pressure
  }
}
