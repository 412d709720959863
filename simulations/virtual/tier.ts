/**
 * The virtual tier (docs/design.md "Simulation harness"): the production
 * `Agent`, unchanged, on the in-memory network (simulations/virtual/network.ts) and a
 * virtual clock driven by the stepper, with every random choice drawn from
 * streams of the run's seed. A thousand agents fit in one process and the same
 * seed replays the same run.
 *
 * - Node ids are `sim…` strings drawn from the seed (no key pairs needed).
 * - Topology: each node links to `degree` random earlier nodes (a joiner: to
 *   `degree` random running nodes), as peers bootstrapping from a few others.
 * - Agents have no data directory, except the nodes the scenario crashes:
 *   they write to a temporary one (fsync off) and restart from it.
 * - Every agent starts on the same virtual millisecond, so their 1 s probe
 *   ticks (and thus heartbeats) line up; that costs the simulator one
 *   resolution per heartbeat round per agent instead of one per message. It
 *   does not change what is measured: heartbeats do not enter verdicts.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../agent/agent.ts'
import { MemoryNetworkHub, type MemoryNetwork } from './network.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import { streamFor } from '../scenario/plan.ts'
import type { Network, NetworkHandlers } from '../../agent/types.ts'
import type { NodeTraffic, SimNode, Tier, TierInit } from '../harness/types.ts'
import { pickDistinct as pick } from '../support/random.ts'
import { skewedClock } from '../harness/skew.ts'
import { agentTimers, type NetworkSettings } from '../scenario/schema.ts'
import { GossipCoalescer } from './coalesce.ts'
import { Stepper, type SteppedClock } from './stepper.ts'

/** The cluster name every simulated agent uses. */
export const SIM_CLUSTER = 'sim'
const ID_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789'

interface VirtualNode extends SimNode {
  clock?: SteppedClock
  network?: MemoryNetwork
}

export interface VirtualTierInit extends TierInit {
  network: NetworkSettings
}

export class VirtualTier implements Tier {
  readonly kind = 'virtual' as const
  readonly transport = 'memory-sim'
  readonly nodes: VirtualNode[] = []
  readonly errors: string[] = []
  private readonly init: VirtualTierInit
  private readonly stepper: Stepper
  private readonly hub: MemoryNetworkHub
  private readonly coalescer: GossipCoalescer | undefined
  private readonly topology: () => number
  private readonly ids: () => number
  private readonly usedIds = new Set<string>()
  private originMs: number
  private nextSampleMs: number
  private ioNodes = 0
  private partitionGroups: number[][] | undefined
  private wallStartedMs = performance.now()

  constructor (init: VirtualTierInit) {
    this.init = init
    this.stepper = new Stepper({ mayDoIo: () => this.ioNodes > 0 })
    this.originMs = this.stepper.now()
    this.nextSampleMs = this.originMs
    const net = init.network
    this.hub = new MemoryNetworkHub({
      clock: this.stepper.rootClock(),
      random: streamFor(init.seed, 'network'),
      latencyMs: { min: net.latencyMs[0], max: net.latencyMs[1] },
      lossRate: net.loss,
      duplicateRate: net.duplicate,
      meshPaths: net.paths,
      // An agent handler that throws is a bug the run must report, not hide.
      onHandlerError: (peer, handler, err) => { this.errors.push(`${handler} of ${peer} threw: ${(err as Error)?.stack ?? String(err)}`) }
    })
    if (net.coalesce) {
      this.coalescer = new GossipCoalescer()
      this.stepper.afterInstant(() => { this.coalescer!.flush() })
    }
    this.topology = streamFor(init.seed, 'topology')
    this.ids = streamFor(init.seed, 'ids')
  }

  now (): number {
    return this.stepper.now() - this.originMs
  }

  markOrigin (): void {
    this.originMs = this.stepper.now()
    this.nextSampleMs = this.originMs
  }

  async addNodes (memoryBytes: number[], withDataDir: (index: number) => boolean = () => false, clockSkewMs?: number): Promise<SimNode[]> {
    const added: VirtualNode[] = []
    for (const totalBytes of memoryBytes) {
      const index = this.nodes.length
      const node: VirtualNode = {
        index,
        id: this.newId(),
        probe: createFakeProbe({ totalBytes, availableBytes: totalBytes }),
        state: 'crashed',
        incarnations: 0,
        clockSkewMs
      }
      if (withDataDir(index)) {
        node.dataDir = await mkdtemp(join(tmpdir(), 'memgossip-sim-'))
        // The per-callback I/O wait stays on for the rest of the run (see ./stepper.ts).
        this.ioNodes++
      }
      const pool = this.nodes.filter(n => n.state === 'running')
      this.nodes.push(node)
      const network = this.newNetwork(node)
      // Links are remembered by the hub and open once both ends run.
      for (const other of pick(pool, this.init.network.degree, this.topology)) this.hub.connect(node.id, other.id)
      await this.start(node, network)
      added.push(node)
    }
    if (this.partitionGroups !== undefined) {
      // Joiners during a partition land on its first side.
      this.partitionGroups[0].push(...added.map(n => n.index))
      await this.partition(this.partitionGroups)
    }
    return added
  }

