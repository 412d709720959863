/**
 * Scenario files (docs/design.md "Simulation harness": scenarios are data files
 * so users write their own): the format, and its schema in zod, whose first
 * issue is reported with the JSON path and the line of the thing wrong. The format is
 * described for users in docs/simulations.md; in short:
 *
 * ```json
 * {
 *   "name": "yz-race",
 *   "nodes": 6,
 *   "memory": "16GiB",
 *   "agent": { "heartbeat": "1s", "sync": "1s", "compactAfter": 20 },
 *   "network": { "latency": ["2ms", "20ms"], "loss": 0.01, "duplicate": 0.01, "degree": 4 },
 *   "groups": { "left": { "fraction": [0, 0.5] }, "right": { "fraction": [0.5, 1] } },
 *   "timeline": [
 *     { "at": "1s", "do": "partition", "groups": ["left", "right"] },
 *     { "at": "2s", "do": "race", "pairs": 3, "sides": ["left", "right"] },
 *     { "at": "5s", "do": "heal" }
 *   ],
 *   "settle": "30s",
 *   "expect": { "finalAtEnd": true }
 * }
 * ```
 *
 * Sizes use the product's strict size syntax (`512MiB`, `2GiB`, `2Gi`, bytes);
 * durations are milliseconds as a number or a string with `ms`, `s` or `m`.
 */
import * as z from 'zod'
import type { AgentInit } from '../../agent/agent.ts'
import { GOSSIP_D, LAN } from '../../agent/config.ts'
import { ACCEPTED_SIZE_FORMS, parseSize } from '../../crdt/size.ts'
import { ScenarioError } from '../support/errors.ts'
import { childPath, positionOf, type JsonPath, type Position } from './json.ts'

// ------------------------------------------------------------------ the model

/**
 * Which nodes an action applies to. Resolved against the run's node count, so
 * one scenario file scales from 4 peers to 2,000 (see ./plan.ts).
 */
export type Selector =
  | { kind: 'all' }
  | { kind: 'initial' }
  | { kind: 'joined' }
  | { kind: 'group', name: string }
  | { kind: 'index', index: number }
  /** Indices [round(from·N), round(to·N)) of the N initial nodes. */
  | { kind: 'fraction', from: number, to: number }
  /** Indices [from, to), negative counts from the end of the initial nodes. */
  | { kind: 'range', from: number, to: number }
  /** `count` nodes (or that share of the selection) drawn from `of` with the run's seed. */
  | { kind: 'random', count?: number, share?: number, of: Selector }
  | { kind: 'union', of: Selector[] }

/** Placement as written in a scenario; `node:` names a node by selector (its first node) or `self` (the writer). */
export type PlacementSpec =
  | { kind: 'any' }
  | { kind: 'all' }
  | { kind: 'spread', count: number }
  | { kind: 'node', target: Selector | 'self' }

export interface AgentSettings {
  heartbeatMs: number
  syncMs: number
  /** How often the agent samples its (fake) memory probe. */
  probeMs: number
  gossipBatchMs?: number
  /** Failure detector: probe one connected member this often (agent default 1 s). */
  failureProbeMs?: number
  evictAfterMs?: number
  /** Batch delay of on-demand beacons (agent default 20 ms). */
  beaconDelayMs?: number
  /** Move to a new epoch once this many reservations ended (agent default 2000; docs/design.md "Compaction: epochs"). */
  compactAfter?: number
}

/** The agent's timer options for these settings (both tiers start agents with them). */
export function agentTimers (settings: AgentSettings): Pick<AgentInit, 'sampleIntervalMs' | 'heartbeatIntervalMs' | 'syncIntervalMs' | 'gossipBatchMs' | 'probeIntervalMs' | 'evictAfterMs' | 'beaconDelayMs' | 'compactAfterEnded'> {
  return {
    sampleIntervalMs: settings.probeMs,
    heartbeatIntervalMs: settings.heartbeatMs,
    syncIntervalMs: settings.syncMs,
    ...(settings.gossipBatchMs !== undefined ? { gossipBatchMs: settings.gossipBatchMs } : {}),
    ...(settings.failureProbeMs !== undefined ? { probeIntervalMs: settings.failureProbeMs } : {}),
    ...(settings.evictAfterMs !== undefined ? { evictAfterMs: settings.evictAfterMs } : {}),
    ...(settings.beaconDelayMs !== undefined ? { beaconDelayMs: settings.beaconDelayMs } : {}),
    ...(settings.compactAfter !== undefined ? { compactAfterEnded: settings.compactAfter } : {})
  }
}

