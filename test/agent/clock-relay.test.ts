/**
 * Relays of the clock channel (agent/relay.ts, docs/design.md "Clock
 * channel"): the batch on the wire; a real agent acting as a relay and
 * receiving relays' batches through a stand-in transport (so the test can
 * play members, a stranger and a relay and hand the agent exact bytes); and
 * real agents over libp2p TCP, where a relay carries the beacons, stops
 * passing them on, or dies.
 */
import { rm } from 'node:fs/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Agent, systemClock } from '../../agent/agent.ts'
import type { ApiServer } from '../../agent/api.ts'
import { BeaconRelays, RELAY_DEFAULTS, relayOrder } from '../../agent/relay.ts'
import { emptyBeaconCounters } from '../../agent/clock.ts'
import { decodeMessage, encodeMessage, MSG_BEACON_RELAY, MSG_RELAYED, relayedTag, tagNames, WireError, type WireBeacon } from '../../agent/wire.ts'
import { hlcWallMs } from '../../crdt/index.ts'
import { api, GiB, startCluster, stopAll, tempDir, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'
import { ledgerOfA, metricAt, PeerStandIn, startOnStandIn, verdictOf } from './stand-in.ts'

const A = '12D3KooWrelaymemberA0000000000000000000000000000'
const B = '12D3KooWrelaymemberB0000000000000000000000000000'
const STRANGER = '12D3KooWrelaystranger000000000000000000000000000'
const line = (wallMs: number, node: string): string => `${String(wallMs).padStart(15, '0')}:000000:${node}`
/** Does a relayed beacon's (short) tag name `node`? */
const names = (tag: Uint8Array | undefined, node: string): boolean => tag !== undefined && Buffer.from(tag).equals(Buffer.from(relayedTag(node)))

describe('relayed beacons on the wire', () => {
  it('a batch carries each member by a 4-byte tag, its stamp as a difference, its line as a distance back: a few bytes per beacon', () => {
    const base = 1796530406400
    const beacons: WireBeacon[] = [
      { node: A, wallMs: base, counter: 3, seq: 42, seen: line(base - 30, A) },
      { node: B, wallMs: base - 7, counter: 0, seq: 1 },
      { node: STRANGER, wallMs: base + 12, counter: 1, seq: 300, seen: line(base + 12, B) }
    ]
    const bytes = encodeMessage({ type: MSG_RELAYED, beacons })
    // 4-byte tag + about 5–7 bytes each, against 56 bytes per direct beacon on the socket.
    expect(bytes.length).toBeLessThan(1 + 6 + 1 + 3 * 12)
    const back = decodeMessage(bytes)
    if (back.type !== MSG_RELAYED) throw new Error('not a batch')
    expect(back.beacons.map(b => [b.wallMs, b.counter, b.seq])).toEqual(beacons.map(b => [b.wallMs, b.counter, b.seq]))
    expect(beacons.map((b, i) => names(back.beacons[i].tag, b.node))).toEqual([true, true, true])
    // A line comes back just below the exact one (its node part is lost), never above.
    expect(back.beacons[0].seen! < beacons[0].seen!).toBe(true)
    expect(back.beacons[0].seen!.startsWith(line(base - 30, '').slice(0, 22))).toBe(true)
    expect(back.beacons[1].seen).toBeUndefined()
    expect(back.beacons[2].seen!.slice(0, 22)).toBe(beacons[2].seen!.slice(0, 22))
    for (let cut = 1; cut < bytes.length; cut++) expect(() => decodeMessage(bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(WireError)
  })

  it('a relay-me message is a beacon with its own type byte', () => {
    const bytes = encodeMessage({ type: MSG_BEACON_RELAY, beacon: { node: A, wallMs: 5, counter: 0, seq: 1 } })
    const back = decodeMessage(bytes)
    expect(back.type).toBe(MSG_BEACON_RELAY)
    if (back.type === MSG_BEACON_RELAY) expect(tagNames(back.beacon.tag, A)).toBe(true)
  })

  it('a line decoded to wall time 0 or below is malformed', () => {
    // Hand-made: base 10, one beacon: tag, delta 0, counter 0, seq 0, back 12 (line at wall −1).
    const bytes = new Uint8Array([MSG_RELAYED, 10, 1, ...relayedTag(A), 0, 0, 0, 12, 0])
    expect(() => decodeMessage(bytes)).toThrow(WireError)
  })
})

describe('the relay order', () => {
  it('is the same whatever order the members are listed in, and moves with the key', () => {
    const members = Array.from({ length: 25 }, (_, i) => `12D3KooWmember${String(i).padStart(2, '0')}`)
    const once = relayOrder(members, 'digest|1')
    expect(relayOrder([...members].reverse(), 'digest|1')).toEqual(once)
    expect(new Set(once).size).toBe(25)
    // Over 40 slots the first relay is not always the same member.
    const firsts = new Set(Array.from({ length: 40 }, (_, slot) => relayOrder(members, `digest|${slot}`)[0]))
    expect(firsts.size).toBeGreaterThan(10)
  })
})

describe('members whose relayed tags collide', () => {
  it('cannot be told apart in a batch: their view does not relay, and a batch naming the shared tag is dropped as invalid', () => {
    // Ids whose first four tag bytes collide (a birthday search: about 2^16 tries).
    const seen = new Map<string, string>()
    let pair: [string, string] | undefined
    for (let i = 0; pair === undefined; i++) {
      const id = `12D3KooWcollide${i}`
      const key = Buffer.from(relayedTag(id)).toString('hex')
      const other = seen.get(key)
      if (other !== undefined) pair = [other, id]
      seen.set(key, id)
    }
    const [x, y] = pair
    const self = '12D3KooWrelayself'
    const drops: string[] = []
    const sent: string[] = []
    const received: string[] = []
    const relays = new BeaconRelays({
      self,
      clock: systemClock,
      view: () => ({ members: [self, x, y].sort(), digest: 'd' }),
      liveness: () => 'alive',
      peers: () => [x, y],
      send: (peer) => { sent.push(peer); return true },
      publish: async () => {},
      receive: (_from, beacon) => { received.push(beacon.node); return true },
      drop: (_from, why) => { drops.push(why) },
      fallback: () => {},
      log: () => {},
      counters: emptyBeaconCounters()
    })
    try {
      expect(relays.active()).toBe(false)
      expect(relays.route({ node: self, wallMs: 5, counter: 0, seq: 1 })).toBe(false)
      relays.onMessage(x, { type: MSG_RELAYED, beacons: decodeBatch([{ node: y, wallMs: 5, counter: 0, seq: 1 }]) })
      expect(drops).toEqual(['invalid'])
      expect(received).toEqual([])
      expect(sent).toEqual([])
    } finally {
      relays.stop()
    }
  })
})

/** A batch as a receiver decodes it (members named by tag). */
function decodeBatch (beacons: WireBeacon[]): WireBeacon[] {
  const back = decodeMessage(encodeMessage({ type: MSG_RELAYED, beacons }))
  if (back.type !== MSG_RELAYED) throw new Error('not a batch')
  return back.beacons
}

describe('an agent receiving and passing on relayed beacons', () => {
  let agent: Agent
  let net: PeerStandIn
  let dir: string
  let server: ApiServer
  /** Member A's side of the ledger (test/agent/stand-in.ts). */
  let ledgerA: ReturnType<typeof ledgerOfA>
  const direct = (from: string, bytes: Uint8Array): void => { net.handlers.onMessage!(from, bytes) }
  const batch = (from: string, beacons: WireBeacon[]): void => { direct(from, encodeMessage({ type: MSG_RELAYED, beacons })) }
  const sendLedger = (): void => { net.handlers.onGossip(A, ledgerA.update()) }
  const verdict = (id: string): ReturnType<typeof verdictOf> => verdictOf(agent, id)
  const metric = async (name: string): Promise<number> => await metricAt(server.url, name)
  /** The batches the agent sent as a relay since `from` (an index into `net.sent`), as A got them. */
  const batchesSince = (from: number): WireBeacon[][] => net.sent.slice(from).filter(s => s.to === A).map(s => decodeMessage(s.bytes)).flatMap(m => m.type === MSG_RELAYED ? [m.beacons] : [])

  beforeAll(async () => {
    dir = await tempDir()
    // Direct sends recorded: the agent relays to A and B by them.
    net = new PeerStandIn('12D3KooWrelayvictim000000000000000000000000000', [A, B], { direct: true })
    ;({ agent, api: server } = await startOnStandIn(net, dir, 'relay'))
    ledgerA = ledgerOfA(A, B, net.self)
    sendLedger()
  })
  afterAll(async () => {
    await server.close()
    await agent.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it("waits for B's clock", () => {
    expect(agent.resolution().members).toContain(net.self)
    expect(verdict('r1')).toMatchObject({ final: false, waitingOn: 'clocks', waitsFor: [B] })
  })

  it('drops a batch from a non-member, a beacon naming no member and a malformed batch, counts each, and r1 stays tentative', async () => {
    const r1 = hlcWallMs(agent.resolution().verdicts.get('r1')!.hlc!)
    const past = { wallMs: r1 + 10, counter: 0, seq: 0, seen: line(r1 + 5, B) }
    const before = { stranger: await metric('memgossip_beacons_dropped_total{reason="stranger"}'), invalid: await metric('memgossip_dropped_total{reason="invalid"}') }
    // A relay that is not a member.
    batch(STRANGER, [{ node: B, ...past }])
    // A member relaying a beacon whose tag names no member.
    batch(A, [{ node: STRANGER, ...past }])
    // Truncated.
    const whole = encodeMessage({ type: MSG_RELAYED, beacons: [{ node: B, ...past }] })
    direct(A, whole.subarray(0, whole.length - 2))
    expect(verdict('r1').final).toBe(false)
    expect(await metric('memgossip_beacons_dropped_total{reason="stranger"}')).toBe(before.stranger + 2)
    expect(await metric('memgossip_dropped_total{reason="invalid"}')).toBe(before.invalid + 1)
    expect(await metric('memgossip_beacons_accepted_total')).toBe(0)
  })

  it('a relayed beacon of B past r1 makes r1 final; the same batch again is a replay, dropped and counted', async () => {
    const r1 = hlcWallMs(agent.resolution().verdicts.get('r1')!.hlc!)
    // B wrote nothing, so position 0 of its stream is held.
    const b: WireBeacon = { node: B, wallMs: r1 + 10, counter: 0, seq: 0, seen: line(r1 + 5, B) }
    batch(A, [b])
    expect(verdict('r1').final).toBe(true)
    expect(await metric('memgossip_beacons_accepted_total')).toBe(1)
    const replayed = await metric('memgossip_beacons_dropped_total{reason="replayed"}')
    batch(A, [b])
    expect(await metric('memgossip_beacons_dropped_total{reason="replayed"}')).toBe(replayed + 1)
  })

  it("a relayed beacon of B at a position of B's stream this agent does not hold makes nothing final", async () => {
    ledgerA.writer.reserve({ id: 'r2', bytes: GiB, placement: { kind: 'node', node: A } }, Date.now())
    sendLedger()
    expect(verdict('r2').final).toBe(false)
    const r2 = hlcWallMs(agent.resolution().verdicts.get('r2')!.hlc!)
    batch(A, [{ node: B, wallMs: r2 + 10, counter: 0, seq: 7, seen: line(r2 + 5, B) }])
    expect(await metric('memgossip_beacons_accepted_total')).toBe(2)
    expect(verdict('r2')).toMatchObject({ final: false })
    expect(verdict('r2').waitsFor).toContain(B)
    expect(verdict('r1').final).toBe(true)
  })

  it('as a relay: passes on a member\'s beacon in one batch to every peer, drops a forged one, and keeps only the newest of each member', async () => {
    const at = net.sent.length
    const wallMs = Date.now() + 5_000
    const older: WireBeacon = { node: B, wallMs, counter: 0, seq: 7 }
    const newer: WireBeacon = { node: B, wallMs: wallMs + 1, counter: 0, seq: 7, seen: line(wallMs - 10, B) }
    const forgedBefore = await metric('memgossip_beacons_dropped_total{reason="forged"}')
    // A asks the agent to relay a beacon that names B: forged, not passed on.
    direct(A, encodeMessage({ type: MSG_BEACON_RELAY, beacon: { node: B, wallMs: wallMs + 50, counter: 0, seq: 9 } }))
    expect(await metric('memgossip_beacons_dropped_total{reason="forged"}')).toBe(forgedBefore + 1)
    // B's two beacons within one batch window.
    direct(B, encodeMessage({ type: MSG_BEACON_RELAY, beacon: older }))
    direct(B, encodeMessage({ type: MSG_BEACON_RELAY, beacon: newer }))
    await waitFor("a batch with B's beacon", () => batchesSince(at).some(beacons => beacons.some(b => names(b.tag, B))), 5_000, 5)
    // (The agent's own beacons may travel in batches of their own meanwhile.)
    const withB = batchesSince(at).filter(beacons => beacons.some(b => names(b.tag, B)))
    expect(withB).toHaveLength(1)
    const first = withB[0]
    const ofB = first.filter(b => names(b.tag, B))
    expect(ofB).toHaveLength(1)
    expect(ofB[0]).toMatchObject({ wallMs: newer.wallMs, seq: 7 })
    expect(ofB[0].seen?.slice(0, 22)).toBe(newer.seen!.slice(0, 22))
    expect(first.some(b => names(b.tag, A))).toBe(false)
    // Sent to both connected peers, B included (its echo).
    const targets = net.sent.slice(at).filter(s => s.bytes[0] === MSG_RELAYED).map(s => s.to)
    expect(new Set(targets)).toEqual(new Set([A, B]))
    expect(await metric('memgossip_relay_batches_total')).toBeGreaterThanOrEqual(1)
  })
})

describe('real agents over libp2p TCP', () => {
  let agents: TestAgent[] = []
  afterEach(async () => { await stopAll(agents); agents = [] })
  const total = (key: 'relayBatches' | 'relayBatchBeacons' | 'beaconsRelayed' | 'beaconsDirect' | 'relayTimeouts', group = agents): number => group.reduce((sum, a) => sum + a.daemon.agent.metrics[key], 0)
  const formed = async (n: number): Promise<void> => {
    await waitFor(`${n} members on every agent, one digest`, () => agents.every(a => a.daemon.agent.resolution().members.length === n) && new Set(agents.map(a => a.daemon.agent.resolution().digest)).size === 1, 60_000, 100)
    await waitFor('every agent connected to every other', () => agents.every(a => a.daemon.network.peers().length === n - 1), 60_000, 100)
  }
  /** The relay every member picks first now (the order every member computes). */
  const currentRelay = (): TestAgent => {
    const view = agents[0].daemon.agent.resolution().view
    const first = relayOrder(view.members, `${view.digest}|${Math.floor(Date.now() / RELAY_DEFAULTS.rotateMs)}`)[0]
    return agents.find(a => a.daemon.agent.self === first)!
  }

  it('beacons reach every member through a relay, merged into batches, and a reservation becomes final everywhere', async () => {
    // No slow beacons (the default): only the two rounds of each change, which should meet at the relay.
    agents = await startCluster(5, { heartbeatIntervalMs: 0 })
    await formed(5)
    const before = { batches: total('relayBatches'), carried: total('relayBatchBeacons'), relayed: total('beaconsRelayed'), direct: total('beaconsDirect') }
    const writtenAt = Date.now()
    expect((await api(agents[2], '/v1/reservations', { body: { id: 'via-relay', size: '1GiB' } })).status).toBe(201)
    await waitFor('via-relay final on every agent', () => agents.every(a => a.daemon.agent.verdict('via-relay')?.final === true), 20_000, 10)
    const finalMs = Date.now() - writtenAt
    const batches = total('relayBatches') - before.batches
    const carried = total('relayBatchBeacons') - before.carried
    console.log(`relay: via-relay final everywhere in ${finalMs} ms; ${total('beaconsRelayed') - before.relayed} beacons handed to relays, ${batches} batches carrying ${carried}, ${total('beaconsDirect') - before.direct} sent directly`)
    expect(batches).toBeGreaterThan(0)
    // Merged: a batch carries several members' beacons.
    expect(carried / batches).toBeGreaterThan(1)
    expect(total('beaconsDirect') - before.direct).toBe(0)
  })

  it('a relay that stops passing beacons on costs one echo timeout: members send directly, set it aside, and finality goes on', async () => {
    agents = await startCluster(5)
    await formed(5)
    const relay = currentRelay()
    // The relay stays a live member (its own beacons go directly) but drops
    // what it is asked to pass on — a relay that hung or lost the messages.
    ;(relay.daemon.agent as unknown as { relays: BeaconRelays }).relays.stop()
    const others = agents.filter(a => a !== relay)
    const before = total('relayTimeouts', others)
    expect((await api(others[0], '/v1/reservations', { body: { id: 'after-hang', size: '1GiB' } })).status).toBe(201)
    await waitFor('after-hang final on every agent', () => agents.every(a => a.daemon.agent.verdict('after-hang')?.final === true), 20_000, 10)
    expect(total('relayTimeouts', others)).toBeGreaterThan(before)
    // The next write goes through the next relay in the order, without timeouts.
    const timeouts = total('relayTimeouts', others)
    const batches = total('relayBatches', others)
    expect((await api(others[1], '/v1/reservations', { body: { id: 'next-relay', size: '1GiB' } })).status).toBe(201)
    await waitFor('next-relay final on every agent', () => agents.every(a => a.daemon.agent.verdict('next-relay')?.final === true), 20_000, 10)
    expect(total('relayBatches', others)).toBeGreaterThan(batches)
    expect(total('relayTimeouts', others)).toBe(timeouts)
  })

  it('a relay killed mid-run: the others route around it, evict it, and decide finally', async () => {
    agents = await startCluster(5, { evictAfterMs: 4000, heartbeatIntervalMs: 500, syncIntervalMs: 500 })
    await formed(5)
    const relay = currentRelay()
    const others = agents.filter(a => a !== relay)
    expect((await api(others[0], '/v1/reservations', { body: { id: 'before-kill', size: '1GiB' } })).status).toBe(201)
    await relay.daemon.stop()
    agents = others
    const batches = total('relayBatches')
    // Written as the relay dies: final once the dead relay is evicted (a
    // member that is gone holds finality back until then).
    expect((await api(others[1], '/v1/reservations', { body: { id: 'after-kill', size: '1GiB' } })).status).toBe(201)
    await waitFor('the dead relay evicted on every survivor', () => others.every(a => a.daemon.agent.resolution().members.length === 4), 60_000, 100)
    await waitFor('before-kill and after-kill final on every survivor', () => others.every(a => a.daemon.agent.verdict('before-kill')?.final === true && a.daemon.agent.verdict('after-kill')?.final === true), 30_000, 50)
    expect(total('relayBatches')).toBeGreaterThan(batches)
    const writtenAt = Date.now()
    expect((await api(others[2], '/v1/reservations', { body: { id: 'four-left', size: '1GiB' } })).status).toBe(201)
    await waitFor('four-left final on every survivor', () => others.every(a => a.daemon.agent.verdict('four-left')?.final === true), 20_000, 10)
    console.log(`relay killed: after the eviction four-left final everywhere in ${Date.now() - writtenAt} ms`)
  })
})
