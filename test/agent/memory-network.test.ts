/**
 * The virtual tier's seams (docs/design.md "Simulation harness"): the virtual
 * clock and the in-memory network. Random tests print their seed on failure
 * (`seed N` in the test name or message) so a failing run can be replayed.
 */
import { describe, expect, it } from 'vitest'
import {
  MemoryNetworkHub,
  PeerUnreachableError
} from '../../simulations/virtual/network.ts'
import { seededRandom } from '../../simulations/support/random.ts'
import { DEFAULT_START_MS, VirtualClock, VirtualClockError } from '../../simulations/virtual/clock.ts'
import type { MemoryNetwork, MemoryNetworkHubInit, MemoryTraceEvent } from '../../simulations/virtual/network.ts'
import { MAX_DIRECT_BYTES, type NetworkHandlers, type PeerIdStr } from '../../agent/types.ts'

// --- VirtualClock ------------------------------------------------------------

describe('VirtualClock', () => {
  it('starts at the given epoch and fires timers in due order, at their due time', () => {
    const clock = new VirtualClock()
    expect(clock.now()).toBe(DEFAULT_START_MS)
    const fired: Array<[string, number]> = []
    clock.setTimeout(() => fired.push(['c', clock.now()]), 30)
    clock.setTimeout(() => fired.push(['a', clock.now()]), 10)
    clock.setTimeout(() => fired.push(['b', clock.now()]), 20)
    expect(clock.pending()).toBe(3)
    expect(clock.advanceSync(25)).toBe(2)
    expect(fired).toEqual([['a', DEFAULT_START_MS + 10], ['b', DEFAULT_START_MS + 20]])
    expect(clock.now()).toBe(DEFAULT_START_MS + 25)
    clock.advanceSync(5)
    expect(fired.map(([name]) => name)).toEqual(['a', 'b', 'c'])
    expect(clock.pending()).toBe(0)
  })

  it('breaks ties by scheduling order', () => {
    const clock = new VirtualClock({ startMs: 0 })
    const fired: number[] = []
    for (let i = 0; i < 50; i++) clock.setTimeout(() => fired.push(i), 7)
    clock.setTimeout(() => fired.push(-1), 6)
    clock.advanceSync(10)
    expect(fired).toEqual([-1, ...Array.from({ length: 50 }, (_, i) => i)])
  })

  it('honours timers scheduled while firing when they fall due within the window', () => {
    const clock = new VirtualClock({ startMs: 0 })
    const fired: Array<[string, number]> = []
    clock.setTimeout(() => {
      fired.push(['outer', clock.now()])
      clock.setTimeout(() => fired.push(['inner', clock.now()]), 5)
      clock.setTimeout(() => fired.push(['late', clock.now()]), 50)
    }, 10)
    clock.advanceSync(20)
    expect(fired).toEqual([['outer', 10], ['inner', 15]])
    expect(clock.pending()).toBe(1)
    clock.runUntilSync(60)
    expect(fired.at(-1)).toEqual(['late', 60])
  })

  it('clears timeouts and intervals, including an interval from its own callback', () => {
    const clock = new VirtualClock({ startMs: 0 })
    const fired: Array<[string, number]> = []
    const cleared = clock.setTimeout(() => fired.push(['cleared', clock.now()]), 5)
    clock.clearTimeout(cleared)
    clock.clearTimeout(undefined)
    clock.clearTimeout({})
    let ticks = 0
    const interval = clock.setInterval(() => {
      fired.push(['tick', clock.now()])
      if (++ticks === 3) clock.clearInterval(interval)
    }, 10)
    expect(clock.pending()).toBe(1)
    clock.advanceSync(100)
    expect(fired).toEqual([['tick', 10], ['tick', 20], ['tick', 30]])
    expect(clock.pending()).toBe(0)
    expect(clock.nextDueMs()).toBeUndefined()
  })

  it('clamps delays below 1 ms to 1 ms, as Node does, so a zero interval cannot spin', () => {
    const clock = new VirtualClock({ startMs: 0 })
    const at: number[] = []
    const interval = clock.setInterval(() => at.push(clock.now()), 0)
    clock.setTimeout(() => at.push(-clock.now()), Number.NaN)
    clock.advanceSync(3)
    clock.clearInterval(interval)
    expect(at).toEqual([1, -1, 2, 3])
  })

  it('compacts the heap when most timers are cleared', () => {
    const clock = new VirtualClock({ startMs: 0 })
    const handles = Array.from({ length: 5000 }, (_, i) => clock.setTimeout(() => {}, 1000 + i))
    for (const handle of handles.slice(0, 4900)) clock.clearTimeout(handle)
    expect(clock.pending()).toBe(100)
    expect(clock.nextDueMs()).toBe(1000 + 4900)
    expect(clock.advanceSync(10_000)).toBe(100)
  })

  it('lets promise chains that wait on virtual timers finish within the advanced window', async () => {
    const clock = new VirtualClock({ startMs: 0 })
    const sleep = async (ms: number): Promise<void> => { await new Promise<void>(resolve => { clock.setTimeout(resolve, ms) }) }
    const log: Array<[string, number]> = []
    const task = (async () => {
      await sleep(10)
      log.push(['first', clock.now()])
      // A long chain of pure microtasks between two timers.
      for (let i = 0; i < 1000; i++) await Promise.resolve()
      await sleep(10)
      log.push(['second', clock.now()])
      return 'done'
    })()
    expect(await clock.advance(20)).toBe(2)
    expect(log).toEqual([['first', 10], ['second', 20]])
    expect(await task).toBe('done')
  })

  it('runUntilIdle stops when nothing is pending, or at the limit', async () => {
    const clock = new VirtualClock({ startMs: 0 })
    clock.setTimeout(() => { clock.setTimeout(() => {}, 40) }, 10)
    expect(await clock.runUntilIdle(1000)).toBe(2)
    expect(clock.now()).toBe(50)
    const interval = clock.setInterval(() => {}, 100)
    expect(await clock.runUntilIdle(1000)).toBe(10)
    expect(clock.now()).toBe(1050)
    expect(clock.pending()).toBe(1)
    clock.clearInterval(interval)
  })

  it('stepMs bounds how far time jumps between two yields to the event loop', async () => {
    const clock = new VirtualClock({ startMs: 0 })
    const seen = new Set<number>()
    let polling = true
    const poll = (async () => {
      while (polling) {
        seen.add(clock.now())
        await new Promise(resolve => setImmediate(resolve))
      }
    })()
    await clock.advance(1000)
    const unstepped = seen.size
    seen.clear()
    await clock.advance(1000, { stepMs: 100 })
    polling = false
    await poll
    expect(unstepped).toBeLessThanOrEqual(2)
    for (let t = 1100; t <= 2000; t += 100) expect(seen.has(t)).toBe(true)
  })

  it('refuses to run re-entrantly and survives a throwing timer', async () => {
    const clock = new VirtualClock({ startMs: 0 })
    let inner: unknown
    clock.setTimeout(() => {
      try { clock.advanceSync(1) } catch (err) { inner = err }
    }, 1)
    clock.setTimeout(() => { throw new Error('boom') }, 2)
    const after = vitestSpy()
    clock.setTimeout(after.fn, 3)
    await expect(clock.advance(10)).rejects.toThrow('boom')
    expect((inner as Error).name).toBe(VirtualClockError.NAME)
    expect(clock.now()).toBe(2)
    await clock.advance(10)
    expect(after.calls).toBe(1)
  })

  it('a scope clears all its timers at once and schedules nothing after dispose', () => {
    const clock = new VirtualClock({ startMs: 0 })
    const scope = clock.scope()
    const fired: string[] = []
    scope.setInterval(() => fired.push('heartbeat'), 10)
    scope.setTimeout(() => fired.push('once'), 15)
    clock.setTimeout(() => fired.push('other'), 25)
    clock.advanceSync(10)
    expect(scope.pending()).toBe(2)
    scope.dispose()
    scope.setTimeout(() => fired.push('zombie'), 1)
    clock.advanceSync(100)
    expect(fired).toEqual(['heartbeat', 'other'])
    expect(clock.pending()).toBe(0)
  })
})