export interface NetworkSettings {
  latencyMs: [number, number]
  loss: number
  duplicate: number
  /** Links per node to earlier nodes (virtual tier), bootstrap peers per node (real tier). */
  degree: number
  /**
   * Virtual tier: paths a gossip message takes to each peer, each lost with
   * `loss` on its own (the in-memory network's `meshPaths`). Defaults to the
   * agent's gossipsub mesh degree D = 3: over libp2p a peer hears each message
   * from every mesh neighbour (2.9 copies per message measured at 25 agents,
   * docs/benchmarks.md). 1 makes `loss` the loss per peer.
   */
  paths: number
  /** Virtual tier: merge gossip landing on one agent in the same millisecond (simulations/virtual/coalesce.ts). */
  coalesce: boolean
}

interface EventBase {
  atMs: number
  /** JSON path of the event in the file, for messages. */
  path: string
}

export type ScenarioEvent = EventBase & (
  | { do: 'reserve', from: Selector, id: string, sizeBytes: number, placement: PlacementSpec, priority: number, count: Count }
  | { do: 'race', sides: [Selector, Selector], target?: Selector, pairs: Count, id: string, shares: [number, number] }
  | { do: 'release', ids?: string[], prefix?: string, share: number }
  | { do: 'memory', nodes: Selector, totalBytes?: number, availableBytes?: number }
  | { do: 'partition', groups: Selector[], names: string[] }
  | { do: 'heal' }
  | { do: 'crash', nodes: Selector }
  | { do: 'restart', nodes: Selector }
  | { do: 'join', count?: number, share?: number, memoryBytes?: number, clockSkewMs?: number }
  | { do: 'evict', nodes: Selector, by?: Selector }
  | { do: 'drain', nodes: Selector }
  | { do: 'leave', nodes: Selector }
)

export type EventKind = ScenarioEvent['do']

/** A number of things, absolute or as a share of the initial node count (`"30%"`), so it scales with N. */
export type Count = { absolute: number } | { share: number }

/** The value of a count with `initial` nodes (a share gives at least 1). */
export function countOf (count: Count, initial: number): number {
  return 'absolute' in count ? count.absolute : Math.max(1, Math.round(count.share * initial))
}

export interface Scenario {
  name: string
  description: string
  /** Default node count (`--nodes` overrides). */
  nodes: number
  /** Smallest node count the scenario makes sense at. */
  minNodes: number
  /** Total memory per node, cycled over node indices. */
  memoryBytes: number[]
  /** Per-selection memory overrides, applied in order. */
  memoryBy: Array<{ nodes: Selector, totalBytes: number }>
  agent: AgentSettings
  /** Per-tier agent overrides. */
  tierAgent: { real: Partial<AgentSettings>, virtual: Partial<AgentSettings> }
  network: NetworkSettings
  /** Real tier: bootstrap peers per node (STACK.md: a few random earlier peers). */
  realDegree: number
  groups: Map<string, Selector>
  timeline: ScenarioEvent[]
  /** Longest wait for convergence after the last event. */
  settleMs: number
  /** How long agreement must hold before the run ends early. */
  holdMs: number
  /** Measurement period; undefined: the tier's default (virtual 20 ms, real 50 ms). */
  sampleMs?: number
  /** Warm-up limit: the cluster must form (everyone a member everywhere) within this. */
  formMs: number
  expect: { finalAtEnd: boolean }
  /** Where the scenario came from (a file path, or `<name>` for inline). */
  source: string
  /** Line of a JSON path in the source, for messages raised after validation (at plan time). */
  lineOf: (path: string) => number | undefined
}

/** The agent's own defaults (the `lan` preset, agent/config.ts). */
export const DEFAULT_AGENT: AgentSettings = { heartbeatMs: LAN.heartbeatIntervalMs, syncMs: LAN.syncIntervalMs, probeMs: LAN.sampleIntervalMs }
export const DEFAULT_NETWORK: NetworkSettings = { latencyMs: [1, 10], loss: 0, duplicate: 0, degree: 4, paths: GOSSIP_D, coalesce: true }
const DEFAULT_MEMORY = 16 * 1024 ** 3
const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/{}-]{0,100}$/
const MAX_NODES = 100_000
const MAX_COUNT = 1_000_000
const RESERVED_GROUPS = new Set(['all', 'initial', 'joined', 'self'])

// ------------------------------------------------------------------ validation

