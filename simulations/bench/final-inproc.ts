/**
 * Reservation → final on every agent, with N agents in this process over
 * real libp2p TCP on 127.0.0.1 (issue 12: "≤ 1 s at N = 100 in-process
 * agents"). The benchmark's `final-inproc` phase runs it once per size in a
 * child process of its own:
 *
 *   npx tsx simulations/bench/final-inproc.ts N [--reservations R] [--cpu-prof FILE]
 *
 * 1. N agents start (simulations/support/cluster.ts `startCluster`: each
 *    bootstraps from the first), every timer at the agent's default (no slow
 *    beacons, anti-entropy 5 s, failure probe 1 s), real data dirs;
 * 2. it waits until every agent sees all N as members and holds one digest,
 *    then up to a minute until each holds the connections the agent aims for
 *    (every member up to 64, else 6: docs/design.md "Network"; reported as
 *    they are), then 5 s more of quiet;
 * 3. R reservations are written one at a time, by agents 0, 1, 2, … in turn;
 *    for each, the time from the `reserve` call until every agent has
 *    emitted its verdict `final` (the agent's `event` stream), and until each
 *    one has;
 * 4. it reports p50/p99/max and a histogram of both, the process's CPU
 *    (cores) and event-loop delay over the writes, and RSS.
 *
 * Prints one JSON line on stdout.
 */
import '../../agent/shim.ts'
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import { DEFAULTS, type AgentEvent } from '../../agent/agent.ts'
import { wantedConnections } from '../../agent/mesh.ts'
import { parsePlacement } from '../../crdt/index.ts'
import { numberFlag, parseArgs, UsageError } from '../../cli/args.ts'
import { histogram } from '../harness/finality.ts'
import { quantile } from '../harness/recorder.ts'
import { GiB, sleep, startCluster, stopAll, type TestAgent } from '../support/cluster.ts'
import { waitFor } from '../support/wait.ts'

/** Give one reservation this long to be final everywhere before it is counted as not final. */
const FINAL_TIMEOUT_MS = 15_000
/** Limit for the cluster to form. */
const FORM_TIMEOUT_MS = 300_000
/** Longest wait for every agent's connections once the members agree. */
const CONNECT_WAIT_MS = 60_000
/** Pause between two reservations, so each is measured on a quiet cluster. */
const GAP_MS = 300
/** The quiet between forming and the writes (also the window measured at rest). */
const REST_MS = 5000

export interface FinalInprocResult {
  nodes: number
  reservations: number
  /** Wall ms from starting the agents until every one saw all N members, one digest and its connections. */
  formMs: number
  /** Per reservation: `reserve` called → final on every agent. */
  allP50Ms: number | null
  allP99Ms: number | null
  allMaxMs: number | null
  /** Per (reservation, agent): `reserve` called → final on that agent. */
  peerP50Ms: number | null
  peerP99Ms: number | null
  /** Reservations not final on every agent within `FINAL_TIMEOUT_MS`. */
  notFinal: number
  /** `[upper bound ms, count]` of the per-reservation figure (the last bound, Infinity, is `null` in JSON: above). */
  histogram: Array<[number, number]>
  /** Process CPU (user + system) over the writes, in cores. */
  cpuCores: number
  /** The same over the 5 s of quiet before the writes, and the event-loop delay then (absent from results written before 2026-12-07, which the report still renders). */
  restCpuCores?: number
  restLoopDelayP99Ms?: number
  /** Suspicions the agents raised (each suspector once) in those 5 s of quiet, and over the writes: a starved thread answers probes late. */
  restSuspicions?: number
  suspicions?: number
  /** Event-loop delay over the writes (ms). */
  loopDelayP50Ms: number
  loopDelayP99Ms: number
  loopDelayMaxMs: number
  /** RSS after the writes, and per agent above the process's RSS before any agent started. */
  rssBytes: number
  rssPerAgentBytes: number
  /** Connections per agent once formed (min, max). */
  connections: [number, number]
  /** Beacons sent and pulls asked, summed over the agents during the writes (where the time goes). */
  beaconsSent: number
  beaconPulls: number
  syncRounds: number
}

