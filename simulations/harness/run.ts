/**
 * Plays a scenario on a tier and measures it
 * (docs/design.md "Simulation harness"). Tier-independent: the same timeline
 * drives real libp2p agents and virtual ones.
 *
 * A run:
 * 1. checks the timeline against the node count (every selector resolves)
 *    before any agent starts, so a bad scenario fails fast (exit 2);
 * 2. starts N agents and waits until the cluster has formed (every agent sees
 *    all N as members and they agree on one digest); that instant is t = 0;
 * 3. applies the events at their times, sampling at every `sample` period;
 * 4. after the last event waits up to `settle` for agreement to hold for
 *    `hold` (and, with `expect.finalAtEnd`, for every verdict to be final);
 * 5. checks the invariants and returns the report.
 *
 * The events are applied by their handlers (./events.ts), the invariants
 * checked in ./invariants.ts, the figures taken by ./measure.ts and
 * ./recorder.ts, into the report's shape (./report.ts).
 */
import { shortId } from '../../crdt/index.ts'
import { HarnessError, ScenarioError } from '../support/errors.ts'
import { initialMemory } from '../scenario/plan.ts'
import type { AgentSettings, Scenario } from '../scenario/schema.ts'
import { RealTier } from '../real/tier.ts'
import { VirtualTier } from '../virtual/tier.ts'
import { applyEvent, planTimeline, type EventContext } from './events.ts'
import { FinalityTracker } from './finality.ts'
import { checkInvariants } from './invariants.ts'
import { agentTotals, cpuMsSince, episodesOf, formed, memory, nullable, pendingVerdicts, referenceOf, round, scoreRaces, trafficOf, type RacePair } from './measure.ts'
import { overCommitted, quantile, Recorder } from './recorder.ts'
import type { RunReport } from './report.ts'
import { measureRest, type RestOptions } from './rest.ts'
import type { Tier, TierKind } from './types.ts'

export type { Invariant, RunReport } from './report.ts'

export interface RunOptions {
  tier: TierKind
  seed: number
  /** Initial node count (default: the scenario's). */
  nodes?: number
  /** Real tier transport. @default 'tcp' */
  transport?: 'tcp' | 'memory'
  /** Virtual tier: override the scenario's `network.coalesce`. */
  coalesce?: boolean
  /** Override agent intervals of the scenario (after its per-tier overrides), e.g. slower heartbeats for 100 real peers. */
  agent?: Partial<AgentSettings>
  /** Called at every sample (for a progress bar). */
  onProgress?: (progress: Progress) => void
  /** Agent and network log lines (default: kept, counted, the last few reported). */
  onLog?: (node: number, line: string) => void
  /** Force a garbage collection before measuring memory (slower; benchmarks). */
  measureHeap?: boolean
  /** After the run, let the cluster rest and measure its traffic (report `rest`; benchmarks). */
  rest?: RestOptions
}

export interface Progress {
  phase: 'forming' | 'timeline' | 'settling'
  tMs: number
  /** Scenario time at which the phase ends at the latest. */
  endMs: number
  running: number
  disagree: number
}

const KEEP_LOG_LINES = 20
/**
 * Default sample periods: virtual time is free to sample finely; real peers
 * are sampled less often so measuring does not load the event loop they share.
 */
export const DEFAULT_SAMPLE_MS: Record<TierKind, number> = { virtual: 20, real: 50 }

