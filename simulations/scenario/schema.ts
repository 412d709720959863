/**
 * Scenario files (docs/design.md "Simulation harness": scenarios are data files
 * so users write their own): the format, and a hand-written validator that
 * names the JSON path and the line of the first thing wrong. The format is
 * described for users in docs/simulations.md; in short:
 *
 * ```json
 * {
 *   "name": "yz-race",
 *   "nodes": 6,
 *   "memory": "16GiB",
 *   "agent": { "heartbeat": "1s", "sync": "1s" },
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
import type { AgentInit } from '../../agent/agent.ts'
import { GOSSIP_D, LAN } from '../../agent/config.ts'
import { ACCEPTED_SIZE_FORMS, parseSize } from '../../crdt/size.ts'
import { ScenarioError } from '../errors.ts'
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
}

/** The agent's timer options for these settings (both tiers start agents with them). */
export function agentTimers (settings: AgentSettings): Pick<AgentInit, 'sampleIntervalMs' | 'heartbeatIntervalMs' | 'syncIntervalMs' | 'gossipBatchMs' | 'probeIntervalMs' | 'evictAfterMs' | 'beaconDelayMs'> {
  return {
    sampleIntervalMs: settings.probeMs,
    heartbeatIntervalMs: settings.heartbeatMs,
    syncIntervalMs: settings.syncMs,
    ...(settings.gossipBatchMs !== undefined ? { gossipBatchMs: settings.gossipBatchMs } : {}),
    ...(settings.failureProbeMs !== undefined ? { probeIntervalMs: settings.failureProbeMs } : {}),
    ...(settings.evictAfterMs !== undefined ? { evictAfterMs: settings.evictAfterMs } : {}),
    ...(settings.beaconDelayMs !== undefined ? { beaconDelayMs: settings.beaconDelayMs } : {})
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

/** Validate a parsed document (with the positions from `parseJsonWithPositions`) into a `Scenario`. */
export function validateScenario (doc: unknown, positions: Map<JsonPath, Position>, source: string): Scenario {
  const v = new Validator(positions, source)
  return v.scenario(doc)
}

type Obj = Record<string, unknown>

class Validator {
  constructor (private readonly positions: Map<JsonPath, Position>, private readonly source: string) {}

  fail (path: string, message: string): never {
    const line = positionOf(this.positions, path)?.line
    const where = `${this.source}${line !== undefined ? `:${line}` : ''}`
    throw new ScenarioError(`${where}: ${path === '' ? 'the document' : path}: ${message}`, { path, line })
  }

  object (value: unknown, path: string, allowed: readonly string[]): Obj {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(path, `must be an object, got ${describe(value)}`)
    const obj = value as Obj
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) {
        const hint = closest(key, allowed)
        this.fail(childPath(path, key), `unknown field '${key}'${hint !== undefined ? ` (did you mean '${hint}'?)` : ''}; allowed here: ${allowed.join(', ')}`)
      }
    }
    return obj
  }

  required (obj: Obj, key: string, path: string): unknown {
    if (!(key in obj)) this.fail(path, `missing required field '${key}'`)
    return obj[key]
  }

  string (value: unknown, path: string): string {
    if (typeof value !== 'string') this.fail(path, `must be a string, got ${describe(value)}`)
    return value as string
  }

  boolean (value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') this.fail(path, `must be true or false, got ${describe(value)}`)
    return value as boolean
  }

  integer (value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      this.fail(path, `must be an integer from ${min} to ${max}, got ${describe(value)}`)
    }
    return value as number
  }

  number (value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.fail(path, `must be a number from ${min} to ${max}, got ${describe(value)}`)
    }
    return value as number
  }

  duration (value: unknown, path: string, min = 0): number {
    let ms: number | undefined
    if (typeof value === 'number' && Number.isFinite(value)) ms = value
    else if (typeof value === 'string') {
      const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)$/.exec(value.trim())
      if (m !== null) ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000)
    }
    if (ms === undefined) this.fail(path, `must be a duration: milliseconds as a number, or a string like '500ms', '2s', '1.5m'; got ${describe(value)}`)
    if (!Number.isInteger(ms) || ms! < min) this.fail(path, `must be a whole number of milliseconds, at least ${min} ms; got ${describe(value)}`)
    return ms!
  }

  size (value: unknown, path: string): number {
    if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value
    if (typeof value !== 'string') this.fail(path, `must be a size (${ACCEPTED_SIZE_FORMS}), got ${describe(value)}`)
    try {
      const bytes = parseSize(value as string)
      if (bytes <= 0) this.fail(path, 'must be a positive size')
      return bytes
    } catch (error) {
      if (error instanceof ScenarioError) throw error
      return this.fail(path, (error as Error).message)
    }
  }

  count (value: unknown, path: string): Count {
    if (typeof value === 'string' && /^\d+(\.\d+)?%$/.test(value)) {
      const share = Number(value.slice(0, -1)) / 100
      if (!(share > 0 && share <= 100)) this.fail(path, `a share of the nodes must be above 0%, got ${describe(value)}`)
      return { share }
    }
    if (typeof value === 'number') return { absolute: this.integer(value, path, 1, MAX_COUNT) }
    return this.fail(path, `must be a count (an integer) or a share of the initial nodes like '30%', got ${describe(value)}`)
  }

  share (value: unknown, path: string): number {
    return this.number(value, path, 0, 1)
  }

  // -------------------------------------------------------------- document

  scenario (doc: unknown): Scenario {
    const top = this.object(doc, '', ['$schema', 'name', 'description', 'nodes', 'minNodes', 'memory', 'memoryBy', 'agent', 'network', 'real', 'virtual', 'groups', 'timeline', 'settle', 'hold', 'sample', 'form', 'expect'])
    const name = this.string(this.required(top, 'name', ''), 'name')
    if (!NAME_PATTERN.test(name)) this.fail('name', `must be lowercase letters, digits, '.', '_' or '-' (1-64), got ${describe(name)}`)
    const description = top.description === undefined ? '' : this.string(top.description, 'description')
    const nodes = top.nodes === undefined ? 6 : this.integer(top.nodes, 'nodes', 1, MAX_NODES)
    const minNodes = top.minNodes === undefined ? 1 : this.integer(top.minNodes, 'minNodes', 1, MAX_NODES)

    let memoryBytes = [DEFAULT_MEMORY]
    if (top.memory !== undefined) {
      if (Array.isArray(top.memory)) {
        if (top.memory.length === 0) this.fail('memory', 'must list at least one size')
        memoryBytes = top.memory.map((m, i) => this.size(m, `memory[${i}]`))
      } else memoryBytes = [this.size(top.memory, 'memory')]
    }

    const groups = new Map<string, Selector>()
    if (top.groups !== undefined) {
      const g = this.object(top.groups, 'groups', Object.keys(top.groups as Obj ?? {}))
      // Names first, so groups may refer to each other in any order.
      for (const key of Object.keys(g)) {
        if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(key)) this.fail(childPath('groups', key), `group names are letters, digits, '_' and '-', starting with a letter; got ${describe(key)}`)
        if (RESERVED_GROUPS.has(key)) this.fail(childPath('groups', key), `'${key}' is a built-in selector and cannot be redefined`)
      }
      const names = new Set(Object.keys(g))
      for (const [key, value] of Object.entries(g)) groups.set(key, this.selector(value, childPath('groups', key), names))
      this.checkGroupCycles(groups)
    }
    const names = new Set(groups.keys())

    const memoryBy: Scenario['memoryBy'] = []
    if (top.memoryBy !== undefined) {
      if (!Array.isArray(top.memoryBy)) this.fail('memoryBy', `must be a list of { nodes, total }, got ${describe(top.memoryBy)}`)
      ;(top.memoryBy as unknown[]).forEach((entry, i) => {
        const path = `memoryBy[${i}]`
        const o = this.object(entry, path, ['nodes', 'total'])
        memoryBy.push({ nodes: this.selector(this.required(o, 'nodes', path), `${path}.nodes`, names), totalBytes: this.size(this.required(o, 'total', path), `${path}.total`) })
      })
    }

    const agent: AgentSettings = { ...DEFAULT_AGENT, ...(top.agent === undefined ? {} : this.agentSettings(top.agent, 'agent')) }
    const network = top.network === undefined ? { ...DEFAULT_NETWORK } : this.networkSettings(top.network, 'network')
    let realDegree = 3
    const tierAgent: Scenario['tierAgent'] = { real: {}, virtual: {} }
    if (top.real !== undefined) {
      const r = this.object(top.real, 'real', ['agent', 'degree'])
      if (r.agent !== undefined) tierAgent.real = this.agentSettings(r.agent, 'real.agent')
      if (r.degree !== undefined) realDegree = this.integer(r.degree, 'real.degree', 1, 64)
    }
    if (top.virtual !== undefined) {
      const r = this.object(top.virtual, 'virtual', ['agent'])
      if (r.agent !== undefined) tierAgent.virtual = this.agentSettings(r.agent, 'virtual.agent')
    }

    const timelineRaw = this.required(top, 'timeline', '')
    if (!Array.isArray(timelineRaw)) this.fail('timeline', `must be a list of events, got ${describe(timelineRaw)}`)
    const timeline = (timelineRaw as unknown[]).map((e, i) => this.event(e, `timeline[${i}]`, names))
    // Stable: events at the same time keep their order in the file.
    timeline.sort((a, b) => a.atMs - b.atMs)

    const settleMs = top.settle === undefined ? 30_000 : this.duration(top.settle, 'settle', 1)
    const holdMs = top.hold === undefined ? 2000 : this.duration(top.hold, 'hold', 0)
    const sampleMs = top.sample === undefined ? undefined : this.duration(top.sample, 'sample', 1)
    const formMs = top.form === undefined ? 120_000 : this.duration(top.form, 'form', 1)
    let expect = { finalAtEnd: false }
    if (top.expect !== undefined) {
      // `membershipChanges` is still accepted and means nothing: since
      // membership became views, a final verdict never changes, joins and
      // evictions included (docs/design.md "Finality").
      const e = this.object(top.expect, 'expect', ['membershipChanges', 'finalAtEnd'])
      if (e.membershipChanges !== undefined) this.boolean(e.membershipChanges, 'expect.membershipChanges')
      expect = { finalAtEnd: e.finalAtEnd === undefined ? false : this.boolean(e.finalAtEnd, 'expect.finalAtEnd') }
    }

    const positions = this.positions
    return {
      name,
      description,
      nodes,
      minNodes,
      memoryBytes,
      memoryBy,
      agent,
      tierAgent,
      network,
      realDegree,
      groups,
      timeline,
      settleMs,
      holdMs,
      sampleMs,
      formMs,
      expect,
      source: this.source,
      lineOf: (path: string) => positionOf(positions, path)?.line
    }
  }

  agentSettings (value: unknown, path: string): Partial<AgentSettings> {
    const o = this.object(value, path, ['heartbeat', 'sync', 'probe', 'gossipBatch', 'failureProbe', 'evictAfter', 'beaconDelay'])
    const out: Partial<AgentSettings> = {}
    if (o.heartbeat !== undefined) out.heartbeatMs = this.duration(o.heartbeat, `${path}.heartbeat`, 0)
    if (o.sync !== undefined) out.syncMs = this.duration(o.sync, `${path}.sync`, 10)
    if (o.probe !== undefined) out.probeMs = this.duration(o.probe, `${path}.probe`, 10)
    if (o.gossipBatch !== undefined) out.gossipBatchMs = this.duration(o.gossipBatch, `${path}.gossipBatch`, 1)
    if (o.failureProbe !== undefined) out.failureProbeMs = this.duration(o.failureProbe, `${path}.failureProbe`, 10)
    if (o.evictAfter !== undefined) out.evictAfterMs = this.duration(o.evictAfter, `${path}.evictAfter`, 1)
    if (o.beaconDelay !== undefined) out.beaconDelayMs = this.duration(o.beaconDelay, `${path}.beaconDelay`, 1)
    return out
  }

  networkSettings (value: unknown, path: string): NetworkSettings {
    const o = this.object(value, path, ['latency', 'loss', 'duplicate', 'degree', 'paths', 'coalesce'])
    const out = { ...DEFAULT_NETWORK }
    if (o.latency !== undefined) {
      const lp = `${path}.latency`
      if (Array.isArray(o.latency)) {
        if (o.latency.length !== 2) this.fail(lp, `must be [min, max], got ${describe(o.latency)}`)
        out.latencyMs = [this.duration(o.latency[0], `${lp}[0]`), this.duration(o.latency[1], `${lp}[1]`)]
        if (out.latencyMs[1] < out.latencyMs[0]) this.fail(lp, `max must not be below min, got ${describe(o.latency)}`)
      } else {
        const ms = this.duration(o.latency, lp)
        out.latencyMs = [ms, ms]
      }
    }
    if (o.loss !== undefined) out.loss = this.number(o.loss, `${path}.loss`, 0, 0.99)
    if (o.duplicate !== undefined) out.duplicate = this.share(o.duplicate, `${path}.duplicate`)
    if (o.degree !== undefined) out.degree = this.integer(o.degree, `${path}.degree`, 1, 64)
    if (o.paths !== undefined) out.paths = this.integer(o.paths, `${path}.paths`, 1, 16)
    if (o.coalesce !== undefined) out.coalesce = this.boolean(o.coalesce, `${path}.coalesce`)
    return out
  }

  // -------------------------------------------------------------- selectors

  selector (value: unknown, path: string, groups: Set<string>): Selector {
    if (Array.isArray(value)) {
      if (value.length === 0) this.fail(path, 'an empty list selects no node')
      return { kind: 'union', of: value.map((v, i) => this.selector(v, `${path}[${i}]`, groups)) }
    }
    if (typeof value === 'string') {
      if (value === 'all') return { kind: 'all' }
      if (value === 'initial') return { kind: 'initial' }
      if (value === 'joined') return { kind: 'joined' }
      const index = /^#(-?\d+)$/.exec(value)
      if (index !== null) return { kind: 'index', index: Number(index[1]) }
      if (groups.has(value)) return { kind: 'group', name: value }
      const hint = closest(value, [...groups, 'all', 'initial', 'joined'])
      return this.fail(path, `unknown group '${value}'${hint !== undefined ? ` (did you mean '${hint}'?)` : ''}; a selector is a group name, 'all', 'initial', 'joined', '#i' (node index), or an object { fraction | range | index | random }`)
    }
    if (typeof value === 'object' && value !== null) {
      const o = value as Obj
      const keys = Object.keys(o)
      if (keys.includes('fraction')) {
        this.object(o, path, ['fraction'])
        const f = o.fraction
        if (!Array.isArray(f) || f.length !== 2) this.fail(`${path}.fraction`, `must be [from, to] with 0 <= from < to <= 1, got ${describe(f)}`)
        const from = this.share((f as unknown[])[0], `${path}.fraction[0]`)
        const to = this.share((f as unknown[])[1], `${path}.fraction[1]`)
        if (!(from < to)) this.fail(`${path}.fraction`, `from must be below to, got ${describe(f)}`)
        return { kind: 'fraction', from, to }
      }
      if (keys.includes('range')) {
        this.object(o, path, ['range'])
        const r = o.range
        if (!Array.isArray(r) || r.length !== 2) this.fail(`${path}.range`, `must be [from, to) node indices, got ${describe(r)}`)
        const from = this.integer((r as unknown[])[0], `${path}.range[0]`, -MAX_NODES, MAX_NODES)
        const to = this.integer((r as unknown[])[1], `${path}.range[1]`, -MAX_NODES, MAX_NODES)
        return { kind: 'range', from, to }
      }
      if (keys.includes('index')) {
        this.object(o, path, ['index'])
        return { kind: 'index', index: this.integer(o.index, `${path}.index`, -MAX_NODES, MAX_NODES) }
      }
      if (keys.includes('random')) {
        this.object(o, path, ['random', 'of'])
        const of = o.of === undefined ? { kind: 'initial' as const } : this.selector(o.of, `${path}.of`, groups)
        const r = o.random
        if (typeof r === 'number' && Number.isInteger(r)) return { kind: 'random', count: this.integer(r, `${path}.random`, 1, MAX_NODES), of }
        if (typeof r === 'string' && /^\d+(\.\d+)?%$/.test(r)) {
          const share = Number(r.slice(0, -1)) / 100
          if (!(share > 0 && share <= 1)) this.fail(`${path}.random`, `a share must be above 0% and at most 100%, got ${describe(r)}`)
          return { kind: 'random', share, of }
        }
        return this.fail(`${path}.random`, `must be a node count (integer) or a share like '20%', got ${describe(r)}`)
      }
      return this.fail(path, `a selector object needs one of 'fraction', 'range', 'index' or 'random', got ${describe(value)}`)
    }
    return this.fail(path, `must be a selector (a group name, 'all', '#i', a list, or { fraction | range | index | random }), got ${describe(value)}`)
  }

  checkGroupCycles (groups: Map<string, Selector>): void {
    const visiting = new Set<string>()
    const done = new Set<string>()
    const visit = (name: string, trail: string[]): void => {
      if (done.has(name)) return
      if (visiting.has(name)) this.fail(childPath('groups', trail[0]), `groups refer to each other in a cycle: ${[...trail, name].join(' → ')}`)
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

  placement (value: unknown, path: string, groups: Set<string>): PlacementSpec {
    const text = this.string(value, path)
    if (text === 'any') return { kind: 'any' }
    if (text === 'all') return { kind: 'all' }
    const spread = /^spread:(\d+)$/.exec(text)
    if (spread !== null) {
      const count = Number(spread[1])
      if (count < 1 || count > 1024) this.fail(path, `spread count must be from 1 to 1024, got ${count}`)
      return { kind: 'spread', count }
    }
    if (text.startsWith('node:')) {
      const ref = text.slice(5)
      if (ref === 'self') return { kind: 'node', target: 'self' }
      return { kind: 'node', target: this.selector(ref, path, groups) }
    }
    return this.fail(path, `placement must be 'any', 'all', 'spread:K', 'node:self', 'node:#i' or 'node:<group>' (its first node), got ${describe(text)}`)
  }

  // -------------------------------------------------------------- events

  event (value: unknown, path: string, groups: Set<string>): ScenarioEvent {
    const peek = (typeof value === 'object' && value !== null && !Array.isArray(value)) ? (value as Obj) : undefined
    if (peek === undefined) this.fail(path, `an event must be an object like { "at": "2s", "do": "heal" }, got ${describe(value)}`)
    const kinds: Record<EventKind, readonly string[]> = {
      reserve: ['from', 'id', 'size', 'placement', 'priority', 'count'],
      race: ['sides', 'target', 'pairs', 'id', 'shares'],
      release: ['ids', 'prefix', 'share'],
      memory: ['nodes', 'total', 'available'],
      partition: ['groups'],
      heal: [],
      crash: ['nodes'],
      restart: ['nodes'],
      join: ['count', 'memory', 'clock'],
      evict: ['nodes', 'by'],
      drain: ['nodes'],
      leave: ['nodes']
    }
    const kind = this.string(this.required(peek!, 'do', path), `${path}.do`)
    if (!(kind in kinds)) {
      const hint = closest(kind, Object.keys(kinds))
      this.fail(`${path}.do`, `unknown action '${kind}'${hint !== undefined ? ` (did you mean '${hint}'?)` : ''}; actions: ${Object.keys(kinds).join(', ')}`)
    }
    const o = this.object(value, path, ['at', 'do', 'note', ...kinds[kind as EventKind]])
    const atMs = this.duration(this.required(o, 'at', path), `${path}.at`)
    const base = { atMs, path }
    const p = (field: string): string => `${path}.${field}`
    const sel = (field: string): Selector => this.selector(this.required(o, field, path), p(field), groups)
    switch (kind as EventKind) {
      case 'reserve': {
        const id = this.string(this.required(o, 'id', path), p('id'))
        if (!ID_PATTERN.test(id)) this.fail(p('id'), `must be a deployment id (letters, digits, '._:/-'; '{i}' numbers a burst), got ${describe(id)}`)
        return {
          ...base,
          do: 'reserve',
          from: sel('from'),
          id,
          sizeBytes: this.size(this.required(o, 'size', path), p('size')),
          placement: o.placement === undefined ? { kind: 'any' } : this.placement(o.placement, p('placement'), groups),
          priority: o.priority === undefined ? 0 : this.integer(o.priority, p('priority'), -1_000_000, 1_000_000),
          count: o.count === undefined ? { absolute: 1 } : this.count(o.count, p('count'))
        }
      }
      case 'race': {
        const sides = this.required(o, 'sides', path)
        if (!Array.isArray(sides) || sides.length !== 2) this.fail(p('sides'), `must be two selectors [y side, z side], got ${describe(sides)}`)
        let shares: [number, number] = [0.6, 0.5]
        if (o.shares !== undefined) {
          const s = o.shares
          if (!Array.isArray(s) || s.length !== 2) this.fail(p('shares'), `must be [y, z] shares of the target's headroom, got ${describe(s)}`)
          shares = [this.number((s as unknown[])[0], `${p('shares')}[0]`, 0.01, 1), this.number((s as unknown[])[1], `${p('shares')}[1]`, 0.01, 1)]
          if (shares[0] + shares[1] <= 1) this.fail(p('shares'), `y + z must exceed the headroom (shares summing above 1), or there is no conflict; got ${describe(s)}`)
        }
        const id = o.id === undefined ? 'race' : this.string(o.id, p('id'))
        if (!ID_PATTERN.test(id)) this.fail(p('id'), `must be a deployment id prefix, got ${describe(id)}`)
        return {
          ...base,
          do: 'race',
          sides: [this.selector((sides as unknown[])[0], `${p('sides')}[0]`, groups), this.selector((sides as unknown[])[1], `${p('sides')}[1]`, groups)],
          target: o.target === undefined ? undefined : sel('target'),
          pairs: o.pairs === undefined ? { absolute: 1 } : this.count(o.pairs, p('pairs')),
          id,
          shares
        }
      }
      case 'release': {
        let ids: string[] | undefined
        if (o.ids !== undefined) {
          if (!Array.isArray(o.ids) || o.ids.length === 0) this.fail(p('ids'), `must be a non-empty list of deployment ids, got ${describe(o.ids)}`)
          ids = (o.ids as unknown[]).map((x, i) => this.string(x, `${p('ids')}[${i}]`))
        }
        const prefix = o.prefix === undefined ? undefined : this.string(o.prefix, p('prefix'))
        if (ids === undefined && prefix === undefined) this.fail(path, "a release needs 'ids' or 'prefix'")
        return { ...base, do: 'release', ids, prefix, share: o.share === undefined ? 1 : this.share(o.share, p('share')) }
      }
      case 'memory': {
        if (o.total === undefined && o.available === undefined) this.fail(path, "a memory change needs 'total' and/or 'available'")
        return {
          ...base,
          do: 'memory',
          nodes: sel('nodes'),
          totalBytes: o.total === undefined ? undefined : this.size(o.total, p('total')),
          availableBytes: o.available === undefined ? undefined : this.size(o.available, p('available'))
        }
      }
      case 'partition': {
        const g = this.required(o, 'groups', path)
        if (!Array.isArray(g) || g.length < 1) this.fail(p('groups'), `must list the sides, e.g. ["left", "right"] (unlisted nodes form one more side); got ${describe(g)}`)
        const list = g as unknown[]
        return {
          ...base,
          do: 'partition',
          groups: list.map((x, i) => this.selector(x, `${p('groups')}[${i}]`, groups)),
          names: list.map((x, i) => typeof x === 'string' ? x : `side-${i}`)
        }
      }
      case 'heal': return { ...base, do: 'heal' }
      case 'crash': return { ...base, do: 'crash', nodes: sel('nodes') }
      case 'restart': return { ...base, do: 'restart', nodes: sel('nodes') }
      case 'drain': return { ...base, do: 'drain', nodes: sel('nodes') }
      case 'leave': return { ...base, do: 'leave', nodes: sel('nodes') }
      case 'evict': return { ...base, do: 'evict', nodes: sel('nodes'), by: o.by === undefined ? undefined : sel('by') }
      case 'join': {
        const c = this.required(o, 'count', path)
        const memoryBytes = o.memory === undefined ? undefined : this.size(o.memory, p('memory'))
        // `clock`: the joiners' wall clocks run this far off ("-5m" behind, "+2m" ahead).
        let clockSkewMs: number | undefined
        if (o.clock !== undefined) {
          const text = this.string(o.clock, p('clock'))
          const m = /^([+-])(.+)$/.exec(text)
          if (m === null) this.fail(p('clock'), `must be a signed duration such as "-5m" or "+30s", got ${describe(text)}`)
          clockSkewMs = (m![1] === '-' ? -1 : 1) * this.duration(m![2], p('clock'))
        }
        if (typeof c === 'string' && /^\d+(\.\d+)?%$/.test(c)) {
          const share = Number(c.slice(0, -1)) / 100
          if (!(share > 0 && share <= 10)) this.fail(p('count'), `must be above 0% and at most 1000% of the initial nodes, got ${describe(c)}`)
          return { ...base, do: 'join', share, memoryBytes, clockSkewMs }
        }
        return { ...base, do: 'join', count: this.integer(c, p('count'), 1, MAX_NODES), memoryBytes, clockSkewMs }
      }
    }
  }
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