export async function benchFinalInproc (options: { nodes: number, reservations?: number, log?: (line: string) => void, cpuProfile?: string }): Promise<FinalInprocResult> {
  const n = options.nodes
  const count = options.reservations ?? 20
  const log = options.log ?? (() => {})
  const baselineRss = process.memoryUsage().rss
  const formStart = performance.now()
  const agents = await startCluster(n, {
    cluster: 'final-inproc',
    totalBytes: 64 * GiB,
    heartbeatIntervalMs: DEFAULTS.heartbeatIntervalMs,
    syncIntervalMs: DEFAULTS.syncIntervalMs
  })
  try {
    const want = Math.min(n - 1, wantedConnections(n, DEFAULTS.targetPeers))
    const formed = (): boolean => {
      const res = agents.map(a => a.daemon.agent.resolution())
      return res.every(r => r.members.length === n) && new Set(res.map(r => r.digest)).size === 1
    }
    await waitFor(`${n} agents to see every member and hold one digest`, formed, FORM_TIMEOUT_MS, 250).catch((error: unknown) => {
      // Say how far it got: members seen, digests held, connections.
      const members = agents.map(a => a.daemon.agent.resolution().members.length)
      const links = agents.map(a => a.daemon.network.peers().length)
      throw new Error(`${(error as Error).message} (members seen per agent ${Math.min(...members)}–${Math.max(...members)}, ${new Set(agents.map(a => a.daemon.agent.resolution().digest)).size} digests, connections ${Math.min(...links)}–${Math.max(...links)})`)
    })
    // Then the connections the agent aims for; beyond a view of 64 it dials a
    // few per sync round, and anti-entropy backs off, so this is given a
    // minute and then measured as it is (the result says how many there were).
    await waitFor(`${want} connections per agent`, () => agents.every(a => a.daemon.network.peers().length >= want), CONNECT_WAIT_MS, 250).catch(() => {})
    const formMs = performance.now() - formStart
    const conns = agents.map(a => a.daemon.network.peers().length)
    log(`final-inproc ${n}: formed in ${(formMs / 1000).toFixed(1)} s (connections ${Math.min(...conns)}–${Math.max(...conns)} per agent)`)
    // The quiet before the writes, measured: what the agents cost at rest is
    // the CPU the writes cannot have.
    // Beacons sent, pulls asked, sync rounds and suspicions raised, summed over the agents.
    const counters = (): number[] => {
      let sent = 0; let pulls = 0; let syncs = 0; let suspicions = 0
      for (const a of agents) { const m = a.daemon.agent.metrics; sent += m.beaconsSent; pulls += m.beaconPulls; syncs += m.syncRounds; suspicions += m.suspicionsRaised }
      return [sent, pulls, syncs, suspicions]
    }
    const restLoad = measureLoad()
    const restBefore = counters()
    await sleep(REST_MS)
    const rest = restLoad()
    const restSuspicions = counters()[3] - restBefore[3]
    log(`final-inproc ${n}: at rest ${rest.cpuCores} cores, event-loop delay p99 ${delayMs(rest.delay.percentile(99))} ms, ${restSuspicions} suspicions raised`)

    const everywhere: number[] = []
    const perPeer: number[] = []
    let notFinal = 0
    const before = counters()
    // --cpu-prof FILE: a CPU profile of the writes only (formation left out), for Chrome's DevTools.
    const profiler = options.cpuProfile !== undefined ? new Session() : undefined
    if (profiler !== undefined) { profiler.connect(); await profiler.post('Profiler.enable'); await profiler.post('Profiler.start') }
    const writesLoad = measureLoad()
    for (let i = 0; i < count; i++) {
      const id = `final-${n}-${i}`
      const times = await reserveAndWait(agents, agents[i % n], id)
      for (const t of times) perPeer.push(t)
      if (times.length === n) everywhere.push(Math.max(...times))
      else notFinal++
      await sleep(GAP_MS)
    }
    const writes = writesLoad()
    if (profiler !== undefined) {
      const { profile } = await profiler.post('Profiler.stop')
      await writeFile(options.cpuProfile!, JSON.stringify(profile))
      profiler.disconnect()
    }
    const after = counters()
    everywhere.sort((a, b) => a - b)
    perPeer.sort((a, b) => a - b)
    const q = (xs: number[], p: number): number | null => { const v = quantile(xs, p); return v === undefined ? null : Math.round(v * 10) / 10 }
    const rss = process.memoryUsage().rss
    return {
      nodes: n,
      reservations: count,
      formMs: Math.round(formMs),
      allP50Ms: q(everywhere, 0.5),
      allP99Ms: q(everywhere, 0.99),
      allMaxMs: q(everywhere, 1),
      peerP50Ms: q(perPeer, 0.5),
      peerP99Ms: q(perPeer, 0.99),
      notFinal,
      histogram: histogram(everywhere),
      cpuCores: writes.cpuCores,
      restCpuCores: rest.cpuCores,
      restLoopDelayP99Ms: delayMs(rest.delay.percentile(99)),
      restSuspicions,
      suspicions: after[3] - before[3],
      loopDelayP50Ms: delayMs(writes.delay.percentile(50)),
      loopDelayP99Ms: delayMs(writes.delay.percentile(99)),
      loopDelayMaxMs: delayMs(writes.delay.max),
      rssBytes: rss,
      rssPerAgentBytes: Math.round((rss - baselineRss) / n),
      connections: [Math.min(...conns), Math.max(...conns)],
      beaconsSent: after[0] - before[0],
      beaconPulls: after[1] - before[1],
      syncRounds: after[2] - before[2]
    }
  } finally {
    // A data dir still being written while it is removed (ENOTEMPTY) must not throw away the figures.
    await stopAll(agents).catch((error: unknown) => { log(`final-inproc ${n}: cleaning up: ${(error as Error).message}`) })
  }
}

