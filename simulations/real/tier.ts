/**
 * The real tier (docs/design.md "Simulation harness"): N production agents in
 * this process, each with its own libp2p node (TCP on 127.0.0.1, or libp2p's
 * in-process memory transport), its own data directory (fsync off) and a fake
 * memory probe. Partitions cut through libp2p itself — every node's connection
 * gater refuses the other side and open connections are closed
 * (`network.block`), and `unblock` heals — so what is measured is the product's
 * own recovery.
 *
 * Running many peers in one process (STACK.md): `localCluster` settings
 * (loopback allowed past the inbound rate limit, no IP-colocation penalty),
 * each peer bootstraps from `degree` random earlier peers, and peers start in
 * small batches so no more than about 16 noise handshakes run at once. At 100
 * TCP peers about 900 file descriptors are open: check `ulimit -n`, or use
 * `--transport memory`.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, systemClock } from '../../agent/agent.ts'
import { loadOrCreatePeerKey, peerIdFromKey } from '../../agent/net/identity.ts'
import { createLibp2pNetwork, type Libp2pNetwork, type NetworkStats } from '../../agent/net/libp2p.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import { streamFor } from '../scenario/plan.ts'
import type { NodeTraffic, SimNode, Tier, TierInit } from '../harness/types.ts'
import { pickDistinct as pick } from '../support/random.ts'
import { skewedClock } from '../harness/skew.ts'
import { agentTimers } from '../scenario/schema.ts'

export const REAL_CLUSTER = 'sim'
/** Peers started at once; each dials `degree` others, so this keeps handshakes near STACK.md's 16. */
const START_BATCH = 6
/** How long a batch may take to get its first connections before the next batch starts anyway. */
const BATCH_CONNECT_WAIT_MS = 10_000
/** Dials in flight per node (libp2p dial queue). */
const MAX_DIALS_PER_NODE = 4

interface RealNode extends SimNode {
  network?: Libp2pNetwork
  /** Counters of earlier incarnations. */
  earlier: NetworkStats
}

export interface RealTierInit extends TierInit {
  transport: 'tcp' | 'memory'
  /** Bootstrap peers per node. */
  degree: number
}

export class RealTier implements Tier {
  readonly kind = 'real' as const
  readonly transport: 'tcp' | 'memory'
  readonly nodes: RealNode[] = []
  readonly errors: string[] = []
  private readonly init: RealTierInit
  private readonly topology: () => number
  private originMs = performance.now()
  private nextSampleMs = this.originMs
  private groups: number[][] | undefined

  constructor (init: RealTierInit) {
    this.init = init
    this.transport = init.transport
    this.topology = streamFor(init.seed, 'topology')
  }

  now (): number {
    return performance.now() - this.originMs
  }

  markOrigin (): void {
    this.originMs = performance.now()
    this.nextSampleMs = this.originMs
  }

  async addNodes (memoryBytes: number[], _withDataDir?: (index: number) => boolean, clockSkewMs?: number): Promise<SimNode[]> {
    const added: RealNode[] = []
    const first = this.nodes.length
    // The founder alone, then small batches.
    for (let i = 0; i < memoryBytes.length;) {
      const size = first + i === 0 ? 1 : Math.min(START_BATCH, memoryBytes.length - i)
      const batch = memoryBytes.slice(i, i + size)
      const created: RealNode[] = []
      for (const totalBytes of batch) {
        const dataDir = await mkdtemp(join(tmpdir(), 'memgossip-sim-'))
        const key = await loadOrCreatePeerKey(dataDir)
        const node: RealNode = {
          index: this.nodes.length,
          id: peerIdFromKey(key),
          probe: createFakeProbe({ totalBytes, availableBytes: totalBytes }),
          state: 'crashed',
          dataDir,
          incarnations: 0,
          earlier: emptyStats(),
          clockSkewMs
        }
        this.nodes.push(node)
        created.push(node)
      }
      if (this.groups !== undefined) this.groups[0].push(...created.map(n => n.index))
      await Promise.all(created.map(async node => { await this.start(node) }))
      await waitFor(() => created.every(n => n.index === 0 || (n.network?.peers().length ?? 0) > 0), BATCH_CONNECT_WAIT_MS)
      added.push(...created)
      i += size
    }
    if (this.groups !== undefined) await this.partition(this.groups)
    return added
  }

  async runUntil (tMs: number, tick: () => boolean): Promise<void> {
    const target = this.originMs + tMs
    for (;;) {
      const now = performance.now()
      if (now >= this.nextSampleMs) {
        // Behind schedule (an event-loop stall): sample once and catch up.
        this.nextSampleMs = Math.max(this.nextSampleMs + this.init.sampleMs, now)
        if (tick()) return
      }
      if (now >= target) return
      await sleep(Math.min(target, this.nextSampleMs) - now)
    }
  }