  async runUntil (tMs: number, tick: () => boolean): Promise<void> {
    // Whatever the harness just did through the agents' APIs finishes first.
    await this.stepper.settle()
    const target = this.originMs + tMs
    while (this.stepper.now() < target) {
      const stop = Math.min(target, this.nextSampleMs)
      if (stop > this.stepper.now()) await this.stepper.runUntil(stop)
      if (this.errors.length > 0) return
      if (this.stepper.now() >= this.nextSampleMs) {
        this.nextSampleMs += this.init.sampleMs
        if (tick()) return
      }
    }
  }

  async partition (groups: number[][]): Promise<void> {
    this.partitionGroups = groups.map(g => [...g])
    this.hub.partition(groups.map(g => g.map(i => this.nodes[i].id)))
  }

  async heal (): Promise<void> {
    this.partitionGroups = undefined
    this.hub.heal()
  }

  async crash (node: SimNode): Promise<void> {
    const n = node as VirtualNode
    if (n.state !== 'running') return
    // Abrupt: connections drop, messages in flight to it are lost, its timers stop.
    this.hub.crash(n.id)
    n.clock?.dispose()
    n.state = 'crashed'
    const agent = n.agent
    n.agent = undefined
    // Releases the data file (what a real kill does); the network is already gone.
    await agent?.stop()
    await this.stepper.settle()
  }

  async restart (node: SimNode): Promise<void> {
    const n = node as VirtualNode
    if (n.state === 'running') return
    await this.start(n, this.newNetwork(n))
  }

  traffic (node: SimNode): NodeTraffic {
    const s = this.hub.stats(node.id)
    return {
      gossipIn: s.gossipIn,
      gossipOut: s.gossipOut,
      requestsIn: s.requestsIn,
      requestsOut: s.requestsOut,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      duplicatesIn: s.duplicatesIn,
      dropped: s.dropped,
      directIn: s.directIn,
      directOut: s.directOut
    }
  }

  stats (): Record<string, number | string | boolean> {
    return {
      coalesce: this.coalescer !== undefined,
      gossipMessagesCoalesced: this.coalescer?.received ?? 0,
      gossipMessagesAfterCoalescing: this.coalescer?.delivered ?? 0,
      timersFired: this.stepper.callbacks,
      instants: this.stepper.instants
    }
  }

  wallStats (): Record<string, number> {
    return { tierWallMs: performance.now() - this.wallStartedMs }
  }

  async close (): Promise<void> {
    for (const node of this.nodes) {
      if (node.state === 'running') {
        node.clock?.dispose()
        await node.agent?.stop().catch(() => {})
        node.agent = undefined
        node.state = 'crashed'
      }
    }
    for (const node of this.nodes) {
      if (node.dataDir !== undefined) await rm(node.dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 }).catch(() => {})
    }
  }

  private newNetwork (node: VirtualNode): MemoryNetwork {
    let network = this.hub.createNetwork(node.id)
    if (this.coalescer !== undefined) network = this.coalescer.wrap(network)
    if (node.dataDir !== undefined) network = touchingIo(network, this.stepper)
    return network
  }

  private async start (node: VirtualNode, network: MemoryNetwork): Promise<void> {
    const settings = this.init.agent
    const clock = this.stepper.agentClock(node.dataDir !== undefined)
    node.clock = clock
    node.network = network
    node.incarnations++
    const index = node.index
    node.agent = await Agent.start({
      network,
      probe: node.probe,
      cluster: SIM_CLUSTER,
      dataDir: node.dataDir,
      fsync: false,
      clock: node.clockSkewMs !== undefined ? skewedClock(clock, node.clockSkewMs) : clock,
      random: streamFor(this.init.seed, `agent-${index}-${node.incarnations}`),
      env: {},
      expectsPeers: index > 0,
      log: (line) => { this.init.log(index, line) },
      ...agentTimers(settings)
    })
    node.state = 'running'
    await this.stepper.settle()
  }

  private newId (): string {
    for (;;) {
      let id = 'sim'
      for (let i = 0; i < 12; i++) id += ID_ALPHABET[Math.floor(this.ids() * ID_ALPHABET.length)]
      if (!this.usedIds.has(id)) {
        this.usedIds.add(id)
        return id
      }
    }
  }
}

/**
 * Tell the stepper whenever the network calls into an agent that writes a data
 * directory, so the stepper waits for that agent's file I/O before it runs the
 * next callback (see ./stepper.ts).
 */
function touchingIo<N extends Network> (network: N, stepper: Stepper): N {
  const start = network.start.bind(network)
  network.start = async (handlers: NetworkHandlers): Promise<void> => {
    const touch = <A extends unknown[], R>(fn: (...args: A) => R) => (...args: A): R => {
      stepper.touchIo()
      return fn(...args)
    }
    await start({
      onGossip: touch(handlers.onGossip),
      onRequest: touch(handlers.onRequest),
      onPeerConnected: touch(handlers.onPeerConnected),
      onPeerDisconnected: touch(handlers.onPeerDisconnected)
    })
  }
  return network
}
