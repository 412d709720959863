/**
 * `npm run bench [-- --quick | --smoke]`: memgossip against Serf on this
 * machine, in the same run, and against its own targets (issue 6).
 *
 * What it runs (progress on stderr, a summary on stdout):
 *  1. propagation at N = 10, 25, 50 separate agent processes per product on
 *     127.0.0.1, every node joining node 0: a reservation on one agent until
 *     every other agent's /v1/events stream announced its verdict, against a
 *     Serf user event of the same size and a Serf tag change; trials
 *     interleaved, the ratio taken trial by trial; the change made on node 0
 *     (the seed every node joined) and on the last node (a leaf);
 *  2. traffic per node per second at rest and under one change per second,
 *     both clusters measured over the same windows;
 *  3. gossip amplification in memgossip (copies of a message gossipsub
 *     receives per node, from a counting preload, and ledger updates applied);
 *  4. partition heal with 20 in-process agents;
 *  5. the virtual tier, from the simulation harness's `benchVirtual`;
 *  6. fit() in process (runCrdtBench) and POST /v1/fit under autocannon;
 *  7. ledger size under 1,000,000 heartbeats and per reservation (runCrdtBench);
 *  8. RSS of an idle agent process and per in-process peer;
 *  9. `memgossip fit 1GiB` end to end: the installed binary, tsx and curl.
 *
 * Settings changed from what users get, all on the benchmark's agents only:
 * `--local-cluster` (many agents on one host: lets loopback peers past the
 * per-host connection rate limit and turns off gossipsub's IP-colocation
 * penalty, which otherwise empties the meshes of agents sharing 127.0.0.1),
 * `--fake-memory 64GiB` (every agent would otherwise report this host's
 * memory), `--cluster bench`, random loopback ports. Every timer (heartbeat
 * 5 s, sync 5 s, gossip batch 5 ms) is the default. Serf runs with its
 * defaults (LAN profile, no snapshot, no encryption) at log level info.
 *
 * Writes simulations/results/<date>[-quick|-smoke].json, docs/benchmarks.md
 * and docs/bench-*.svg (smoke mode: only where --out/--docs point).
 */
import '../../agent/shim.ts'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join, relative, resolve as resolvePath } from 'node:path'
import { spawn } from 'node:child_process'
import { runCliTiming } from './cli-timing.ts'
import { runCrdtBench } from './crdt.ts'
import { runHttpFit } from './answers.ts'
import type { FitCpuResult } from './fit-cpu.ts'
import { MemgossipCluster, reservationMessageBytes, SerfCluster, trafficSnapshot, trafficWindow, type TrafficWindow } from './clusters.ts'
import { runHeal } from './heal.ts'
import { closeHttp, httpJson } from '../support/http.ts'
import { processMemory } from './netstat.ts'
import { GOSSIP_DEGREE } from '../../agent/net/libp2p.ts'
import { ensureSerf, Registry, REPO_ROOT, startMemgossip } from './procs.ts'
import { renderCharts, renderMarkdown, evaluateTargets, summaryTable } from './report.ts'
import { pairedRatios, summarize } from './stats.ts'
import { sleep } from '../support/wait.ts'
import { findSimulationApi, pick } from './virtual.ts'
import type { FinalInprocResult } from './final-inproc.ts'
import type { BenchResults, LivenessResult, Mode, PropagationResult, PropagationTrial, VirtualRun } from './results.ts'
import { numberFlag, parseArgs, UsageError, type FlagSpec } from '../../cli/args.ts'
import type { Io } from '../../cli/io.ts'

// The result types live in results.ts (report.ts and findings.ts read them without importing the runner).
export type { Io } from '../../cli/io.ts'
export type { BenchResults, LivenessResult, Mode, PropagationResult, PropagationTrial, TrafficResult, VirtualRun } from './results.ts'

interface Plan {
  sizes: number[]
  trials: number
  warmup: number
  windows: number
  windowS: number
  healNodes: number
  healTrials: number
  fitS: number
  fitReservations: number
  idleS: number
  rssPeers: number
  /** Sizes of the in-process finality run (final-inproc.ts) and its limit per size. */
  inprocSizes: number[]
  inprocReservations: number
  inprocTimeoutMs: number
  virtualSizes: number[]
  /** Stop growing the virtual tier once one run takes longer than this. */
  virtualBudgetMs: number
  /** Give up on one virtual-tier size after this long. */
  virtualTimeoutMs: number
  /** Give up on benchRealTier after this long (then measure RSS per peer ourselves). */
  realTierTimeoutMs: number
  mgTimeoutMs: number
  serfTimeoutMs: number
  /** Runs of each way of calling `memgossip fit` (cli-timing.ts). */
  cliRuns: number
}

