/**
 * The failure detector (agent/liveness.ts) on a virtual clock: who it probes,
 * when it suspects, when it declares dead, how a suspicion is refuted, and
 * how a slow node keeps from accusing healthy ones (Lifeguard's local health).
 * The network is a table of who answers; the detector is the real one.
 */
import { describe, expect, it } from 'vitest'
import { emptyLivenessCounters, FailureDetector, FAILURE_DETECTOR_DEFAULTS, type FailureDetectorDeps } from '../../agent/liveness.ts'
import { encodeHlc } from '../../crdt/index.ts'
import { VirtualClock } from '../../simulations/virtual/clock.ts'

const SELF = 'node-self'
const peers = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e']

interface Setup {
  fd: FailureDetector
  clock: VirtualClock
  down: Set<string>
  announced: Array<{ target: string, stamp: string }>
  refuted: string[]
  pings: string[]
  /** Suspicion stamps carried by pings, by target. */
  told: Map<string, string>
  /** Answer after this long (ms): a slow network or a starved peer. */
  delayMs: { value: number }
  /** Peers that answer every ping this late (ms), helpers' pings included: starved themselves, this node is not. */
  starved: Map<string, number>
}

function setup (members = [SELF, ...peers], neighbours: () => string[] = () => members.filter(m => m !== SELF)): Setup {
  const clock = new VirtualClock({ startMs: 1_000_000 })
  const down = new Set<string>()
  const announced: Setup['announced'] = []
  const refuted: string[] = []
  const pings: string[] = []
  const told = new Map<string, string>()
  const delayMs = { value: 5 }
  const starved = new Map<string, number>()
  const answer = async (peer: string, timeoutMs: number): Promise<boolean> => await new Promise(resolve => {
    const delay = starved.get(peer) ?? delayMs.value
    clock.setTimeout(() => resolve(!down.has(peer) && delay <= timeoutMs), Math.min(delay, timeoutMs))
  })
  let seed = 42
  const deps: FailureDetectorDeps = {
    self: SELF,
    clock,
    random: () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 },
    members: () => members,
    neighbours,
    stamp: () => encodeHlc({ wallMs: clock.now(), counter: 0, node: SELF }),
    ping: async (peer, timeoutMs, suspicion) => {
      pings.push(peer)
      if (suspicion !== undefined) told.set(peer, suspicion)
      return await answer(peer, timeoutMs)
    },
    // The helper answers within its own timeout either way ("no" when the target is down) — unless this node hears everything late.
    // A starved target misses the helper's ping too (the helper pings with the default timeout): "no".
    pingVia: async (_via, target, timeoutMs) => await new Promise(resolve => {
      const helpless = down.has(target) || (starved.get(target) ?? 0) > FAILURE_DETECTOR_DEFAULTS.probeTimeoutMs
      clock.setTimeout(() => resolve(delayMs.value > 2 * timeoutMs ? 'none' : helpless ? 'nack' : 'ack'), Math.min(delayMs.value, 2 * timeoutMs))
    }),
    announce: (target, stamp) => { announced.push({ target, stamp }) },
    refute: (stamp) => { refuted.push(stamp) },
    changed: () => {},
    log: () => {},
    counters: emptyLivenessCounters()
  }
  const fd = new FailureDetector(deps)
  return { fd, clock, down, announced, refuted, pings, told, delayMs, starved }
}

/** Run the detector's one-second ticks for `ms` of virtual time. */
async function run (s: Setup, ms: number): Promise<void> {
  const until = s.clock.now() + ms
  while (s.clock.now() < until) {
    s.fd.tick()
    await s.clock.advance(FAILURE_DETECTOR_DEFAULTS.probeIntervalMs)
  }
}

