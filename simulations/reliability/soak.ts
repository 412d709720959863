/**
 * Soak: a real in-process cluster under churn for M minutes, sampled every
 * 10 s, to show that memory and the ledger grow as they should (with the
 * reservations ever made) and nothing else (leaks, queues, timers).
 *
 *   npx tsx simulations/reliability/soak.ts --minutes M [--agents 6] [--rate 5] [--live 150] [--heartbeat-ms 1000]
 *     [--extra-agents 4] [--seed S] [--out DIR] [--restart-new-port]
 *   npm run soak -- --minutes M
 *
 * Churn, all at once: reservations at a steady rate on random agents (HTTP),
 * releases keeping about `--live` of them admitted; and, one after another with
 * gaps, partitions into two halves that heal (block/unblock), an agent stopped
 * and restarted from its data dir, and a new agent joining (up to agents + 4).
 * After every heal, restart and join, the running agents must reach the same
 * verdictsDigest.
 *
 * Samples: process RSS and heap, each agent's ledger bytes on disk (GET
 * /v1/state ledgerBytes) and in memory (Y.encodeStateAsUpdate size), event-loop
 * delay p99 (perf_hooks), how many distinct digests the running agents hold.
 * Writes `<out>/soak-<date>.json` and `<out>/soak-<date>.svg` (RSS and ledger
 * size over time; partitions shaded) and prints a summary: RSS slope over the
 * second half (MB/min), ledger bytes per reservation ever made, convergence.
 *
 * Run under `node --expose-gc` (e.g. `npx tsx --expose-gc simulations/reliability/soak.ts …`)
 * and each sample is taken after a full collection, so heap figures are live
 * memory, not collector timing.
 *
 * Real time, real libp2p over TCP on 127.0.0.1, real fsynced data dirs; only the
 * memory probe is fake. Every agent shares this one process, so RSS is the
 * cluster's, not one agent's.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { createHash } from 'node:crypto'
import * as Y from 'yjs'
import { resolve as resolveLedger } from '../../crdt/index.ts'
import { api, GiB, startAgent, waitFor, type TestAgent } from '../support/cluster.ts'
import { numberFlag, parseArgs, UsageError, type FlagSpec } from '../../cli/args.ts'
import { seededRandom } from '../support/random.ts'
import { el, polyline, px, svgDocument, svgOpen, text } from '../support/svg.ts'
import { sleep } from '../support/wait.ts'
import { slope } from '../support/slope.ts'

export { slope }

const MiB = 1024 * 1024
/** The 30-minute run's pacing; shorter runs scale these down (at most 10×). */
const PARTITION_HOLD_MS = 15_000
const STOPPED_MS = 10_000
const EVENT_GAP_MS = 20_000
const SAMPLE_INTERVAL_MS = 10_000
/** A heal that takes longer than this (writes continuing) is retried with writes paused. */
const CONVERGE_BUSY_MS = 30_000
const CONVERGE_QUIET_MS = 30_000

export interface SoakOptions {
  minutes: number
  agents?: number
  /** Reservations per second across the cluster. */
  rate?: number
  /** Admitted reservations kept around; beyond this the oldest is released. */
  live?: number
  seed?: number
  outDir?: string
  /** Heartbeat interval of every agent (default 1000 ms; the product default is 5000). */
  heartbeatMs?: number
  /** Agents that may join during the run, beyond `agents` (default 4). */
  extraAgents?: number
  /** Where a stopped agent comes back: its old TCP port (default, like a fixed port) or a new one. */
  restartPort?: 'same' | 'new'
  log?: (line: string) => void
}

export interface SoakSample {
  tMs: number
  rssBytes: number
  heapUsedBytes: number
  externalBytes: number
  eventLoopP99Ms: number
  eventLoopMaxMs: number
  /** One full resolve() of the first running agent's ledger: the CPU every change costs each agent. */
  resolveMs: number
  agents: number
  /** Persisted ledger bytes per running agent (GET /v1/state ledgerBytes). */
  ledgerBytes: number[]
  /** Y.encodeStateAsUpdate size per running agent. */
  stateBytes: number[]
  distinctDigests: number
  /** Fewest and most open peer connections of any running agent. */
  peersMin: number
  peersMax: number
  reservationsMade: number
  released: number
  partitioned: boolean
}

