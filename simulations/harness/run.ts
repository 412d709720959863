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
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import { formatSize, shortId, type Placement, type Resolution } from '../../crdt/index.ts'
import { HarnessError, ScenarioError } from '../support/errors.ts'
import { initialMemory, planError, selectNodes, selectSome, streamFor, type NodeSpace } from '../scenario/plan.ts'
import { countOf, type AgentSettings, type Scenario, type ScenarioEvent, type PlacementSpec } from '../scenario/schema.ts'
import { RealTier } from '../real/tier.ts'
import { VirtualTier } from '../virtual/tier.ts'
import { overCommitted, quantile, Recorder, type ChangedFinal, type Marker, type PartitionSpan } from './recorder.ts'
import type { NodeTraffic, SimNode, Tier, TierKind } from './types.ts'

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
}

export interface Progress {
  phase: 'forming' | 'timeline' | 'settling'
  tMs: number
  /** Scenario time at which the phase ends at the latest. */
  endMs: number
  running: number
  disagree: number
}

export interface Invariant {
  name: string
  passed: boolean
  detail: string
}

/** Everything a run measured. `wall` and `memory` hold the only figures that differ between two runs of one seed (virtual tier). */
export interface RunReport {
  scenario: string
  description: string
  source: string
  tier: TierKind
  transport: string
  seed: number
  nodes: number
  nodesTotal: number
  passed: boolean
  invariants: Invariant[]
  settings: {
    agent: AgentSettings
    network?: Scenario['network']
    realDegree?: number
    sampleMs: number
    settleMs: number
    holdMs: number
  }
  time: {
    /** Scenario time it took the cluster to form (everyone a member everywhere), before t = 0. */
    formedAfterMs: number
    lastEventMs: number
    endMs: number
    /** True when the run stopped because agreement held (not at the settle limit). */
    endedEarly: boolean
  }
  convergence: {
    /** Scenario time of the last write (or heal) that convergence is measured from. */
    referenceMs: number
    referenceEvent: string
    /** Until every running peer held one digest and kept it; null when that never happened. */
    allAgreeAfterMs: number | null
    /** Per running peer: time from the reference until it held the final digest. */
    peerP50Ms: number | null
    peerP99Ms: number | null
    peerMaxMs: number | null
    /** Sample period: the resolution of these figures. */
    resolutionMs: number
    episodes: Array<{ atMs: number, event: string, agreeAfterMs: number | null }>
  }
  disagreement: {
    maxPeers: number
    /** Change points `[t ms, disagreeing peers, running peers]`. */
    series: Array<[number, number, number]>
    samples: number
  }
  partitions: PartitionSpan[]
  events: Marker[]
  overCommit: {
    /** Over-committed (node, peer view) pairs after convergence: must be 0. */
    afterConvergence: number
    /** Largest count of over-committed nodes in any one peer's view at any sample. */
    maxSeenDuringRun: number
    details: Array<{ peer: string, node: string, committedBytes: number, allocatableBytes: number }>
  }
  finals: {
    tracked: number
    changed: number
    /** Whether the scenario changes membership (then changed finals are counted, not failed). */
    list: ChangedFinal[]
  }
  writes: {
    reservations: { attempted: number, written: number, refusedNoFit: number, failed: number }
    releases: { attempted: number, written: number, failed: number }
    /**
     * y/z pairs (docs/design.md "The y/z race"). `bothAdmitted` is not an error
     * in itself: it means both fit in the merged log (e.g. an 'any' deploy the
     * writer saw on the target was placed elsewhere once both sides' writes
     * were replayed); safety is the over-commitment check.
     */
    races: { pairs: number, bothWritten: number, oneAdmitted: number, bothRejected: number, bothAdmitted: number, loserLostConcurrentConflict: number }
    failures: string[]
  }
  outcome: {
    digest: string | null
    verdicts: Record<string, number>
    members: number
    pendingAtEnd: number
  }
  traffic: {
    /** Per peer, over the timeline (t = 0 to the end). Bytes are payload bytes. */
    gossipInPerPeer: number
    gossipOutPerPeer: number
    requestsOutPerPeer: number
    bytesInPerPeer: number
    bytesOutPerPeer: number
    /** Gossip publications over the timeline. */
    updatesPublished: number
    /** Gossip copies delivered per publication (ideal: peers − 1). */
    deliveriesPerUpdate: number
    /** Extra (duplicate) deliveries per publication: the hub's duplicates (virtual), deliveries beyond peers − 1 (real). */
    duplicateDeliveriesPerUpdate: number
    droppedPerPeer: number
  }
  agents: {
    updatesInPerPeer: number
    updatesOutPerPeer: number
    syncRoundsPerPeer: number
    syncFailures: number
    droppedInvalid: number
    droppedOversized: number
    logLines: number
  }
  tierStats: Record<string, number | string | boolean>
  errors: string[]
  wall: {
    formMs: number
    timelineMs: number
    totalMs: number
    /** CPU time of this process (user + system) over the run: steadier than wall time on a busy machine. */
    cpuMs: number
    /** Scenario milliseconds per wall millisecond. */
    speed: number
  } & Record<string, number>
  memory: {
    baselineRssBytes: number
    rssAfterFormBytes: number
    rssPeakBytes: number
    rssPerPeerBytes: number
    heapUsedBytes: number
    heapPerPeerBytes: number
  }
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
  const races: Array<{ y: string, z: string, yWritten: boolean, zWritten: boolean }> = []

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
    const trafficAtOrigin = new Map(tier.nodes.map(x => [x.id, tier.traffic(x)]))
    const timelineStart = performance.now()
    const lastEventMs = scenario.timeline.at(-1)?.atMs ?? 0
    const endLimitMs = lastEventMs + scenario.settleMs
    let phase: Progress['phase'] = 'timeline'
    let endedEarly = false
    const tick = (): boolean => {
      const t = tier.now()
      const s = timelineRecorder.sample(t)
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
      await applyEvent(context, event)
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
    const agreeing = allAgreeAt !== undefined
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

    const invariants: Invariant[] = []
    invariants.push({
      name: 'converged',
      passed: agreeing,
      detail: agreeing
        ? `all ${running.length} running peers hold one verdict digest, ${allAgreeAt! - reference.atMs} ms after the ${reference.label}`
        : `peers still disagree at the end (${timelineRecorder.sampleDisagree.at(-1) ?? '?'} of ${running.length} off the majority digest) after ${scenario.settleMs} ms of settling`
    })
    invariants.push({
      name: 'no over-commitment',
      passed: overs.length === 0,
      detail: overs.length === 0 ? 'no node is committed beyond its allocatable memory in any peer\'s view' : `${overs.length} over-committed node views, e.g. ${overs[0].node} at ${formatSize(overs[0].committedBytes)} of ${formatSize(overs[0].allocatableBytes)} (seen by ${overs[0].peer})`
    })
    invariants.push({
      name: 'final verdicts never change',
      passed: timelineRecorder.changedFinalsCount === 0,
      detail: timelineRecorder.changedFinalsCount === 0
        ? `${timelineRecorder.finalsTracked} final decisions tracked, none changed`
        : `${timelineRecorder.changedFinalsCount} final decisions changed (listed in the report), e.g. ${timelineRecorder.changedFinals[0].id} on ${timelineRecorder.changedFinals[0].node}: ${timelineRecorder.changedFinals[0].before} → ${timelineRecorder.changedFinals[0].after}`
    })
    if (scenario.expect.finalAtEnd) {
      invariants.push({
        name: 'every verdict final at the end',
        passed: pendingAtEnd === 0,
        detail: pendingAtEnd === 0 ? 'no tentative verdict on any running peer' : `${pendingAtEnd} tentative verdicts (summed over running peers) at the end`
      })
    }
    invariants.push({
      name: 'no agent errors',
      passed: tier.errors.length === 0,
      detail: tier.errors.length === 0 ? 'no handler threw' : tier.errors[0].split('\n')[0]
    })

    const traffic = trafficOf(tier, trafficAtOrigin, running.length)
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
        pendingAtEnd
      },
      traffic,
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
    return report
  } finally {
    await tier.close()
  }
}

