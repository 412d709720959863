/**
 * The simulation harness's benchmark entry points, called by the benchmark
 * runner (simulations/bench/run.ts finds them by name) or directly:
 *
 *   npx tsx simulations/bench/tiers.ts virtual 1000 [--seed S] [--scenario NAME]
 *   npx tsx simulations/bench/tiers.ts real 100 [--transport tcp|memory] [--scenario NAME]
 *
 * - `benchVirtual({ nodes })`: the `fleet` scenario on the virtual tier, plus a
 *   formation-only run at half the size, so memory per peer can be modelled as
 *   a + b·N (each replica holds every node's entries) and extrapolated to the
 *   largest N that fits in 24 GiB.
 * - `benchRealTier({ nodes })`: the `yz-race` scenario on real libp2p agents;
 *   from `REAL_SCENARIO_MAX_NODES` peers on, only the cluster's formation, for
 *   its memory (see `benchRealTier`).
 */
import '../../agent/shim.ts'
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { numberFlag, parseArgs, UsageError } from '../../cli/args.ts'
import { heapToRaise, runWithHeap } from '../harness/heap.ts'
import type { FinalityReport } from '../harness/finality.ts'
import type { RestOptions, RestTraffic } from '../harness/rest.ts'
import { backoffSchedule, pushPullScale } from '../../agent/sync.ts'
import { runScenario, type Progress, type RunReport } from '../harness/run.ts'
import { loadScenario, parseScenario } from '../scenario/load.ts'

const GiB = 1024 ** 3
/** The memory budget the estimate is for (the machine the issue names). */
export const MEMORY_BUDGET_BYTES = 24 * GiB

/**
 * The at-rest window after the virtual run of `nodes` peers whose sync
 * interval is `syncMs`. Anti-entropy backs off while its rounds bring nothing,
 * doubling up to 12× the interval times the view's push-pull scale
 * (agent/sync.ts), so the quiet first lasts until every peer's rounds are at
 * that cap; then the window is one capped round long (each peer runs about
 * one in it), and at least a minute.
 */
export function virtualRest (nodes: number, syncMs: number): RestOptions {
  const { quietMs, capMs } = backoffSchedule(syncMs, pushPullScale(nodes))
  return { warmMs: Math.ceil(quietMs), windowMs: Math.max(60_000, capMs) }
}

export interface BenchVirtualResult {
  convergenceP50Ms: number | null
  convergenceP99Ms: number | null
  convergenceAllMs: number | null
  rssPeakBytes: number
  rssPerPeerBytes: number
  heapPerPeerBytes: number
  nodes: number
  passed: boolean
  virtualMs: number
  wallMs: number
  formWallMs: number
  /** Scenario ms per wall ms over the timeline. */
  speed: number
  /** Largest N whose heap (a + b·N per peer, fitted on this run and one at N/2) fits the budget. */
  maxNodesEstimate: number | null
  memoryModel: { basePerPeerBytes: number, perPeerPerNodeBytes: number, budgetBytes: number, fittedOn: number[] } | null
  invariants: Array<{ name: string, passed: boolean }>
  scenario: string
  seed: number
  /** Reservation → final on every peer, in virtual ms (simulations/harness/finality.ts). */
  finality: FinalityReport
  /** Messages and bytes per node per second at rest after the run (simulations/harness/rest.ts). */
  rest: RestTraffic | null
  /** CPU of the whole run (ms) and wall ms per virtual second over the timeline. */
  cpuMs: number
  wallMsPerVirtualS: number
  /** The at-rest window's wall time. */
  restWallMs: number
}