export interface SoakEvent {
  kind: 'partition' | 'restart' | 'join'
  atMs: number
  detail: string
  /** ms from heal/restart/join to equal digests on every running agent; -1 if never. */
  convergedMs: number
  /** Writes had to be paused for the agents to agree. */
  quiesced: boolean
  /** When they never agreed: what each running agent held. */
  diagnosis?: AgentDiagnosis[]
}

export interface AgentDiagnosis {
  self: string
  digest: string
  peers: number
  members: number
  reservations: number
  pending: number
  /** Yjs structs waiting for missing dependencies (null when none). */
  pendingStructs: boolean
  /** Hash of the Yjs state vector: equal vectors mean equal documents. */
  stateVector: string
  joined: boolean
  readOnly?: string
}

export interface SoakReport {
  startedAt: string
  minutes: number
  seed: number
  options: { agents: number, extraAgents: number, rate: number, live: number, heartbeatMs: number, restartPort: 'same' | 'new' }
  durationMs: number
  samples: SoakSample[]
  events: SoakEvent[]
  counts: { reservationsMade: number, acknowledged: number, doesNotFit: number, released: number, releaseNotFound: number, unavailable: number, otherErrors: number }
  summary: {
    rssStartMB: number
    rssEndMB: number
    rssMaxMB: number
    rssSlopeSecondHalfMBPerMin: number
    heapStartMB: number
    heapEndMB: number
    heapSlopeSecondHalfMBPerMin: number
    ledgerBytesEnd: number
    stateBytesEnd: number
    ledgerBytesPerReservation: number
    stateBytesPerReservation: number
    eventLoopP99MaxMs: number
    eventLoopP99MedianMs: number
    resolveMsStart: number
    resolveMsEnd: number
    heals: number
    healsConverged: number
    healConvergeMaxMs: number
    finalConverged: boolean
    finalConvergeMs: number
    overCommittedNodes: number
    /** The heap grows no faster than the ledgers it holds (×20, + 1 MB/min): whether memory follows the ledger, not whether it is bounded (simulations/reliability/bounded.ts judges that, against real processes). */
    heapFollowsLedger: boolean
    verdict: string
  }
  agentMetrics: Array<Record<string, number>>
}

const mb = (bytes: number): number => Math.round(bytes / MiB * 10) / 10


function diagnose (agents: TestAgent[]): AgentDiagnosis[] {
  return agents.map(a => {
    const agent = a.daemon.agent
    const state = agent.state()
    return {
      self: agent.self.slice(-6),
      digest: state.verdictsDigest.slice(0, 12),
      peers: state.peers.length,
      members: state.members.length,
      reservations: state.reservations,
      pending: state.pending,
      pendingStructs: agent.ledger.hasPending(),
      stateVector: createHash('sha256').update(agent.ledger.stateVector()).digest('hex').slice(0, 12),
      joined: state.joined,
      readOnly: state.readOnly
    }
  })
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? 0 : s[Math.floor(s.length / 2)] }