describe('failure detector', () => {
  it('probes one neighbour per interval, each in turn: the cost per node does not grow with the cluster', async () => {
    const s = setup()
    await run(s, 10_000)
    expect(s.pings.length).toBe(10)
    // Every neighbour probed twice in two rounds of five.
    for (const p of peers) expect(s.pings.filter(x => x === p).length).toBe(2)
    for (const p of peers) expect(s.fd.state(p)).toBe('alive')
  })

  it('suspects a peer that answers neither directly nor through others, and declares it dead after the suspicion timeout', async () => {
    const s = setup()
    s.down.add('node-c')
    s.fd.disconnected('node-c')
    await run(s, 1_000)
    expect(s.fd.state('node-c')).toBe('suspect')
    expect(s.announced.map(a => a.target)).toEqual(['node-c'])
    const { min, max } = s.fd.suspicionTimeouts(6)
    // Alone, the suspicion waits the longest timeout.
    await run(s, min + 1_000)
    expect(s.fd.state('node-c')).toBe('suspect')
    // Three other members confirm it: the shortest timeout applies.
    for (const by of ['node-a', 'node-b', 'node-d']) s.fd.suspected(by, 'node-c', encodeHlc({ wallMs: s.clock.now(), counter: 0, node: by }))
    await run(s, 1_000)
    expect(s.fd.state('node-c')).toBe('dead')
    expect(max).toBe(min * FAILURE_DETECTOR_DEFAULTS.suspicionMaxMult)
    expect(s.fd.silentForMs('node-c')).toBeGreaterThanOrEqual(min)
  })

  it('a node whose own timer runs late suspects nobody for that round: the silence may be its own', async () => {
    const s = setup()
    s.down.add('node-c')
    s.fd.tick()
    // The next tick comes 3 s late (a starved event loop), then the probe of node-c fails.
    await s.clock.advance(3_000)
    s.fd.disconnected('node-c')
    s.fd.tick()
    await s.clock.advance(5_000)
    expect(s.fd.state('node-c')).toBe('alive')
    expect(s.fd.localHealth).toBeGreaterThan(0)
    // On time again: now it suspects.
    await run(s, 6_000)
    expect(s.fd.state('node-c')).toBe('suspect')
  })

  it('keeps probing a member whose connection closed until it is suspected, even when the first probes get no answer at all', async () => {
    const members = [SELF, ...peers]
    let connected = members.filter(m => m !== SELF)
    const s = setup(members, () => connected)
    // This node is slow at first: nobody answers in time, so it suspects nobody.
    s.delayMs.value = 5_000
    s.down.add('node-e')
    connected = connected.filter(p => p !== 'node-e')
    s.fd.disconnected('node-e')
    await run(s, 3_000)
    expect(s.fd.state('node-e')).toBe('alive')
    // It recovers; node-e is still not connected, yet it is probed again and suspected.
    s.delayMs.value = 5
    await run(s, 8_000)
    expect(s.fd.state('node-e')).toBe('suspect')
  })

  it('with no confirmation a suspect is dead at the longest timeout, not before', async () => {
    const s = setup()
    s.down.add('node-c')
    s.fd.disconnected('node-c')
    await run(s, 1_000)
    const { max } = s.fd.suspicionTimeouts(6)
    await run(s, max - 2_000)
    expect(s.fd.state('node-c')).toBe('suspect')
    await run(s, 3_000)
    expect(s.fd.state('node-c')).toBe('dead')
  })

  it('a proof of life stamped after the suspicion refutes it; one stamped before does not', async () => {
    const s = setup()
    const stamp = encodeHlc({ wallMs: s.clock.now(), counter: 5, node: 'node-a' })
    s.fd.suspected('node-a', 'node-b', stamp)
    expect(s.fd.state('node-b')).toBe('suspect')
    s.fd.heard('node-b', encodeHlc({ wallMs: s.clock.now() - 1, counter: 0, node: 'node-b' }))
    expect(s.fd.state('node-b')).toBe('suspect')
    s.fd.heard('node-b', encodeHlc({ wallMs: s.clock.now(), counter: 6, node: 'node-b' }))
    expect(s.fd.state('node-b')).toBe('alive')
    // A suspicion older than what this node heard is ignored.
    s.fd.suspected('node-a', 'node-b', stamp)
    expect(s.fd.state('node-b')).toBe('alive')
  })

  it("a suspicion of a neighbour is checked at the next probe, and the ping tells the target (Lifeguard's buddy system)", async () => {
    const s = setup()
    const stamp = encodeHlc({ wallMs: s.clock.now(), counter: 0, node: 'node-a' })
    s.fd.suspected('node-a', 'node-d', stamp)
    await run(s, 1_000)
    expect(s.pings).toEqual(['node-d'])
    expect(s.told.get('node-d')).toBe(stamp)
    // It answered: alive here, whatever node-a thinks.
    expect(s.fd.state('node-d')).toBe('alive')
  })

  it('a suspicion of this node is refuted at once, and counts against its own health', () => {
    const s = setup()
    const stamp = encodeHlc({ wallMs: s.clock.now(), counter: 0, node: 'node-a' })
    s.fd.suspected('node-a', SELF, stamp)
    expect(s.refuted).toEqual([stamp])
    expect(s.fd.localHealth).toBe(1)
  })

  it('a slow node (answers arrive after its probe timeout, even the helpers\' answers) grows its timeout instead of condemning healthy peers (Lifeguard)', async () => {
    const s = setup()
    // Everything this node hears arrives 2.5 s late: its event loop is starved.
    s.delayMs.value = 2_500
    await run(s, 30_000)
    // Early probes time out, but others still answer for the target, so the
    // trouble is counted here; with the multiplier up, answers arrive in time.
    expect(s.fd.localHealth).toBeGreaterThan(0)
    for (const p of peers) expect(s.fd.state(p)).toBe('alive')
    expect(s.announced).toEqual([])
  })

  it('a target whose answer comes after the probe timeout, while the indirect probes run, is late, not suspect; one silent for longer is suspected', async () => {
    const s = setup()
    const { probeTimeoutMs } = FAILURE_DETECTOR_DEFAULTS
    // node-c's event loop is starved: it answers 1.5 probe timeouts late, and its helpers' pings time out ("no").
    s.starved.set('node-c', 1.5 * probeTimeoutMs)
    s.fd.disconnected('node-c')
    await run(s, 10_000)
    expect(s.fd.state('node-c')).toBe('alive')
    expect(s.announced).toEqual([])
    // Late, not lost: it counts as the target's answer, not as this node's slowness.
    expect(s.fd.localHealth).toBe(0)
    // Silent past the late-answer window: suspected.
    s.starved.set('node-c', 2.5 * probeTimeoutMs)
    s.fd.disconnected('node-c')
    await run(s, 5_000)
    expect(s.fd.state('node-c')).toBe('suspect')
  })

  it('a target heard from during the probe (a beacon stamped after it began) is not suspected, though no ping reached it', async () => {
    const s = setup()
    // node-c answers no ping in time (nor its helpers' pings).
    s.starved.set('node-c', 10_000)
    s.fd.disconnected('node-c')
    s.fd.tick()
    // Mid-probe, a beacon of node-c stamped now arrives (by a relay, say).
    await s.clock.advance(500)
    s.fd.heard('node-c', encodeHlc({ wallMs: s.clock.now(), counter: 0, node: 'node-c' }))
    // The probe ends 2 probe timeouts after it began (the late-answer window).
    await s.clock.advance(1_500)
    expect(s.announced).toEqual([])
    expect(s.fd.state('node-c')).toBe('alive')
    // Nothing since: the next probe suspects it.
    s.fd.disconnected('node-c')
    await run(s, 5_000)
    expect(s.fd.state('node-c')).toBe('suspect')
  })
})