// --- MemoryNetworkHub ----------------------------------------------------------

interface Received {
  gossip: Array<{ from: PeerIdStr, text: string, atMs: number }>
  direct: Array<{ from: PeerIdStr, text: string, atMs: number }>
  connected: Array<{ peer: PeerIdStr, atMs: number }>
  disconnected: Array<{ peer: PeerIdStr, atMs: number }>
  /** `+peer` / `-peer` in the order the connection handlers were called. */
  changes: string[]
}

interface Peer {
  id: PeerIdStr
  network: MemoryNetwork
  received: Received
}

interface Sim {
  clock: VirtualClock
  hub: MemoryNetworkHub
  trace: MemoryTraceEvent[]
  peers: Peer[]
  /** Start (or restart) `id` with recording handlers. */
  start: (id: PeerIdStr, onRequest?: NetworkHandlers['onRequest']) => Promise<Peer>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (text: string): Uint8Array => encoder.encode(text)

function echo (from: PeerIdStr, data: Uint8Array): Promise<Uint8Array> {
  return Promise.resolve(bytes(`${from} said ${decoder.decode(data)}`))
}

async function makeSim (seed: number, count: number, init: Partial<MemoryNetworkHubInit> = {}): Promise<Sim> {
  const clock = new VirtualClock({ startMs: 0 })
  const trace: MemoryTraceEvent[] = []
  const hub = new MemoryNetworkHub({ clock, random: seededRandom(seed), onTrace: event => trace.push(event), ...init })
  const peers: Peer[] = []
  const start = async (id: PeerIdStr, onRequest: NetworkHandlers['onRequest'] = echo): Promise<Peer> => {
    const received: Received = { gossip: [], direct: [], connected: [], disconnected: [], changes: [] }
    const network = hub.createNetwork(id)
    await network.start({
      onGossip: (from, data) => { received.gossip.push({ from, text: decoder.decode(data), atMs: clock.now() }) },
      onMessage: (from, data) => { received.direct.push({ from, text: decoder.decode(data), atMs: clock.now() }) },
      onRequest,
      onPeerConnected: (peer) => { received.connected.push({ peer, atMs: clock.now() }); received.changes.push(`+${peer}`) },
      onPeerDisconnected: (peer) => { received.disconnected.push({ peer, atMs: clock.now() }); received.changes.push(`-${peer}`) }
    })
    const peer = { id, network, received }
    const index = peers.findIndex(p => p.id === id)
    if (index >= 0) peers[index] = peer
    else peers.push(peer)
    return peer
  }
  for (let i = 0; i < count; i++) await start(`p${i}`)
  return { clock, hub, trace, peers, start }
}

function connectAll (hub: MemoryNetworkHub, ids: PeerIdStr[]): void {
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) hub.connect(ids[i], ids[j])
  }
}