/** The virtual-tier benchmark at `nodes` peers (default scenario `fleet`). */
export async function benchVirtual (options: { nodes: number, seed?: number, scenario?: string, model?: boolean }): Promise<BenchVirtualResult> {
  const seed = options.seed ?? 1
  const heap = heapToRaise('virtual', options.nodes)
  if (heap !== undefined) return await inChild<BenchVirtualResult>(['virtual', String(options.nodes), '--seed', String(seed), ...(options.scenario !== undefined ? ['--scenario', options.scenario] : []), ...(options.model === false ? ['--no-model'] : [])], heap)
  const scenario = await loadScenario(options.scenario ?? 'fleet')
  const nodes = Math.max(options.nodes, scenario.minNodes)
  // Formation-only run at half the size first (smaller heap to measure), for the memory model.
  let half: RunReport | undefined
  if (options.model !== false && nodes >= 40) half = await formOnly(Math.floor(nodes / 2), seed, scenario.agent)
  const report = await runScenario(scenario, { tier: 'virtual', nodes, seed, measureHeap: true, rest: virtualRest(nodes, scenario.agent.syncMs), onProgress: progressLine(`virtual ${nodes}`) })
  let model: BenchVirtualResult['memoryModel'] = null
  let maxNodes: number | null = null
  if (half !== undefined) {
    const m1 = half.memory.heapPerPeerBytes
    const m2 = report.memory.heapPerPeerBytes
    const n1 = half.nodes
    const n2 = report.nodes
    const b = Math.max(0, (m2 - m1) / (n2 - n1))
    const a = Math.max(0, m1 - b * n1)
    model = { basePerPeerBytes: Math.round(a), perPeerPerNodeBytes: Math.round(b), budgetBytes: MEMORY_BUDGET_BYTES, fittedOn: [n1, n2] }
    // Heap of N peers: N·(a + b·N) plus what the process needs besides (the baseline RSS).
    const budget = MEMORY_BUDGET_BYTES - report.memory.baselineRssBytes
    maxNodes = b > 0 ? Math.floor((-a + Math.sqrt(a * a + 4 * b * budget)) / (2 * b)) : Math.floor(budget / Math.max(1, a))
  }
  return {
    convergenceP50Ms: report.convergence.peerP50Ms,
    convergenceP99Ms: report.convergence.peerP99Ms,
    convergenceAllMs: report.convergence.allAgreeAfterMs,
    rssPeakBytes: report.memory.rssPeakBytes,
    rssPerPeerBytes: report.memory.rssPerPeerBytes,
    heapPerPeerBytes: report.memory.heapPerPeerBytes,
    nodes: report.nodes,
    passed: report.passed,
    virtualMs: report.time.endMs,
    wallMs: report.wall.totalMs,
    formWallMs: report.wall.formMs,
    speed: report.wall.speed,
    maxNodesEstimate: maxNodes,
    memoryModel: model,
    invariants: report.invariants.map(i => ({ name: i.name, passed: i.passed })),
    scenario: report.scenario,
    seed,
    finality: report.finality,
    rest: report.rest ?? null,
    cpuMs: report.wall.cpuMs,
    wallMsPerVirtualS: report.wall.speed > 0 ? Math.round(1000 / report.wall.speed) : 0,
    restWallMs: report.wall.restMs ?? 0
  }
}

/**
 * Largest real-tier run that plays a whole scenario. Beyond it `benchRealTier`
 * only forms the cluster and measures its memory: a hundred libp2p agents
 * share one event loop, and every gossip message costs each of them a
 * signature check and, per mesh hop, a noise decryption. With the scenario's
 * 1 s heartbeats, or even the agent's default 5 s, the loop saturated past
 * about 50 agents on the 2-core development VM and 100 never finished
 * forming (over 4 minutes); see `FORM_ONLY_INTERVAL_MS`.
 */
export const REAL_SCENARIO_MAX_NODES = 25
/**
 * Heartbeat and sync interval of the formation-only real-tier run: slow
 * enough that 100 in-process agents form in about 35 s (memory transport).
 * Memory per peer hardly depends on it (the ledger holds one heartbeat per
 * node whatever the rate); the result reports the interval used.
 */
export const FORM_ONLY_INTERVAL_MS = 30_000

/** How long the formation-only run may take to form (scenario time, which is wall time on the real tier). */
export const FORM_ONLY_FORM_MS = 600_000

export interface BenchRealResult {
  /** `(rssBytes − baselineRssBytes) / nodes`. */
  rssPerPeerBytes: number
  /** RSS with the code loaded and no agent, after a full GC. */
  baselineRssBytes: number
  /** RSS once the cluster formed, after a full GC. */
  rssBytes: number
  heapUsedPerPeerBytes: number
  rssPeakBytes: number
  convergenceP50Ms: number | null
  convergenceP99Ms: number | null
  convergenceAllMs: number | null
  formMs: number
  nodes: number
  transport: string
  /** The scenario played, or `form-only` (formation only, heartbeats and syncs every `FORM_ONLY_INTERVAL_MS`). */
  scenario: string
  heartbeatMs: number
  syncMs: number
  passed: boolean
  wallMs: number
  invariants: Array<{ name: string, passed: boolean }>
}

/**
 * The real-tier benchmark at `nodes` libp2p agents in this process: the
 * `yz-race` scenario (or `scenario`) over TCP. Beyond `REAL_SCENARIO_MAX_NODES`
 * peers, and unless a scenario is named, it only forms the cluster — every
 * agent a member everywhere, one digest — with heartbeats and syncs every
 * `FORM_ONLY_INTERVAL_MS`, over libp2p's in-process memory transport (no
 * sockets, still noise and yamux), and reports the memory that took. RSS per
 * peer is measured right after formation in either case.
 */