export async function runSoak (options: SoakOptions): Promise<{ report: SoakReport, jsonPath: string, svgPath: string }> {
  const log = options.log ?? ((line: string) => { process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`) })
  const totalMs = Math.max(1000, options.minutes * 60_000)
  const scale = Math.min(1, Math.max(0.1, totalMs / 1_800_000))
  const nAgents = options.agents ?? 6
  const rate = options.rate ?? 5
  const liveCap = options.live ?? 150
  const seed = options.seed ?? Date.now() % 2 ** 31
  const restartPort = options.restartPort ?? 'same'
  const heartbeatMs = options.heartbeatMs ?? 1000
  const extraAgents = options.extraAgents ?? 4
  const random = seededRandom(seed)
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]
  const outDir = options.outDir ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'results')
  const startedAt = new Date()
  const t0 = Date.now()
  const now = (): number => Date.now() - t0
  log(`soak: ${options.minutes} min, ${nAgents} agents (+${extraAgents} joining), ${rate} reservations/s, heartbeat ${heartbeatMs} ms, seed ${seed}`)

  const common = { totalBytes: 64 * GiB, cluster: 'soak', heartbeatIntervalMs: heartbeatMs, syncIntervalMs: 2000 }
  const all: TestAgent[] = []
  const running = new Set<TestAgent>()
  const first = await startAgent(common)
  all.push(first); running.add(first)
  for (const a of await Promise.all(Array.from({ length: nAgents - 1 }, async () => await startAgent({ ...common, bootstrap: first.daemon.info.multiaddrs })))) { all.push(a); running.add(a) }
  await waitFor('all agents joined', () => [...running].every(a => a.daemon.agent.state().joined), 60_000)
  log(`soak: ${running.size} agents up (${now()} ms)`)

  const counts = { reservationsMade: 0, acknowledged: 0, doesNotFit: 0, released: 0, releaseNotFound: 0, unavailable: 0, otherErrors: 0 }
  const live: string[] = []
  const events: SoakEvent[] = []
  const samples: SoakSample[] = []
  let paused = false
  let partitioned = false
  let done = false
  let seq = 0
  const runningList = (): TestAgent[] => [...running]
  const digestsEqual = (): boolean => new Set(runningList().map(a => a.daemon.agent.resolution().digest)).size === 1

  // ---- writer: a steady rate of reservations, releases keeping `liveCap` admitted.
  const writer = (async () => {
    const interval = 1000 / rate
    let next = Date.now()
    while (!done) {
      next += interval
      const wait = next - Date.now()
      if (wait > 0) await sleep(wait)
      else if (wait < -5000) next = Date.now() // fell far behind (a stall): do not burst to catch up
      if (done) break
      if (paused) continue
      const agents = runningList()
      if (agents.length === 0) continue
      try {
        if (live.length >= liveCap) {
          const k = Math.floor(random() * Math.min(20, live.length))
          const id = live[k]
          const r = await api(pick(agents), `/v1/reservations/${encodeURIComponent(id)}`, { method: 'DELETE' })
          if (r.status === 200) { counts.released++; live.splice(k, 1) } else if (r.status === 404) counts.releaseNotFound++
          else if (r.status === 503) counts.unavailable++
          else counts.otherErrors++
        }
        const id = `soak-${seed}-${seq++}`
        const bytes = (16 + Math.floor(random() * 240)) * MiB
        counts.reservationsMade++
        const r = await api(pick(agents), '/v1/reservations', { body: { id, bytes, placement: random() < 0.1 ? 'spread:2' : 'any' } })
        if (r.status === 201) { counts.acknowledged++; live.push(id) } else if (r.status === 200 && r.body.written === false) counts.doesNotFit++
        else if (r.status === 503) counts.unavailable++
        else counts.otherErrors++
      } catch {
        // The agent was being stopped under us: count and go on.
        counts.otherErrors++
      }
    }
  })()

  // ---- sampler: every 10 s (and at the start and the end).
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  const sample = async (): Promise<void> => {
    const agents = runningList()
    const ledgerBytes = await Promise.all(agents.map(async a => {
      try { return Number((await api(a, '/v1/state')).body.ledgerBytes) } catch { return -1 }
    }))
    const states = agents.map(a => a.daemon.agent.ledger.encode())
    const stateBytes = states.map(state => state.length)
    const ledger = new Y.Doc()
    Y.applyUpdate(ledger, states[0])
    const resolveStart = performance.now()
    resolveLedger(ledger)
    const resolveMs = Math.round((performance.now() - resolveStart) * 100) / 100
    // With --expose-gc, measure live memory rather than where the collector happens to be.
    ;(globalThis as { gc?: () => void }).gc?.()
    const mem = process.memoryUsage()
    const s: SoakSample = {
      tMs: now(),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      externalBytes: mem.external,
      eventLoopP99Ms: Math.round(loop.percentile(99) / 1e4) / 100,
      eventLoopMaxMs: Math.round(loop.max / 1e4) / 100,
      resolveMs,
      agents: agents.length,
      ledgerBytes,
      stateBytes,
      distinctDigests: new Set(agents.map(a => a.daemon.agent.resolution().digest)).size,
      peersMin: Math.min(...agents.map(a => a.daemon.network.peers().length)),
      peersMax: Math.max(...agents.map(a => a.daemon.network.peers().length)),
      reservationsMade: counts.reservationsMade,
      released: counts.released,
      partitioned
    }
    loop.reset()
    samples.push(s)
    log(`sample t=${Math.round(s.tMs / 1000)}s rss ${mb(s.rssBytes)} MB heap ${mb(s.heapUsedBytes)} MB ledger ${Math.max(...ledgerBytes)} B state ${Math.max(...stateBytes)} B loop p99 ${s.eventLoopP99Ms} ms resolve ${s.resolveMs} ms agents ${s.agents} digests ${s.distinctDigests} peers ${s.peersMin}-${s.peersMax} made ${s.reservationsMade}${partitioned ? ' (partitioned)' : ''}`)
  }
  await sample()
  const sampler = (async () => {
    let next = Date.now() + SAMPLE_INTERVAL_MS
    while (!done) {
      await sleep(Math.max(0, Math.min(500, next - Date.now())))
      if (done) break
      if (Date.now() >= next) { next += SAMPLE_INTERVAL_MS; await sample() }
    }
  })()

  /** Wait for equal digests with writes going on; then, if need be, with writes paused. */
  const converge = async (kind: SoakEvent['kind'], detail: string): Promise<void> => {
    const start = Date.now()
    let quiesced = false
    let convergedMs = -1
    try {
      await waitFor('equal digests', digestsEqual, CONVERGE_BUSY_MS, 20)
      convergedMs = Date.now() - start
    } catch {
      quiesced = true
      paused = true
      try {
        await waitFor('equal digests (writes paused)', digestsEqual, CONVERGE_QUIET_MS, 20)
        convergedMs = Date.now() - start
      } catch {}
      paused = false
    }
    const diagnosis = convergedMs >= 0 ? undefined : diagnose(runningList())
    events.push({ kind, atMs: start - t0, detail, convergedMs, quiesced, diagnosis })
    log(`soak: ${kind} (${detail}): ${convergedMs >= 0 ? `converged in ${convergedMs} ms${quiesced ? ' (writes paused)' : ''}` : 'DID NOT CONVERGE'}`)
    for (const d of diagnosis ?? []) log(`soak:   ${JSON.stringify(d)}`)
  }

  // ---- churn: partition, restart, partition, join, … with gaps.
  const cycle: Array<SoakEvent['kind']> = ['partition', 'restart', 'partition', 'join']
  let step = 0
  await sleep(EVENT_GAP_MS * scale / 2)
  while (now() < totalMs - 1000) {
    const kind = cycle[step++ % cycle.length]
    const agents = runningList()
    if (kind === 'partition') {
      const shuffled = [...agents].sort(() => random() - 0.5)
      const half = Math.floor(shuffled.length / 2)
      const [left, right] = [shuffled.slice(0, half), shuffled.slice(half)]
      const ids = (side: TestAgent[]): string[] => side.map(a => a.daemon.agent.self)
      await Promise.all([
        ...left.map(async a => { await a.daemon.network.block(ids(right)) }),
        ...right.map(async a => { await a.daemon.network.block(ids(left)) })
      ])
      partitioned = true
      await sleep(PARTITION_HOLD_MS * scale)
      await Promise.all(agents.map(async a => { await a.daemon.network.unblock() }))
      partitioned = false
      await converge('partition', `${left.length}|${right.length} for ${Math.round(PARTITION_HOLD_MS * scale)} ms`)
    } else if (kind === 'restart' || (kind === 'join' && all.length >= nAgents + extraAgents)) {
      // Never the only holder of the bootstrap addresses: any agent, restarted through another.
      const victim = pick(agents)
      running.delete(victim)
      await victim.daemon.stop()
      await sleep(STOPPED_MS * scale)
      const through = pick(runningList())
      // Back on its old port, as a real agent on its fixed port (7646) would be:
      // the peers that dialled it (its bootstrap children) redial that address.
      // With `restartPort: 'new'` it comes back elsewhere, and whoever only knew
      // the old address never finds it again (see docs/reliability.md).
      const port = /\/tcp\/(\d+)\//.exec(victim.daemon.info.multiaddrs[0] ?? '')?.[1]
      const bootstrap = [...new Set([...(victim.options.bootstrap ?? []), ...through.daemon.info.multiaddrs])]
      let restarted: TestAgent
      try {
        restarted = await startAgent({ ...victim.options, listen: restartPort === 'same' && port !== undefined ? [`/ip4/127.0.0.1/tcp/${port}`] : ['/ip4/127.0.0.1/tcp/0'], bootstrap })
      } catch (error) {
        log(`soak: restart on port ${port} failed (${(error as Error).message}); restarting on a new port`)
        restarted = await startAgent({ ...victim.options, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap })
      }
      all[all.indexOf(victim)] = restarted
      running.add(restarted)
      await converge('restart', `${victim.daemon.agent.self.slice(-6)}${victim === first ? ' (the bootstrap agent)' : ''} down ${Math.round(STOPPED_MS * scale)} ms`)
    } else {
      const through = pick(agents)
      const joined = await startAgent({ ...common, bootstrap: through.daemon.info.multiaddrs })
      all.push(joined)
      running.add(joined)
      await waitFor('new agent joined', () => joined.daemon.agent.state().joined, 60_000)
      await converge('join', `agent ${all.length} joined`)
    }
    const gapEnd = Math.min(totalMs, now() + EVENT_GAP_MS * scale)
    while (now() < gapEnd) await sleep(Math.min(500, gapEnd - now()))
  }
  while (now() < totalMs) await sleep(Math.min(500, totalMs - now()))

  // ---- the end: stop writing, heal everything, agree, check, report.
  done = true
  await writer
  await sampler
  await Promise.all(runningList().map(async a => { await a.daemon.network.unblock() }))
  const finalStart = Date.now()
  let finalConverged = true
  try { await waitFor('final convergence', digestsEqual, 60_000, 20) } catch { finalConverged = false }
  const finalConvergeMs = Date.now() - finalStart
  await sample()
  loop.disable()
  let overCommittedNodes = 0
  for (const node of runningList()[0].daemon.agent.resolution().nodes.values()) {
    if (node.member && node.committedBytes > node.allocatableBytes) overCommittedNodes++
  }
  const agentMetrics = runningList().map(a => ({ ...a.daemon.agent.metrics }))
  await Promise.all(runningList().map(async a => { await a.daemon.stop() }))
  await Promise.all(all.map(async a => { await rm(a.dataDir, { recursive: true, force: true }) }))

  // ---- figures.
  const second = samples.filter(s => s.tMs >= totalMs / 2)
  const fitOf = (field: 'rssBytes' | 'heapUsedBytes'): number => slope(second.map(s => [s.tMs / 60_000, s[field] / MiB]))
  const last = samples[samples.length - 1]
  const firstSample = samples[0]
  const maxOf = (xs: number[]): number => xs.length === 0 ? 0 : Math.max(...xs)
  const ledgerBytesEnd = maxOf(last.ledgerBytes)
  const stateBytesEnd = maxOf(last.stateBytes)
  const heals = events.length
  const healsConverged = events.filter(e => e.convergedMs >= 0).length
  const rssSlope = fitOf('rssBytes')
  const heapSlope = fitOf('heapUsedBytes')
  // The heap "follows the ledger" when it grows no faster than the ledgers it holds
  // — one per agent in this process — with room for Yjs' object overhead over
  // the encoded size (×20; measured ≈ ×8), plus 1 MB/min of noise.
  const stateSlopeMBPerMin = slope(second.map(s => [s.tMs / 60_000, maxOf(s.stateBytes) / MiB]))
  const agentsHeld = maxOf(second.map(s => s.agents))
  const heapFollowsLedger = heapSlope <= Math.max(0, stateSlopeMBPerMin) * agentsHeld * 20 + 1
  const summary: SoakReport['summary'] = {
    rssStartMB: mb(firstSample.rssBytes),
    rssEndMB: mb(last.rssBytes),
    rssMaxMB: mb(maxOf(samples.map(s => s.rssBytes))),
    rssSlopeSecondHalfMBPerMin: Math.round(rssSlope * 100) / 100,
    heapStartMB: mb(firstSample.heapUsedBytes),
    heapEndMB: mb(last.heapUsedBytes),
    heapSlopeSecondHalfMBPerMin: Math.round(heapSlope * 100) / 100,
    ledgerBytesEnd,
    stateBytesEnd,
    ledgerBytesPerReservation: counts.reservationsMade > 0 ? Math.round(ledgerBytesEnd / counts.reservationsMade) : 0,
    stateBytesPerReservation: counts.reservationsMade > 0 ? Math.round(stateBytesEnd / counts.reservationsMade) : 0,
    eventLoopP99MaxMs: maxOf(samples.map(s => s.eventLoopP99Ms)),
    eventLoopP99MedianMs: median(samples.map(s => s.eventLoopP99Ms)),
    resolveMsStart: firstSample.resolveMs,
    resolveMsEnd: last.resolveMs,
    heals,
    healsConverged,
    healConvergeMaxMs: maxOf(events.map(e => e.convergedMs)),
    finalConverged,
    finalConvergeMs,
    overCommittedNodes,
    heapFollowsLedger,
    verdict: ''
  }
  summary.verdict = `${heapFollowsLedger ? 'heap follows the ledger' : 'HEAP OUTGROWS THE LEDGER'}: heap ${summary.heapSlopeSecondHalfMBPerMin} MB/min and RSS ${summary.rssSlopeSecondHalfMBPerMin} MB/min over the second half, ` +
    `against ${agentsHeld} ledgers growing ${Math.round(stateSlopeMBPerMin * MiB / 1024)} KiB/min each (${summary.stateBytesPerReservation} B in memory, ${summary.ledgerBytesPerReservation} B on disk per reservation ever made); ` +
    `${healsConverged}/${heals} heals converged (max ${summary.healConvergeMaxMs} ms), final ${finalConverged ? `converged in ${finalConvergeMs} ms` : 'NOT converged'}`
  const report: SoakReport = {
    startedAt: startedAt.toISOString(),
    minutes: options.minutes,
    seed,
    options: { agents: nAgents, extraAgents, rate, live: liveCap, heartbeatMs, restartPort },
    durationMs: now(),
    samples,
    events,
    counts,
    summary,
    agentMetrics
  }
  await mkdir(outDir, { recursive: true })
  const stamp = `${startedAt.toISOString().slice(0, 10)}-${startedAt.toISOString().slice(11, 16).replace(':', '')}`
  const jsonPath = join(outDir, `soak-${stamp}.json`)
  const svgPath = join(outDir, `soak-${stamp}.svg`)
  await writeFile(jsonPath, JSON.stringify(report, null, 2) + '\n')
  await writeFile(svgPath, renderSvg(report))
  return { report, jsonPath, svgPath }
}

/**
 * RSS and heap (MB, left axis) and ledger size (KiB, right axis) over time;
 * partitions shaded. Drawn with the chart pieces of simulations/support/svg.ts.
 */
export function renderSvg (report: SoakReport): string {
  const W = 900
  const H = 420
  const pad = { l: 70, r: 80, t: 40, b: 50 }
  const w = W - pad.l - pad.r
  const h = H - pad.t - pad.b
  const s = report.samples
  const tMax = Math.max(1, ...s.map(x => x.tMs))
  const memMax = Math.max(1, ...s.map(x => x.rssBytes / MiB)) * 1.1
  const ledgerOf = (x: SoakSample): number => Math.max(0, ...x.ledgerBytes) / 1024
  const stateOf = (x: SoakSample): number => Math.max(0, ...x.stateBytes) / 1024
  const ledMax = Math.max(1, ...s.map(ledgerOf), ...s.map(stateOf)) * 1.1
  const X = (t: number): number => pad.l + (t / tMax) * w
  const Ym = (v: number): number => pad.t + h - (v / memMax) * h
  const Yl = (v: number): number => pad.t + h - (v / ledMax) * h
  const out: string[] = []
  out.push(svgOpen(W, H))
  out.push(el('rect', { width: W, height: H, fill: 'white' }))
  out.push(text({ x: pad.l, y: 22, 'font-size': 14 }, `memgossip soak: ${report.minutes} min, ${report.options.agents}+ agents, ${report.counts.reservationsMade} reservations — heap ${report.summary.heapFollowsLedger ? 'follows the ledger' : 'outgrows the ledger'}`))
  for (const e of report.events.filter(e => e.kind === 'partition')) {
    const hold = PARTITION_HOLD_MS * Math.min(1, Math.max(0.1, report.minutes * 60_000 / 1_800_000))
    out.push(el('rect', { x: px(X(Math.max(0, e.atMs - hold))), y: pad.t, width: px(Math.max(1, X(e.atMs) - X(Math.max(0, e.atMs - hold)))), height: h, fill: '#f3d9d9' }))
  }
  for (const e of report.events.filter(e => e.kind !== 'partition')) {
    out.push(el('line', { x1: px(X(e.atMs)), x2: px(X(e.atMs)), y1: pad.t, y2: pad.t + h, stroke: e.kind === 'join' ? '#7a7' : '#aaa', 'stroke-dasharray': '2,3' }))
  }
  out.push(el('line', { x1: pad.l, y1: pad.t + h, x2: pad.l + w, y2: pad.t + h, stroke: 'black' }))
  out.push(el('line', { x1: pad.l, y1: pad.t, x2: pad.l, y2: pad.t + h, stroke: 'black' }))
  out.push(el('line', { x1: pad.l + w, y1: pad.t, x2: pad.l + w, y2: pad.t + h, stroke: 'black' }))
  for (let i = 0; i <= 5; i++) {
    const t = (tMax * i) / 5
    out.push(text({ x: px(X(t)), y: pad.t + h + 18, 'text-anchor': 'middle' }, `${(t / 60_000).toFixed(tMax < 600_000 ? 2 : 1)} min`))
    out.push(text({ x: pad.l - 6, y: px(Ym((memMax * i) / 5) + 4), 'text-anchor': 'end' }, `${Math.round((memMax * i) / 5)} MB`))
    out.push(text({ x: pad.l + w + 6, y: px(Yl((ledMax * i) / 5) + 4) }, `${Math.round((ledMax * i) / 5)} KiB`))
  }
  const legend: Array<[string, string, string]> = [['RSS (MB)', '#c0392b', ''], ['heap used (MB)', '#e67e22', '6,3'], ['ledger on disk (KiB)', '#2471a3', ''], ['ledger state (KiB)', '#5dade2', '6,3']]
  const [rss, heap, ledger, state] = legend
  out.push(polyline(s.map(x => [X(x.tMs), Ym(x.rssBytes / MiB)]), { color: rss[1], dash: rss[2] }))
  out.push(polyline(s.map(x => [X(x.tMs), Ym(x.heapUsedBytes / MiB)]), { color: heap[1], dash: heap[2] }))
  out.push(polyline(s.map(x => [X(x.tMs), Yl(ledgerOf(x))]), { color: ledger[1], dash: ledger[2] }))
  out.push(polyline(s.map(x => [X(x.tMs), Yl(stateOf(x))]), { color: state[1], dash: state[2] }))
  legend.forEach(([label, color, dash], i) => {
    const x = pad.l + 10 + i * 180
    out.push(el('line', { x1: x, x2: x + 24, y1: H - 12, y2: H - 12, stroke: color, 'stroke-width': 2, 'stroke-dasharray': dash !== '' ? dash : undefined }))
    out.push(text({ x: x + 30, y: H - 8 }, label))
  })
  return svgDocument(out)
}

const SOAK_USAGE = 'Usage: npx tsx simulations/reliability/soak.ts --minutes M [--agents 6] [--rate 5] [--live 150] [--heartbeat-ms 1000] [--extra-agents 4] [--seed S] [--out DIR] [--restart-new-port]\n'

const SOAK_FLAGS: Record<string, FlagSpec> = {
  minutes: { type: 'string' },
  agents: { type: 'string' },
  rate: { type: 'string' },
  live: { type: 'string' },
  'heartbeat-ms': { type: 'string' },
  'extra-agents': { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  'restart-new-port': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
}

async function main (argv: string[]): Promise<number> {
  let options: SoakOptions
  try {
    const { positionals, flags } = parseArgs(argv, SOAK_FLAGS)
    if (flags.help === true) {
      process.stdout.write(SOAK_USAGE)
      return 0
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
    const minutes = numberFlag(flags, 'minutes') ?? 1
    if (minutes <= 0) throw new UsageError('--minutes must be a positive number')
    options = {
      minutes,
      agents: numberFlag(flags, 'agents', { integer: true, min: 2 }),
      rate: numberFlag(flags, 'rate', { min: 0 }),
      live: numberFlag(flags, 'live', { integer: true, min: 1 }),
      seed: numberFlag(flags, 'seed', { integer: true }),
      heartbeatMs: numberFlag(flags, 'heartbeat-ms', { integer: true, min: 1 }),
      extraAgents: numberFlag(flags, 'extra-agents', { integer: true, min: 0 }),
      outDir: flags.out as string | undefined,
      restartPort: flags['restart-new-port'] === true ? 'new' : 'same'
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`soak: ${error.message}\n${SOAK_USAGE}`)
    return 2
  }
  const { report, jsonPath, svgPath } = await runSoak(options)
  const s = report.summary
  process.stdout.write([
    `soak: ${report.minutes} min (${Math.round(report.durationMs / 1000)} s), seed ${report.seed}`,
    `  reservations made ${report.counts.reservationsMade} (acknowledged ${report.counts.acknowledged}, does not fit ${report.counts.doesNotFit}), released ${report.counts.released}, 503 ${report.counts.unavailable}, other errors ${report.counts.otherErrors}`,
    `  RSS ${s.rssStartMB} → ${s.rssEndMB} MB (max ${s.rssMaxMB}), slope over the second half ${s.rssSlopeSecondHalfMBPerMin} MB/min; heap ${s.heapStartMB} → ${s.heapEndMB} MB, slope ${s.heapSlopeSecondHalfMBPerMin} MB/min`,
    `  ledger ${s.ledgerBytesEnd} B on disk, ${s.stateBytesEnd} B state: ${s.ledgerBytesPerReservation} B / ${s.stateBytesPerReservation} B per reservation ever made`,
    `  event-loop delay p99: median ${s.eventLoopP99MedianMs} ms, max ${s.eventLoopP99MaxMs} ms; one resolve() ${s.resolveMsStart} → ${s.resolveMsEnd} ms`,
    `  convergence: ${s.healsConverged}/${s.heals} heals/restarts/joins converged (max ${s.healConvergeMaxMs} ms); final ${s.finalConverged ? `in ${s.finalConvergeMs} ms` : 'NOT converged'}; over-committed nodes ${s.overCommittedNodes}`,
    `  ${s.verdict}`,
    `  wrote ${jsonPath}`,
    `  wrote ${svgPath}`
  ].join('\n') + '\n')
  return s.finalConverged && s.healsConverged === s.heals && s.overCommittedNodes === 0 ? 0 : 1
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, (error: unknown) => {
    process.stderr.write(`soak: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  })
}