/** Settle a promise that is expected to reject, so the assertion can run after the clock moved. */
function settled<T> (promise: Promise<T>): Promise<{ ok: true, value: T } | { ok: false, error: Error }> {
  return promise.then(value => ({ ok: true as const, value }), (error: Error) => ({ ok: false as const, error }))
}

function vitestSpy (): { fn: () => void, calls: number } {
  const spy = { calls: 0, fn: () => { spy.calls++ } }
  return spy
}

describe('MemoryNetworkHub', () => {
  it('tells both ends of a connection after a latency, and peers() follows the events', async () => {
    const { clock, hub, peers: [a, b] } = await makeSim(1, 2)
    expect(hub.connect('p0', 'p1')).toBe(true)
    expect(hub.isConnected('p0', 'p1')).toBe(true)
    expect(a.network.peers()).toEqual([])
    await clock.advance(10)
    expect(a.network.peers()).toEqual(['p1'])
    expect(b.network.peers()).toEqual(['p0'])
    expect(a.received.connected).toHaveLength(1)
    expect(a.received.connected[0].atMs).toBeGreaterThanOrEqual(1)
    expect(a.received.connected[0].atMs).toBeLessThanOrEqual(5)
    expect(hub.disconnect('p0', 'p1')).toBe(true)
    await clock.advance(10)
    expect(a.received.disconnected.map(e => e.peer)).toEqual(['p1'])
    expect(b.received.disconnected.map(e => e.peer)).toEqual(['p0'])
    expect(a.network.peers()).toEqual([])
    expect(a.network.addresses()).toEqual(['/memory-sim/p0'])
  })

  it('keeps connection events about one peer in order even when they flap faster than the latency', async () => {
    const { clock, hub, peers: [a] } = await makeSim(2, 2, { latencyMs: { min: 1, max: 50 } })
    for (let i = 0; i < 20; i++) {
      hub.connect('p0', 'p1')
      await clock.advance(1)
      hub.disconnect('p0', 'p1')
      await clock.advance(1)
    }
    await clock.advance(200)
    expect(a.received.connected).toHaveLength(20)
    expect(a.received.disconnected).toHaveLength(20)
    // In the order the handlers were called: up, down, up, down, …
    expect(a.received.changes).toEqual(Array.from({ length: 40 }, (_, i) => i % 2 === 0 ? '+p1' : '-p1'))
    for (let i = 1; i < 20; i++) expect(a.received.connected[i].atMs).toBeGreaterThanOrEqual(a.received.disconnected[i - 1].atMs)
    expect(a.network.peers()).toEqual([])
  })

  it('floods gossip to the whole connected component, after a latency in range, never to the sender', async () => {
    const latencyMs = { min: 3, max: 9 }
    const { clock, hub, peers } = await makeSim(3, 10, { latencyMs })
    // A line p0–p1–…–p5 and a separate component p6–p9.
    for (let i = 0; i < 5; i++) hub.connect(`p${i}`, `p${i + 1}`)
    connectAll(hub, ['p6', 'p7', 'p8', 'p9'])
    await clock.advance(100)
    const sentAt = clock.now()
    await peers[0].network.publish(bytes('hello'))
    await clock.advance(100)
    for (const peer of peers.slice(1, 6)) {
      expect(peer.received.gossip).toHaveLength(1)
      const { from, text, atMs } = peer.received.gossip[0]
      expect({ from, text }).toEqual({ from: 'p0', text: 'hello' })
      expect(atMs - sentAt).toBeGreaterThanOrEqual(latencyMs.min)
      expect(atMs - sentAt).toBeLessThanOrEqual(latencyMs.max)
    }
    for (const peer of [peers[0], ...peers.slice(6)]) expect(peer.received.gossip).toHaveLength(0)
    expect(hub.stats('p0')).toMatchObject({ gossipOut: 1, bytesOut: 5 })
    expect(hub.stats('p3')).toMatchObject({ gossipIn: 1, bytesIn: 5, duplicatesIn: 0, dropped: 0 })
  })

  it('gives each receiver its own copy of a message', async () => {
    const { clock, hub, peers: [a] } = await makeSim(4, 3)
    connectAll(hub, ['p0', 'p1', 'p2'])
    await clock.advance(10)
    const got: Uint8Array[] = []
    for (const id of ['p1', 'p2']) {
      const network = hub.createNetwork(`${id}x`)
      await network.start({ onGossip: (_from, data) => { data.fill(0); got.push(data) }, onRequest: echo, onPeerConnected: () => {}, onPeerDisconnected: () => {} })
      hub.connect('p0', `${id}x`)
    }
    await clock.advance(10)
    const data = bytes('shared')
    await a.network.publish(data)
    data.fill(1)
    await clock.advance(10)
    expect(got).toHaveLength(2)
    expect(decoder.decode(got[0])).toBe('\0'.repeat(6))
    expect(a.received.gossip).toHaveLength(0)
    expect(hub.peerIds()).toEqual(['p0', 'p1', 'p2', 'p1x', 'p2x'])
  })

  it.each([1, 2, 3])('loses and duplicates gossip copies at about the configured rates (seed %i)', async (seed) => {
    const lossRate = 0.2
    const duplicateRate = 0.1
    const { clock, hub, peers, trace } = await makeSim(seed, 21, { lossRate, duplicateRate })
    for (let i = 1; i < 21; i++) hub.connect('p0', `p${i}`)
    await clock.advance(10)
    const messages = 500
    for (let m = 0; m < messages; m++) await peers[0].network.publish(bytes(`m${m}`))
    await clock.advance(100)
    const copies = messages * 20
    const lost = trace.filter(e => e.kind === 'drop' && e.reason === 'loss').length
    const totals = hub.totals()
    const firstCopies = totals.gossipIn - totals.duplicatesIn
    expect(lost + firstCopies, `seed ${seed}`).toBe(copies)
    // 10,000 copies: the standard deviation of the loss count is 40, of the duplicate count 27.
    expect(lost / copies, `seed ${seed}`).toBeCloseTo(lossRate, 1)
    expect(Math.abs(lost - copies * lossRate), `seed ${seed}`).toBeLessThan(200)
    expect(Math.abs(totals.duplicatesIn - firstCopies * duplicateRate), `seed ${seed}`).toBeLessThan(140)
    expect(totals.dropped).toBe(lost)
    expect(trace.filter(e => e.kind === 'gossip' && e.duplicate === true)).toHaveLength(totals.duplicatesIn)
  })

  it.each([1, 2])('with meshPaths = 3 a copy is lost only when all three paths lose it, and comes by the fastest (seed %i)', async (seed) => {
    const lossRate = 0.3
    const { clock, hub, peers, trace } = await makeSim(seed, 21, { lossRate, meshPaths: 3, latencyMs: { min: 1, max: 30 } })
    for (let i = 1; i < 21; i++) hub.connect('p0', `p${i}`)
    await clock.advance(50)
    const messages = 500
    const sentAt: number[] = []
    for (let m = 0; m < messages; m++) {
      sentAt.push(clock.now())
      await peers[0].network.publish(bytes(`m${m}`))
      await clock.advance(1)
    }
    await clock.advance(100)
    const copies = messages * 20
    const lost = trace.filter(e => e.kind === 'drop' && e.reason === 'loss').length
    const totals = hub.totals()
    expect(lost + totals.gossipIn, `seed ${seed}`).toBe(copies)
    // Lost on every path: 0.3³ = 2.7 % of 10,000 (σ ≈ 16); with one path it would be 30 %.
    expect(Math.abs(lost - copies * lossRate ** 3), `seed ${seed}`).toBeLessThan(80)
    // Each delivered copy came with 0–2 slower ones, dropped as seen: E = 3·0.7 − 1 = 1.1 more per
    // message reaching a peer, given that at least one path got through (≈ 1.13 ± 0.01).
    const perDelivered = totals.meshDuplicatesIn / totals.gossipIn
    expect(perDelivered, `seed ${seed}`).toBeGreaterThan(1.05)
    expect(perDelivered, `seed ${seed}`).toBeLessThan(1.2)
    // The fastest of up to three draws from 1..30: its mean is well under the single draw's 15.5.
    const delays = peers.slice(1).flatMap(p => p.received.gossip.map(g => g.atMs - sentAt[Number(g.text.slice(1))]))
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length
    expect(mean, `seed ${seed}`).toBeLessThan(11)
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(1)
    expect(Math.max(...delays)).toBeLessThanOrEqual(30)
  })

  it('refuses a meshPaths that is not a positive integer', () => {
    const clock = new VirtualClock({ startMs: 0 })
    for (const meshPaths of [0, 1.5, -1]) {
      expect(() => new MemoryNetworkHub({ clock, random: seededRandom(1), meshPaths })).toThrow(/meshPaths must be an integer >= 1/)
    }
  })

  it('delivers direct messages to a connected peer only, in order, one latency each, none across a cut', async () => {
    const { clock, hub, peers: [a, b, c] } = await makeSim(12, 3, { latencyMs: { min: 1, max: 9 } })
    hub.connect('p0', 'p1')
    await clock.advance(20)
    expect(a.network.send!('p2', bytes('nobody'))).toBe(false)
    const texts = Array.from({ length: 30 }, (_, i) => `m${i}`)
    for (const text of texts) expect(a.network.send!('p1', bytes(text))).toBe(true)
    await clock.advance(20)
    // Random latencies, yet one stream's order.
    expect(b.received.direct.map(m => m.text)).toEqual(texts)
    expect(b.received.direct.every(m => m.from === 'p0')).toBe(true)
    expect(c.received.direct).toEqual([])
    expect(hub.stats('p0')).toMatchObject({ directOut: 30 })
    expect(hub.stats('p1')).toMatchObject({ directIn: 30 })
    expect(() => a.network.send!('p1', new Uint8Array(MAX_DIRECT_BYTES + 1))).toThrow(/direct message/)

    a.network.send!('p1', bytes('in flight'))
    hub.partition([['p0'], ['p1']])
    await clock.advance(20)
    expect(b.received.direct.some(m => m.text === 'in flight')).toBe(false)
    expect(a.network.send!('p1', bytes('after the cut'))).toBe(false)
  })

  it('answers a request with the handler\'s response after two latencies', async () => {
    const { clock, hub, peers: [a] } = await makeSim(5, 2, { latencyMs: { min: 2, max: 2 } })
    hub.connect('p0', 'p1')
    await clock.advance(10)
    const sentAt = clock.now()
    let answeredAt = 0
    const response = a.network.request('p1', bytes('ping')).then(r => { answeredAt = clock.now(); return decoder.decode(r) })
    await clock.advance(10)
    expect(await response).toBe('p0 said ping')
    expect(answeredAt - sentAt).toBe(4)
    expect(hub.stats('p0')).toMatchObject({ requestsOut: 1, bytesOut: 4, bytesIn: 12 })
    expect(hub.stats('p1')).toMatchObject({ requestsIn: 1, bytesIn: 4, bytesOut: 12 })
  })

  it('rejects requests with typed errors: not connected, handler failure, oversized, abort', async () => {
    const { clock, hub, peers: [a], start } = await makeSim(6, 2, { maxMessageBytes: 100 })
    await start('p2', async () => { throw new Error('cannot decode') })
    await start('p3', async () => new Uint8Array(101))
    hub.connect('p0', 'p2')
    hub.connect('p0', 'p3')
    hub.connect('p0', 'p1')
    await clock.advance(10)

    const notConnected = await settled(a.network.request('p9', bytes('x')))
    expect(!notConnected.ok && notConnected.error.name).toBe('RequestFailedError')
    expect(!notConnected.ok && (notConnected.error.cause as Error).name).toBe(PeerUnreachableError.NAME)

    const handlerFailed = settled(a.network.request('p2', bytes('x')))
    const responseTooLarge = settled(a.network.request('p3', bytes('x')))
    await clock.advance(20)
    const failed = await handlerFailed
    expect(!failed.ok && failed.error.name).toBe('RequestFailedError')
    expect(!failed.ok && (failed.error.cause as Error).message).toBe('cannot decode')
    const tooLarge = await responseTooLarge
    expect(!tooLarge.ok && tooLarge.error.name).toBe('RequestFailedError')
    expect(!tooLarge.ok && (tooLarge.error.cause as Error).name).toBe('MessageTooLargeError')
    expect(hub.stats('p3').dropped).toBe(1)

    await expect(a.network.request('p1', new Uint8Array(101))).rejects.toMatchObject({ name: 'MessageTooLargeError' })
    await expect(a.network.publish(new Uint8Array(101))).rejects.toMatchObject({ name: 'MessageTooLargeError' })
    expect(hub.stats('p0')).toMatchObject({ dropped: 2, requestsOut: 2 })

    const controller = new AbortController()
    const aborted = settled(a.network.request('p1', bytes('x'), { signal: controller.signal }))
    controller.abort()
    const abortResult = await aborted
    expect(!abortResult.ok && abortResult.error.name).toBe('AbortError')
    await expect(a.network.request('p1', bytes('x'), { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' })
    await clock.advance(20)
    // The aborted request was withdrawn before it landed.
    expect(hub.stats('p1').requestsIn).toBe(0)
  })

  it('times out a request on the virtual clock, without waiting in real time', async () => {
    const requestTimeoutMs = 10_000
    const { clock, hub, peers: [a], start } = await makeSim(7, 1, { requestTimeoutMs })
    await start('p1', () => new Promise<Uint8Array>(() => {}))
    hub.connect('p0', 'p1')
    await clock.advance(10)
    const sentAt = clock.now()
    let rejectedAt = 0
    const result = settled(a.network.request('p1', bytes('x')).finally(() => { rejectedAt = clock.now() }))
    const wallStart = performance.now()
    await clock.advance(requestTimeoutMs - 1)
    expect(rejectedAt).toBe(0)
    await clock.advance(1)
    const outcome = await result
    expect(!outcome.ok && outcome.error.name).toBe('RequestTimeoutError')
    expect(rejectedAt - sentAt).toBe(requestTimeoutMs)
    expect(performance.now() - wallStart).toBeLessThan(1000)
    expect(clock.pending()).toBe(0)
  })

  it('partition closes connections across groups and blocks gossip, requests and dials until heal', async () => {
    const { clock, hub, peers } = await makeSim(8, 6)
    const ids = peers.map(p => p.id)
    connectAll(hub, ids)
    await clock.advance(10)
    const [a, b, c, d] = peers
    // A request and a gossip in flight across the coming cut.
    const inFlight = settled(a.network.request('p3', bytes('x')))
    await a.network.publish(bytes('before the cut'))

    hub.partition([['p0', 'p1', 'p2'], ['p3', 'p4', 'p5']])
    expect(hub.isConnected('p0', 'p3')).toBe(false)
    expect(hub.isConnected('p0', 'p1')).toBe(true)
    await clock.advance(20)

    const lost = await inFlight
    expect(!lost.ok && lost.error.name).toBe('RequestFailedError')
    expect(b.received.gossip.map(g => g.text)).toEqual(['before the cut'])
    expect(d.received.gossip).toHaveLength(0)
    expect(hub.stats('p3').dropped).toBe(2) // the gossip copy and the request
    expect(a.received.disconnected.map(e => e.peer).sort()).toEqual(['p3', 'p4', 'p5'])
    expect(d.received.disconnected.map(e => e.peer).sort()).toEqual(['p0', 'p1', 'p2'])
    expect(a.network.peers().sort()).toEqual(['p1', 'p2'])

    await a.network.publish(bytes('during'))
    await clock.advance(20)
    expect(c.received.gossip.map(g => g.text)).toEqual(['before the cut', 'during'])
    expect(d.received.gossip).toHaveLength(0)
    await expect(a.network.request('p3', bytes('x'))).rejects.toMatchObject({ name: 'RequestFailedError' })
    await expect(a.network.dial('p3')).rejects.toMatchObject({ name: PeerUnreachableError.NAME })
    expect(hub.connect('p0', 'p4')).toBe(false)

    const connectedBefore = a.received.connected.length
    hub.heal()
    await clock.advance(20)
    expect(a.received.connected.slice(connectedBefore).map(e => e.peer).sort()).toEqual(['p3', 'p4', 'p5'])
    expect(d.network.peers().sort()).toEqual(['p0', 'p1', 'p2', 'p4', 'p5'])
    await a.network.publish(bytes('after'))
    await clock.advance(20)
    expect(d.received.gossip.map(g => g.text)).toEqual(['after'])
    expect(decoder.decode(await requestNow(clock, a.network, 'p3'))).toBe('p0 said x')
  })

  it('crash drops the peer; a new network with the same id reconnects to its previous neighbours', async () => {
    const { clock, hub, peers, start } = await makeSim(9, 3)
    const [a, b, c] = peers
    connectAll(hub, ['p0', 'p1', 'p2'])
    await clock.advance(10)
    const fromCrashed = settled(c.network.request('p0', bytes('x')))
    const toCrashed = settled(a.network.request('p2', bytes('x')))
    await a.network.publish(bytes('to the dead'))

    hub.crash('p2')
    expect(() => hub.createNetwork('p0')).toThrow(expect.objectContaining({ name: 'NetworkStateError' }))
    const own = await fromCrashed
    expect(!own.ok && own.error.name).toBe('NetworkStateError')
    await clock.advance(20)
    const other = await toCrashed
    expect(!other.ok && other.error.name).toBe('RequestFailedError')
    expect(c.received.gossip).toHaveLength(0)
    expect(hub.stats('p2').dropped).toBeGreaterThanOrEqual(1)
    expect(a.received.disconnected.map(e => e.peer)).toEqual(['p2'])
    expect(b.received.disconnected.map(e => e.peer)).toEqual(['p2'])
    await expect(c.network.publish(bytes('x'))).rejects.toMatchObject({ name: 'NetworkStateError' })
    expect(c.network.peers()).toEqual([])

    const restarted = await start('p2')
    expect(restarted.network).not.toBe(c.network)
    await clock.advance(20)
    expect(restarted.received.connected.map(e => e.peer).sort()).toEqual(['p0', 'p1'])
    expect(a.received.connected.map(e => e.peer)).toEqual(['p1', 'p2', 'p2'])
    await a.network.publish(bytes('welcome back'))
    await clock.advance(20)
    expect(restarted.received.gossip.map(g => g.text)).toEqual(['welcome back'])
    expect(hub.stats('p2').gossipIn).toBe(1)
  })

  it('stop closes connections, rejects what is pending and refuses further use', async () => {
    const { clock, hub, peers: [a, b] } = await makeSim(10, 2)
    hub.connect('p0', 'p1')
    await clock.advance(10)
    const pending = settled(a.network.request('p1', bytes('x')))
    await a.network.stop()
    await a.network.stop()
    const outcome = await pending
    expect(!outcome.ok && outcome.error.name).toBe('NetworkStateError')
    await clock.advance(10)
    expect(b.received.disconnected.map(e => e.peer)).toEqual(['p0'])
    expect(a.received.disconnected).toHaveLength(0)
    expect(a.network.addresses()).toEqual([])
    await expect(a.network.start({} as NetworkHandlers)).rejects.toMatchObject({ name: 'NetworkStateError' })
    await expect(a.network.request('p1', bytes('x'))).rejects.toMatchObject({ name: 'NetworkStateError' })
  })

  it('dial connects by address and resolves once the dialler has been told', async () => {
    const { clock, hub, peers: [a, b] } = await makeSim(11, 2)
    let dialled = false
    const dial = a.network.dial(b.network.addresses()[0]).then(() => { dialled = true })
    expect(hub.isConnected('p0', 'p1')).toBe(true)
    expect(dialled).toBe(false)
    await clock.advance(10)
    await dial
    expect(a.network.peers()).toEqual(['p1'])
    await a.network.dial('p1')
    await expect(a.network.dial('p0')).rejects.toMatchObject({ name: PeerUnreachableError.NAME })
    await expect(a.network.dial('nobody')).rejects.toMatchObject({ name: PeerUnreachableError.NAME })
  })

  it('rethrows a throwing gossip handler through the clock unless onHandlerError is given', async () => {
    const errors: string[] = []
    for (const onHandlerError of [undefined, (peer: PeerIdStr, handler: string) => { errors.push(`${peer}:${handler}`) }]) {
      const clock = new VirtualClock({ startMs: 0 })
      const hub = new MemoryNetworkHub({ clock, random: seededRandom(12), onHandlerError })
      const a = hub.createNetwork('a')
      const b = hub.createNetwork('b')
      const quiet = { onRequest: echo, onPeerConnected: () => {}, onPeerDisconnected: () => {} }
      await a.start({ ...quiet, onGossip: () => {} })
      await b.start({ ...quiet, onGossip: () => { throw new Error('agent bug') } })
      hub.connect('a', 'b')
      await clock.advance(10)
      await a.publish(bytes('x'))
      if (onHandlerError == null) await expect(clock.advance(10)).rejects.toThrow('agent bug')
      else await clock.advance(10)
    }
    expect(errors).toEqual(['b:onGossip'])
  })

  it('gives identical traces and stats for the same seed, and different ones for another seed', async () => {
    const scenario = async (seed: number): Promise<{ trace: MemoryTraceEvent[], stats: unknown, answers: string[] }> => {
      const { clock, hub, trace, peers } = await makeSim(seed, 40, { lossRate: 0.05, duplicateRate: 0.05, latencyMs: { min: 1, max: 20 } })
      hub.connectRandom(3)
      await clock.advance(50)
      const answers: string[] = []
      const random = seededRandom(seed + 1)
      for (let round = 0; round < 20; round++) {
        const sender = peers[Math.floor(random() * peers.length)].network
        await sender.publish(bytes(`round ${round}`))
        const target = sender.peers()[0]
        if (target != null) void sender.request(target, bytes(`${round}`)).then(r => answers.push(decoder.decode(r)), (e: Error) => answers.push(e.name))
        if (round === 7) hub.partition([peers.slice(0, 20).map(p => p.id)])
        if (round === 12) hub.crash('p5')
        if (round === 15) hub.heal()
        await clock.advance(7)
      }
      await clock.advance(100)
      return { trace, stats: hub.stats(), answers }
    }
    const first = await scenario(42)
    const second = await scenario(42)
    expect(first.trace.length).toBeGreaterThan(500)
    expect(second.trace).toEqual(first.trace)
    expect(second.stats).toEqual(first.stats)
    expect(second.answers).toEqual(first.answers)
    const other = await scenario(43)
    expect(other.trace).not.toEqual(first.trace)
  })

  it('1,000 peers with degree 4: a publication reaches all 999 others within a second of virtual time', async () => {
    const wallStart = performance.now()
    const { clock, hub, peers } = await makeSim(2024, 1000)
    const links = hub.connectRandom(4)
    await clock.advance(100)
    const connectedWallMs = performance.now() - wallStart
    expect(links).toBe(4 * 996 + 0 + 1 + 2 + 3)
    expect(peers.every(p => p.network.peers().length >= 4)).toBe(true)

    const publishWallStart = performance.now()
    const sentAt = clock.now()
    await peers[0].network.publish(bytes('to everyone'))
    await clock.advance(1000)
    const publishWallMs = performance.now() - publishWallStart
    const reached = peers.slice(1).filter(p => p.received.gossip.length === 1)
    expect(reached).toHaveLength(999)
    const lastArrivalMs = Math.max(...reached.map(p => p.received.gossip[0].atMs)) - sentAt
    expect(lastArrivalMs).toBeLessThanOrEqual(1000)
    const degrees = peers.map(p => p.network.peers().length)
    console.log(`1,000 peers, degree 4: ${links} links (mean degree ${(degrees.reduce((x, y) => x + y, 0) / 1000).toFixed(2)}, max ${Math.max(...degrees)}); ` +
      `setup + connect ${connectedWallMs.toFixed(0)} ms wall; publish to 999 peers ${publishWallMs.toFixed(0)} ms wall, ` +
      `last arrival after ${lastArrivalMs} ms virtual; ${clock.pending()} timers pending`)
  })
})

/** A request whose response lands within the next 100 ms of virtual time. */
async function requestNow (clock: VirtualClock, network: MemoryNetwork, peer: PeerIdStr): Promise<Uint8Array> {
  const response = network.request(peer, bytes('x'))
  await clock.advance(100)
  return await response
}
