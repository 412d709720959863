/**
 * Fuzzing (fast-check, seeded: a failure prints the seed and the shrunk input).
 * Real agent, real data dir, real HTTP; the transport is a stand-in that lets
 * the test hand bytes to the agent exactly as a peer's gossip or sync would.
 */
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import * as Y from 'yjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Agent } from '../../agent/agent.ts'
import { startApi, type ApiServer } from '../../agent/api.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import { LedgerStore } from '../../agent/store.ts'
import type { Network, NetworkHandlers } from '../../agent/types.ts'
import { decodeMessage, encodeMessage, MSG_GOSSIP, MSG_PUSH, MSG_SYNC_REQUEST, WireError, MSG_CALL, MSG_REPLY } from '../../agent/wire.ts'
import { LedgerWriter, parseSize, SizeError } from '../../crdt/index.ts'
import { tempDir } from '../../simulations/support/cluster.ts'

const SEED = Number(process.env.MEMGOSSIP_FUZZ_SEED ?? Date.now() % 2 ** 31)
const RUNS = Number(process.env.MEMGOSSIP_FUZZ_RUNS ?? 300)
const GiB = 1024 ** 3
console.log(`fuzz seed ${SEED} (replay: MEMGOSSIP_FUZZ_SEED=${SEED}), ${RUNS} runs per property`)

/** A transport stand-in: the test plays the peer. */
class PeerStandIn implements Network {
  readonly self = '12D3KooWfuzzvictim0000000000000000000000000000'
  handlers!: NetworkHandlers
  async start (handlers: NetworkHandlers): Promise<void> { this.handlers = handlers }
  async stop (): Promise<void> {}
  async publish (): Promise<void> {}
  async request (): Promise<Uint8Array> { throw new Error('no peers') }
  peers (): string[] { return [] }
  addresses (): string[] { return [] }
}

let agent: Agent
let net: PeerStandIn
let dir: string
let api: ApiServer

beforeAll(async () => {
  dir = await tempDir()
  net = new PeerStandIn()
  agent = await Agent.start({ network: net, probe: createFakeProbe({ totalBytes: 64 * GiB, availableBytes: 64 * GiB }), cluster: 'fuzz', dataDir: dir, fsync: false, log: () => {} })
  api = await startApi({ agent, listen: '127.0.0.1:0' })
})
afterAll(async () => {
  await api.close()
  await agent.stop()
  await rm(dir, { recursive: true, force: true })
})

const stateVector = (): string => Buffer.from(agent.ledger.stateVector()).toString('hex')

/** A valid Yjs update from another peer, carrying arbitrary values in ledger maps. */
function peerUpdate (values: Array<[string, string, unknown]>): Uint8Array {
  const doc = new Y.Doc()
  // Through JSON: fast-check can build null-prototype objects, which Yjs refuses
  // to encode at write time, so no peer could ever send one.
  for (const [map, key, value] of values) doc.getMap(map).set(key, JSON.parse(JSON.stringify(value ?? null)) as never)
  return Y.encodeStateAsUpdate(doc)
}

