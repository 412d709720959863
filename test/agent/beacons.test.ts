/**
 * The clock channel's input (docs/design.md "Clock channel"): a real agent
 * with a real data dir and real HTTP; the transport is a stand-in so the test
 * can play two members and a stranger and hand the agent exactly the bytes a
 * peer's gossip would. Bad beacons are dropped, counted in /metrics, and never
 * make a verdict final.
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../agent/agent.ts'
import type { ApiServer } from '../../agent/api.ts'
import { decodeMessage, encodeMessage, MSG_BEACON, MSG_BEACONS, tagNames, WireError, type WireBeacon } from '../../agent/wire.ts'
import { hlcWallMs } from '../../crdt/index.ts'
import { tempDir } from '../../simulations/support/cluster.ts'
import { ledgerOfA, metricAt, PeerStandIn, startOnStandIn, verdictOf } from './stand-in.ts'

const GiB = 1024 ** 3
const A = '12D3KooWbeaconmemberA000000000000000000000000000'
const B = '12D3KooWbeaconmemberB000000000000000000000000000'
const STRANGER = '12D3KooWbeaconstranger0000000000000000000000000'

let agent: Agent
let net: PeerStandIn
let dir: string
let api: ApiServer
const SELF = '12D3KooWbeaconvictim00000000000000000000000000'
/** Member A's side of the ledger (test/agent/stand-in.ts). */
let ledgerA: ReturnType<typeof ledgerOfA>

const gossip = (from: string, bytes: Uint8Array): void => { net.handlers.onGossip(from, bytes) }
const beacon = (from: string, b: WireBeacon): void => { gossip(from, encodeMessage({ type: MSG_BEACON, beacon: b })) }
const sendLedger = (): void => { gossip(A, ledgerA.update()) }
const verdict = (id: string): ReturnType<typeof verdictOf> => verdictOf(agent, id)
const metric = async (name: string): Promise<number> => await metricAt(api.url, name)

beforeAll(async () => {
  dir = await tempDir()
  net = new PeerStandIn(SELF, [A, B])
  ;({ agent, api } = await startOnStandIn(net, dir, 'beacons'))
  ledgerA = ledgerOfA(A, B, net.self)
  sendLedger()
})
afterAll(async () => {
  await api.close()
  await agent.stop()
  await rm(dir, { recursive: true, force: true })
})

