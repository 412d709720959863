/**
 * The real tier (docs/design.md "Simulation harness"): every shipped scenario
 * on a handful of production agents with real libp2p over TCP on 127.0.0.1 (one
 * over libp2p's memory transport), partitions cut through libp2p's connection
 * gater.
 */
import { describe, expect, it } from 'vitest'
import { runScenario, type RunReport } from '../../simulations/harness/run.ts'
import { formatSummary } from '../../simulations/harness/summary.ts'
import { loadScenario } from '../../simulations/scenario/load.ts'

const SEED = 11

function check (report: RunReport): void {
  const why = `\n${formatSummary(report)}\nreproduce: memgossip simulate --scenario ${report.scenario} --tier real --nodes ${report.nodes} --seed ${report.seed}`
  expect(report.passed, why).toBe(true)
  expect(report.convergence.allAgreeAfterMs, why).not.toBeNull()
  expect(report.disagreement.series.at(-1)?.[1], why).toBe(0)
  expect(report.overCommit.afterConvergence, why).toBe(0)
  expect(report.finals.changed, why).toBe(0)
  expect(report.finals.tracked, why).toBeGreaterThan(0)
}

const SIZES: Record<string, number> = {
  'yz-race': 6,
  'partition-heal-storm': 6,
  'node-loss': 5,
  churn: 5,
  'replicated-all-placement': 4,
  fleet: 10,
  'membership-storm': 6
}

describe('every shipped scenario, real tier (libp2p over TCP on 127.0.0.1)', () => {
  for (const [name, nodes] of Object.entries(SIZES)) {
    it(`${name} at ${nodes} peers`, async () => {
      const report = await runScenario(await loadScenario(name), { tier: 'real', nodes, seed: SEED, transport: 'tcp' })
      check(report)
      expect(report.transport).toBe('tcp')
      // Partitions went through libp2p: gossip stopped crossing them and sync had to carry the writes.
      if (report.partitions.length > 0) expect(report.traffic.requestsOutPerPeer).toBeGreaterThan(0)
    }, 90_000)
  }
})

describe('real tier over the libp2p memory transport', () => {
  it('yz-race at 4 peers', async () => {
    const report = await runScenario(await loadScenario('yz-race'), { tier: 'real', nodes: 4, seed: SEED, transport: 'memory' })
    check(report)
    expect(report.transport).toBe('memory')
    expect(report.writes.races.oneAdmitted).toBe(report.writes.races.pairs)
  }, 60_000)
})