/**
 * Validate a parsed document (with the positions from `parseJsonWithPositions`)
 * into a `Scenario`: the zod schema below, whose first issue becomes a
 * ScenarioError naming the file, the line and the JSON path.
 */
export function validateScenario (doc: unknown, positions: Map<JsonPath, Position>, source: string): Scenario {
  const result = scenarioSchema(groupNamesOf(doc)).safeParse(doc)
  if (!result.success) throw refusal(result.error, doc, positions, source)
  return {
    ...result.data,
    source,
    lineOf: (path: string) => positionOf(positions, path)?.line
  }
}

/**
 * The first issue as a ScenarioError. An unknown field is told first (a
 * misspelled field is usually also a missing one); a value that is not there
 * at all is "missing required field" on the object that needs it.
 */
function refusal (error: z.ZodError, doc: unknown, positions: Map<JsonPath, Position>, source: string): ScenarioError {
  const issue = error.issues.find(i => i.code === 'unrecognized_keys') ?? error.issues[0]
  let at: PropertyKey[] = issue.path
  let message = issue.message
  if (issue.code === 'unrecognized_keys') {
    at = [...at, issue.keys[0]]
  } else if (at.length > 0 && valueAt(doc, at) === undefined) {
    message = `missing required field '${String(at.at(-1))}'`
    at = at.slice(0, -1)
  }
  const path = at.reduce<JsonPath>((parent, key) => childPath(parent, typeof key === 'number' ? key : String(key)), '')
  const line = positionOf(positions, path)?.line
  const where = `${source}${line !== undefined ? `:${line}` : ''}`
  return new ScenarioError(`${where}: ${path === '' ? 'the document' : path}: ${message}`, { path, line })
}

function valueAt (doc: unknown, path: PropertyKey[]): unknown {
  let value = doc
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return undefined
    value = (value as Record<PropertyKey, unknown>)[key]
  }
  return value
}

type Obj = Record<string, unknown>

/** A value that does not fit its field; `at` is where below the field (`[1]` for a list's second entry). */
class Invalid extends Error {
  constructor (message: string, readonly at: Array<string | number> = []) {
    super(message)
  }
}

/**
 * A field with a syntax of its own (a size, a duration, a selector): `parse`
 * reads it or throws Invalid, which becomes the field's issue. A field that is
 * not there is an issue too (`missing required field`); `.optional()` makes it
 * optional.
 */
function syntax<T> (parse: (value: unknown) => T): z.ZodType<T, unknown> {
  return z.unknown().transform((value, ctx) => {
    try {
      if (value === undefined) throw new Invalid('missing')
      return parse(value)
    } catch (error) {
      if (!(error instanceof Invalid)) throw error
      ctx.addIssue({ code: 'custom', message: error.message, path: error.at })
      return z.NEVER
    }
  })
}

const integerMessage = (min: number, max: number, value: unknown): string => `must be an integer from ${min} to ${max}, got ${describe(value)}`
const numberMessage = (min: number, max: number, value: unknown): string => `must be a number from ${min} to ${max}, got ${describe(value)}`

function integer (min: number, max: number): z.ZodNumber {
  const error = (iss: { input?: unknown }): string => integerMessage(min, max, iss.input)
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error })
}

function number (min: number, max: number): z.ZodNumber {
  const error = (iss: { input?: unknown }): string => numberMessage(min, max, iss.input)
  return z.number({ error }).min(min, { error }).max(max, { error })
}

const string = (): z.ZodString => z.string({ error: iss => `must be a string, got ${describe(iss.input)}` })
const boolean = (): z.ZodBoolean => z.boolean({ error: iss => `must be true or false, got ${describe(iss.input)}` })

/** An object with these fields and no other; an unknown one is named with the nearest allowed one. */
function fields<S extends z.core.$ZodLooseShape> (shape: S): z.ZodObject<S, z.core.$strict> {
  const allowed = Object.keys(shape)
  return z.strictObject(shape, {
    error: iss => iss.code === 'unrecognized_keys' ? unknownField(String(iss.keys[0]), allowed) : `must be an object, got ${describe(iss.input)}`
  })
}

function unknownField (key: string, allowed: readonly string[]): string {
  const hint = closest(key, allowed)
  return `unknown field '${key}'${hint !== undefined ? ` (did you mean '${hint}'?)` : ''}; allowed here: ${allowed.join(', ')}`
}

// -------------------------------------------------------------- values

