/**
 * Real clusters of separate processes on 127.0.0.1, one of memgossip agents
 * and one of Serf agents, with the same join topology (every node joins node
 * 0), and the measurements that need both side by side: propagation trials
 * (interleaved) and traffic windows (simultaneous).
 */
import { join } from 'node:path'
import * as Y from 'yjs'
import { LedgerWriter } from '../../crdt/index.ts'
import { AGENT_DEFAULTS } from '../../agent/config.ts'
import { wantedConnections } from '../../agent/mesh.ts'
import { encodeMessage, MSG_GOSSIP } from '../../agent/wire.ts'
import { EventStream, httpJson, scrapeMetrics } from '../support/http.ts'
import { cpuSeconds, portOf, procIo, ssDelta, ssSnapshot, type SocketCounters } from './netstat.ts'
import { startMemgossip, startSerf, type MemgossipProc, type Registry, type SerfProc } from './procs.ts'
import { askProbe } from '../support/probe-file.ts'
import { sleep } from '../support/wait.ts'

export type Log = (line: string) => void

/** IPv4 (20) + TCP with timestamps (32) bytes of headers per TCP segment on loopback. */
export const TCP_HEADER_BYTES = 52
/** IPv4 (20) + UDP (8). */
export const UDP_HEADER_BYTES = 28
/** Rough segments of one short-lived TCP push/pull exchange (handshake, request, reply, acks, close). */
export const SEGMENTS_PER_PUSH_PULL = 10

/** Bytes of the gossip message one reservation becomes (wire.ts gossip frame around its Yjs update). */
export function reservationMessageBytes (id: string): number {
  const doc = new Y.Doc()
  const self = '12D3KooWBenchPayloadSizeProbe0000000000000000000000'
  const writer = new LedgerWriter(doc, self)
  const now = Date.now()
  writer.admit(self, 60 * 1024 ** 3, now)
  let update: Uint8Array | undefined
  doc.on('update', (u: Uint8Array) => { update = u })
  writer.reserve({ id, bytes: 1024 ** 2, placement: { kind: 'any' } }, now + 1)
  return encodeMessage({ type: MSG_GOSSIP, update: update! }).length
}

async function inBatches<T> (count: number, batch: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = []
  for (let i = 0; i < count; i += batch) {
    out.push(...await Promise.all(Array.from({ length: Math.min(batch, count - i) }, async (_, k) => await fn(i + k))))
  }
  return out
}