describe('beacons from the gossip topic', () => {
  it("waits for B's clock: B wrote nothing, so only B's beacon can show it is past r1", () => {
    expect(agent.resolution().members).toContain(net.self)
    expect(verdict('r1')).toMatchObject({ final: false, waitingOn: 'clocks', waitsFor: [B] })
  })

  it('drops forged, stranger, malformed, oversized and self-contradicting beacons, counts each, and r1 stays tentative', async () => {
    const r1 = agent.resolution().verdicts.get('r1')!.hlc!
    const later = { wallMs: hlcWallMs(r1) + 5, counter: 0, seq: 0 }
    const laterLine = `${String(later.wallMs).padStart(15, '0')}:000000:${A}`
    const before = { forged: await metric('memgossip_beacons_dropped_total{reason="forged"}'), invalid: await metric('memgossip_dropped_total{reason="invalid"}'), oversized: await metric('memgossip_dropped_total{reason="oversized"}') }
    // Published by A but naming B.
    beacon(A, { node: B, ...later, seen: laterLine })
    // Not a member.
    beacon(STRANGER, { node: STRANGER, ...later, seen: laterLine })
    // Truncated.
    const whole = encodeMessage({ type: MSG_BEACON, beacon: { node: B, ...later } })
    gossip(B, whole.subarray(0, whole.length - 3))
    expect(() => decodeMessage(whole.subarray(0, whole.length - 3))).toThrow(WireError)
    // Oversized: a beacon is tens of bytes.
    gossip(B, new Uint8Array([...encodeMessage({ type: MSG_BEACON, beacon: { node: B, ...later, seen: laterLine } }), ...new Uint8Array(600)]))
    // A line past its own clock, and a stamp out of range.
    beacon(B, { node: B, ...later, seen: `${String(later.wallMs + 1000).padStart(15, '0')}:000000:${A}` })
    beacon(B, { node: B, ...later, counter: 5_000_000 })
    expect(verdict('r1').final).toBe(false)
    expect(await metric('memgossip_beacons_dropped_total{reason="forged"}')).toBe(before.forged + 1)
    expect(await metric('memgossip_beacons_dropped_total{reason="stranger"}')).toBe(1)
    expect(await metric('memgossip_beacons_dropped_total{reason="invalid"}')).toBe(2)
    expect(await metric('memgossip_dropped_total{reason="invalid"}')).toBe(before.invalid + 1)
    expect(await metric('memgossip_dropped_total{reason="oversized"}')).toBe(before.oversized + 1)
    expect(await metric('memgossip_beacons_accepted_total')).toBe(0)
  })

  it("B's beacon past r1 makes r1 final; the same beacon again is a replay and is dropped", async () => {
    const r1 = agent.resolution().verdicts.get('r1')!.hlc!
    const wallMs = hlcWallMs(r1) + 10
    // B's line past r1 (a line travels as wall time and counter only, so one exactly at r1 would read as just below it).
    const b: WireBeacon = { node: B, wallMs, counter: 0, seq: 0, seen: `${String(wallMs - 5).padStart(15, '0')}:000000:${B}` }
    beacon(B, b)
    expect(verdict('r1').final).toBe(true)
    expect(await metric('memgossip_beacons_accepted_total')).toBe(1)
    beacon(B, b)
    expect(await metric('memgossip_beacons_dropped_total{reason="replayed"}')).toBe(1)
  })

  it('a beacon a year ahead whose position is not held counts as ahead and makes nothing final', async () => {
    ledgerA.writer.reserve({ id: 'r2', bytes: GiB, placement: { kind: 'node', node: A } }, Date.now())
    sendLedger()
    expect(verdict('r2').final).toBe(false)
    // B's clock a year ahead, at a position of B's stream this agent does not hold (B wrote nothing it holds).
    const farMs = Date.now() + 365 * 86_400_000
    const farLine = `${String(farMs).padStart(15, '0')}:000000:${B}`
    beacon(B, { node: B, wallMs: farMs, counter: 0, seq: 7, seen: farLine })
    expect(await metric('memgossip_beacons_ahead_total')).toBe(1)
    expect(verdict('r2')).toMatchObject({ final: false })
    expect(verdict('r2').waitsFor).toContain(B)
    expect(verdict('r1').final).toBe(true)
  })

  it('the agent publishes its own beacons on the clock channel, and holds a clock lease in its data dir first', async () => {
    const deadline = Date.now() + 10_000
    while (net.published.every(m => m[0] !== MSG_BEACON) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    const own = net.published.map(m => decodeMessage(m)).find(m => m.type === MSG_BEACON)
    expect(own?.type).toBe(MSG_BEACON)
    if (own?.type !== MSG_BEACON) return
    // It names this agent by a tag of its id (the gossip author is the id itself).
    expect(tagNames(own.beacon.tag, net.self)).toBe(true)
    expect(tagNames(own.beacon.tag, A)).toBe(false)
    const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as { clockLeaseMs?: number }
    expect(meta.clockLeaseMs).toBeGreaterThan(own.beacon.wallMs)
    expect(hlcWallMs(agent.resolution().nodes.get(net.self)?.lastHlc ?? '000000000000000:000000:x')).toBeLessThanOrEqual(own.beacon.wallMs)
  })
})

describe('a restart and the clock lease', () => {
  it('a restarted agent holds a write until its clock passes the lease of its last beacons, then stamps it above them', async () => {
    const own = net.published.map(m => decodeMessage(m)).filter(m => m.type === MSG_BEACON).at(-1)
    if (own?.type !== MSG_BEACON) throw new Error('the agent published no beacon')
    const lastBeacon = `${String(own.beacon.wallMs).padStart(15, '0')}:${String(own.beacon.counter).padStart(6, '0')}:${net.self}`
    const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as { clockLeaseMs: number }
    await api.close()
    await agent.stop()
    net = new PeerStandIn(SELF, [A, B])
    ;({ agent, api } = await startOnStandIn(net, dir, 'beacons'))
    const startedAt = Date.now()
    const answer = await agent.reserve({ id: 'after-restart', bytes: GiB, placement: { kind: 'any' } })
    const answeredAt = Date.now()
    expect(answer.written).toBe(true)
    expect(answeredAt).toBeGreaterThan(meta.clockLeaseMs)
    const stamp = agent.resolution().verdicts.get('after-restart')!.hlc!
    expect(stamp > lastBeacon).toBe(true)
    expect(hlcWallMs(stamp)).toBeGreaterThan(meta.clockLeaseMs)
    console.log(`clock lease: restarted ${meta.clockLeaseMs - startedAt} ms before the lease ended; the write was held ${answeredAt - startedAt} ms and stamped ${stamp.slice(0, 22)} after the last beacon ${lastBeacon.slice(0, 22)}`)
  })
})

describe('beacons on the wire', () => {
  it('a published beacon names its member by a tag and carries its line as wall time and counter (read back just below the exact line)', () => {
    const line = `001796530406378:000007:${A}`
    const bytes = encodeMessage({ type: MSG_BEACON, beacon: { node: A, wallMs: 1796530406400, counter: 3, seq: 42, seen: line } })
    expect(bytes.length).toBeLessThan(40)
    const back = decodeMessage(bytes)
    if (back.type !== MSG_BEACON) throw new Error('not a beacon')
    expect(back.beacon).toMatchObject({ node: '', wallMs: 1796530406400, counter: 3, seq: 42 })
    expect(tagNames(back.beacon.tag, A)).toBe(true)
    expect(back.beacon.seen! < line).toBe(true)
    expect(back.beacon.seen! > `001796530406378:000006:${'z'.repeat(52)}`).toBe(true)
    for (let cut = 1; cut < bytes.length; cut++) expect(() => decodeMessage(bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(WireError)
  })

  it('a pull answer carries whole node ids (relayed beacons name whom they are of)', () => {
    const bytes = encodeMessage({ type: MSG_BEACONS, beacons: [{ node: A, wallMs: 5, counter: 0, seq: 1 }, { node: B, wallMs: 6, counter: 1, seq: 2 }] })
    const back = decodeMessage(bytes)
    if (back.type !== MSG_BEACONS) throw new Error('not beacons')
    expect(back.beacons.map(b => [b.node, b.seq])).toEqual([[A, 1], [B, 2]])
  })
})

describe('the clock lease, renewed ahead', () => {
  it('no beacon leaves before a lease past its stamp is on disk, after a quiet spell or in quick succession', async () => {
    const leaseDir = await tempDir()
    const self = '12D3KooWbeaconleaseholder00000000000000000000'
    const standIn = new PeerStandIn(self, [A, B])
    // Each own beacon published, with the lease meta.json held on disk at that moment.
    const atPublish: Array<{ wallMs: number, leaseMs: number }> = []
    const publish = standIn.publish.bind(standIn)
    standIn.publish = async (data: Uint8Array): Promise<void> => {
      const message = decodeMessage(data)
      if (message.type === MSG_BEACON) {
        let leaseMs = -1
        try { leaseMs = (JSON.parse(readFileSync(join(leaseDir, 'meta.json'), 'utf8')) as { clockLeaseMs?: number }).clockLeaseMs ?? -1 } catch {}
        atPublish.push({ wallMs: message.beacon.wallMs, leaseMs })
      }
      await publish(data)
    }
    const started = await startOnStandIn(standIn, leaseDir, 'lease')
    try {
      standIn.handlers.onGossip(A, ledgerOfA(A, B, self).update())
      // A write after the lease ran out (1 s, renewed only as beacons go),
      // then writes in quick succession (renewed in the background, half a
      // period ahead): each write sends a beacon.
      for (let i = 0; i < 3; i++) {
        await new Promise(resolve => setTimeout(resolve, 1200))
        for (let j = 0; j < 3; j++) {
          await started.agent.reserve({ id: `lease-${i}-${j}`, bytes: 1024 ** 2, placement: { kind: 'any' } })
          await new Promise(resolve => setTimeout(resolve, 300))
        }
      }
      console.log(`clock lease: ${atPublish.length} beacons over 3 quiet spells; lease past each by ${atPublish.map(b => b.leaseMs - b.wallMs).join(', ')} ms`)
      expect(atPublish.length).toBeGreaterThanOrEqual(3)
      expect(atPublish.filter(b => b.leaseMs <= b.wallMs)).toEqual([])
    } finally {
      await started.api.close()
      await started.agent.stop()
      await rm(leaseDir, { recursive: true, force: true })
    }
  })
})