function integerValue (value: unknown, min: number, max: number, at: Array<string | number>): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw new Invalid(integerMessage(min, max, value), at)
  return value
}

function shareValue (value: unknown, at: Array<string | number>): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) throw new Invalid(numberMessage(0, 1, value), at)
  return value
}

/** Milliseconds as a number, or a string like `500ms`, `2s`, `1.5m`; whole, at least `min`. */
function durationValue (value: unknown, min: number, at: Array<string | number> = []): number {
  let ms: number | undefined
  if (typeof value === 'number' && Number.isFinite(value)) ms = value
  else if (typeof value === 'string') {
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)$/.exec(value.trim())
    if (m !== null) ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000)
  }
  if (ms === undefined) throw new Invalid(`must be a duration: milliseconds as a number, or a string like '500ms', '2s', '1.5m'; got ${describe(value)}`, at)
  if (!Number.isInteger(ms) || ms < min) throw new Invalid(`must be a whole number of milliseconds, at least ${min} ms; got ${describe(value)}`, at)
  return ms
}

const duration = (min = 0): z.ZodType<number, unknown> => syntax(value => durationValue(value, min))

/** Bytes as a positive integer, or the product's size syntax (`512MiB`, `2Gi`). */
function sizeValue (value: unknown, at: Array<string | number> = []): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value
  if (typeof value !== 'string') throw new Invalid(`must be a size (${ACCEPTED_SIZE_FORMS}), got ${describe(value)}`, at)
  let bytes: number
  try {
    bytes = parseSize(value)
  } catch (error) {
    throw new Invalid((error as Error).message, at)
  }
  if (bytes <= 0) throw new Invalid('must be a positive size', at)
  return bytes
}

const size = (): z.ZodType<number, unknown> => syntax(value => sizeValue(value))

const count = (): z.ZodType<Count, unknown> => syntax((value): Count => {
  if (typeof value === 'string' && /^\d+(\.\d+)?%$/.test(value)) {
    const share = Number(value.slice(0, -1)) / 100
    if (!(share > 0 && share <= 100)) throw new Invalid(`a share of the nodes must be above 0%, got ${describe(value)}`)
    return { share }
  }
  if (typeof value === 'number') return { absolute: integerValue(value, 1, MAX_COUNT, []) }
  throw new Invalid(`must be a count (an integer) or a share of the initial nodes like '30%', got ${describe(value)}`)
})

// -------------------------------------------------------------- selectors

/** One selector (see `Selector`), naming the scenario's `groups`. */
function selectorValue (value: unknown, groups: Set<string>, at: Array<string | number> = []): Selector {
  if (Array.isArray(value)) {
    if (value.length === 0) throw new Invalid('an empty list selects no node', at)
    return { kind: 'union', of: value.map((v, i) => selectorValue(v, groups, [...at, i])) }
  }
  if (typeof value === 'string') {
    if (value === 'all') return { kind: 'all' }
    if (value === 'initial') return { kind: 'initial' }
    if (value === 'joined') return { kind: 'joined' }
    const index = /^#(-?\d+)$/.exec(value)
    if (index !== null) return { kind: 'index', index: Number(index[1]) }
    if (groups.has(value)) return { kind: 'group', name: value }
    const hint = closest(value, [...groups, 'all', 'initial', 'joined'])
    throw new Invalid(`unknown group '${value}'${hint !== undefined ? ` (did you mean '${hint}'?)` : ''}; a selector is a group name, 'all', 'initial', 'joined', '#i' (node index), or an object { fraction | range | index | random }`, at)
  }
  if (typeof value === 'object' && value !== null) {
    const o = value as Obj
    const only = (allowed: string[]): void => {
      const extra = Object.keys(o).find(k => !allowed.includes(k))
      if (extra !== undefined) throw new Invalid(unknownField(extra, allowed), [...at, extra])
    }
    if ('fraction' in o) {
      only(['fraction'])
      const f = o.fraction
      if (!Array.isArray(f) || f.length !== 2) throw new Invalid(`must be [from, to] with 0 <= from < to <= 1, got ${describe(f)}`, [...at, 'fraction'])
      const from = shareValue(f[0], [...at, 'fraction', 0])
      const to = shareValue(f[1], [...at, 'fraction', 1])
      if (!(from < to)) throw new Invalid(`from must be below to, got ${describe(f)}`, [...at, 'fraction'])
      return { kind: 'fraction', from, to }
    }
    if ('range' in o) {
      only(['range'])
      const r = o.range
      if (!Array.isArray(r) || r.length !== 2) throw new Invalid(`must be [from, to) node indices, got ${describe(r)}`, [...at, 'range'])
      return { kind: 'range', from: integerValue(r[0], -MAX_NODES, MAX_NODES, [...at, 'range', 0]), to: integerValue(r[1], -MAX_NODES, MAX_NODES, [...at, 'range', 1]) }
    }
    if ('index' in o) {
      only(['index'])
      return { kind: 'index', index: integerValue(o.index, -MAX_NODES, MAX_NODES, [...at, 'index']) }
    }
    if ('random' in o) {
      only(['random', 'of'])
      const of = o.of === undefined ? { kind: 'initial' as const } : selectorValue(o.of, groups, [...at, 'of'])
      const r = o.random
      if (typeof r === 'number' && Number.isInteger(r)) return { kind: 'random', count: integerValue(r, 1, MAX_NODES, [...at, 'random']), of }
      if (typeof r === 'string' && /^\d+(\.\d+)?%$/.test(r)) {
        const share = Number(r.slice(0, -1)) / 100
        if (!(share > 0 && share <= 1)) throw new Invalid(`a share must be above 0% and at most 100%, got ${describe(r)}`, [...at, 'random'])
        return { kind: 'random', share, of }
      }
      throw new Invalid(`must be a node count (integer) or a share like '20%', got ${describe(r)}`, [...at, 'random'])
    }
    throw new Invalid(`a selector object needs one of 'fraction', 'range', 'index' or 'random', got ${describe(value)}`, at)
  }
  throw new Invalid(`must be a selector (a group name, 'all', '#i', a list, or { fraction | range | index | random }), got ${describe(value)}`, at)
}

