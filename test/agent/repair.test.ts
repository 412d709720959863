/**
 * Repair of the clock channel (agent/repair.ts) on a virtual clock: a verdict
 * that has waited long enough for members' clocks pulls their beacons — from
 * one of those members when connected, once a second at most — and a stream
 * a beacon showed a gap in is pulled after a second of gossip not bringing it
 * (longer while this node is slow), from another peer and from the member in
 * turn. A member whose pulls bring nothing newer of it is asked about less
 * and less often.
 * The peers are a table; the requests are real wire messages.
 */
import { describe, expect, it } from 'vitest'
import { BEACON_PULL_BACKOFF_MAX_MS, ClockRepair, type RepairDeps } from '../../agent/repair.ts'
import { decodeMessage, MSG_BEACONS, MSG_PULL, type WireBeacon, type WireMessage } from '../../agent/wire.ts'
import { encodeHlc, type Resolution, type Verdict } from '../../crdt/index.ts'
import { VirtualClock } from '../../simulations/virtual/clock.ts'

const START_MS = 1_000_000
const PULL_AFTER_MS = 1000

interface Setup {
  repair: ClockRepair
  clock: VirtualClock
  connected: string[]
  asked: Array<{ peer: string, nodes: string[] }>
  /** When each pull was asked, in ms after the start. */
  pulledAtMs: number[]
  received: Array<{ from: string, beacons: readonly WireBeacon[] }>
  behind: Set<string>
  gaps: string[]
  counters: { beaconPulls: number }
  health: { value: number }
  /** The answer to a pull of `nodes`; by default a newer beacon of each, all of which count. */
  reply: { answer: (nodes: string[]) => WireMessage | undefined }
}

let beaconWallMs = START_MS
const fresh = (nodes: string[]): WireMessage => ({ type: MSG_BEACONS, beacons: nodes.map(node => ({ node, wallMs: ++beaconWallMs, counter: 0, seq: 1 })) })

function setup (connected: string[]): Setup {
  const clock = new VirtualClock({ startMs: START_MS })
  const asked: Setup['asked'] = []
  const pulledAtMs: number[] = []
  const received: Setup['received'] = []
  const behind = new Set<string>()
  const gaps: string[] = []
  const counters = { beaconPulls: 0 }
  const health = { value: 0 }
  const reply: Setup['reply'] = { answer: fresh }
  const deps: RepairDeps = {
    clock,
    random: () => 0.99,
    self: 'self',
    peers: () => connected,
    request: async (peer, bytes) => {
      const message = decodeMessage(bytes)
      if (message.type !== MSG_PULL) throw new Error(`unexpected request ${message.type}`)
      asked.push({ peer, nodes: message.nodes })
      pulledAtMs.push(clock.now() - START_MS)
      return reply.answer(message.nodes)
    },
    receive: (from, beacons) => {
      received.push({ from, beacons })
      return new Set(beacons.map(b => b.node))
    },
    streamsBehind: () => behind,
    pullGap: (peer) => { gaps.push(peer) },
    health: () => health.value,
    stopped: () => false,
    counters
  }
  return { repair: new ClockRepair(deps, PULL_AFTER_MS), clock, connected, asked, pulledAtMs, received, behind, gaps, counters, health, reply }
}

/** A resolution with one verdict written at `writtenMs`, waiting on the clocks of `waitsFor`. */
function waiting (writtenMs: number, waitsFor: string[], final = false): Resolution {
  const verdict = { id: 'd1', key: 'd1@w', hlc: encodeHlc({ wallMs: writtenMs, counter: 0, node: 'w' }), final, waitingOn: final ? undefined : 'clocks', waitsFor } as unknown as Verdict
  return { pending: final ? 0 : 1, verdicts: new Map([['d1', verdict]]), conflicts: [], all: [verdict] } as unknown as Resolution
}