export async function benchRealTier (options: { nodes: number, seed?: number, transport?: 'tcp' | 'memory', scenario?: string }): Promise<BenchRealResult> {
  const formOnly = options.scenario === undefined && options.nodes > REAL_SCENARIO_MAX_NODES
  const transport = options.transport ?? (formOnly ? 'memory' : 'tcp')
  const heap = heapToRaise('real', options.nodes)
  if (heap !== undefined) return await inChild<BenchRealResult>(['real', String(options.nodes), '--transport', transport, '--seed', String(options.seed ?? 1), ...(options.scenario !== undefined ? ['--scenario', options.scenario] : [])], heap)
  const scenario = formOnly
    ? parseScenario(JSON.stringify({ name: 'form-only', nodes: options.nodes, form: FORM_ONLY_FORM_MS, agent: { heartbeat: FORM_ONLY_INTERVAL_MS, sync: FORM_ONLY_INTERVAL_MS }, timeline: [], settle: '1s', hold: 0 }), '<bench form-only>')
    : await loadScenario(options.scenario ?? 'yz-race')
  const report = await runScenario(scenario, { tier: 'real', nodes: options.nodes, seed: options.seed ?? 1, transport, measureHeap: true, onProgress: progressLine(`real ${options.nodes}`) })
  return {
    rssPerPeerBytes: report.memory.rssPerPeerBytes,
    baselineRssBytes: report.memory.baselineRssBytes,
    rssBytes: report.memory.rssAfterFormBytes,
    heapUsedPerPeerBytes: report.memory.heapPerPeerBytes,
    rssPeakBytes: report.memory.rssPeakBytes,
    // A formation-only run has no write to converge after.
    convergenceP50Ms: formOnly ? null : report.convergence.peerP50Ms,
    convergenceP99Ms: formOnly ? null : report.convergence.peerP99Ms,
    convergenceAllMs: formOnly ? null : report.convergence.allAgreeAfterMs,
    formMs: report.wall.formMs,
    nodes: report.nodes,
    transport: report.transport,
    scenario: report.scenario,
    heartbeatMs: report.settings.agent.heartbeatMs,
    syncMs: report.settings.agent.syncMs,
    passed: report.passed,
    wallMs: report.wall.totalMs,
    invariants: report.invariants.map(i => ({ name: i.name, passed: i.passed }))
  }
}

/** Interval of the progress lines on stderr. */
const PROGRESS_EVERY_MS = 15_000

/**
 * A progress line on stderr every `PROGRESS_EVERY_MS` of wall time (phase,
 * scenario time, disagreeing peers, RSS), so a run stopped by the benchmark's
 * time limit says in its last lines how far it got.
 */
function progressLine (label: string): (p: Progress) => void {
  const startedMs = performance.now()
  let lastMs = startedMs
  return (p) => {
    const now = performance.now()
    if (now - lastMs < PROGRESS_EVERY_MS) return
    lastMs = now
    process.stderr.write(`${label}: ${((now - startedMs) / 1000).toFixed(0)} s wall, ${p.phase} at ${Math.round(p.tMs)} ms of ${Math.round(p.endMs)}, ${p.disagree}/${p.running} disagree, RSS ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB\n`)
  }
}

/** Run this file in a child process with a larger heap and return the JSON it prints. */
async function inChild<T> (args: string[], heapBytes: number): Promise<T> {
  let out = ''
  let err = ''
  // The child's progress lines pass through; its last words go into the error.
  const code = await runWithHeap(fileURLToPath(import.meta.url), args, heapBytes, { stdout: (s) => { out += s }, stderr: (s) => { err = (err + s).slice(-1500); process.stderr.write(s) } })
  if (code !== 0) throw new Error(`benchmark child exited ${code}: ${err}`)
  return JSON.parse(out) as T
}

/** Form a cluster of `nodes` virtual peers, measure, stop: one point of the memory model. */
async function formOnly (nodes: number, seed: number, agent: { heartbeatMs: number, syncMs: number }): Promise<RunReport> {
  // The scenario's own timers (its heartbeat is 0 since members stopped writing them: docs/design.md "Clock channel").
  const scenario = parseScenario(JSON.stringify({
    name: 'form-only',
    nodes,
    agent: { heartbeat: agent.heartbeatMs, sync: agent.syncMs },
    timeline: [],
    settle: '1s',
    hold: 0,
    sample: '50ms'
  }), '<bench form-only>')
  return await runScenario(scenario, { tier: 'virtual', nodes, seed, measureHeap: true, onProgress: progressLine(`form-only ${nodes}`) })
}

const invokedDirectly = process.argv[1] !== undefined && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)
if (invokedDirectly) {
  const usage = 'usage: npx tsx simulations/bench/tiers.ts virtual|real [N] [--seed S] [--scenario NAME] [--transport tcp|memory] [--no-model]'
  try {
    const { positionals, flags } = parseArgs(process.argv.slice(2), { seed: { type: 'string' }, scenario: { type: 'string' }, transport: { type: 'string' }, 'no-model': { type: 'boolean' } })
    const [tier = 'virtual', n = '1000', extra] = positionals
    if (tier !== 'virtual' && tier !== 'real') throw new UsageError(`tier must be 'virtual' or 'real', got '${tier}'`)
    if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`)
    const nodes = Number(n)
    if (!Number.isSafeInteger(nodes) || nodes < 1) throw new UsageError(`N: '${n}' is not a positive integer`)
    const transport = flags.transport as string | undefined
    if (transport !== undefined && transport !== 'tcp' && transport !== 'memory') throw new UsageError(`--transport must be 'tcp' or 'memory', got '${transport}'`)
    const seed = numberFlag(flags, 'seed', { integer: true, min: 0 })
    const scenario = flags.scenario as string | undefined
    const result = tier === 'real'
      ? await benchRealTier({ nodes, transport, seed, scenario })
      : await benchVirtual({ nodes, seed, scenario, model: flags['no-model'] !== true })
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`bench/tiers: ${error.message}\n${usage}\n`)
    process.exitCode = 2
  }
}