const PLANS: Record<Mode, Plan> = {
  full: { sizes: [10, 25, 50], trials: 20, warmup: 3, windows: 3, windowS: 15, healNodes: 20, healTrials: 7, fitS: 10, fitReservations: 100, idleS: 30, rssPeers: 100, inprocSizes: [25, 50, 100], inprocReservations: 20, inprocTimeoutMs: 900_000, virtualSizes: [100, 200, 300, 1000], virtualBudgetMs: 600_000, virtualTimeoutMs: 1_800_000, realTierTimeoutMs: 720_000, mgTimeoutMs: 15_000, serfTimeoutMs: 10_000, cliRuns: 20 },
  quick: { sizes: [10], trials: 6, warmup: 2, windows: 1, windowS: 10, healNodes: 20, healTrials: 3, fitS: 5, fitReservations: 100, idleS: 30, rssPeers: 25, inprocSizes: [25], inprocReservations: 10, inprocTimeoutMs: 300_000, virtualSizes: [100], virtualBudgetMs: 60_000, virtualTimeoutMs: 120_000, realTierTimeoutMs: 90_000, mgTimeoutMs: 15_000, serfTimeoutMs: 10_000, cliRuns: 20 },
  smoke: { sizes: [3], trials: 2, warmup: 1, windows: 1, windowS: 3, healNodes: 4, healTrials: 1, fitS: 2, fitReservations: 10, idleS: 2, rssPeers: 3, inprocSizes: [3], inprocReservations: 3, inprocTimeoutMs: 120_000, virtualSizes: [], virtualBudgetMs: 10_000, virtualTimeoutMs: 15_000, realTierTimeoutMs: 60_000, mgTimeoutMs: 15_000, serfTimeoutMs: 10_000, cliRuns: 3 }
}

/** Phases `--skip` and `--only` name. */
export const PHASES = ['propagation', 'heal', 'fit', 'crdt', 'virtual', 'rss', 'final-inproc', 'idle', 'cli'] as const

const BENCH_FLAGS: Record<string, FlagSpec> = {
  quick: { type: 'boolean' },
  smoke: { type: 'boolean' },
  out: { type: 'string' },
  docs: { type: 'string' },
  'no-serf': { type: 'boolean' },
  'no-install': { type: 'boolean' },
  profile: { type: 'boolean' },
  skip: { type: 'string' },
  only: { type: 'string' },
  sizes: { type: 'string' },
  'inproc-sizes': { type: 'string' },
  trials: { type: 'string' },
  render: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
}

interface BenchArgs { mode: Mode, out?: string, docs?: string, serf: boolean, install: boolean, profile: boolean, skip: Set<string>, sizes?: number[], inprocSizes?: number[], trials?: number, render?: string, help: boolean }

function parseBenchArgs (argv: string[]): BenchArgs {
  const { positionals, flags } = parseArgs(argv, BENCH_FLAGS)
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
  const phases = (flag: string): string[] | undefined => {
    const list = (flags[flag] as string | undefined)?.split(',').filter(p => p !== '')
    const unknown = list?.find(p => !(PHASES as readonly string[]).includes(p))
    if (unknown !== undefined) throw new UsageError(`--${flag}: unknown phase '${unknown}' (phases: ${PHASES.join(', ')})`)
    return list
  }
  const only = phases('only')
  const skip = new Set(phases('skip') ?? [])
  if (only !== undefined) for (const p of PHASES) if (!only.includes(p)) skip.add(p)
  const sizeList = (flag: string): number[] | undefined => (flags[flag] as string | undefined)?.split(',').map(text => {
    const n = Number(text)
    if (!Number.isSafeInteger(n) || n < 2) throw new UsageError(`--${flag}: '${text}' is not a cluster size (an integer ≥ 2)`)
    return n
  })
  const sizes = sizeList('sizes')
  const inprocSizes = sizeList('inproc-sizes')
  const mode: Mode = flags.smoke === true ? 'smoke' : flags.quick === true ? 'quick' : 'full'
  return {
    mode,
    out: flags.out as string | undefined,
    docs: flags.docs as string | undefined,
    serf: flags['no-serf'] !== true && !(only !== undefined && !only.includes('propagation')),
    install: flags['no-install'] !== true && mode !== 'smoke',
    profile: flags.profile === true,
    skip,
    sizes,
    inprocSizes,
    trials: numberFlag(flags, 'trials', { integer: true, min: 1 }),
    render: flags.render as string | undefined,
    help: flags.help === true
  }
}

export const HELP = `Usage: npm run bench [-- FLAGS]

memgossip against Serf (same machine, same run) and against its targets.
Writes simulations/results/<date>.json, docs/benchmarks.md, docs/bench-*.svg.

  --quick          reduced run (N = 10 only, fewer trials; under 3 minutes)
  --smoke          harness check (N = 3, 2 trials; results only to --out/--docs)
  --out DIR        results directory (default simulations/results)
  --docs DIR       where benchmarks.md and the SVGs go (default docs; smoke: none)
  --no-serf        skip the Serf comparison
  --no-install     do not apt-get install serf when it is missing
  --profile        CPU-profile the agent under the HTTP fit load (node --cpu-prof)
  --sizes 10,25    cluster sizes for propagation and traffic
  --inproc-sizes 25,50,100
                   sizes of the final-inproc phase (reservation → final on
                   every agent, N agents in one process over libp2p TCP)
  --trials N       trials per size and origin
  --skip LIST      phases to skip: propagation,heal,fit,crdt,virtual,rss,final-inproc,idle,cli
  --only LIST      run only these phases (e.g. --only cli; Serf only with propagation)
  --render FILE    only rewrite benchmarks.md and the SVGs from a results JSON
`