// ------------------------------------------------------------------ planning

interface TimelinePlan {
  /** Nodes some event crashes: the virtual tier gives them a data dir to restart from. */
  crashable: Set<number>
}

/**
 * Resolve every selector of the timeline at this node count, without running
 * anything, so an impossible scenario fails before agents start. Random
 * selectors use the same per-event streams as the run, so the dry run picks
 * the very nodes the run will.
 */
function planTimeline (scenario: Scenario, n: number, seed: number): TimelinePlan {
  const space: NodeSpace = { initial: n, total: n }
  const crashable = new Set<number>()
  initialMemory(scenario, n, seed)
  for (const event of scenario.timeline) {
    const random = streamFor(seed, event.path)
    const some = (field: string, s: Parameters<typeof selectSome>[1]): number[] => selectSome(scenario, s, space, random, `${event.path}.${field}`)
    switch (event.do) {
      case 'reserve':
        some('from', event.from)
        if (event.placement.kind === 'node' && event.placement.target !== 'self') some('placement', event.placement.target)
        break
      case 'race':
        some('sides[0]', event.sides[0])
        some('sides[1]', event.sides[1])
        if (event.target !== undefined) some('target', event.target)
        break
      case 'memory': some('nodes', event.nodes); break
      case 'partition': event.groups.forEach((g, i) => some(`groups[${i}]`, g)); break
      case 'crash': for (const i of some('nodes', event.nodes)) crashable.add(i); break
      case 'restart': {
        const nodes = some('nodes', event.nodes)
        const never = nodes.filter(i => !crashable.has(i))
        if (never.length === nodes.length) throw planError(scenario, `${event.path}.nodes`, `restarts nodes that no earlier event crashes (${never.slice(0, 5).map(i => `#${i}`).join(', ')})`)
        break
      }
      case 'evict':
        some('nodes', event.nodes)
        if (event.by !== undefined) some('by', event.by)
        break
      case 'drain': some('nodes', event.nodes); break
      case 'leave': some('nodes', event.nodes); break
      case 'join': space.total += joinCount(event, n); break
      case 'release':
      case 'heal':
        break
    }
  }
  return { crashable }
}

function joinCount (event: Extract<ScenarioEvent, { do: 'join' }>, initial: number): number {
  return event.count ?? Math.max(1, Math.round((event.share ?? 0) * initial))
}

// ------------------------------------------------------------------ events

interface EventContext {
  scenario: Scenario
  tier: Tier
  recorder: Recorder
  seed: number
  initial: number
  writes: RunReport['writes']
  written: Array<{ id: string, creator: number }>
  races: Array<{ y: string, z: string, yWritten: boolean, zWritten: boolean }>
  /** Numbers race pairs across race events, so their ids never collide. */
  raceCounter: number
}

async function applyEvent (ctx: EventContext, event: ScenarioEvent): Promise<void> {
  const { scenario, tier, recorder } = ctx
  const space: NodeSpace = { initial: ctx.initial, total: tier.nodes.length }
  const random = streamFor(ctx.seed, event.path)
  const select = (field: string, s: Parameters<typeof selectSome>[1]): SimNode[] => selectSome(scenario, s, space, random, `${event.path}.${field}`).map(i => tier.nodes[i])
  const at = tier.now()
  const mark = (role: Marker['role'], label: string): void => { recorder.mark({ atMs: round(at), kind: event.do, role, label }) }
  // Many writes at once: concurrent on real agents (a real race), one after
  // the other on virtual ones (same virtual instant, reproducible order).
  const all = async <T>(tasks: Array<() => Promise<T>>): Promise<T[]> => {
    if (tier.kind === 'real') return await Promise.all(tasks.map(async t => await t()))
    const out: T[] = []
    for (const t of tasks) out.push(await t())
    return out
  }

  switch (event.do) {
    case 'reserve': {
      const writers = writable(select('from', event.from))
      const count = countOf(event.count, ctx.initial)
      const tasks = Array.from({ length: count }, (_, k) => async () => {
        const writer = writers[k % writers.length]
        const id = event.id.includes('{i}') ? event.id.replaceAll('{i}', String(k)) : count > 1 ? `${event.id}-${k}` : event.id
        const placement = placementFor(event.placement, writer, tier, scenario, space, random, event.path)
        await reserve(ctx, writer, id, event.sizeBytes, placement, event.priority)
      })
      await all(tasks)
      mark('write', `reserve ${count} × ${formatSize(event.sizeBytes)} (${describePlacement(event.placement)})`)
      return
    }
    case 'race': {
      const ys = writable(select('sides[0]', event.sides[0]))
      const zs = writable(select('sides[1]', event.sides[1]))
      const targets = event.target !== undefined ? select('target', event.target) : tier.nodes.filter(x => x.state === 'running')
      const tasks: Array<() => Promise<void>> = []
      // Successive race events start on different targets, so one race does
      // not land on the memory another race left behind.
      const offset = ctx.raceCounter
      const pairs = countOf(event.pairs, ctx.initial)
      for (let p = 0; p < pairs; p++) {
        const yWriter = ys[p % ys.length]
        const zWriter = zs[p % zs.length]
        const target = targets[(offset + p) % targets.length]
        const view = yWriter.agent?.resolution().nodes.get(target.id)
        const headroom = view === undefined ? 0 : view.allocatableBytes - view.committedBytes
        const n = ctx.raceCounter++
        const pair = { y: `${event.id}-${n}-y`, z: `${event.id}-${n}-z`, yWritten: false, zWritten: false }
        ctx.races.push(pair)
        ctx.writes.races.pairs++
        if (headroom <= 0) continue
        const yBytes = Math.max(1, Math.floor(headroom * event.shares[0]))
        const zBytes = Math.max(1, Math.floor(headroom * event.shares[1]))
        const placement: Placement = { kind: 'node', node: target.id }
        tasks.push(async () => { pair.yWritten = await reserve(ctx, yWriter, pair.y, yBytes, placement, 0) })
        tasks.push(async () => { pair.zWritten = await reserve(ctx, zWriter, pair.z, zBytes, placement, 0) })
      }
      await all(tasks)
      mark('write', `race ${pairs} y/z pair${pairs === 1 ? '' : 's'}`)
      return
    }
    case 'release': {
      const matching = ctx.written.filter(w => (event.ids?.includes(w.id) ?? false) || (event.prefix !== undefined && w.id.startsWith(event.prefix)))
      const sorted = [...matching].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      const chosen = sorted.slice(0, Math.ceil(event.share * sorted.length))
      await all(chosen.map(w => async () => {
        ctx.writes.releases.attempted++
        const creator = tier.nodes[w.creator]
        const agent = creator.state === 'running' ? creator.agent : tier.nodes.find(x => x.state === 'running' && x.agent?.resolution().verdicts.has(w.id))?.agent
        if (agent === undefined) { fail(ctx, `release ${w.id}: no running peer holds it`); return }
        try {
          await agent.release(w.id)
          ctx.writes.releases.written++
        } catch (error) {
          fail(ctx, `release ${w.id}: ${(error as Error).message}`)
        }
      }))
      mark('write', `release ${chosen.length}`)
      return
    }
    case 'memory': {
      const nodes = select('nodes', event.nodes)
      for (const node of nodes) {
        const sample = await node.probe.sample()
        const totalBytes = event.totalBytes ?? sample.totalBytes
        const availableBytes = Math.min(totalBytes, event.availableBytes ?? (event.totalBytes !== undefined ? totalBytes : sample.availableBytes))
        node.probe.set({ totalBytes, availableBytes })
      }
      mark('write', `memory of ${nodes.length} node${nodes.length === 1 ? '' : 's'}${event.totalBytes !== undefined ? ` → ${formatSize(event.totalBytes)} total` : ''}${event.availableBytes !== undefined ? ` (${formatSize(event.availableBytes)} available)` : ''}`)
      return
    }
    case 'partition': {
      const groups = event.groups.map((g, i) => selectSome(scenario, g, space, random, `${event.path}.groups[${i}]`))
      // A node listed twice stays on the first side that lists it.
      const seen = new Set<number>()
      const sides = groups.map(g => g.filter(i => !seen.has(i) && (seen.add(i), true)))
      await tier.partition(sides)
      const rest = tier.nodes.length - seen.size
      const spans = sides.map((g, i) => ({ name: event.names[i], size: g.length }))
      if (rest > 0) spans.push({ name: 'rest', size: rest })
      recorder.startPartition(round(at), spans)
      mark('cut', `partition ${spans.map(s => `${s.name}:${s.size}`).join(' | ')}`)
      return
    }
    case 'heal':
      await tier.heal()
      recorder.endPartition(round(at))
      mark('heal', 'heal')
      return
    case 'crash': {
      const nodes = select('nodes', event.nodes).filter(x => x.state === 'running')
      for (const node of nodes) await tier.crash(node)
      mark('fault', `crash ${nodes.length}`)
      return
    }
    case 'restart': {
      const nodes = select('nodes', event.nodes).filter(x => x.state === 'crashed' && x.dataDir !== undefined)
      for (const node of nodes) await tier.restart(node)
      mark('write', `restart ${nodes.length}`)
      return
    }
    case 'join': {
      const count = joinCount(event, ctx.initial)
      const sizes = Array.from({ length: count }, (_, k) => event.memoryBytes ?? scenario.memoryBytes[(tier.nodes.length + k) % scenario.memoryBytes.length])
      await tier.addNodes(sizes, undefined, event.clockSkewMs)
      mark('write', `join ${count}${event.clockSkewMs !== undefined ? ` (clocks ${event.clockSkewMs > 0 ? '+' : ''}${event.clockSkewMs} ms off)` : ''}`)
      return
    }
    case 'evict': {
      const targets = select('nodes', event.nodes)
      const byPool = event.by !== undefined ? select('by', event.by) : tier.nodes
      for (const target of targets) {
        const by = byPool.find(x => x !== target && x.state === 'running' && x.agent?.resolution().members.includes(target.id))
        if (by === undefined) { fail(ctx, `evict ${target.id}: no running member sees it as a member`); continue }
        try {
          await by.agent!.evict(target.id)
        } catch (error) {
          fail(ctx, `evict ${target.id} by node ${by.index}: ${(error as Error).message}`)
        }
      }
      mark('write', `evict ${targets.length}`)
      return
    }
    case 'drain': {
      const nodes = select('nodes', event.nodes)
      for (const node of nodes) {
        try {
          await node.agent?.drain()
        } catch (error) {
          fail(ctx, `drain node ${node.index}: ${(error as Error).message}`)
        }
      }
      mark('write', `drain ${nodes.length}`)
      return
    }
    case 'leave': {
      const nodes = select('nodes', event.nodes).filter(x => x.state === 'running')
      for (const node of nodes) {
        try {
          await node.agent?.leave()
        } catch (error) {
          fail(ctx, `leave node ${node.index}: ${(error as Error).message}`)
        }
      }
      mark('write', `leave ${nodes.length}`)
    }
  }
}

/** The running nodes of a selection; all of them when none runs (the writes then fail and are counted). */
function writable (nodes: SimNode[]): SimNode[] {
  const running = nodes.filter(x => x.state === 'running')
  return running.length > 0 ? running : nodes
}

/** Write one reservation through `writer`'s agent; true when it was written. */
async function reserve (ctx: EventContext, writer: SimNode, id: string, bytes: number, placement: Placement, priority: number): Promise<boolean> {
  ctx.writes.reservations.attempted++
  const agent = writer.agent
  if (writer.state !== 'running' || agent === undefined) {
    fail(ctx, `reserve ${id}: node ${writer.index} is down`)
    return false
  }
  try {
    const result = await agent.reserve({ id, bytes, placement, priority })
    if (!result.written) {
      ctx.writes.reservations.refusedNoFit++
      return false
    }
    ctx.writes.reservations.written++
    ctx.written.push({ id, creator: writer.index })
    return true
  } catch (error) {
    fail(ctx, `reserve ${id} on node ${writer.index}: ${(error as Error).message}`)
    return false
  }
}

function fail (ctx: EventContext, message: string): void {
  if (message.startsWith('reserve')) ctx.writes.reservations.failed++
  else if (message.startsWith('release')) ctx.writes.releases.failed++
  if (ctx.writes.failures.length < 20) ctx.writes.failures.push(message)
}

function placementFor (spec: PlacementSpec, writer: SimNode, tier: Tier, scenario: Scenario, space: NodeSpace, random: () => number, path: string): Placement {
  switch (spec.kind) {
    case 'any': return { kind: 'any' }
    case 'all': return { kind: 'all' }
    case 'spread': return { kind: 'spread', count: spec.count }
    case 'node': {
      if (spec.target === 'self') return { kind: 'node', node: writer.id }
      const [first] = selectSome(scenario, spec.target, space, random, `${path}.placement`)
      return { kind: 'node', node: tier.nodes[first].id }
    }
  }
}

function describePlacement (spec: PlacementSpec): string {
  return spec.kind === 'spread' ? `spread:${spec.count}` : spec.kind === 'node' ? 'pinned' : spec.kind
}

// ------------------------------------------------------------------ measuring

function formed (nodes: SimNode[], n: number): boolean {
  return nodes.every(x => x.state !== 'running' || x.agent === undefined || x.agent.resolution().members.length >= n)
}

function pendingVerdicts (nodes: SimNode[]): number {
  let pending = 0
  for (const x of nodes) if (x.state === 'running' && x.agent !== undefined) pending += x.agent.resolution().pending
  return pending
}

function referenceOf (markers: Marker[]): { atMs: number, label: string } {
  const last = markers.filter(m => m.role === 'write' || m.role === 'heal').at(-1)
  return last === undefined ? { atMs: 0, label: 'start' } : { atMs: last.atMs, label: `${last.kind} at ${last.atMs} ms` }
}

function episodesOf (recorder: Recorder): RunReport['convergence']['episodes'] {
  const relevant = recorder.markers.filter(m => m.role === 'write' || m.role === 'heal')
  const times = [...new Set(recorder.markers.map(m => m.atMs))].sort((a, b) => a - b)
  const out: RunReport['convergence']['episodes'] = []
  for (const at of [...new Set(relevant.map(m => m.atMs))]) {
    const next = times.find(t => t > at) ?? Infinity
    const agreed = recorder.agreedAfter(at, next)
    out.push({ atMs: at, event: relevant.filter(m => m.atMs === at).map(m => m.kind).join('+'), agreeAfterMs: agreed === undefined ? null : round(agreed - at) })
  }
  return out
}

function scoreRaces (races: EventContext['races'], res: Resolution | undefined, writes: RunReport['writes']): void {
  for (const race of races) {
    if (!race.yWritten || !race.zWritten || res === undefined) continue
    writes.races.bothWritten++
    const y = res.verdicts.get(race.y)
    const z = res.verdicts.get(race.z)
    const admitted = [y, z].filter(v => v?.decision === 'admitted').length
    if (admitted === 2) writes.races.bothAdmitted++
    else if (admitted === 1) {
      writes.races.oneAdmitted++
      const loser = y?.decision === 'admitted' ? z : y
      if (loser?.decisionCode === 'LostConcurrentConflict') writes.races.loserLostConcurrentConflict++
    } else writes.races.bothRejected++
  }
}

function trafficOf (tier: Tier, atOrigin: Map<string, NodeTraffic>, running: number): RunReport['traffic'] {
  const sum: NodeTraffic = { gossipIn: 0, gossipOut: 0, requestsIn: 0, requestsOut: 0, bytesIn: 0, bytesOut: 0, duplicatesIn: 0, dropped: 0 }
  for (const node of tier.nodes) {
    const now = tier.traffic(node)
    const before = atOrigin.get(node.id)
    for (const key of Object.keys(sum) as Array<keyof NodeTraffic>) sum[key] += now[key] - (before?.[key] ?? 0)
  }
  const peers = Math.max(1, tier.nodes.length)
  const per = (v: number): number => Number((v / peers).toFixed(2))
  const updates = sum.gossipOut
  const duplicates = tier.kind === 'virtual' ? sum.duplicatesIn : Math.max(0, sum.gossipIn - updates * Math.max(0, running - 1))
  return {
    gossipInPerPeer: per(sum.gossipIn),
    gossipOutPerPeer: per(sum.gossipOut),
    requestsOutPerPeer: per(sum.requestsOut),
    bytesInPerPeer: Math.round(sum.bytesIn / peers),
    bytesOutPerPeer: Math.round(sum.bytesOut / peers),
    updatesPublished: updates,
    deliveriesPerUpdate: updates > 0 ? Number((sum.gossipIn / updates).toFixed(3)) : 0,
    duplicateDeliveriesPerUpdate: updates > 0 ? Number((duplicates / updates).toFixed(3)) : 0,
    droppedPerPeer: per(sum.dropped)
  }
}

function agentTotals (nodes: SimNode[], running: number, logLines: number): RunReport['agents'] {
  const t = { updatesIn: 0, updatesOut: 0, syncRounds: 0, syncFailures: 0, droppedInvalid: 0, droppedOversized: 0 }
  for (const x of nodes) {
    const m = x.agent?.metrics
    if (m === undefined) continue
    t.updatesIn += m.updatesIn
    t.updatesOut += m.updatesOut
    t.syncRounds += m.syncRounds
    t.syncFailures += m.syncFailures
    t.droppedInvalid += m.droppedInvalid
    t.droppedOversized += m.droppedOversized
  }
  const per = (v: number): number => Number((v / Math.max(1, running)).toFixed(2))
  return {
    updatesInPerPeer: per(t.updatesIn),
    updatesOutPerPeer: per(t.updatesOut),
    syncRoundsPerPeer: per(t.syncRounds),
    syncFailures: t.syncFailures,
    droppedInvalid: t.droppedInvalid,
    droppedOversized: t.droppedOversized,
    logLines
  }
}

let collectGarbage: (() => void) | undefined | null

/** RSS and heap now; with `gc`, after a full collection (V8's gc exposed at run time, once). */
function memory (gc: boolean): { rss: number, heapUsed: number } {
  if (gc) {
    if (collectGarbage === undefined) collectGarbage = exposeGc()
    collectGarbage?.()
  }
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed }
}

function exposeGc (): (() => void) | null {
  const global = globalThis as { gc?: () => void }
  if (typeof global.gc === 'function') return global.gc
  try {
    // The flag must be set before a context is created; a fresh context then has `gc`.
    v8.setFlagsFromString('--expose-gc')
    return vm.runInNewContext('gc') as () => void
  } catch {
    return null
  }
}

function cpuMsSince (start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start)
  return Math.round((used.user + used.system) / 1000)
}

function round (ms: number): number {
  return Math.round(ms * 1000) / 1000
}

function nullable (v: number | undefined): number | null {
  return v === undefined ? null : round(v)
}