describe('clock channel repair', () => {
  it('pulls the beacons a verdict waits for once it has waited long enough, from one of those members, once a second', async () => {
    const s = setup(['m1', 'm2', 'm3'])
    const res = waiting(START_MS, ['self', 'm2', 'm9'])
    s.repair.afterResolution(res)
    await s.clock.advance(PULL_AFTER_MS - 1)
    s.repair.afterResolution(res)
    expect(s.asked).toEqual([])
    await s.clock.advance(1)
    s.repair.afterResolution(res)
    await s.clock.advance(0)
    // m2 is both waited for and connected: asked directly; this node is never asked for.
    expect(s.asked).toEqual([{ peer: 'm2', nodes: ['m2', 'm9'] }])
    expect(s.received.map(r => [r.from, r.beacons.map(b => b.node)])).toEqual([['m2', ['m2', 'm9']]])
    expect(s.counters.beaconPulls).toBe(1)
    await s.clock.advance(999)
    s.repair.afterResolution(res)
    expect(s.asked).toHaveLength(1)
    await s.clock.advance(1)
    s.repair.afterResolution(res)
    expect(s.asked).toHaveLength(2)
  })

  it('asks any connected peer when none of the members waited for is connected, and nobody once the verdict is final', async () => {
    const s = setup(['m1'])
    s.repair.afterResolution(waiting(START_MS - 5000, ['m7']))
    expect(s.asked.map(a => a.peer)).toEqual(['m1'])
    await s.clock.advance(5000)
    s.repair.afterResolution(waiting(START_MS - 5000, ['m7'], true))
    expect(s.asked).toHaveLength(1)
  })

  it('measures the wait on its own clock: a verdict stamped ahead of it is pulled for after the wait, not never', async () => {
    const s = setup(['m1'])
    const ahead = waiting(START_MS + 60_000, ['m1'])
    s.repair.afterResolution(ahead)
    await s.clock.advance(PULL_AFTER_MS)
    s.repair.afterResolution(ahead)
    expect(s.asked.map(a => a.peer)).toEqual(['m1'])
  })

  /** The times (ms after the start) of the pulls while `res` waits, each answered by `s.reply`, over `spanMs`. */
  async function pullTimes (s: Setup, res: Resolution, spanMs: number): Promise<number[]> {
    for (let t = 0; t <= spanMs; t += 100) {
      s.repair.afterResolution(res)
      await s.clock.advance(100)
    }
    return s.pulledAtMs
  }

  it('asks about a member whose pulls brought nothing newer of it half as often each time, up to a cap, and as often as before once one does', async () => {
    const s = setup(['m1'])
    const res = waiting(START_MS, ['m1'])
    // m1 does not answer (a starved member): asked at 1 s, then 2, 4, 8, 16, 16 s after each fruitless pull.
    s.reply.answer = () => undefined
    expect(await pullTimes(s, res, 48_000)).toEqual([1000, 3000, 7000, 15_000, 31_000, 47_000])
    expect(BEACON_PULL_BACKOFF_MAX_MS).toBe(16_000)
    // An answer whose beacon of m1 is no newer than the one held is no better.
    s.reply.answer = () => ({ type: MSG_BEACONS, beacons: [] })
    s.pulledAtMs.length = 0
    expect(await pullTimes(s, res, 20_000)).toEqual([63_000])
    // Then m1 answers with a newer beacon (at 79 s, 16 s after the last): the verdict still waits, and it is asked once a second again.
    s.reply.answer = fresh
    s.pulledAtMs.length = 0
    expect(await pullTimes(s, res, 18_000)).toEqual([79_000, 80_000, 81_000, 82_000, 83_000, 84_000, 85_000, 86_000])
  })

  it('pulls beacons less often while its own local health says it is slow', async () => {
    const s = setup(['m1'])
    s.health.value = 2
    expect(await pullTimes(s, waiting(START_MS, ['m1']), 10_000)).toEqual([1000, 4000, 7000, 10_000])
  })

  /** m1's stream falls behind now: no pull until `waitMs` has passed, then one from m1 (the only peer). */
  async function expectFirstPullAfter (s: Setup, waitMs: number): Promise<void> {
    s.behind.add('m1')
    s.repair.tick()
    await s.clock.advance(waitMs - 1)
    s.repair.tick()
    expect(s.gaps).toEqual([])
    await s.clock.advance(1)
    s.repair.tick()
    expect(s.gaps).toEqual(['m1'])
  }

  it('pulls a stream a beacon showed a gap in after a second, then at most once a second, and forgets a gap that closed', async () => {
    const s = setup(['m1'])
    await expectFirstPullAfter(s, 1000)
    s.repair.tick()
    expect(s.gaps).toEqual(['m1'])
    s.behind.delete('m1')
    s.repair.tick()
    s.behind.add('m1')
    await s.clock.advance(1000)
    s.repair.tick()
    expect(s.gaps).toEqual(['m1'])
  })

  it('pulls a gap from another connected peer first and from the member next, in turn, so lagging peers do not all ask the member at once', async () => {
    const s = setup(['m1', 'm2', 'm3'])
    s.behind.add('m1')
    s.repair.tick()
    for (let i = 0; i < 3; i++) {
      await s.clock.advance(1000)
      s.repair.tick()
    }
    // random() is 0.99: the last of the peers other than m1.
    expect(s.gaps).toEqual(['m3', 'm1', 'm3'])
  })

  it('waits longer before pulling a gap while its own local health says it is slow', async () => {
    const s = setup(['m1'])
    s.health.value = 2
    await expectFirstPullAfter(s, 3000)
  })
})