export async function runBench (argv: string[], io: Io): Promise<number> {
  let args: BenchArgs
  try {
    args = parseBenchArgs(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`bench: ${error.message} (try --help)\n`)
    return 2
  }
  if (args.help) { io.stdout(HELP); return 0 }
  if (args.render !== undefined) return await renderOnly(args.render, args.docs, io)
  const plan = { ...PLANS[args.mode] }
  if (args.sizes !== undefined) plan.sizes = args.sizes
  if (args.trials !== undefined) plan.trials = args.trials
  const log = (line: string): void => { io.stderr(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`) }
  const started = performance.now()
  const registry = new Registry()
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping every child process and removing temp dirs…`)
    void registry.cleanup().then(() => { process.exit(signal === 'SIGINT' ? 130 : 143) })
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const date = new Date()
  const results: BenchResults = {
    version: 1,
    date: date.toISOString(),
    mode: args.mode,
    durationS: 0,
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 1024 ** 3), kernel: release(), node: process.version, loadBefore: loadavg().map(x => +x.toFixed(2)), loadAfter: [] },
    serf: { available: false, note: '' },
    settings: [
      'memgossip agents: `memgossip agent --local-cluster --fake-memory 64GiB --cluster bench --listen /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0 [--bootstrap <node 0>]`, compiled by `npm run build`: the idle, answers and CLI phases run it as `npm start` does (`node --max-semi-space-size=2 --v8-pool-size=1 dist/bundle/main.js agent …`), the clusters of the propagation and traffic phases run the same flags on tsc\'s unbundled `dist/cli/main.js` (their gossip-counting preload patches gossipsub\'s module, which the bundle holds its own copy of); every timer and gossipsub setting at its default (heartbeat 5 s, anti-entropy 5 s, gossip batch 5 ms, gossipsub degree ' + GOSSIP_DEGREE + ').',
      '`--local-cluster` is the one networking setting changed: many agents share 127.0.0.1, so it lets loopback peers past libp2p\'s per-host inbound rate limit and turns off gossipsub\'s IP-colocation penalty (which otherwise scores every co-located peer negative and empties the meshes). Never set on a real network.',
      'Serf agents: `serf agent -node serfI -bind 127.0.0.1:P -rpc-addr 127.0.0.1:R -log-level=info -config-file {statsd_addr} [-join <node 0>]`; LAN profile, no snapshot, no encryption, compression on (all defaults).',
      'Same join topology for both: every node joins node 0.'
    ],
    notes: [],
    payloadBytes: 0,
    propagation: [],
    traffic: [],
    liveness: [],
    sizeFailures: [],
    virtual: { available: false, runs: [], note: '' },
    targets: []
  }
  const outDir = args.out !== undefined ? resolvePath(args.out) : join(REPO_ROOT, 'simulations/results')
  const docsDir = args.docs !== undefined ? resolvePath(args.docs) : args.mode === 'smoke' ? undefined : join(REPO_ROOT, 'docs')
  let exitCode = 0
  /** A phase that fails is reported and the run goes on with the next one. */
  const phase = async (name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn()
    } catch (error) {
      exitCode = 1
      log(`${name} FAILED: ${(error as Error).stack ?? String(error)}`)
      results.notes.push(`${name} failed: ${(error as Error).message.split('\n')[0]}`)
    }
  }
  try {
    log(`mode ${args.mode}: sizes ${plan.sizes.join(', ')}, ${plan.trials} trials per size and origin; ${results.machine.cores} cores, load ${results.machine.loadBefore.join(' ')}`)
    if (results.machine.loadBefore[0] > results.machine.cores) results.notes.push(`The machine was busy when the run started (1-minute load ${results.machine.loadBefore[0]} on ${results.machine.cores} cores): absolute latencies include CPU contention from other processes; the interleaved memgossip/Serf ratios are less affected than the absolute figures.`)

    // Serf: installed, or installable, or skipped (and said so).
    if (args.serf) {
      const serf = await ensureSerf({ install: args.install, log })
      results.serf = { available: serf.path !== undefined, version: serf.version, note: serf.note }
      log(serf.note)
      if (serf.path === undefined) results.notes.push(serf.note)
      ;(results.serf as { path?: string }).path = serf.path
    } else {
      results.serf = { available: false, note: 'Serf comparison skipped (--no-serf)' }
      results.notes.push(results.serf.note)
    }
    const serfPath = (results.serf as { path?: string }).path

    // 8a. An idle agent, started first so it has been idle the longest when read.
    let idleSince = 0
    const idleStart = args.skip.has('idle')
      ? undefined
      : (async () => {
          const dir = await registry.tempDir('mgi-')
          const proc = await startMemgossip({ registry, index: 0, dataDir: join(dir, 'idle') })
          idleSince = performance.now()
          log(`idle agent started (pid ${proc.pid}); its RSS is read after ≥ ${plan.idleS} s`)
          return proc
        })()
    idleStart?.catch(() => {})

    // 6, 7. The ledger core, in process (not in smoke mode: it only checks the harness).
    if (args.skip.has('crdt') || args.mode === 'smoke') {
      if (args.mode === 'smoke') results.notes.push('Smoke mode skips the in-process ledger benchmark (runCrdtBench) and the fit() CPU-time measurement.')
    } else {
      await sleep(2000) // let the idle agent finish starting before the CPU-bound ledger work
      log('ledger core (runCrdtBench): resolve()/fit() at 100×1,000 and 1,000×10,000, heartbeats, churn…')
      const crdt = withStdoutOnStderr(() => runCrdtBench({ quick: args.mode !== 'full', log }))
      results.crdt = { resolve: crdt.resolve, fit: crdt.fit, heartbeats: crdt.heartbeats, churn: crdt.churn }
      if (args.mode !== 'full') results.notes.push(`Ledger figures from runCrdtBench in quick mode: ${crdt.heartbeats.heartbeats.toLocaleString('en-US')} heartbeats (the full run does 1,000,000) and ${crdt.fit[0].runs} fit() calls per size.`)
      log('fit() at 1,000 × 10,000 again, wall time and CPU time per call…')
      // In a process of its own: the ledger benchmark's garbage is not collected during its calls.
      results.fitCpu = await runChild(['simulations/bench/fit-cpu.ts', '--calls', String(args.mode === 'full' ? 4000 : 1000)], 300_000, log) as FitCpuResult
      log(`  wall p50 ${results.fitCpu.wallMs.p50.toFixed(3)} ms, p99 ${results.fitCpu.wallMs.p99.toFixed(3)} ms; CPU p50 ${results.fitCpu.cpuMs.p50.toFixed(3)} ms, p99 ${results.fitCpu.cpuMs.p99.toFixed(3)} ms; ${results.fitCpu.slowCalls} calls over 1 ms of wall time, ${results.fitCpu.slowWithCpu} of them over 1 ms of CPU, ${results.fitCpu.slowWithGc} overlapping a GC`)
    }
    const idle = await idleStart

    // 1–3. Real clusters, memgossip and Serf side by side.
    results.payloadBytes = reservationMessageBytes('p50-seed-000')
    if (!args.skip.has('propagation')) {
      for (const n of plan.sizes) {
        await phase(`N = ${n} (propagation, traffic)`, async () => { await runSize(n, plan, results, registry, serfPath, log) })
      }
    }

    // 4. Partition heal.
    if (!args.skip.has('heal')) {
      await phase('partition heal', async () => {
        log(`partition heal: ${plan.healNodes} in-process agents, ${plan.healTrials} trials…`)
        const heal = await runHeal(registry, { nodes: plan.healNodes, trials: plan.healTrials, log })
        results.heal = { ...heal, summary: summarize(heal.trials.map(t => t.healMs)), bothSeen: summarize(heal.trials.map(t => t.bothSeenMs)), unblock: summarize(heal.trials.map(t => t.unblockMs)) }
      })
    }

    // 6b. HTTP fit under autocannon.
    if (!args.skip.has('fit')) {
      await phase('HTTP fit', async () => {
        log('HTTP POST /v1/fit under autocannon…')
        const h = results.httpFit = await runHttpFit(registry, { durationS: plan.fitS, reservations: plan.fitReservations, profile: args.profile, log })
        log(`  ${h.requestsPerSec.toFixed(0)} requests/s, p50 ${h.latencyP50Ms} ms, p99 ${h.latencyP99Ms} ms; agent CPU ${(h.agentCpuShare * 100).toFixed(0)}% of one core`)
      })
    }

    // 9. One CLI command end to end (the installed binary, tsx, curl).
    if (!args.skip.has('cli')) {
      await phase('CLI timing', async () => {
        log(`memgossip fit 1GiB against one agent, ${plan.cliRuns} runs each: installed binary, tsx, curl…`)
        results.cliTiming = await runCliTiming(registry, { runs: plan.cliRuns, log })
      })
    }

    // 5, 8b. The simulation harness's figures, when it exports them.
    const sim = await findSimulationApi().catch((error: unknown) => { results.notes.push(`Could not load the simulation harness's bench API: ${(error as Error).message}`); return {} as Awaited<ReturnType<typeof findSimulationApi>> })
    if (!args.skip.has('virtual')) await phase('virtual tier', async () => { await runVirtual(sim, plan, results, log) })
    if (!args.skip.has('rss')) await phase('in-process RSS per peer', async () => { await runRealTierRss(sim, plan, results, log) })
    if (!args.skip.has('final-inproc')) await phase('final in process', async () => { await runFinalInproc(args.inprocSizes ?? plan.inprocSizes, plan, results, log) })

    // 8a. Idle RSS.
    if (idle !== undefined) {
      const wait = plan.idleS * 1000 - (performance.now() - idleSince)
      if (wait > 0) { log(`waiting ${(wait / 1000).toFixed(0)} s more for the idle agent…`); await sleep(wait) }
      results.idle = { idleS: (performance.now() - idleSince) / 1000, ...await processMemory(idle.pid) }
      log(`idle agent after ${results.idle.idleS.toFixed(0)} s: RSS ${(results.idle.rssBytes / 1024 ** 2).toFixed(1)} MiB (anon ${(results.idle.rssAnonBytes / 1024 ** 2).toFixed(1)}, file ${(results.idle.rssFileBytes / 1024 ** 2).toFixed(1)})`)
      await registry.stopChild(idle.child)
    }
  } catch (error) {
    exitCode = 1
    log(`FAILED: ${(error as Error).stack ?? String(error)}`)
    results.notes.push(`The run failed before it finished: ${(error as Error).message.split('\n')[0]}`)
  } finally {
    await registry.cleanup()
    closeHttp()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }

  results.durationS = (performance.now() - started) / 1000
  results.machine.loadAfter = loadavg().map(x => +x.toFixed(2))
  results.targets = evaluateTargets(results)
  const stamp = date.toISOString().slice(0, 10)
  await mkdir(outDir, { recursive: true })
  const jsonPath = join(outDir, `${stamp}${args.mode === 'full' ? '' : `-${args.mode}`}.json`)
  await writeFile(jsonPath, JSON.stringify(results, (_k, v) => typeof v === 'number' && !Number.isFinite(v) ? null : v, 2) + '\n')
  const written = [jsonPath]
  if (docsDir !== undefined) {
    await mkdir(docsDir, { recursive: true })
    const charts = renderCharts(results)
    for (const [name, svg] of Object.entries(charts)) {
      await writeFile(join(docsDir, name), svg)
      written.push(join(docsDir, name))
    }
    const mdPath = join(docsDir, 'benchmarks.md')
    await writeFile(mdPath, renderMarkdown(results, Object.keys(charts), relative(docsDir, jsonPath)))
    written.push(mdPath)
  }
  io.stdout(summaryTable(results) + '\n')
  io.stdout(`wrote ${written.map(p => relative(process.cwd(), p)).join(', ')} (${results.durationS.toFixed(0)} s)\n`)
  return exitCode
}