function placementValue (value: unknown, groups: Set<string>): PlacementSpec {
  if (typeof value !== 'string') throw new Invalid(`must be a string, got ${describe(value)}`)
  if (value === 'any') return { kind: 'any' }
  if (value === 'all') return { kind: 'all' }
  const spread = /^spread:(\d+)$/.exec(value)
  if (spread !== null) {
    const count = Number(spread[1])
    if (count < 1 || count > 1024) throw new Invalid(`spread count must be from 1 to 1024, got ${count}`)
    return { kind: 'spread', count }
  }
  if (value.startsWith('node:')) {
    const ref = value.slice(5)
    if (ref === 'self') return { kind: 'node', target: 'self' }
    return { kind: 'node', target: selectorValue(ref, groups) }
  }
  throw new Invalid(`placement must be 'any', 'all', 'spread:K', 'node:self', 'node:#i' or 'node:<group>' (its first node), got ${describe(value)}`)
}

/** Group names must be known before any selector is read; the schema is made for them. */
function groupNamesOf (doc: unknown): Set<string> {
  const groups = (typeof doc === 'object' && doc !== null) ? (doc as Obj).groups : undefined
  return new Set(typeof groups === 'object' && groups !== null && !Array.isArray(groups) ? Object.keys(groups) : [])
}

function checkGroupCycles (groups: Map<string, Selector>): void {
  const visiting = new Set<string>()
  const done = new Set<string>()
  const visit = (name: string, trail: string[]): void => {
    if (done.has(name)) return
    if (visiting.has(name)) throw new Invalid(`groups refer to each other in a cycle: ${[...trail, name].join(' → ')}`, [trail[0]])
    visiting.add(name)
    const walk = (s: Selector): void => {
      if (s.kind === 'group') visit(s.name, [...trail, name])
      else if (s.kind === 'union') s.of.forEach(walk)
      else if (s.kind === 'random') walk(s.of)
    }
    walk(groups.get(name)!)
    visiting.delete(name)
    done.add(name)
  }
  for (const name of groups.keys()) visit(name, [])
}

// -------------------------------------------------------------- the schema

/** Agent timers as written (`heartbeat`, `sync`, …), to the settings they override. */
const agentSettingsSchema = fields({
  heartbeat: duration(0).optional(),
  sync: duration(10).optional(),
  probe: duration(10).optional(),
  gossipBatch: duration(1).optional(),
  failureProbe: duration(10).optional(),
  evictAfter: duration(1).optional(),
  beaconDelay: duration(1).optional(),
  compactAfter: integer(0, 1_000_000).optional()
}).transform((o): Partial<AgentSettings> => {
  const out: Partial<AgentSettings> = {}
  if (o.heartbeat !== undefined) out.heartbeatMs = o.heartbeat
  if (o.sync !== undefined) out.syncMs = o.sync
  if (o.probe !== undefined) out.probeMs = o.probe
  if (o.gossipBatch !== undefined) out.gossipBatchMs = o.gossipBatch
  if (o.failureProbe !== undefined) out.failureProbeMs = o.failureProbe
  if (o.evictAfter !== undefined) out.evictAfterMs = o.evictAfter
  if (o.beaconDelay !== undefined) out.beaconDelayMs = o.beaconDelay
  if (o.compactAfter !== undefined) out.compactAfter = o.compactAfter
  return out
})

