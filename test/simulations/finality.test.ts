/**
 * Reservation → final on every peer and traffic at rest, as the harness
 * measures them (simulations/harness/finality.ts, rest.ts): the histogram's
 * buckets as a table, then one small seeded virtual run (`yz-race`, 6 peers)
 * whose figures must hang together — every reservation final on every peer,
 * "everywhere" the slowest peer, writes across the cut slower than on the
 * whole network — and a rest window whose traffic is the failure detector's;
 * then 40 peers at rest, whose anti-entropy rounds come at the pace of the
 * view's push-pull scale (agent/sync.ts `pushPullScale`: 2 at 40 members).
 */
import { describe, expect, it } from 'vitest'
import { histogram } from '../../simulations/harness/finality.ts'
import { runScenario } from '../../simulations/harness/run.ts'
import { formatSummary } from '../../simulations/harness/summary.ts'
import { loadScenario, parseScenario } from '../../simulations/scenario/load.ts'
import { virtualRest } from '../../simulations/bench/tiers.ts'
import { backoffSchedule, pushPullScale } from '../../agent/sync.ts'

describe('histogram of final-everywhere times', () => {
  it.each([
    { values: [], bounds: [25, 50], want: [] },
    { values: [10, 25], bounds: [25, 50], want: [[25, 2]] },
    { values: [26, 50], bounds: [25, 50], want: [[25, 0], [50, 2]] },
    { values: [10, 60, 70], bounds: [25, 50], want: [[25, 1], [50, 0], [Infinity, 2]] },
    { values: [40], bounds: [25, 50, 100], want: [[25, 0], [50, 1]] }
  ])('$values over $bounds', ({ values, bounds, want }) => {
    expect(histogram(values, bounds)).toEqual(want)
  })
})

describe('finality and rest in a virtual run', () => {
  const seed = 7
  it(`yz-race, 6 peers, seed ${seed}`, async () => {
    const scenario = await loadScenario('yz-race')
    const report = await runScenario(scenario, { tier: 'virtual', nodes: 6, seed, rest: { warmMs: 5_000, windowMs: 10_000 } })
    const why = `\n${formatSummary(report)}\nreproduce: memgossip simulate --scenario yz-race --tier virtual --nodes 6 --seed ${seed}`
    expect(report.passed, why).toBe(true)
    const { whole, partitioned } = report.finality
    // Every reservation written is counted once, on one side or the other.
    expect(whole.writes + partitioned.writes, why).toBe(report.writes.reservations.written)
    expect(whole.writes, why).toBeGreaterThan(0)
    expect(partitioned.writes, why).toBeGreaterThan(0)
    // The scenario ends with every verdict final everywhere.
    expect(whole.neverFinal + partitioned.neverFinal, why).toBe(0)
    // "Final everywhere" is the slowest peer of each write: its maximum is the per-peer maximum.
    expect(whole.allMaxMs, why).toBe(whole.peerMaxMs)
    expect(whole.allP50Ms!, why).toBeGreaterThanOrEqual(whole.peerP50Ms!)
    // Finality takes a beacon round trip: never instant, and well under a second on 1–10 ms links.
    expect(whole.peerP50Ms!, why).toBeGreaterThan(0)
    expect(whole.allMaxMs!, why).toBeLessThan(1000)
    // Written during the partition: final on the far side only after the heal.
    expect(partitioned.allP50Ms!, why).toBeGreaterThan(whole.allMaxMs!)
    expect(whole.histogram.reduce((sum, [, c]) => sum + c, 0), why).toBe(whole.writes)

    const rest = report.rest!
    expect(rest.nodes, why).toBe(6)
    // At rest the failure detector pings one member a second: each node gets about one call and one reply a second.
    expect(rest.directInPerNodePerS, why).toBeGreaterThan(1.5)
    expect(rest.directInPerNodePerS, why).toBeLessThan(2.5)
    // Nothing is written at rest: no gossip.
    expect(rest.gossipInPerNodePerS, why).toBe(0)
    expect(rest.bytesInPerNodePerS, why).toBeGreaterThan(0)
  }, 60_000)
})

describe('anti-entropy at rest in a view above 32 members', () => {
  it('40 peers each run one round per 12 × 2 sync intervals, not per 12', async () => {
    const nodes = 40
    const scenario = parseScenario(JSON.stringify({ name: 'rest-40', nodes, memory: ['16GiB'], network: { latency: ['2ms', '40ms'], loss: 0, duplicate: 0, degree: 6 }, timeline: [], settle: '1s', hold: 0, sample: '50ms' }), 'rest-40 (inline)')
    const rest = virtualRest(nodes, scenario.agent.syncMs)
    const report = await runScenario(scenario, { tier: 'virtual', nodes, seed: 3, rest })
    const { capMs } = backoffSchedule(scenario.agent.syncMs, pushPullScale(nodes))
    const why = `rest ${JSON.stringify(report.rest)}; window ${rest.windowMs} ms, one round per ${capMs} ms per peer expected`
    expect(report.passed, why).toBe(true)
    expect(pushPullScale(nodes)).toBe(2)
    expect(rest.windowMs, why).toBe(capMs)
    // Every round is one sync request served somewhere: one per peer in the window.
    const perNode = report.rest!.requestsInPerNodePerS
    expect(perNode, why).toBeGreaterThan(0.7 * 1000 / capMs)
    expect(perNode, why).toBeLessThan(1.3 * 1000 / capMs)
  }, 120_000)
})
