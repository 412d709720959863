/**
 * What the harness measures while a scenario plays
 * (docs/design.md "Simulation harness"), sampled at a fixed period of scenario
 * time:
 *
 * - how many running peers disagree: those not holding the majority verdict
 *   digest (`agent.resolution().digest`);
 * - per peer, when it last changed its digest, so the time each one took to
 *   reach the final digest can be read off after the run;
 * - final verdicts later changed: per node id (across restarts), the decision
 *   of each verdict the first time it was `final` there, compared with every
 *   later resolution of that node;
 * - the largest over-commitment any peer's resolution shows.
 *
 * Only resolutions that changed since the last sample are scanned (the agent
 * caches its resolution), so sampling a thousand peers stays cheap.
 */
import type { Agent } from '../../agent/agent.ts'
import type { Resolution, Verdict } from '../../crdt/index.ts'
import type { SimNode } from './types.ts'

/** A scenario event as applied, for the report and the picture. */
export interface Marker {
  atMs: number
  kind: string
  /** `write`: it wrote to the ledger (or changed what peers run); `heal`; `cut` (partition); `fault` (crash). */
  role: 'write' | 'heal' | 'cut' | 'fault'
  label: string
}

export interface PartitionSpan {
  fromMs: number
  toMs?: number
  sides: Array<{ name: string, size: number }>
}

export interface ChangedFinal {
  atMs: number
  node: string
  id: string
  key: string
  before: string
  after: string
}

export interface SampleResult {
  running: number
  disagree: number
  digests: number
}

const MAX_LISTED = 50

export class Recorder {
  /** Change points of `[t, disagreeing peers, running peers]`. */
  readonly series: Array<[number, number, number]> = []
  readonly markers: Marker[] = []
  readonly partitions: PartitionSpan[] = []
  readonly changedFinals: ChangedFinal[] = []
  changedFinalsCount = 0
  /** Final decisions tracked (node × verdict), for the report. */
  finalsTracked = 0
  samples = 0
  /** Every sample: times, disagreeing peers, running peers (the JSON carries only the change points). */
  readonly sampleTimes: number[] = []
  readonly sampleDisagree: number[] = []
  readonly sampleRunning: number[] = []
  maxDisagree = 0
  /** Largest number of over-committed nodes in any single peer's resolution at any sample. */
  maxOverCommitSeen = 0
  /** Time since which every running peer has held one digest (undefined while they disagree). */
  agreeSince: number | undefined
  majorityDigest: string | undefined

  private readonly nodes: SimNode[]
  private readonly digestOf = new Map<string, { digest: string, changedAt: number }>()
  private readonly finals = new Map<string, Map<string, string>>()
  /**
   * The resolution last scanned per agent, by a weak reference: only compared
   * with the current one, and holding it would keep a whole earlier replay of
   * every peer alive (at 1,000 peers, a second copy of the cluster's state).
   */
  private readonly seen = new WeakMap<Agent, WeakRef<Resolution>>()
  /** Per node id, the verdict map of the resolution last scanned (a new one after every replay). */
  private readonly scannedVerdicts = new Map<string, Map<string, Verdict>>()
  private last: [number, number, number] | undefined

  constructor (nodes: SimNode[]) {
    this.nodes = nodes
  }

  mark (marker: Marker): void {
    this.markers.push(marker)
  }

  startPartition (atMs: number, sides: PartitionSpan['sides']): void {
    this.endPartition(atMs)
    this.partitions.push({ fromMs: atMs, sides })
  }

  endPartition (atMs: number): void {
    const open = this.partitions.at(-1)
    if (open !== undefined && open.toMs === undefined) open.toMs = atMs
  }