const latency = syntax((value): [number, number] => {
  if (!Array.isArray(value)) {
    const ms = durationValue(value, 0)
    return [ms, ms]
  }
  if (value.length !== 2) throw new Invalid(`must be [min, max], got ${describe(value)}`)
  const range: [number, number] = [durationValue(value[0], 0, [0]), durationValue(value[1], 0, [1])]
  if (range[1] < range[0]) throw new Invalid(`max must not be below min, got ${describe(value)}`)
  return range
})

const networkSchema = fields({
  latency: latency.optional(),
  loss: number(0, 0.99).optional(),
  duplicate: number(0, 1).optional(),
  degree: integer(1, 64).optional(),
  paths: integer(1, 16).optional(),
  coalesce: boolean().optional()
}).transform((o): NetworkSettings => ({
  latencyMs: o.latency ?? DEFAULT_NETWORK.latencyMs,
  loss: o.loss ?? DEFAULT_NETWORK.loss,
  duplicate: o.duplicate ?? DEFAULT_NETWORK.duplicate,
  degree: o.degree ?? DEFAULT_NETWORK.degree,
  paths: o.paths ?? DEFAULT_NETWORK.paths,
  coalesce: o.coalesce ?? DEFAULT_NETWORK.coalesce
}))

type EventOf<K extends EventKind> = Omit<Extract<ScenarioEvent, { do: K }>, 'path'>

/** One event kind: its fields (after `at`, `do` and `note`) and how they make the event. */
function event<K extends EventKind, S extends z.core.$ZodLooseShape> (kind: K, shape: S, make: (o: z.output<z.ZodObject<S>> & { atMs: number }, ctx: z.RefinementCtx) => EventOf<K>): z.ZodType<EventOf<K>, unknown> {
  return fields({ at: duration(0), do: z.literal(kind), note: z.unknown().optional(), ...shape }).transform((o, ctx) => {
    try {
      return make({ ...(o as z.output<z.ZodObject<S>>), atMs: (o as { at: number }).at }, ctx)
    } catch (error) {
      if (!(error instanceof Invalid)) throw error
      ctx.addIssue({ code: 'custom', message: error.message, path: error.at })
      return z.NEVER
    }
  }) as unknown as z.ZodType<EventOf<K>, unknown>
}