export async function runScenario (scenario: Scenario, options: RunOptions): Promise<RunReport> {
  const wallStart = performance.now()
  const cpuStart = process.cpuUsage()
  const n = options.nodes ?? scenario.nodes
  if (n < scenario.minNodes) throw new ScenarioError(`${scenario.source}: scenario '${scenario.name}' needs at least ${scenario.minNodes} nodes (minNodes), got ${n}`)
  const seed = options.seed >>> 0
  const plan = planTimeline(scenario, n, seed)

  const agentSettings: AgentSettings = { ...scenario.agent, ...scenario.tierAgent[options.tier], ...options.agent }
  const logLines: string[] = []
  let logCount = 0
  const log = options.onLog ?? ((node: number, line: string) => {
    logCount++
    if (/ERROR|threw|failed to apply/.test(line)) logLines.push(`node ${node}: ${line}`)
    if (logLines.length > KEEP_LOG_LINES) logLines.shift()
  })
  const sampleMs = scenario.sampleMs ?? DEFAULT_SAMPLE_MS[options.tier]
  const common = { seed, agent: agentSettings, sampleMs, log }
  const network = { ...scenario.network, ...(options.coalesce !== undefined ? { coalesce: options.coalesce } : {}) }
  const tier: Tier = options.tier === 'virtual'
    ? new VirtualTier({ ...common, network })
    : new RealTier({ ...common, transport: options.transport ?? 'tcp', degree: scenario.realDegree })

  const baselineRss = memory(options.measureHeap === true).rss
  let rssPeak = baselineRss
  const recorder = new Recorder(tier.nodes)
  const writes: RunReport['writes'] = {
    reservations: { attempted: 0, written: 0, refusedNoFit: 0, failed: 0 },
    releases: { attempted: 0, written: 0, failed: 0 },
    races: { pairs: 0, bothWritten: 0, oneAdmitted: 0, bothRejected: 0, bothAdmitted: 0, loserLostConcurrentConflict: 0 },
    failures: []
  }
  const written: Array<{ id: string, creator: number }> = []
  const races: RacePair[] = []

  try {
    // ------------------------------------------------------------ forming
    const memoryBytes = initialMemory(scenario, n, seed)
    const formStart = performance.now()
    await tier.addNodes(memoryBytes, (i) => plan.crashable.has(i))
    let formedAt: number | undefined
    await tier.runUntil(scenario.formMs, () => {
      const s = recorder.sample(tier.now())
      options.onProgress?.({ phase: 'forming', tMs: tier.now(), endMs: scenario.formMs, running: s.running, disagree: s.disagree })
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
      if (s.disagree === 0 && formed(tier.nodes, n)) { formedAt = tier.now(); return true }
      return tier.errors.length > 0
    })
    if (tier.errors.length > 0) throw new HarnessError(`an agent failed while the cluster formed: ${tier.errors[0]}`)
    if (formedAt === undefined) {
      const members = tier.nodes.map(x => x.agent?.resolution().members.length ?? 0)
      throw new HarnessError(`the cluster of ${n} did not form within ${scenario.formMs} ms of scenario time (members seen per peer: min ${Math.min(...members)}, max ${Math.max(...members)}); raise 'form' or check the network settings`)
    }
    const formWallMs = performance.now() - formStart
    const afterForm = memory(options.measureHeap === true)
    rssPeak = Math.max(rssPeak, afterForm.rss)

    tier.markOrigin()
    // Fresh measurement for the timeline.
    const timelineRecorder = new Recorder(tier.nodes)
    const finality = new FinalityTracker(() => tier.now())
    finality.attach(tier.nodes)
    const trafficAtOrigin = new Map(tier.nodes.map(x => [x.id, tier.traffic(x)]))
    const timelineStart = performance.now()
    const lastEventMs = scenario.timeline.at(-1)?.atMs ?? 0
    const endLimitMs = lastEventMs + scenario.settleMs
    let phase: Progress['phase'] = 'timeline'
    let endedEarly = false
    const tick = (): boolean => {
      const t = tier.now()
      const s = timelineRecorder.sample(t)
      finality.attach(tier.nodes)
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
      options.onProgress?.({ phase, tMs: t, endMs: endLimitMs, running: s.running, disagree: s.disagree })
      if (tier.errors.length > 0) return true
      if (phase !== 'settling') return false
      const since = timelineRecorder.agreedAfter(lastEventMs, Infinity, true)
      if (since === undefined || t - since < scenario.holdMs) return false
      if (scenario.expect.finalAtEnd && pendingVerdicts(tier.nodes) > 0) return false
      endedEarly = true
      return true
    }

    // ------------------------------------------------------------ timeline
    const context: EventContext = { scenario, tier, recorder: timelineRecorder, seed, writes, written, races, initial: n, raceCounter: 0 }
    for (const event of scenario.timeline) {
      await tier.runUntil(event.atMs, tick)
      if (tier.errors.length > 0) break
      const writtenBefore = written.length
      const writeAt = tier.now()
      await applyEvent(context, event)
      const cut = timelineRecorder.partitions.at(-1)?.toMs === undefined && timelineRecorder.partitions.length > 0
      for (const w of written.slice(writtenBefore)) finality.wrote(w.id, writeAt, cut)
      finality.attach(tier.nodes)
    }
    phase = 'settling'
    if (tier.errors.length === 0) await tier.runUntil(endLimitMs, tick)
    if (tier.now() < endLimitMs && !endedEarly && tier.errors.length === 0) endedEarly = true
    timelineRecorder.finish()
    timelineRecorder.endPartition(tier.now())
    const timelineWallMs = performance.now() - timelineStart

    // ------------------------------------------------------------ verdicts
    const running = tier.nodes.filter(x => x.state === 'running' && x.agent !== undefined)
    const majority = timelineRecorder.majorityDigest
    const reference = referenceOf(timelineRecorder.markers)
    const allAgreeAt = timelineRecorder.agreedAfter(reference.atMs, Infinity, true)
    const perPeer = running
      .map(x => timelineRecorder.lastChange(x.id))
      .filter((c): c is { digest: string, changedAt: number } => c !== undefined && c.digest === majority)
      .map(c => Math.max(0, c.changedAt - reference.atMs))
      .sort((a, b) => a - b)
    const finalRes = running.find(x => x.agent!.resolution().digest === majority)?.agent!.resolution()
    const overs = overCommitted(tier.nodes)
    const pendingAtEnd = pendingVerdicts(tier.nodes)
    // MEMGOSSIP_DEBUG_PENDING=1: say what the verdicts still tentative at the end wait for.
    // (=all: for every run, pending or not.)
    if ((pendingAtEnd > 0 || process.env.MEMGOSSIP_DEBUG_PENDING === 'all') && process.env.MEMGOSSIP_DEBUG_PENDING !== undefined) {
      for (const node of tier.nodes) {
        if (node.state !== 'running' || node.agent === undefined) continue
        const res = node.agent.resolution()
        for (const v of [...res.verdicts.values(), ...res.conflicts].filter(x => !x.final && x.status !== 'invalid').slice(0, 3)) {
          process.stderr.write(`tentative on node ${node.index}: ${v.key} (${v.status}, view ${v.view ?? '?'}) waits on ${v.waitingOn ?? '?'}: ${v.waitsFor.join(', ')}\n`)
        }
        const m = node.agent.metrics
        const open = res.proposals.filter(p => p.status === 'open').map(p => p.targets.map(shortId).join('+'))
        process.stderr.write(`  node ${node.index}: ${res.members.length} members, open view changes: ${open.length > 0 ? open.join(', ') : 'none'}\n`)
        process.stderr.write(`  node ${node.index} beacons: sent ${m.beaconsSent} (on demand ${m.beaconsOnDemand}), accepted ${m.beaconsAccepted}, forged ${m.beaconsForged}, stranger ${m.beaconsStranger}, invalid ${m.beaconsInvalid}, replayed ${m.beaconsReplayed}, ahead ${m.beaconsAhead}; dropped ${m.droppedInvalid} invalid, ${m.droppedThrottled} throttled, ${m.droppedOversized} oversized; probes ${m.probes} failed ${m.probesFailed} suspicions ${m.suspicionsRaised} dead ${m.declaredDead}\n`)
      }
    }
    scoreRaces(races, finalRes, writes)

    const invariants = checkInvariants({
      scenario,
      running: running.length,
      reference,
      allAgreeAt,
      disagreeAtEnd: timelineRecorder.sampleDisagree.at(-1),
      overs,
      recorder: timelineRecorder,
      pendingAtEnd,
      errors: tier.errors
    })

    const traffic = trafficOf(tier, trafficAtOrigin, running.length)
    const finalityReport = finality.report(running.map(x => x.id), (nodeId, id) => {
      const agent = running.find(x => x.id === nodeId)?.agent
      return agent !== undefined && agent.metrics.epoch > 0 && agent.verdict(id) === undefined
    })
    const end = memory(options.measureHeap === true)
    rssPeak = Math.max(rssPeak, end.rss)
    const scenarioEnd = tier.now()
    const report: RunReport = {
      scenario: scenario.name,
      description: scenario.description,
      source: scenario.source,
      tier: tier.kind,
      transport: tier.transport,
      seed,
      nodes: n,
      nodesTotal: tier.nodes.length,
      passed: invariants.every(i => i.passed),
      invariants,
      settings: {
        agent: agentSettings,
        ...(tier.kind === 'virtual' ? { network } : { realDegree: scenario.realDegree }),
        sampleMs: sampleMs,
        settleMs: scenario.settleMs,
        holdMs: scenario.holdMs
      },
      time: { formedAfterMs: round(formedAt), lastEventMs, endMs: round(scenarioEnd), endedEarly },
      convergence: {
        referenceMs: reference.atMs,
        referenceEvent: reference.label,
        allAgreeAfterMs: allAgreeAt === undefined ? null : round(allAgreeAt - reference.atMs),
        peerP50Ms: nullable(quantile(perPeer, 0.5)),
        peerP99Ms: nullable(quantile(perPeer, 0.99)),
        peerMaxMs: nullable(perPeer.at(-1)),
        resolutionMs: sampleMs,
        episodes: episodesOf(timelineRecorder)
      },
      disagreement: {
        maxPeers: timelineRecorder.maxDisagree,
        series: timelineRecorder.series.map(([t, d, r]) => [round(t), d, r]),
        samples: timelineRecorder.samples
      },
      partitions: timelineRecorder.partitions,
      events: timelineRecorder.markers,
      overCommit: { afterConvergence: overs.length, maxSeenDuringRun: timelineRecorder.maxOverCommitSeen, details: overs.slice(0, 20) },
      finals: { tracked: timelineRecorder.finalsTracked, changed: timelineRecorder.changedFinalsCount, list: timelineRecorder.changedFinals },
      writes,
      outcome: {
        digest: majority ?? null,
        verdicts: finalRes === undefined ? {} : { ...finalRes.counts },
        members: finalRes?.members.length ?? 0,
        pendingAtEnd,
        epochs: [Math.min(...running.map(n => n.agent!.metrics.epoch)), Math.max(...running.map(n => n.agent!.metrics.epoch))]
      },
      traffic,
      finality: finalityReport,
      agents: agentTotals(tier.nodes, running.length, logCount),
      tierStats: tier.stats(),
      errors: [...tier.errors.slice(0, 10), ...logLines],
      wall: {
        formMs: round(formWallMs),
        timelineMs: round(timelineWallMs),
        totalMs: round(performance.now() - wallStart),
        cpuMs: cpuMsSince(cpuStart),
        speed: timelineWallMs > 0 ? Number((scenarioEnd / timelineWallMs).toFixed(3)) : 0,
        ...tier.wallStats()
      },
      memory: {
        baselineRssBytes: baselineRss,
        rssAfterFormBytes: afterForm.rss,
        rssPeakBytes: rssPeak,
        rssPerPeerBytes: Math.round((afterForm.rss - baselineRss) / n),
        heapUsedBytes: end.heapUsed,
        heapPerPeerBytes: Math.round(afterForm.heapUsed / n)
      }
    }
    if (options.rest !== undefined && tier.errors.length === 0) {
      const restStart = performance.now()
      report.rest = await measureRest(tier, options.rest)
      report.wall.restMs = round(performance.now() - restStart)
    }
    return report
  } finally {
    await tier.close()
  }
}