async function waitUntil (what: string, predicate: () => Promise<boolean>, timeoutMs: number, stepMs = 250): Promise<number> {
  const start = performance.now()
  while (performance.now() - start < timeoutMs) {
    if (await predicate().catch(() => false)) return performance.now() - start
    await sleep(stepMs)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

// ------------------------------------------------------------ memgossip cluster

interface Waiter { key: string, t0: number, need: Set<number>, arrivals: Map<number, number>, done: () => void, all: Set<number>, finals: Map<number, number>, finalDone: () => void }

/** How long a cluster of n agent processes may take to form: 90 s, and 4 s per agent beyond that (one small host starts them all). */
export function formationTimeoutMs (n: number): number {
  return Math.max(90_000, n * 4000)
}

export class MemgossipCluster {
  readonly streams: EventStream[] = []
  private readonly waiters = new Set<Waiter>()
  /** Every liveness change the agents reported: who judged, whom, what, when (performance.now()). */
  readonly liveness: Array<{ by: number, node: string, state: string, at: number }> = []

  private constructor (readonly nodes: MemgossipProc[], private readonly log: Log) {}

  static async start (registry: Registry, n: number, log: Log, options: { probe?: boolean, from?: 'bundle' | 'dist', batch?: number, nodeArgs?: (index: number) => string[] } = {}): Promise<MemgossipCluster> {
    const root = await registry.tempDir('mgb-')
    const started: MemgossipProc[] = []
    const cluster = new MemgossipCluster(started, log)
    try {
      const t0 = performance.now()
      const first = await startMemgossip({ registry, index: 0, dataDir: join(root, 'a0'), probe: options.probe, from: options.from, nodeArgs: options.nodeArgs?.(0), timeoutMs: 180_000 })
      started.push(first)
      log(`  memgossip: node 0 up (pid ${first.pid}); starting ${n - 1} more, each with --bootstrap node 0…`)
      await inBatches(n - 1, options.batch ?? 6, async i => {
        started.push(await startMemgossip({ registry, index: i + 1, dataDir: join(root, `a${i + 1}`), bootstrap: first.multiaddrs, probe: options.probe, from: options.from, nodeArgs: options.nodeArgs?.(i + 1), timeoutMs: 180_000 }))
      })
      started.sort((a, b) => a.index - b.index)
      log(`  memgossip: ${n} processes started in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
      let last = ''
      const ms = await waitUntil(`${n} memgossip agents to see ${n} members`, async () => {
        const states = await Promise.all(cluster.nodes.map(async node => (await httpJson(`${node.api}/v1/state`)).body))
        const counts = states.map(s => s.joined === true && Array.isArray(s.members) ? s.members.length : 0)
        const lagging = cluster.nodes.find((_, i) => counts[i] !== n)
        last = `members seen per agent: min ${Math.min(...counts)}, max ${Math.max(...counts)}; not joined: ${states.filter(s => s.joined !== true).length}; peers of node 0: ${Array.isArray(states[0]?.peers) ? states[0].peers.length : '?'}${lagging !== undefined ? `; agent ${lagging.index} (pid ${lagging.pid}) last logged:\n    ${lagging.log.slice(-6).join('\n    ')}` : ''}`
        return counts.every(c => c === n)
      }, formationTimeoutMs(n), n > 25 ? 2000 : 1000).catch((error: Error) => { throw new Error(`${error.message} (${last})`) })
      log(`  memgossip: ${n} agents joined, every one sees ${n} members (${(ms / 1000).toFixed(1)} s after the last start)`)
      // The steady state: in a view of up to 64 every agent keeps a connection
      // to every other (docs/design.md "Network"), dialled a few per sync
      // round; measuring "at rest" before that measures the dialling.
      const want = Math.min(n - 1, wantedConnections(n, AGENT_DEFAULTS.targetPeers))
      let peersSeen = ''
      const connectedMs = await waitUntil(`${n} memgossip agents connected to ${want} peers each`, async () => {
        const states = await Promise.all(cluster.nodes.map(async node => (await httpJson(`${node.api}/v1/state`)).body))
        const counts = states.map(s => Array.isArray(s.peers) ? s.peers.length : 0)
        const least = cluster.nodes[counts.indexOf(Math.min(...counts))]
        const dials = least?.log.filter(line => line.includes('cannot connect')).slice(-3) ?? []
        peersSeen = `min ${Math.min(...counts)}, max ${Math.max(...counts)}${dials.length > 0 ? `; agent ${least!.index} said:\n    ${dials.join('\n    ')}` : ''}`
        return counts.every(c => c >= want)
      }, 120_000, 1000).catch(() => undefined)
      log(connectedMs !== undefined
        ? `  memgossip: every agent connected to ${want} peers (${(connectedMs / 1000).toFixed(1)} s more)`
        : `  memgossip: not every agent reached ${want} connections within 120 s (peers per agent: ${peersSeen}); measuring anyway`)
      for (const node of cluster.nodes) {
        cluster.streams.push(await EventStream.open(node.api, (type, data, at) => {
          if (type === 'verdict') cluster.onVerdict(node.index, String(data.id), at, data.final === true)
          else if (type === 'liveness') cluster.liveness.push({ by: node.index, node: String(data.node), state: String(data.state), at })
        }))
      }
      return cluster
    } catch (error) {
      // Say how busy the agents were, then leave nothing running behind a
      // failed start: the next phase needs the CPU.
      let busy = ''
      if (started.length > 1) {
        const c0 = await Promise.all(started.map(async p => await cpuSeconds(p.pid)))
        await sleep(5000)
        const c1 = await Promise.all(started.map(async p => await cpuSeconds(p.pid)))
        const rates = c1.map((c, i) => (c - c0[i]) / 5)
        busy = ` — over the last 5 s the ${started.length} agents used ${rates.reduce((x, y) => x + y, 0).toFixed(2)} CPU cores in total (node 0: ${(rates[0] * 100).toFixed(0)}% of a core, median agent ${(([...rates].sort((x, y) => x - y)[Math.floor(rates.length / 2)]) * 100).toFixed(0)}%)`
      }
      await cluster.stop(registry)
      throw new Error(`${(error as Error).message}${busy}`)
    }
  }

  private onVerdict (node: number, id: string, at: number, final: boolean): void {
    for (const w of this.waiters) {
      if (w.key !== id || at < w.t0) continue
      if (final && !w.finals.has(node)) {
        w.finals.set(node, at)
        if ([...w.all].every(i => w.finals.has(i))) w.finalDone()
      }
      if (w.arrivals.has(node)) continue
      w.arrivals.set(node, at)
      if ([...w.need].every(i => w.arrivals.has(i))) w.done()
    }
  }

  /**
   * POST a reservation on `origin` and wait until every other agent's event
   * stream announced its verdict. Returns ms from the POST being sent to the
   * last arrival (NaN on timeout), and the POST's own round trip.
   */
  async propagate (origin: number, id: string, timeoutMs: number): Promise<{ ms: number, ackMs: number, finalMs: number, arrived: number, expected: number, perNode: number[] }> {
    const need = new Set(this.nodes.map(n => n.index).filter(i => i !== origin))
    let done!: () => void
    let finalDone!: () => void
    const finished = new Promise<void>(resolve => { done = resolve })
    const allFinal = new Promise<void>(resolve => { finalDone = resolve })
    const t0 = performance.now()
    const waiter: Waiter = { key: id, t0, need, arrivals: new Map(), done, all: new Set(this.nodes.map(n => n.index)), finals: new Map(), finalDone }
    this.waiters.add(waiter)
    try {
      const res = await httpJson(`${this.nodes[origin].api}/v1/reservations`, { body: { id, size: '1MiB', placement: 'any' } })
      const ackMs = performance.now() - t0
      if (res.status !== 201) throw new Error(`POST /v1/reservations on node ${origin} answered ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([finished, new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })])
      clearTimeout(timer)
      const perNode = [...waiter.arrivals.values()].map(t => t - t0)
      const complete = [...need].every(i => waiter.arrivals.has(i))
      // Final on every peer, the origin included (a verdict is final about two mesh round trips after it arrives).
      const left = Math.max(0, timeoutMs - (performance.now() - t0))
      await Promise.race([allFinal, new Promise<void>(resolve => { timer = setTimeout(resolve, left) })])
      clearTimeout(timer)
      const finals = [...waiter.finals.values()].map(t => t - t0)
      const finalMs = waiter.finals.size === waiter.all.size ? Math.max(...finals, 0) : Number.NaN
      return { ms: complete ? Math.max(...perNode, 0) : Number.NaN, ackMs, finalMs, arrived: waiter.arrivals.size, expected: need.size, perNode }
    } finally {
      this.waiters.delete(waiter)
    }
  }

  async metrics (): Promise<Array<Map<string, number>>> {
    return await Promise.all(this.nodes.map(async n => await scrapeMetrics(n.api)))
  }

  /** Ask every agent's gossip probe for its counters (SIGUSR2) and read them. */
  async probes (): Promise<Array<GossipProbe | undefined>> {
    return await Promise.all(this.nodes.map(async n => await askProbe<GossipProbe>(n.pid, join(n.dataDir, 'gossip-probe.json'))))
  }

  async stop (registry: Registry): Promise<void> {
    for (const s of this.streams) s.close()
    await Promise.all(this.nodes.map(async n => { await registry.stopChild(n.child) }))
  }
}

// ------------------------------------------------------------ Serf cluster

interface LineWaiter { match: (line: string) => boolean, t0: number, need: Set<number>, arrivals: Map<number, number>, done: () => void }

export class SerfCluster {
  private readonly waiters = new Set<LineWaiter>()

  private constructor (readonly nodes: SerfProc[]) {
    for (const node of nodes) node.onLine = (line, at) => { this.onLine(node.index, line, at) }
  }

  static async start (registry: Registry, serfPath: string, n: number, log: Log): Promise<SerfCluster> {
    const dir = await registry.tempDir('serfb-')
    const started: SerfProc[] = []
    try {
      const first = await startSerf({ registry, serfPath, index: 0, dir })
      started.push(first)
      await inBatches(n - 1, 10, async i => { started.push(await startSerf({ registry, serfPath, index: i + 1, dir, join: first.bind })) })
      started.sort((a, b) => a.index - b.index)
      const cluster = new SerfCluster(started)
      const ms = await waitUntil(`${n} serf agents to see ${n} alive members`, async () => {
        const views = await Promise.all(cluster.nodes.map(async node => await node.rpc.members()))
        return views.every(v => v.filter(m => m.Status === 'alive').length === n)
      // A 2-core host running 50 agents of each product side by side is slow
      // to settle memberlist's view (a starved agent is briefly suspect).
      }, 60_000 + 2_000 * n, 250)
      log(`  serf: ${n} agents joined, every one sees ${n} alive members (${(ms / 1000).toFixed(1)} s)`)
      return cluster
    } catch (error) {
      for (const p of started) { p.rpc?.close(); p.statsd.close() }
      await Promise.all(started.map(async p => { await registry.stopChild(p.child) }))
      throw error
    }
  }

  private onLine (node: number, line: string, at: number): void {
    for (const w of this.waiters) {
      if (w.arrivals.has(node) || at < w.t0 || !w.need.has(node) || !w.match(line)) continue
      w.arrivals.set(node, at)
      if (w.arrivals.size === w.need.size) w.done()
    }
  }

  private async measure (origin: number, matchers: Array<(line: string) => boolean>, action: () => Promise<void>, timeoutMs: number): Promise<Array<{ ms: number, arrived: number, expected: number, perNode: number[] }>> {
    const need = new Set(this.nodes.map(n => n.index).filter(i => i !== origin))
    const t0 = performance.now()
    const waiters = matchers.map(match => {
      let done!: () => void
      const finished = new Promise<void>(resolve => { done = resolve })
      const w: LineWaiter = { match, t0, need, arrivals: new Map(), done }
      this.waiters.add(w)
      return { w, finished }
    })
    try {
      await action()
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.all(waiters.map(async x => await x.finished)), new Promise<void>(resolve => { timer = setTimeout(resolve, timeoutMs) })])
      clearTimeout(timer)
      return waiters.map(({ w }) => {
        const perNode = [...w.arrivals.values()].map(t => t - t0)
        return { ms: w.arrivals.size === need.size ? Math.max(...perNode, 0) : Number.NaN, arrived: w.arrivals.size, expected: need.size, perNode }
      })
    } finally {
      for (const { w } of waiters) this.waiters.delete(w)
    }
  }

  /** A user event (not coalesced) from `origin`; arrival = "Received event: user-event: NAME". */
  async userEvent (origin: number, name: string, payload: Uint8Array, timeoutMs: number): Promise<{ ms: number, arrived: number, expected: number, perNode: number[] }> {
    const [r] = await this.measure(origin, [line => line.endsWith(`Received event: user-event: ${name}`)], async () => { await this.nodes[origin].rpc.event(name, payload) }, timeoutMs)
    return r
  }

  /**
   * `serf tags -set bench=VALUE` on `origin`. Two arrivals per node: the serf
   * library's "EventMemberUpdate: <origin>" (the member list has the new tags)
   * and the agent's "Received event: member-update" (what event handlers get:
   * the agent coalesces member events, 1 s quiet / 3 s max, by default).
   */
  async tagChange (origin: number, value: string, timeoutMs: number): Promise<{ library: { ms: number, arrived: number, expected: number, perNode: number[] }, agent: { ms: number, arrived: number, expected: number, perNode: number[] } }> {
    const name = this.nodes[origin].name
    const [library, agent] = await this.measure(origin, [
      line => line.endsWith(`serf: EventMemberUpdate: ${name}`),
      line => line.endsWith('Received event: member-update')
    ], async () => { await this.nodes[origin].rpc.setTags({ bench: value }) }, timeoutMs)
    return { library, agent }
  }

  async stop (registry: Registry): Promise<void> {
    for (const n of this.nodes) { n.rpc.close(); n.statsd.close() }
    await Promise.all(this.nodes.map(async n => { await registry.stopChild(n.child) }))
  }
}