function eventSchema (groups: Set<string>): z.ZodType<Omit<ScenarioEvent, 'path'>, unknown> {
  const selector = syntax(value => selectorValue(value, groups))
  const deploymentId = (message: string): z.ZodString => string().regex(ID_PATTERN, { error: iss => `${message}, got ${describe(iss.input)}` })
  const options = [
    event('reserve', {
      from: selector,
      id: deploymentId("must be a deployment id (letters, digits, '._:/-'; '{i}' numbers a burst)"),
      size: size(),
      placement: syntax(value => placementValue(value, groups)).optional(),
      priority: integer(-1_000_000, 1_000_000).optional(),
      count: count().optional()
    }, o => ({ atMs: o.atMs, do: 'reserve', from: o.from, id: o.id, sizeBytes: o.size, placement: o.placement ?? { kind: 'any' as const }, priority: o.priority ?? 0, count: o.count ?? { absolute: 1 } })),
    event('race', {
      sides: syntax((value): [Selector, Selector] => {
        if (!Array.isArray(value) || value.length !== 2) throw new Invalid(`must be two selectors [y side, z side], got ${describe(value)}`)
        return [selectorValue(value[0], groups, [0]), selectorValue(value[1], groups, [1])]
      }),
      target: selector.optional(),
      pairs: count().optional(),
      id: deploymentId('must be a deployment id prefix').optional(),
      shares: syntax((value): [number, number] => {
        if (!Array.isArray(value) || value.length !== 2) throw new Invalid(`must be [y, z] shares of the target's headroom, got ${describe(value)}`)
        const shares: [number, number] = [0, 1].map(i => {
          const v: unknown = value[i]
          if (typeof v !== 'number' || !Number.isFinite(v) || v < 0.01 || v > 1) throw new Invalid(numberMessage(0.01, 1, v), [i])
          return v
        }) as [number, number]
        if (shares[0] + shares[1] <= 1) throw new Invalid(`y + z must exceed the headroom (shares summing above 1), or there is no conflict; got ${describe(value)}`)
        return shares
      }).optional()
    }, o => ({ atMs: o.atMs, do: 'race', sides: o.sides, target: o.target, pairs: o.pairs ?? { absolute: 1 }, id: o.id ?? 'race', shares: o.shares ?? [0.6, 0.5] as [number, number] })),
    event('release', {
      ids: syntax((value): string[] => {
        if (!Array.isArray(value) || value.length === 0) throw new Invalid(`must be a non-empty list of deployment ids, got ${describe(value)}`)
        return value.map((x: unknown, i) => {
          if (typeof x !== 'string') throw new Invalid(`must be a string, got ${describe(x)}`, [i])
          return x
        })
      }).optional(),
      prefix: string().optional(),
      share: number(0, 1).optional()
    }, o => {
      if (o.ids === undefined && o.prefix === undefined) throw new Invalid("a release needs 'ids' or 'prefix'")
      return { atMs: o.atMs, do: 'release', ids: o.ids, prefix: o.prefix, share: o.share ?? 1 }
    }),
    event('memory', { nodes: selector, total: size().optional(), available: size().optional() }, o => {
      if (o.total === undefined && o.available === undefined) throw new Invalid("a memory change needs 'total' and/or 'available'")
      return { atMs: o.atMs, do: 'memory', nodes: o.nodes, totalBytes: o.total, availableBytes: o.available }
    }),
    event('partition', {
      groups: syntax((value): { groups: Selector[], names: string[] } => {
        if (!Array.isArray(value) || value.length < 1) throw new Invalid(`must list the sides, e.g. ["left", "right"] (unlisted nodes form one more side); got ${describe(value)}`)
        return { groups: value.map((x: unknown, i) => selectorValue(x, groups, [i])), names: value.map((x: unknown, i) => typeof x === 'string' ? x : `side-${i}`) }
      })
    }, o => ({ atMs: o.atMs, do: 'partition', groups: o.groups.groups, names: o.groups.names })),
    event('heal', {}, o => ({ atMs: o.atMs, do: 'heal' })),
    event('crash', { nodes: selector }, o => ({ atMs: o.atMs, do: 'crash', nodes: o.nodes })),
    event('restart', { nodes: selector }, o => ({ atMs: o.atMs, do: 'restart', nodes: o.nodes })),
    event('join', {
      count: syntax((value): { count: number } | { share: number } => {
        if (typeof value === 'string' && /^\d+(\.\d+)?%$/.test(value)) {
          const share = Number(value.slice(0, -1)) / 100
          if (!(share > 0 && share <= 10)) throw new Invalid(`must be above 0% and at most 1000% of the initial nodes, got ${describe(value)}`)
          return { share }
        }
        return { count: integerValue(value, 1, MAX_NODES, []) }
      }),
      memory: size().optional(),
      // The joiners' wall clocks run this far off ("-5m" behind, "+2m" ahead).
      clock: syntax((value): number => {
        if (typeof value !== 'string') throw new Invalid(`must be a string, got ${describe(value)}`)
        const m = /^([+-])(.+)$/.exec(value)
        if (m === null) throw new Invalid(`must be a signed duration such as "-5m" or "+30s", got ${describe(value)}`)
        return (m[1] === '-' ? -1 : 1) * durationValue(m[2], 0)
      }).optional()
    }, o => ({ atMs: o.atMs, do: 'join', ...o.count, memoryBytes: o.memory, clockSkewMs: o.clock })),
    event('evict', { nodes: selector, by: selector.optional() }, o => ({ atMs: o.atMs, do: 'evict', nodes: o.nodes, by: o.by })),
    event('drain', { nodes: selector }, o => ({ atMs: o.atMs, do: 'drain', nodes: o.nodes })),
    event('leave', { nodes: selector }, o => ({ atMs: o.atMs, do: 'leave', nodes: o.nodes }))
  ]
  const kinds = options.map(o => (o as unknown as { in: z.ZodObject }).in.shape.do.value as string)
  return z.discriminatedUnion('do', options as unknown as [z.ZodObject, ...z.ZodObject[]], {
    error: iss => {
      if (iss.code !== 'invalid_union') return `an event must be an object like { "at": "2s", "do": "heal" }, got ${describe(iss.input)}`
      const kind = (iss.input as Obj | undefined)?.do
      if (typeof kind !== 'string') return `must be a string, got ${describe(kind)}`
      const hint = closest(kind, kinds)
      return `unknown action '${kind}'${hint !== undefined ? ` (did you mean '${hint}'?)` : ''}; actions: ${kinds.join(', ')}`
    }
  }) as unknown as z.ZodType<Omit<ScenarioEvent, 'path'>, unknown>
}