describe('wire decoder', () => {
  it('random bytes decode or throw WireError, nothing else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      try {
        decodeMessage(bytes)
      } catch (error) {
        expect((error as Error).name).toBe('WireError')
      }
    }), { seed: SEED, numRuns: RUNS * 3 })
  })

  it('round-trips every message it encodes, and refuses truncations and trailing bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), fc.nat(), (a, b, cut) => {
      for (const message of [
        { type: MSG_GOSSIP, update: a } as const,
        { type: MSG_PUSH, update: b } as const,
        { type: MSG_SYNC_REQUEST, stateVector: a } as const,
        { type: MSG_CALL, id: cut, body: a } as const,
        { type: MSG_REPLY, id: cut % 1000, body: b } as const
      ]) {
        const bytes = encodeMessage(message)
        expect(decodeMessage(bytes)).toEqual(message)
        const at = cut % bytes.length
        if (at > 0) expect(() => decodeMessage(bytes.slice(0, at))).toThrow(WireError)
        expect(() => decodeMessage(new Uint8Array([...bytes, 0]))).toThrow(WireError)
      }
    }), { seed: SEED, numRuns: RUNS })
  })

  it('a huge varint length is refused, not allocated', () => {
    expect(() => decodeMessage(new Uint8Array([0x01, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow(WireError)
  })
})

describe('gossip payloads into a running agent', () => {
  it('random bytes: dropped and counted, state untouched, agent keeps serving', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (junk) => {
      const before = stateVector()
      const dropped = agent.metrics.droppedInvalid + agent.metrics.droppedOversized
      net.handlers.onGossip('12D3KooWpeer', junk)
      const after = stateVector()
      if (after === before) expect(agent.metrics.droppedInvalid + agent.metrics.droppedOversized).toBeGreaterThanOrEqual(dropped)
      expect(() => agent.resolution()).not.toThrow()
    }), { seed: SEED, numRuns: RUNS })
  })

  it('random bytes and random calls on a direct stream: dropped and counted, never thrown, state untouched', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (junk, asCall) => {
      const before = stateVector()
      const data = asCall ? encodeMessage({ type: MSG_CALL, id: junk.length, body: junk }) : junk
      expect(() => net.handlers.onMessage?.('12D3KooWpeer', data)).not.toThrow()
      expect(stateVector()).toBe(before)
      expect(() => agent.resolution()).not.toThrow()
    }), { seed: SEED, numRuns: RUNS })
    expect(agent.metrics.droppedInvalid + agent.metrics.droppedOversized).toBeGreaterThan(0)
  })

  it('truncated valid updates are never applied halfway', () => {
    const source = new Y.Doc()
    const w = new LedgerWriter(source, '12D3KooWwriter')
    w.admit('12D3KooWwriter', 8 * GiB, 1)
    for (let i = 0; i < 20; i++) w.reserve({ id: `t-${i}`, bytes: GiB / 4, placement: { kind: 'any' } }, 3 + i)
    const full = Y.encodeStateAsUpdate(source)
    fc.assert(fc.property(fc.integer({ min: 1, max: full.length - 1 }), (cut) => {
      const before = stateVector()
      net.handlers.onGossip('12D3KooWpeer', encodeMessage({ type: MSG_GOSSIP, update: full.slice(0, cut) }))
      // Either the whole thing was refused, or (never) a prefix was integrated.
      expect(stateVector()).toBe(before)
    }), { seed: SEED, numRuns: Math.min(RUNS, full.length - 1) })
  })

  it('oversized updates are dropped and counted', () => {
    const before = agent.metrics.droppedOversized
    net.handlers.onGossip('12D3KooWbig', encodeMessage({ type: MSG_GOSSIP, update: new Uint8Array(17 * 1024 * 1024) }))
    expect(agent.metrics.droppedOversized).toBe(before + 1)
  })

  it('valid Yjs updates carrying malformed ledger values become invalid verdicts or issues, never exceptions', () => {
    const anyValue = fc.oneof(fc.jsonValue(), fc.record({ id: fc.string(), bytes: fc.oneof(fc.integer(), fc.double(), fc.string()), placement: fc.jsonValue(), hlc: fc.string(), creator: fc.string(), seq: fc.integer() }))
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('reservations', 'releases', 'capacity', 'membership', 'nodes'), fc.string({ maxLength: 20 }), anyValue), { maxLength: 6 }), (values) => {
      net.handlers.onGossip('12D3KooWpeer', encodeMessage({ type: MSG_GOSSIP, update: peerUpdate(values) }))
      const res = agent.resolution()
      for (const v of res.verdicts.values()) expect(['admitted', 'rejected', 'evicted', 'released', 'invalid']).toContain(v.status)
    }), { seed: SEED, numRuns: RUNS })
  })

  it('updates that create other root types are refused whole', () => {
    const doc = new Y.Doc()
    doc.getText('junk').insert(0, 'x'.repeat(100))
    doc.getMap('reservations').set('a@b', 1)
    const before = stateVector()
    net.handlers.onGossip('12D3KooWpeer', encodeMessage({ type: MSG_GOSSIP, update: Y.encodeStateAsUpdate(doc) }))
    expect(stateVector()).toBe(before)
  })

  it('sync requests with garbage state vectors get an error reply, not a crash', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), async (sv) => {
      const reply = decodeMessage(await net.handlers.onRequest('12D3KooWpeer', encodeMessage({ type: MSG_SYNC_REQUEST, stateVector: sv })))
      expect([0x11, 0x1f]).toContain(reply.type)
    }), { seed: SEED, numRuns: RUNS })
  })
})

