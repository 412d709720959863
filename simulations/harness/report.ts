/**
 * What a run reports (docs/simulations.md "What is measured"): the shape of
 * the JSON report, read by the summary, the picture and the benchmark.
 */
import type { AgentSettings, Scenario } from '../scenario/schema.ts'
import type { FinalityReport } from './finality.ts'
import type { ChangedFinal, Marker, PartitionSpan } from './recorder.ts'
import type { RestTraffic } from './rest.ts'
import type { TierKind } from './types.ts'

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
    /** The ledger's epoch on the running peers at the end, least and most (docs/design.md "Compaction: epochs"). */
    epochs: [number, number]
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
  /** Reservation → final on every peer, in scenario ms (./finality.ts). */
  finality: FinalityReport
  /** Traffic at rest after the run, when asked for (`RunOptions.rest`; ./rest.ts). */
  rest?: RestTraffic
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