  async partition (groups: number[][]): Promise<void> {
    this.groups = groups.map(g => [...g])
    const listed = new Set(groups.flat())
    const rest = this.nodes.map(n => n.index).filter(i => !listed.has(i))
    const sides = rest.length > 0 ? [...groups, rest] : groups
    const sideOf = new Map<number, number>()
    sides.forEach((side, s) => { for (const i of side) sideOf.set(i, s) })
    await Promise.all(this.nodes.map(async node => {
      if (node.network === undefined || node.state !== 'running') return
      const mine = sideOf.get(node.index)
      const same = this.nodes.filter(n => n !== node && sideOf.get(n.index) === mine).map(n => n.id)
      const others = this.nodes.filter(n => sideOf.get(n.index) !== mine).map(n => n.id)
      // A new split replaces the previous one: lift blocks on peers now on our side.
      await node.network.unblock(same).catch(() => {})
      await node.network.block(others).catch((err: unknown) => { this.errors.push(`block on node ${node.index}: ${(err as Error).message}`) })
    }))
  }

  async heal (): Promise<void> {
    this.groups = undefined
    await Promise.all(this.nodes.map(async node => {
      if (node.network === undefined || node.state !== 'running') return
      await node.network.unblock().catch((err: unknown) => { this.errors.push(`unblock on node ${node.index}: ${(err as Error).message}`) })
    }))
  }

  async crash (node: SimNode): Promise<void> {
    const n = node as RealNode
    if (n.state !== 'running') return
    n.state = 'crashed'
    if (n.network !== undefined) addStats(n.earlier, n.network.stats())
    const agent = n.agent
    n.agent = undefined
    n.network = undefined
    // libp2p has no kill -9: the node stops, its connections close; the data dir stays.
    await agent?.stop()
  }

  async restart (node: SimNode): Promise<void> {
    const n = node as RealNode
    if (n.state === 'running') return
    await this.start(n)
    if (this.groups !== undefined) await this.partition(this.groups)
  }

  traffic (node: SimNode): NodeTraffic {
    const n = node as RealNode
    const s = { ...n.earlier }
    if (n.network !== undefined) addStats(s, n.network.stats())
    return { gossipIn: s.gossipIn, gossipOut: s.gossipOut, requestsIn: s.requestsIn, requestsOut: s.requestsOut, bytesIn: s.bytesIn, bytesOut: s.bytesOut, duplicatesIn: 0, dropped: s.droppedOversized + s.droppedInvalid }
  }

  stats (): Record<string, number | string | boolean> {
    return { transport: this.transport, bootstrapDegree: this.init.degree }
  }

  wallStats (): Record<string, number> {
    return {}
  }

  async close (): Promise<void> {
    await Promise.all(this.nodes.map(async node => {
      if (node.state === 'running') {
        node.state = 'crashed'
        await node.agent?.stop().catch(() => {})
        node.agent = undefined
      }
    }))
    await Promise.all(this.nodes.map(async node => {
      // A store still closing may write one last file: retry rather than fail the run.
      if (node.dataDir !== undefined) await rm(node.dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 }).catch(() => {})
    }))
  }

  private async start (node: RealNode): Promise<void> {
    const settings = this.init.agent
    const key = await loadOrCreatePeerKey(node.dataDir!)
    const running = this.nodes.filter(n => n.state === 'running' && n !== node && n.network !== undefined)
    // addresses() should end in /p2p/<id> (agent/types.ts); over the memory
    // transport libp2p 3 returns them without it, so add it where missing.
    const bootstrap = pick(running, this.init.degree, this.topology)
      .flatMap(n => n.network!.addresses().map(a => a.includes('/p2p/') ? a : `${a}/p2p/${n.id}`))
    const index = node.index
    const network = await createLibp2pNetwork({
      cluster: REAL_CLUSTER,
      privateKey: key,
      transport: this.transport,
      ...(this.transport === 'tcp' ? { listen: ['/ip4/127.0.0.1/tcp/0'] } : {}),
      bootstrap,
      localCluster: true,
      maxConcurrentDials: MAX_DIALS_PER_NODE,
      log: (line) => { this.init.log(index, `net: ${line}`) }
    })
    node.network = network
    node.incarnations++
    node.agent = await Agent.start({
      network,
      probe: node.probe,
      cluster: REAL_CLUSTER,
      dataDir: node.dataDir,
      fsync: false,
      env: {},
      expectsPeers: index > 0,
      ...(node.clockSkewMs !== undefined ? { clock: skewedClock(systemClock, node.clockSkewMs) } : {}),
      log: (line) => { this.init.log(index, line) },
      ...agentTimers(settings)
    })
    node.state = 'running'
  }
}

function emptyStats (): NetworkStats {
  return { gossipIn: 0, gossipOut: 0, bytesIn: 0, bytesOut: 0, requestsIn: 0, requestsOut: 0, directIn: 0, directOut: 0, directUnsent: 0, droppedOversized: 0, droppedInvalid: 0 }
}

function addStats (into: NetworkStats, more: NetworkStats): void {
  for (const key of Object.keys(into) as Array<keyof NetworkStats>) into[key] += more[key]
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, Math.max(0, ms)))
}

async function waitFor (predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!predicate() && performance.now() < deadline) await sleep(25)
}