describe('a peer flooding gossip', () => {
  it('is throttled to its budget while another peer still gets through', () => {
    const flood = encodeMessage({ type: MSG_GOSSIP, update: peerUpdate([['nodes', 'x', 1]]) })
    const before = agent.metrics.droppedThrottled
    const started = Date.now()
    for (let i = 0; i < 2000; i++) net.handlers.onGossip('12D3KooWflooder', flood)
    const elapsedS = (Date.now() - started) / 1000
    const throttled = agent.metrics.droppedThrottled - before
    // A one-second burst of 200, plus what refilled while the loop ran.
    expect(throttled).toBeGreaterThanOrEqual(2000 - 200 - Math.ceil(elapsedS * 200) - 1)
    expect(throttled).toBeGreaterThan(1500)
    // Another peer's legitimate write is applied at once.
    const other = new Y.Doc()
    new LedgerWriter(other, '12D3KooWhonest').heartbeat({ totalBytes: GiB, floorBytes: 0, allocatableBytes: GiB, availableBytes: GiB, usedBytes: 0 }, Date.now())
    net.handlers.onGossip('12D3KooWhonest', encodeMessage({ type: MSG_GOSSIP, update: Y.encodeStateAsUpdate(other) }))
    expect(agent.resolution().nodes.get('12D3KooWhonest')?.heartbeat).toBeDefined()
    expect(agent.metrics.droppedThrottled - before).toBe(throttled)
  })
})

describe('size strings', () => {
  it('parse to a safe non-negative integer or throw SizeError', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.stringMatching(/^-?\d{0,20}(\.\d{0,5})?\s?[A-Za-z]{0,4}$/)), (text) => {
      try {
        const bytes = parseSize(text)
        expect(Number.isSafeInteger(bytes) && bytes >= 0).toBe(true)
      } catch (error) {
        expect(error).toBeInstanceOf(SizeError)
      }
    }), { seed: SEED, numRuns: RUNS * 3 })
  })
})

describe('the persisted file', () => {
  it('truncated or bit-flipped: loads a prefix of whole records or refuses with StoreError', async () => {
    const src = await tempDir()
    const opened = await LedgerStore.open(src, { fsync: false })
    const doc = new Y.Doc()
    doc.on('update', (u: Uint8Array) => { void opened.store.append(u, { durable: false }) })
    const w = new LedgerWriter(doc, '12D3KooWfile')
    for (let i = 0; i < 30; i++) w.reserve({ id: `f-${i}`, bytes: 1024, placement: { kind: 'any' } }, i + 1)
    await opened.store.flush()
    await opened.store.close()
    const original = await readFile(join(src, 'ledger.log'))
    await fc.assert(fc.asyncProperty(fc.nat(original.length - 1), fc.option(fc.tuple(fc.nat(original.length - 1), fc.integer({ min: 0, max: 7 }))), async (cut, flip) => {
      const d = await tempDir()
      try {
        const bytes = Buffer.from(original.subarray(0, Math.max(4, cut)))
        if (flip !== null && flip[0] < bytes.length) bytes[flip[0]] ^= 1 << flip[1]
        await writeFile(join(d, 'ledger.log'), bytes)
        try {
          const again = await LedgerStore.open(d, { fsync: false })
          const replica = new Y.Doc()
          for (const u of again.updates) Y.applyUpdate(replica, u)
          await again.store.close()
        } catch (error) {
          expect((error as Error).name).toBe('StoreError')
        }
      } finally {
        await rm(d, { recursive: true, force: true })
      }
    }), { seed: SEED, numRuns: Math.min(RUNS, 150) })
    await rm(src, { recursive: true, force: true })
  })
})

describe('API bodies and paths', () => {
  it('arbitrary JSON bodies to every POST endpoint never get a 5xx', async () => {
    const body = fc.oneof(fc.jsonValue(), fc.record({ id: fc.oneof(fc.string(), fc.jsonValue()), size: fc.oneof(fc.string(), fc.jsonValue()), bytes: fc.jsonValue(), placement: fc.oneof(fc.string(), fc.jsonValue()), priority: fc.jsonValue(), labels: fc.jsonValue(), node: fc.jsonValue() }, { requiredKeys: [] }))
    await fc.assert(fc.asyncProperty(fc.constantFrom('/v1/fit', '/v1/reservations', '/v1/evict'), body, async (path, value) => {
      const r = await fetch(`${api.url}${path}`, { method: 'POST', body: JSON.stringify(value), headers: { 'content-type': 'application/json' } })
      expect(r.status, `${path} ${JSON.stringify(value)}`).toBeLessThan(500)
      const json = await r.json() as Record<string, unknown>
      if (r.status >= 400) expect(typeof json.error).toBe('string')
    }), { seed: SEED, numRuns: RUNS })
  })

  it('arbitrary path parameters never get a 5xx', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 40 }), fc.constantFrom('GET', 'DELETE'), async (id, method) => {
      const r = await fetch(`${api.url}/v1/reservations/${encodeURIComponent(id)}`, { method })
      expect(r.status).toBeLessThan(500)
      await r.arrayBuffer()
    }), { seed: SEED, numRuns: RUNS })
  })
})