// ------------------------------------------------------------ traffic windows

export interface TrafficSnapshot {
  at: number
  ss: SocketCounters[]
  mgMetrics?: Array<Map<string, number>>
  mgProbes?: Array<GossipProbe | undefined>
  serf?: Array<{ totals: Record<string, number>, counts: Record<string, number> }>
  serfIo?: Array<{ rchar: number, wchar: number }>
  mgCpu?: number[]
  serfCpu?: number[]
}

export async function trafficSnapshot (mg: MemgossipCluster | undefined, serf: SerfCluster | undefined): Promise<TrafficSnapshot> {
  const [mgMetrics, mgProbes, ss] = await Promise.all([mg?.metrics(), mg?.probes(), ssSnapshot()])
  return {
    at: performance.now(),
    ss,
    mgMetrics,
    mgProbes,
    serf: serf?.nodes.map(n => n.statsd.snapshot()),
    serfIo: serf !== undefined ? await Promise.all(serf.nodes.map(async n => await procIo(n.pid))) : undefined,
    mgCpu: mg !== undefined ? await Promise.all(mg.nodes.map(async n => await cpuSeconds(n.pid))) : undefined,
    serfCpu: serf !== undefined ? await Promise.all(serf.nodes.map(async n => await cpuSeconds(n.pid))) : undefined
  }
}