/** Rewrite the report from a results file (after a wording change, without a 20-minute run). */
async function renderOnly (file: string, docs: string | undefined, io: Io): Promise<number> {
  const jsonPath = resolvePath(file)
  // NaN was written as null; the report treats both as "no figure".
  const results = JSON.parse(await readFile(jsonPath, 'utf8')) as BenchResults
  results.targets = evaluateTargets(results)
  const docsDir = docs !== undefined ? resolvePath(docs) : join(REPO_ROOT, 'docs')
  await mkdir(docsDir, { recursive: true })
  const charts = renderCharts(results)
  for (const [name, svg] of Object.entries(charts)) await writeFile(join(docsDir, name), svg)
  await writeFile(join(docsDir, 'benchmarks.md'), renderMarkdown(results, Object.keys(charts), relative(docsDir, jsonPath)))
  io.stdout(summaryTable(results) + '\n')
  io.stdout(`rewrote ${relative(process.cwd(), join(docsDir, 'benchmarks.md'))} and ${Object.keys(charts).length} charts from ${relative(process.cwd(), jsonPath)}\n`)
  return 0
}

/** runCrdtBench prints progress to stdout; the benchmark keeps stdout for its summary. */
function withStdoutOnStderr<T> (fn: () => T): T {
  const original = process.stdout.write
  process.stdout.write = ((chunk: any, ...rest: any[]) => (process.stderr.write as any)(chunk, ...rest)) as typeof process.stdout.write
  try {
    return fn()
  } finally {
    process.stdout.write = original
  }
}