/** This process's CPU (cores, two decimals) and event-loop delay from now until the returned function is called. */
function measureLoad (): () => { cpuCores: number, delay: IntervalHistogram } {
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const cpu0 = process.cpuUsage()
  const wall0 = performance.now()
  return () => {
    const cpu = process.cpuUsage(cpu0)
    delay.disable()
    return { cpuCores: Number(((cpu.user + cpu.system) / 1000 / (performance.now() - wall0)).toFixed(2)), delay }
  }
}

/** A histogram's nanoseconds as milliseconds to one decimal. */
const delayMs = (ns: number): number => Math.round(ns / 1e5) / 10

/** Write one reservation through `writer`; resolves with, per agent that got there, ms from the call until its verdict was final there. */
async function reserveAndWait (agents: TestAgent[], writer: TestAgent, id: string): Promise<number[]> {
  const finalAt = new Map<TestAgent, number>()
  let done: () => void = () => {}
  const all = new Promise<void>(resolve => { done = resolve })
  const listeners = agents.map(a => {
    const listener = (event: AgentEvent): void => {
      if (event.type !== 'verdict' || event.id !== id || !event.final || finalAt.has(a)) return
      finalAt.set(a, performance.now())
      if (finalAt.size === agents.length) done()
    }
    a.daemon.agent.on('event', listener)
    return listener
  })
  const start = performance.now()
  try {
    const answer = await writer.daemon.agent.reserve({ id, bytes: 64 * 1024 ** 2, placement: parsePlacement('any') })
    if (!answer.written) throw new Error(`reservation ${id} was not written: ${answer.answer.code}`)
    await Promise.race([all, sleep(FINAL_TIMEOUT_MS)])
  } finally {
    agents.forEach((a, i) => a.daemon.agent.off('event', listeners[i]))
  }
  return [...finalAt.values()].map(t => t - start)
}

const invokedDirectly = process.argv[1] !== undefined && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)
if (invokedDirectly) {
  const usage = 'usage: npx tsx simulations/bench/final-inproc.ts N [--reservations R] [--cpu-prof FILE]'
  try {
    const { positionals, flags } = parseArgs(process.argv.slice(2), { reservations: { type: 'string' }, 'cpu-prof': { type: 'string' } })
    const [text, extra] = positionals
    if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`)
    const nodes = Number(text)
    if (text === undefined || !Number.isSafeInteger(nodes) || nodes < 2) throw new UsageError(`N: '${text ?? ''}' is not a cluster size (an integer ≥ 2)`)
    const reservations = numberFlag(flags, 'reservations', { integer: true, min: 1 })
    const result = await benchFinalInproc({ nodes, reservations, cpuProfile: flags['cpu-prof'] as string | undefined, log: line => process.stderr.write(line + '\n') })
    process.stdout.write(JSON.stringify(result) + '\n')
    process.exit(0)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`final-inproc: ${error.message}\n${usage}\n`)
    process.exitCode = 2
  }
}