  /** Take one sample at scenario time `t`. */
  sample (t: number): SampleResult {
    this.samples++
    const counts = new Map<string, number>()
    let running = 0
    for (const node of this.nodes) {
      const agent = node.agent
      if (node.state !== 'running' || agent === undefined) continue
      running++
      const res = agent.resolution()
      const digest = res.digest
      counts.set(digest, (counts.get(digest) ?? 0) + 1)
      const before = this.digestOf.get(node.id)
      if (before === undefined || before.digest !== digest) this.digestOf.set(node.id, { digest, changedAt: t })
      if (this.seen.get(agent)?.deref() !== res) {
        this.seen.set(agent, new WeakRef(res))
        this.scan(node.id, res, t)
      }
    }
    // Majority digest; ties go to the smallest digest so the choice is reproducible.
    let majority: string | undefined
    let best = -1
    for (const [digest, count] of counts) {
      if (count > best || (count === best && majority !== undefined && digest < majority)) { majority = digest; best = count }
    }
    const disagree = running - Math.max(0, best)
    this.majorityDigest = majority
    if (disagree > this.maxDisagree) this.maxDisagree = disagree
    if (disagree === 0 && running > 0) this.agreeSince ??= t
    else this.agreeSince = undefined
    this.sampleTimes.push(t)
    this.sampleDisagree.push(disagree)
    this.sampleRunning.push(running)
    const point: [number, number, number] = [t, disagree, running]
    if (this.last === undefined || this.last[1] !== disagree || this.last[2] !== running) this.series.push(point)
    this.last = point
    return { running, disagree, digests: counts.size }
  }

  /** Close the series with the last sample (so the curve reaches the end of the run). */
  finish (): void {
    if (this.last !== undefined && this.series.at(-1) !== this.last) this.series.push(this.last)
  }

  /**
   * The first sample after `fromMs` (and before `untilMs`) at which every
   * running peer held one digest; with `holding`, only if they kept agreeing
   * from then to the end of the run.
   */
  agreedAfter (fromMs: number, untilMs = Infinity, holding = false): number | undefined {
    let found: number | undefined
    for (let i = 0; i < this.sampleTimes.length; i++) {
      const t = this.sampleTimes[i]
      if (t <= fromMs) continue
      if (t >= untilMs) break
      const agrees = this.sampleDisagree[i] === 0 && this.sampleRunning[i] > 0
      if (agrees) {
        found ??= t
        if (!holding) return found
      } else {
        found = undefined
      }
    }
    return found
  }

  /** When `node` last changed its digest (scenario ms), and to what. */
  lastChange (nodeId: string): { digest: string, changedAt: number } | undefined {
    return this.digestOf.get(nodeId)
  }

  private scan (nodeId: string, res: Resolution, t: number): void {
    let finals = this.finals.get(nodeId)
    if (finals === undefined) {
      finals = new Map()
      this.finals.set(nodeId, finals)
    }
    // The agent re-runs only the heartbeat part of a resolution when no
    // decision map changed, and then hands back the same verdict map: no
    // decision and no node's committed or allocatable memory changed since it
    // was last scanned, so only verdicts that became final need a look.
    const sameReplay = this.scannedVerdicts.get(nodeId) === res.verdicts
    this.scannedVerdicts.set(nodeId, res.verdicts)
    const check = (v: Verdict): void => {
      if (!v.final) return
      if (sameReplay && finals.has(v.key)) return
      const signature = `${v.decision} ${v.decisionCode} [${v.nodes.join(',')}]`
      const before = finals.get(v.key)
      if (before === undefined) {
        finals.set(v.key, signature)
        this.finalsTracked++
      } else if (before !== signature) {
        finals.set(v.key, signature)
        this.changedFinalsCount++
        if (this.changedFinals.length < MAX_LISTED) this.changedFinals.push({ atMs: t, node: nodeId, id: v.id, key: v.key, before, after: signature })
      }
    }
    for (const v of res.verdicts.values()) check(v)
    for (const v of res.conflicts) check(v)
    if (sameReplay) return
    let over = 0
    for (const n of res.nodes.values()) if (n.committedBytes > n.allocatableBytes) over++
    if (over > this.maxOverCommitSeen) this.maxOverCommitSeen = over
  }
}

/** Nodes whose committed memory exceeds their allocatable memory, in any running peer's resolution. */
export function overCommitted (nodes: SimNode[]): Array<{ peer: string, node: string, committedBytes: number, allocatableBytes: number }> {
  const found: Array<{ peer: string, node: string, committedBytes: number, allocatableBytes: number }> = []
  for (const sim of nodes) {
    if (sim.state !== 'running' || sim.agent === undefined) continue
    for (const n of sim.agent.resolution().nodes.values()) {
      if (n.committedBytes > n.allocatableBytes) found.push({ peer: sim.id, node: n.id, committedBytes: n.committedBytes, allocatableBytes: n.allocatableBytes })
    }
  }
  return found
}

/** `q`-quantile (0…1) of sorted numbers, nearest rank. */
export function quantile (sorted: number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}