async function runSize (n: number, plan: Plan, results: BenchResults, registry: Registry, serfPath: string | undefined, log: (line: string) => void): Promise<void> {
  log(`N = ${n}: starting ${serfPath !== undefined ? `${n} Serf agents and ` : ''}${n} memgossip agents…`)
  const serf = serfPath !== undefined ? await SerfCluster.start(registry, serfPath, n, log) : undefined
  let mg: MemgossipCluster | undefined
  try {
    mg = await MemgossipCluster.start(registry, n, log, { probe: true })
  } catch (error) {
    const reason = (error as Error).message
    results.sizeFailures.push({ nodes: n, product: 'memgossip', reason })
    log(`  memgossip: no cluster of ${n} agents on this machine: ${reason}`)
    if (serf === undefined) throw error
    log(`  going on with Serf alone at N = ${n}`)
  }
  try {
    const payload = new Uint8Array(results.payloadBytes).fill(0x61)
    const origins: Array<{ origin: 'seed' | 'leaf', index: number }> = [{ origin: 'seed', index: 0 }, { origin: 'leaf', index: n - 1 }]
    log(`  warm-up (${plan.warmup} changes from each origin, not recorded)…`)
    for (let w = 0; w < plan.warmup; w++) {
      const seen: string[] = []
      for (const o of origins) {
        const m = mg !== undefined ? await mg.propagate(o.index, `warm-${n}-${o.origin}-${w}`, plan.mgTimeoutMs) : undefined
        const e = serf !== undefined ? await serf.userEvent(o.index, `warm-${n}-${o.origin}-${w}`, payload, plan.serfTimeoutMs) : undefined
        seen.push(`${o.origin}: ${m !== undefined ? `memgossip ${fmtMs(m.ms)} (${m.arrived}/${m.expected})` : ''}${e !== undefined ? `, serf ${fmtMs(e.ms)}` : ''}`)
      }
      log(`  warm-up ${w + 1}/${plan.warmup}: ${seen.join(' | ')}`)
    }
    await sleep(1000)
    const byOrigin = new Map(origins.map(o => [o.origin, [] as PropagationTrial[]]))
    for (let t = 0; t < plan.trials; t++) {
      for (const o of origins) {
        const id = `p${n}-${o.origin}-${String(t).padStart(3, '0')}`
        const trial: Partial<PropagationTrial> = { trial: t, memgossipMs: Number.NaN, memgossipAckMs: Number.NaN, memgossipArrived: 0, expected: n - 1 }
        const runMg = async (): Promise<void> => {
          if (mg === undefined) return
          const r = await mg.propagate(o.index, id, plan.mgTimeoutMs)
          trial.memgossipMs = r.ms
          trial.memgossipAckMs = r.ackMs
          trial.memgossipFinalMs = r.finalMs
          trial.memgossipArrived = r.arrived
          trial.expected = r.expected
        }
        const runSerf = async (): Promise<void> => {
          if (serf === undefined) return
          const ev = await serf.userEvent(o.index, id, payload, plan.serfTimeoutMs)
          trial.serfEventMs = ev.ms
          trial.serfEventArrived = ev.arrived
          await sleep(100)
          const tag = await serf.tagChange(o.index, id, plan.serfTimeoutMs)
          trial.serfTagMs = tag.library.ms
          trial.serfTagArrived = tag.library.arrived
          trial.serfTagAgentMs = tag.agent.ms
        }
        // Alternate which product goes first, so neither always runs right after the other.
        if (t % 2 === 0) { await runMg(); await sleep(150); await runSerf() } else { await runSerf(); await sleep(150); await runMg() }
        byOrigin.get(o.origin)!.push(trial as PropagationTrial)
        await sleep(150)
      }
      const last = origins.map(o => byOrigin.get(o.origin)!.at(-1)!)
      log(`  N=${n} trial ${t + 1}/${plan.trials}: ${last.map((x, i) => `${origins[i].origin}: memgossip ${fmtMs(x.memgossipMs)}${serf !== undefined ? `, serf event ${fmtMs(x.serfEventMs)}, tag ${fmtMs(x.serfTagMs)} (agent event ${fmtMs(x.serfTagAgentMs)})` : ''}`).join(' | ')}`)
    }
    for (const o of origins) {
      const trials = byOrigin.get(o.origin)!
      const mgMs = trials.map(t => t.memgossipMs)
      const r: PropagationResult = {
        nodes: n,
        origin: o.origin,
        originIndex: o.index,
        trials,
        memgossip: summarize(mgMs),
        memgossipAck: summarize(trials.map(t => t.memgossipAckMs)),
        memgossipFinal: summarize(trials.map(t => t.memgossipFinalMs ?? Number.NaN)),
        missed: {
          memgossip: mg === undefined ? trials.length : trials.filter(t => !Number.isFinite(t.memgossipMs)).length,
          serfEvent: trials.filter(t => serf !== undefined && !Number.isFinite(t.serfEventMs ?? Number.NaN)).length,
          serfTag: trials.filter(t => serf !== undefined && !Number.isFinite(t.serfTagMs ?? Number.NaN)).length
        }
      }
      if (serf !== undefined) {
        const ev = trials.map(t => t.serfEventMs ?? Number.NaN)
        const tag = trials.map(t => t.serfTagMs ?? Number.NaN)
        r.serfEvent = summarize(ev)
        r.serfTag = summarize(tag)
        r.serfTagAgent = summarize(trials.map(t => t.serfTagAgentMs ?? Number.NaN))
        r.ratioEvent = summarize(pairedRatios(mgMs, ev).ratios)
        r.ratioTag = summarize(pairedRatios(mgMs, tag).ratios)
      }
      if (mg === undefined) r.memgossipFailed = results.sizeFailures.find(f => f.nodes === n)?.reason
      results.propagation.push(r)
    }

    // 2, 3. Traffic windows: both clusters measured over the same seconds.
    const windowCount = mg === undefined ? 1 : plan.windows
    log(`  traffic: ${windowCount} × (${plan.windowS} s at rest, ${plan.windowS} s with one change per second)${mg !== undefined && serf !== undefined ? ', both clusters at once' : ''}…`)
    const windows: TrafficWindow[] = []
    // The liveness events before the windows (formation and propagation
    // trials) are counted apart: the target is about the windows.
    const windowsFrom = mg?.liveness.length ?? 0
    let change = 0
    for (let w = 0; w < windowCount; w++) {
      for (const kind of ['rest', 'load'] as const) {
        const a = await trafficSnapshot(mg, serf)
        let changes = 0
        const pending: Array<Promise<unknown>> = []
        const end = performance.now() + plan.windowS * 1000
        while (performance.now() < end) {
          const tickEnd = performance.now() + 1000
          if (kind === 'load') {
            const k = change++
            const origin = k % n
            if (mg !== undefined) pending.push(httpJson(`${mg.nodes[origin].api}/v1/reservations`, { body: { id: `t${n}-${String(k).padStart(5, '0')}`, size: '1MiB', placement: 'any' } }).catch(() => undefined))
            if (serf !== undefined) pending.push(serf.nodes[origin].rpc.event(`t${n}-${String(k).padStart(5, '0')}`, payload).catch(() => undefined))
            changes++
          }
          await sleep(Math.max(0, Math.min(tickEnd, end) - performance.now()))
        }
        await Promise.all(pending)
        const b = await trafficSnapshot(mg, serf)
        const win = trafficWindow(kind, changes, a, b, mg, serf)
        windows.push(win)
        log(`  N=${n} ${kind} window ${w + 1}: memgossip ${win.memgossip.socketBytesPerNodeSec.toFixed(0)} B/node/s on its sockets (${win.memgossip.payloadBytesPerNodeSec.toFixed(0)} protocol payload), CPU ${(win.memgossip.cpuPerNode * 100).toFixed(1)}% per agent${win.serf !== undefined ? `; serf ${win.serf.payloadBytesPerNodeSec.toFixed(0)} B/node/s, CPU ${(win.serf.cpuPerNode * 100).toFixed(2)}% per agent (ratio ${win.ratioSocket!.toFixed(2)})` : ''}; gossip copies per node per message ${win.memgossip.gossipCopiesPerNodePerMessage.toFixed(2)}; gossipsub sent ${(win.memgossip.gossipMessageBytesSentPerNodeSec ?? 0).toFixed(0)} B/node/s in messages, ${(win.memgossip.gossipControlBytesSentPerNodeSec ?? 0).toFixed(0)} in control; per node per second ${win.memgossip.syncRoundsPerNodeSec.toFixed(2)} sync rounds, ${(win.memgossip.gapPullsPerNodeSec ?? 0).toFixed(2)} gap pulls, ${(win.memgossip.beaconPullsPerNodeSec ?? 0).toFixed(2)} beacon pulls`)
      }
    }
    results.traffic.push({ nodes: n, windows })
    const windowsTo = mg?.liveness.length ?? 0

    // 4. Liveness: no suspicion while everyone ran; then kill one agent and time its detection.
    if (mg !== undefined) {
      const windowS = windowCount * 2 * plan.windowS
      const suspicions = (events: MemgossipCluster['liveness']): { count: number, members: Set<string>, raised: MemgossipCluster['liveness'] } => {
        const raised = events.filter(l => l.state === 'suspect')
        return { count: raised.length, members: new Set(raised.map(l => l.node)), raised }
      }
      const during = suspicions(mg.liveness.slice(windowsFrom, windowsTo))
      const before = suspicions(mg.liveness.slice(0, windowsFrom))
      const ids = await Promise.all(mg.nodes.map(async node => String((await httpJson(`${node.api}/v1/state`)).body.self ?? '')))
      // Who was suspected, by how many, and when: a starved relay or hub shows here.
      for (const id of during.members) {
        const about = during.raised.filter(l => l.node === id)
        const seconds = about.map(l => Math.round((l.at - about[0].at) / 100) / 10)
        log(`    suspected: agent ${ids.indexOf(id)} (${id.slice(-6)}) ${about.length} times, by ${new Set(about.map(l => l.by)).size} agents, at +${[...new Set(seconds)].join(', +')} s`)
      }
      const victim = mg.nodes[n - 1]
      const victimId = ids[n - 1]
      const from = mg.liveness.length
      const t0 = performance.now()
      process.kill(victim.pid, 'SIGKILL')
      const survivors = mg.nodes.length - 1
      const firstAt = (state: string): number[] => {
        const by = new Map<number, number>()
        for (const l of mg!.liveness.slice(from)) if (l.node === victimId && l.state === state && !by.has(l.by)) by.set(l.by, l.at - t0)
        return [...by.values()]
      }
      const deadline = t0 + 60_000
      while (performance.now() < deadline && firstAt('dead').length < survivors) await sleep(200)
      const suspects = firstAt('suspect')
      const deads = firstAt('dead')
      const result: LivenessResult = {
        nodes: n,
        falseSuspicions: during.count,
        suspectedMembers: during.members.size,
        suspicionsBefore: before.count,
        windowS,
        survivors,
        suspectFirstMs: suspects.length > 0 ? Math.min(...suspects) : Number.NaN,
        suspectAllMs: suspects.length === survivors ? Math.max(...suspects) : Number.NaN,
        deadFirstMs: deads.length > 0 ? Math.min(...deads) : Number.NaN,
        deadAllMs: deads.length === survivors ? Math.max(...deads) : Number.NaN
      }
      results.liveness!.push(result)
      log(`  N=${n} liveness: ${during.count} suspicions (of ${during.members.size} members) during ${windowS} s of traffic windows, ${before.count} before them (propagation trials); agent ${n - 1} killed: suspected after ${fmtMs(result.suspectFirstMs)} (by all ${suspects.length}/${survivors}: ${fmtMs(result.suspectAllMs)}), dead after ${fmtMs(result.deadFirstMs)} (by all ${deads.length}/${survivors}: ${fmtMs(result.deadAllMs)})`)
    }
  } finally {
    await mg?.stop(registry)
    await serf?.stop(registry)
  }
}