export interface TrafficWindow {
  kind: 'rest' | 'load'
  seconds: number
  changes: number
  memgossip: {
    /** Protocol payload (the agent's own counters: Yjs gossip and sync message bodies), per node per second, in + out. */
    payloadBytesPerNodeSec: number
    /** TCP payload on the agent's libp2p sockets (ss), per node per second, in + out. */
    socketBytesPerNodeSec: number
    /** The busiest agent's socket bytes per second (in a star, node 0 relays every message to everyone). */
    socketBytesBusiestNodeSec: number
    /** Socket bytes plus 52 B of IPv4+TCP header per segment. */
    wireBytesPerNodeSec: number
    /** Gossip messages gossipsub handed over per node per published message (first copies + duplicates; 1.0 = no duplicates). */
    gossipCopiesPerNodePerMessage: number
    gossipMessagesPublished: number
    ihavePerNodeSec: number
    iwantPerNodeSec: number
    /** Bytes gossipsub sent per node per second in RPCs carrying messages (each copy counted), and in control-only RPCs (IHAVE/IWANT/GRAFT/PRUNE/IDONTWANT); before yamux/Noise framing. What a node sends, its peers receive: socket bytes (in + out) hold each twice. */
    gossipMessageBytesSentPerNodeSec?: number
    gossipControlBytesSentPerNodeSec?: number
    /** Ledger updates the agents applied from peers per node per published message (gossip + sync). */
    updatesAppliedPerNodePerMessage: number
    /** Share of applied updates that brought nothing new (memgossip_redundant_updates_total). */
    redundantShare: number
    syncRoundsPerNodeSec: number
    /** Stream gaps pulled (agent/repair.ts) and beacons pulled for verdicts that waited, per node per second. */
    gapPullsPerNodeSec?: number
    beaconPullsPerNodeSec?: number
    updatesOut: number
    /** CPU seconds per second of an agent process (1.0 = one core): mean over agents, and node 0's. */
    cpuPerNode: number
    cpuHub: number
  }
  serf?: {
    /** memberlist UDP payload sent + received, plus TCP push/pull sent × 2 (the receiver's side), per node per second. */
    payloadBytesPerNodeSec: number
    /** The busiest agent's payload (UDP sent + received + TCP sent) per second. */
    payloadBytesBusiestNodeSec: number
    /** Payload plus 28 B per UDP packet and ~10 segments × 52 B per push/pull connection, both ends. */
    wireBytesPerNodeSec: number
    udpPacketsPerNodeSec: number
    pushPullsPerNodeSec: number
    /** rchar + wchar from /proc/<pid>/io: misses UDP (sendto/recvfrom) and includes the statsd telemetry writes; shown to document why it is not used. */
    procIoBytesPerNodeSec: number
    /** CPU seconds per second of a Serf agent process: mean, and node 0's. */
    cpuPerNode: number
    cpuHub: number
  }
  ratioSocket?: number
  ratioWire?: number
}

