/**
 * The two tiers of the harness (docs/design.md "Simulation harness") behind one
 * interface, so a scenario plays the same way over real libp2p and over the
 * in-memory network on a virtual clock. Both run the same `Agent`.
 */
import type { Agent } from '../../agent/agent.ts'
import type { FakeProbe } from '../../agent/probe.ts'
import type { PeerIdStr } from '../../agent/types.ts'
import type { AgentSettings } from '../scenario/schema.ts'

export type TierKind = 'real' | 'virtual'

/** One simulated host, across its incarnations (crash, restart). */
export interface SimNode {
  /** 0…N-1 initial nodes, then joined ones in order. */
  index: number
  id: PeerIdStr
  probe: FakeProbe
  /** The running incarnation; undefined while crashed. */
  agent?: Agent
  state: 'running' | 'crashed'
  /** Data directory (real tier: always; virtual tier: only nodes a scenario crashes). */
  dataDir?: string
  /** Starts so far (1 + restarts). */
  incarnations: number
  /** Its wall clock runs this far off the others' (a joiner with a bad clock). */
  clockSkewMs?: number
}

/** Network counters of one node since it was first started, across incarnations. Bytes are payload bytes. */
export interface NodeTraffic {
  gossipIn: number
  gossipOut: number
  requestsIn: number
  requestsOut: number
  bytesIn: number
  bytesOut: number
  /** Extra gossip copies delivered (virtual tier: the hub's duplicates; real tier: not observable per node, 0). */
  duplicatesIn: number
  /** Messages lost or cut in flight (virtual tier only). */
  dropped: number
  /** Direct-stream messages (beacons to each member, failure-detector calls) delivered and sent (virtual tier only). */
  directIn?: number
  directOut?: number
}

export interface TierInit {
  seed: number
  /** Agent intervals for this tier (scenario `agent` merged with the tier's overrides). */
  agent: AgentSettings
  /** Sampling period of the measurements, in scenario ms. */
  sampleMs: number
  /** Sink for agent and network log lines. */
  log: (node: number, line: string) => void
}

export interface Tier {
  readonly kind: TierKind
  /** `memory-sim` for the virtual tier; `tcp` or `memory` (libp2p transports) for the real one. */
  readonly transport: string
  readonly nodes: SimNode[]
  /** Scenario time: ms since `markOrigin()` (warm-up runs before it, at negative times). */
  now: () => number
  /** Make the current instant the scenario's t = 0. */
  markOrigin: () => void
  /**
   * Create and start one node per entry of `memoryBytes` (total memory of its
   * fake probe). The first node ever created founds the cluster; every other
   * one waits for a sponsor (`expectsPeers`). `withDataDir` lists indices that
   * need a data directory (virtual tier: the ones a scenario crashes).
   */
  addNodes: (memoryBytes: number[], withDataDir?: (index: number) => boolean, clockSkewMs?: number) => Promise<SimNode[]>
  /**
   * Let the cluster run until scenario time `tMs`, calling `tick` at every
   * sample period (`sampleMs`); a tick that returns true ends the wait early.
   */
  runUntil: (tMs: number, tick: () => boolean) => Promise<void>
  /** Cut the cluster into these groups of node indices (nodes in none form one more group). */
  partition: (groups: number[][]) => Promise<void>
  heal: () => Promise<void>
  /** Kill a node's agent (virtual: abrupt; real: its libp2p node and agent stopped, data dir kept). */
  crash: (node: SimNode) => Promise<void>
  /** Start a crashed node again from its data directory (same peer id, same Yjs client id). */
  restart: (node: SimNode) => Promise<void>
  traffic: (node: SimNode) => NodeTraffic
  /** Tier-specific figures for the report (deterministic ones only). */
  stats: () => Record<string, number | string | boolean>
  /** Wall-clock cost figures (excluded from reproducibility comparisons). */
  wallStats: () => Record<string, number>
  /** Errors thrown by agent handlers or the harness's own calls into the network. */
  readonly errors: string[]
  /** Stop everything and remove temporary data directories. */
  close: () => Promise<void>
}