function fmtMs (v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? 'timeout' : `${v.toFixed(0)} ms`
}

/** Run a script of this directory in a child process; resolves with the JSON of its last stdout line. */
async function runChild (args: string[], timeoutMs: number, log: (line: string) => void): Promise<any> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=16384', '--import', 'tsx', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => { text += c.toString() })
    // The child prints a progress line now and then (a 1,000-peer run takes
    // longer than its 30-minute limit here); pass them on, at most one a minute.
    let lastShown = 0
    child.stderr.on('data', (c: Buffer) => {
      const chunk = c.toString()
      err += chunk
      if (err.length > 20_000) err = err.slice(-10_000)
      const progress = chunk.split('\n').filter(l => / wall, /.test(l)).at(-1)
      if (progress !== undefined && performance.now() - lastShown > 60_000) { lastShown = performance.now(); log(`  ${progress.trim()}`) }
    })
    const timer = setTimeout(() => { log(`  ${args[0]} ${args.slice(1).join(' ')}: no result after ${timeoutMs / 1000} s, stopping it`); child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 5000).unref() }, timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      const last = text.trim().split('\n').at(-1) ?? ''
      if (code === 0 && last !== '') {
        try { resolve(JSON.parse(last)); return } catch {}
      }
      reject(new Error(`${args.join(' ')} exited ${code ?? signal}: ${err.trim().split('\n').slice(-3).join(' | ').slice(0, 600)}`))
    })
  })
}