/** Counters of simulations/bench/gossip-probe.ts in one agent. */
export interface GossipProbe { received: number, published: number, ihave: number, iwant: number, rpcs: number, sentRpcs: number, sentMessageBytes: number, sentControlBytes: number }

/**
 * Whether a window's gossip-probe figures can be read: the preload writes its
 * counters when asked (SIGUSR2), and an agent starved of CPU may write them
 * after the benchmark read them — then copies fall below one per node per
 * message, differences go negative, or gossipsub's own sends exceed the socket
 * bytes. (Below one copy can also mean anti-entropy delivered the rest; either
 * way the window says nothing about gossip amplification.)
 */
export function probeComplete (w: TrafficWindow): boolean {
  const m = w.memgossip
  const sent = 2 * ((m.gossipMessageBytesSentPerNodeSec ?? 0) + (m.gossipControlBytesSentPerNodeSec ?? 0))
  return m.gossipCopiesPerNodePerMessage >= 1 && m.ihavePerNodeSec >= 0 && (m.gossipControlBytesSentPerNodeSec ?? 0) >= 0 && sent <= m.socketBytesPerNodeSec
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)
const metric = (m: Map<string, number> | undefined, key: string): number => m?.get(key) ?? 0

export function trafficWindow (kind: 'rest' | 'load', changes: number, a: TrafficSnapshot, b: TrafficSnapshot, mgCluster: MemgossipCluster | undefined, serf: SerfCluster | undefined): TrafficWindow {
  const seconds = (b.at - a.at) / 1000
  // Without a memgossip cluster every memgossip figure comes out NaN (0 / 0).
  const mg = mgCluster ?? { nodes: [] as MemgossipProc[] }
  const n = mg.nodes.length
  const d = (key: string): number => sum(mg.nodes.map((_, i) => metric(b.mgMetrics?.[i], key) - metric(a.mgMetrics?.[i], key)))
  const apiPorts = new Map(mg.nodes.map(node => [node.pid, node.apiPort]))
  const sockets = ssDelta(a.ss, b.ss, s => apiPorts.has(s.pid) && portOf(s.local) !== apiPorts.get(s.pid))
  const mgSocket = sum(mg.nodes.map(node => sockets.get(node.pid)?.bytes ?? 0))
  const mgSegs = sum(mg.nodes.map(node => sockets.get(node.pid)?.segs ?? 0))
  const probeDelta = (key: keyof GossipProbe): number => sum(mg.nodes.map((_, i) => (b.mgProbes?.[i]?.[key] ?? 0) - (a.mgProbes?.[i]?.[key] ?? 0)))
  const published = probeDelta('published')
  const updatesIn = d('memgossip_updates_in_total')
  const window: TrafficWindow = {
    kind,
    seconds,
    changes,
    memgossip: {
      payloadBytesPerNodeSec: (d('memgossip_bytes_in_total') + d('memgossip_bytes_out_total')) / n / seconds,
      socketBytesPerNodeSec: mgSocket / n / seconds,
      socketBytesBusiestNodeSec: n > 0 ? Math.max(...mg.nodes.map(node => sockets.get(node.pid)?.bytes ?? 0)) / seconds : Number.NaN,
      wireBytesPerNodeSec: (mgSocket + mgSegs * TCP_HEADER_BYTES) / n / seconds,
      gossipCopiesPerNodePerMessage: published > 0 && n > 1 ? probeDelta('received') / (published * (n - 1)) : Number.NaN,
      gossipMessagesPublished: published,
      ihavePerNodeSec: probeDelta('ihave') / n / seconds,
      iwantPerNodeSec: probeDelta('iwant') / n / seconds,
      gossipMessageBytesSentPerNodeSec: probeDelta('sentMessageBytes') / n / seconds,
      gossipControlBytesSentPerNodeSec: probeDelta('sentControlBytes') / n / seconds,
      updatesAppliedPerNodePerMessage: published > 0 && n > 1 ? updatesIn / (published * (n - 1)) : Number.NaN,
      redundantShare: updatesIn > 0 ? d('memgossip_redundant_updates_total') / updatesIn : Number.NaN,
      syncRoundsPerNodeSec: d('memgossip_sync_rounds_total') / n / seconds,
      gapPullsPerNodeSec: d('memgossip_gap_pulls_total') / n / seconds,
      beaconPullsPerNodeSec: d('memgossip_beacon_pulls_total') / n / seconds,
      updatesOut: d('memgossip_updates_out_total'),
      cpuPerNode: sum(mg.nodes.map((_, i) => (b.mgCpu?.[i] ?? 0) - (a.mgCpu?.[i] ?? 0))) / n / seconds,
      cpuHub: n > 0 ? ((b.mgCpu?.[0] ?? 0) - (a.mgCpu?.[0] ?? 0)) / seconds : Number.NaN
    }
  }
  if (serf !== undefined && a.serf !== undefined && b.serf !== undefined) {
    const sn = serf.nodes.length
    const st = (key: string, field: 'totals' | 'counts'): number => sum(serf.nodes.map((_, i) => (b.serf![i][field][key] ?? 0) - (a.serf![i][field][key] ?? 0)))
    const udpBytes = st('memberlist.udp.sent', 'totals') + st('memberlist.udp.received', 'totals')
    const udpPackets = st('memberlist.udp.sent', 'counts') + st('memberlist.udp.received', 'counts')
    const tcpBytes = 2 * st('memberlist.tcp.sent', 'totals')
    const pushPulls = st('memberlist.tcp.connect', 'totals')
    const payload = udpBytes + tcpBytes
    const wire = payload + udpPackets * UDP_HEADER_BYTES + pushPulls * 2 * SEGMENTS_PER_PUSH_PULL * TCP_HEADER_BYTES
    const io = sum(serf.nodes.map((_, i) => (b.serfIo![i].rchar + b.serfIo![i].wchar) - (a.serfIo![i].rchar + a.serfIo![i].wchar)))
    const perNode = serf.nodes.map((_, i) => ['memberlist.udp.sent', 'memberlist.udp.received', 'memberlist.tcp.sent'].reduce((acc, key) => acc + (b.serf![i].totals[key] ?? 0) - (a.serf![i].totals[key] ?? 0), 0))
    window.serf = {
      payloadBytesPerNodeSec: payload / sn / seconds,
      payloadBytesBusiestNodeSec: Math.max(...perNode) / seconds,
      wireBytesPerNodeSec: wire / sn / seconds,
      udpPacketsPerNodeSec: udpPackets / 2 / sn / seconds,
      pushPullsPerNodeSec: pushPulls / sn / seconds,
      procIoBytesPerNodeSec: io / sn / seconds,
      cpuPerNode: sum(serf.nodes.map((_, i) => (b.serfCpu?.[i] ?? 0) - (a.serfCpu?.[i] ?? 0))) / sn / seconds,
      cpuHub: ((b.serfCpu?.[0] ?? 0) - (a.serfCpu?.[0] ?? 0)) / seconds
    }
    window.ratioSocket = window.memgossip.socketBytesPerNodeSec / window.serf.payloadBytesPerNodeSec
    window.ratioWire = window.memgossip.wireBytesPerNodeSec / window.serf.wireBytesPerNodeSec
  }
  return window
}
