/**
 * The shape of a benchmark run's results (simulations/results/<date>.json):
 * written by run.ts, read by report.ts and findings.ts. Its own module so the
 * report does not import the runner that imports the report.
 */
import type { FinalInprocResult } from './final-inproc.ts'
import type { CliTimingResult } from './cli-timing.ts'
import type { TrafficWindow } from './clusters.ts'
import type { CrdtBenchResult } from './crdt.ts'
import type { FitCpuResult } from './fit-cpu.ts'
import type { HealResult } from './heal.ts'
import type { HttpFitResult } from './answers.ts'
import type { Summary } from './stats.ts'
import type { BenchVirtualResult } from './tiers.ts'

export type Mode = 'full' | 'quick' | 'smoke'

export interface PropagationTrial {
  trial: number
  memgossipMs: number
  memgossipAckMs: number
  /** From the POST to the verdict being final on every agent, the origin included. */
  memgossipFinalMs?: number
  memgossipArrived: number
  serfEventMs?: number
  serfEventArrived?: number
  serfTagMs?: number
  serfTagArrived?: number
  serfTagAgentMs?: number
  expected: number
}

export interface LivenessResult {
  nodes: number
  /** Suspicions reported while every agent was running, in the traffic windows: one per agent that reported one. */
  falseSuspicions: number
  /** How many members those suspicions were about. */
  suspectedMembers?: number
  /** Suspicions reported before the windows: from the cluster's formation through the propagation trials. */
  suspicionsBefore?: number
  windowS: number
  /** After SIGKILL of one agent: ms until the first / every survivor suspected it, and until the first / every survivor held it dead. */
  suspectFirstMs: number
  suspectAllMs: number
  deadFirstMs: number
  deadAllMs: number
  survivors: number
}

export interface PropagationResult {
  nodes: number
  origin: 'seed' | 'leaf'
  originIndex: number
  trials: PropagationTrial[]
  memgossip: Summary
  memgossipAck: Summary
  memgossipFinal?: Summary
  serfEvent?: Summary
  serfTag?: Summary
  serfTagAgent?: Summary
  ratioEvent?: Summary
  ratioTag?: Summary
  missed: { memgossip: number, serfEvent: number, serfTag: number }
  /** Set when no memgossip cluster of this size could be formed (Serf was measured alone). */
  memgossipFailed?: string
}

export interface TrafficResult {
  nodes: number
  windows: TrafficWindow[]
}

/** One size of the virtual tier: `benchVirtual`'s result (fields may be missing in results files written by older versions), or why there is none. */
export interface VirtualRun { nodes: number, wallMs: number, result?: Partial<BenchVirtualResult>, error?: string, convergenceP50?: number, convergenceP99?: number, memoryBytes?: number }

export interface BenchResults {
  version: 1
  date: string
  mode: Mode
  durationS: number
  machine: { cpu: string, cores: number, memoryGiB: number, kernel: string, node: string, loadBefore: number[], loadAfter: number[] }
  serf: { available: boolean, version?: string, note: string }
  settings: string[]
  notes: string[]
  payloadBytes: number
  propagation: PropagationResult[]
  traffic: TrafficResult[]
  /** Failure detection at each size: false suspicions during the traffic windows, then one agent killed. */
  liveness?: LivenessResult[]
  /** Sizes a product could not run at on this machine, and why. */
  sizeFailures: Array<{ nodes: number, product: string, reason: string }>
  heal?: HealResult & { summary: Summary, bothSeen: Summary, unblock: Summary }
  virtual: { available: boolean, file?: string, runs: VirtualRun[], note: string }
  realTier?: { source: string, nodes: number, rssPerPeerBytes?: number, result: unknown, error?: string }
  /** Reservation → final on every agent, N agents in one process (final-inproc.ts), per size. */
  finalInproc?: Array<FinalInprocResult | { nodes: number, error: string }>
  crdt?: Pick<CrdtBenchResult, 'resolve' | 'fit' | 'heartbeats' | 'churn'>
  fitCpu?: FitCpuResult
  httpFit?: HttpFitResult
  /** `memgossip fit 1GiB` end to end, against curl (cli-timing.ts). */
  cliTiming?: CliTimingResult
  idle?: { idleS: number, rssBytes: number, rssAnonBytes: number, rssFileBytes: number, threads: number }
  targets: Array<{ id?: string, name: string, target: string, value: string, met: boolean | undefined, note: string }>
}