const num = (v: unknown): number | undefined => typeof v === 'number' && Number.isFinite(v) ? v : undefined

async function runVirtual (sim: Awaited<ReturnType<typeof findSimulationApi>>, plan: Plan, results: BenchResults, log: (line: string) => void): Promise<void> {
  if (sim.benchVirtual === undefined) {
    results.virtual = { available: false, runs: [], note: 'MISSING: the simulation harness does not export benchVirtual({ nodes, seed }) yet (looked for it in every .ts file under simulations/ outside simulations/bench/). The virtual-tier figures (convergence p50/p99 at N = 1,000 and the largest N that fits, with its memory) are not in this run.' }
    results.notes.push(results.virtual.note)
    log(results.virtual.note)
    return
  }
  results.virtual = { available: true, file: sim.file, runs: [], note: `benchVirtual from ${sim.file}, each size in a process of its own (simulations/bench/sim-child.ts)` }
  if (plan.virtualSizes.length === 0) {
    results.virtual.note = `benchVirtual found in ${sim.file}; not run in ${results.mode} mode`
    results.notes.push(results.virtual.note)
    return
  }
  for (const nodes of plan.virtualSizes) {
    log(`virtual tier: benchVirtual({ nodes: ${nodes}, seed: 1 }) in a child process…`)
    const t0 = performance.now()
    try {
      const { result } = await runChild(['simulations/bench/sim-child.ts', 'virtual', String(nodes), '1'], plan.virtualTimeoutMs, log)
      const wallMs = performance.now() - t0
      const run: VirtualRun = {
        nodes,
        wallMs,
        result,
        convergenceP50: num(result?.convergenceP50Ms) ?? pick(result, /conver/i, /p50|median/i),
        convergenceP99: num(result?.convergenceP99Ms) ?? pick(result, /conver/i, /p99/i),
        memoryBytes: num(result?.rssPeakBytes) ?? pick(result, /rss|heap|memory/i)
      }
      results.virtual.runs.push(run)
      log(`  N=${nodes}: convergence p50 ${run.convergenceP50 ?? '?'} ms, p99 ${run.convergenceP99 ?? '?'} ms (virtual), peak RSS ${run.memoryBytes !== undefined ? (run.memoryBytes / 1024 ** 2).toFixed(0) : '?'} MiB, ${(wallMs / 1000).toFixed(1)} s wall${result?.passed === false ? ', scenario invariants FAILED' : ''}`)
      if (wallMs > plan.virtualBudgetMs) { log(`  stopping here: that run took longer than the ${plan.virtualBudgetMs / 1000} s budget per size`); break }
    } catch (error) {
      const wallMs = performance.now() - t0
      results.virtual.runs.push({ nodes, wallMs, error: wallMs >= plan.virtualTimeoutMs ? `no result within ${plan.virtualTimeoutMs / 1000} s (stopped)` : (error as Error).message.slice(0, 500) })
      log(`  N=${nodes} failed: ${(error as Error).message.slice(0, 500)}`)
      break
    }
  }
}