/** The scenario file, for a document whose `groups` are named `groups`. */
function scenarioSchema (groups: Set<string>): z.ZodType<Omit<Scenario, 'source' | 'lineOf'>, unknown> {
  const selector = syntax(value => selectorValue(value, groups))
  return fields({
    $schema: z.unknown().optional(),
    name: string().regex(NAME_PATTERN, { error: iss => `must be lowercase letters, digits, '.', '_' or '-' (1-64), got ${describe(iss.input)}` }),
    description: string().optional(),
    nodes: integer(1, MAX_NODES).optional(),
    minNodes: integer(1, MAX_NODES).optional(),
    memory: syntax((value): number[] => {
      if (!Array.isArray(value)) return [sizeValue(value)]
      if (value.length === 0) throw new Invalid('must list at least one size')
      return value.map((m: unknown, i) => sizeValue(m, [i]))
    }).optional(),
    memoryBy: z.array(fields({ nodes: selector, total: size() }), { error: iss => `must be a list of { nodes, total }, got ${describe(iss.input)}` }).optional(),
    agent: agentSettingsSchema.optional(),
    network: networkSchema.optional(),
    real: fields({ agent: agentSettingsSchema.optional(), degree: integer(1, 64).optional() }).optional(),
    virtual: fields({ agent: agentSettingsSchema.optional() }).optional(),
    groups: syntax((value): Map<string, Selector> => {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Invalid(`must be an object, got ${describe(value)}`)
      // Names first, so groups may refer to each other in any order.
      for (const key of Object.keys(value)) {
        if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(key)) throw new Invalid(`group names are letters, digits, '_' and '-', starting with a letter; got ${describe(key)}`, [key])
        if (RESERVED_GROUPS.has(key)) throw new Invalid(`'${key}' is a built-in selector and cannot be redefined`, [key])
      }
      const out = new Map(Object.entries(value as Obj).map(([key, v]) => [key, selectorValue(v, groups, [key])]))
      checkGroupCycles(out)
      return out
    }).optional(),
    timeline: z.array(eventSchema(groups), { error: iss => `must be a list of events, got ${describe(iss.input)}` }),
    settle: duration(1).optional(),
    hold: duration(0).optional(),
    sample: duration(1).optional(),
    form: duration(1).optional(),
    // `membershipChanges` is still accepted and means nothing: since
    // membership became views, a final verdict never changes, joins and
    // evictions included (docs/design.md "Finality").
    expect: fields({ membershipChanges: boolean().optional(), finalAtEnd: boolean().optional() }).optional()
  }).transform(top => ({
    name: top.name,
    description: top.description ?? '',
    nodes: top.nodes ?? 6,
    minNodes: top.minNodes ?? 1,
    memoryBytes: top.memory ?? [DEFAULT_MEMORY],
    memoryBy: (top.memoryBy ?? []).map(m => ({ nodes: m.nodes, totalBytes: m.total })),
    agent: { ...DEFAULT_AGENT, ...top.agent },
    tierAgent: { real: top.real?.agent ?? {}, virtual: top.virtual?.agent ?? {} },
    network: top.network ?? { ...DEFAULT_NETWORK },
    realDegree: top.real?.degree ?? 3,
    groups: top.groups ?? new Map(),
    // Stable: events at the same time keep their order in the file.
    timeline: top.timeline.map((e, i) => ({ ...e, path: `timeline[${i}]` }) as ScenarioEvent).sort((a, b) => a.atMs - b.atMs),
    settleMs: top.settle ?? 30_000,
    holdMs: top.hold ?? 2000,
    sampleMs: top.sample,
    formMs: top.form ?? 120_000,
    expect: { finalAtEnd: top.expect?.finalAtEnd ?? false }
  }))
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

/** The allowed word nearest to a typo (edit distance ≤ 2), for "did you mean". */
function closest (word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = 3
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase())
    if (d < bestDistance) { best = c; bestDistance = d }
  }
  return best
}

function editDistance (a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]
}