async function runRealTierRss (sim: Awaited<ReturnType<typeof findSimulationApi>>, plan: Plan, results: BenchResults, log: (line: string) => void): Promise<void> {
  if (plan.realTierTimeoutMs <= 0) return
  if (sim.benchRealTier === undefined) {
    results.notes.push('benchRealTier is not exported by the simulation harness: no RSS per in-process peer in this run.')
    return
  }
  log(`real tier: benchRealTier({ nodes: ${plan.rssPeers} }) from ${sim.file}, in a child process (up to ${plan.realTierTimeoutMs / 1000} s)…`)
  try {
    const { result } = await runChild(['simulations/bench/sim-child.ts', 'real', String(plan.rssPeers), '1'], plan.realTierTimeoutMs, log)
    results.realTier = { source: `benchRealTier (${sim.file})`, nodes: plan.rssPeers, rssPerPeerBytes: num(result?.rssPerPeerBytes) ?? pick(result, /rss|memory/i, /peer|node/i), result }
    if (results.realTier.rssPerPeerBytes !== undefined) log(`  ${(results.realTier.rssPerPeerBytes / 1024 ** 2).toFixed(2)} MiB per peer`)
    else log('  benchRealTier gave no RSS-per-peer figure')
  } catch (error) {
    log(`  benchRealTier failed: ${(error as Error).message.slice(0, 300)}`)
    results.notes.push(`benchRealTier({ nodes: ${plan.rssPeers} }) did not give a result: ${(error as Error).message.slice(0, 300)}`)
  }
}

/** Reservation → final on every agent, N agents in one child process over libp2p TCP (final-inproc.ts), per size. */
async function runFinalInproc (sizes: number[], plan: Plan, results: BenchResults, log: (line: string) => void): Promise<void> {
  results.finalInproc = []
  for (const nodes of sizes) {
    log(`final-inproc: ${nodes} agents in one process over libp2p TCP, reservations one at a time…`)
    try {
      const r = await runChild(['simulations/bench/final-inproc.ts', String(nodes), '--reservations', String(plan.inprocReservations)], plan.inprocTimeoutMs, log) as FinalInprocResult
      results.finalInproc.push(r)
      log(`  N=${nodes}: reservation → final on every agent p50 ${r.allP50Ms ?? '?'} ms, p99 ${r.allP99Ms ?? '?'} ms (${r.reservations} reservations, ${r.notFinal} not final in time); CPU ${r.cpuCores} cores, event-loop delay p99 ${r.loopDelayP99Ms} ms, RSS ${(r.rssBytes / 1024 ** 2).toFixed(0)} MiB`)
    } catch (error) {
      results.finalInproc.push({ nodes, error: (error as Error).message.slice(0, 500) })
      log(`  N=${nodes} failed: ${(error as Error).message.slice(0, 500)}`)
      break
    }
  }
}

if (process.argv[1] !== undefined && resolvePath(process.argv[1]) === resolvePath(new URL(import.meta.url).pathname)) {
  runBench(process.argv.slice(2), { stdout: s => process.stdout.write(s), stderr: s => process.stderr.write(s) })
    .then(code => { process.exit(code) })
    .catch((error: unknown) => { process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`); process.exit(1) })
}
