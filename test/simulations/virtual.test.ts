/**
 * The virtual tier (docs/design.md "Simulation harness"): every shipped
 * scenario on the in-memory network and a virtual clock — membership-storm at
 * 80 peers, the others at 64 — and a seeded run reproduced exactly. At 64 a
 * view is small enough for direct beacons and probes to every member; at 80
 * beacons go by gossip, so both paths run. (MEMGOSSIP_VIRTUAL_PEERS=200 runs
 * them all at 200: membership-storm alone is about 6 CPU-minutes there, every
 * write costing two rounds of messages from every member in one process, which
 * is what the benchmark's virtual phase is for.) A failure prints the summary and the seed that
 * reproduces it.
 */
import { spawn } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { runScenario, type RunReport } from '../../simulations/harness/run.ts'
import { formatSummary } from '../../simulations/harness/summary.ts'
import { loadScenario } from '../../simulations/scenario/load.ts'

/** Peers per scenario run; `membership-storm` is the one run beyond 64 in CI. */
const PEERS: Record<string, number> = { 'membership-storm': 80, compaction: 12 }
const DEFAULT_PEERS = Number(process.env.MEMGOSSIP_VIRTUAL_PEERS ?? 64)
const peersOf = (name: string): number => process.env.MEMGOSSIP_VIRTUAL_PEERS !== undefined ? DEFAULT_PEERS : (PEERS[name] ?? DEFAULT_PEERS)
const SEED = 20261121
const REPO = fileURLToPath(new URL('../..', import.meta.url))
const CLI = fileURLToPath(new URL('../../simulations/cli.ts', import.meta.url))

function check (report: RunReport): void {
  const why = `\n${formatSummary(report)}\nreproduce: memgossip simulate --scenario ${report.scenario} --tier virtual --nodes ${report.nodes} --seed ${report.seed}`
  expect(report.passed, why).toBe(true)
  // Identical digests on every running peer at the end.
  expect(report.convergence.allAgreeAfterMs, why).not.toBeNull()
  expect(report.disagreement.series.at(-1)?.[1], why).toBe(0)
  expect(report.outcome.digest, why).not.toBeNull()
  expect(report.overCommit.afterConvergence, why).toBe(0)
  expect(report.finals.changed, why).toBe(0)
  expect(report.finals.tracked, why).toBeGreaterThan(0)
  expect(report.errors.filter(e => /threw/.test(e)), why).toEqual([])
}

/**
 * The larger runs are CPU-bound and independent: each runs the real command
 * (`simulations/cli.ts --json`) in its own process, two at a time, so both
 * cores work and one run's heap does not slow the next.
 */
const SCENARIOS = ['membership-storm', 'fleet', 'churn', 'partition-heal-storm', 'replicated-all-placement', 'node-loss', 'yz-race', 'compaction']
const PARALLEL = Math.max(1, Math.min(2, availableParallelism()))
const runs = new Map<string, Promise<{ code: number, report: RunReport }>>()

describe(`every shipped scenario, virtual tier, ${DEFAULT_PEERS} peers (membership-storm ${peersOf('membership-storm')})`, () => {
  // In this describe, so a run filtered to other tests (-t) starts none of them.
  beforeAll(() => {
    let next = 0
    const waiting = new Map<string, { resolve: (r: { code: number, report: RunReport }) => void, reject: (e: unknown) => void }>()
    for (const name of SCENARIOS) runs.set(name, new Promise((resolve, reject) => { waiting.set(name, { resolve, reject }) }))
    const worker = async (): Promise<void> => {
      while (next < SCENARIOS.length) {
        const name = SCENARIOS[next++]
        const settle = waiting.get(name)!
        await simulateInChild(name).then(settle.resolve, settle.reject)
      }
    }
    for (let i = 0; i < PARALLEL; i++) void worker()
  })

  for (const name of SCENARIOS) {
    it(name, async () => {
      const { code, report } = await runs.get(name)!
      check(report)
      expect(code).toBe(0)
      expect(report.nodes).toBe(peersOf(name))
      if (name === 'yz-race') {
        // docs/design.md "The y/z race": each pair, written at one instant on
        // two peers, has exactly one winner.
        expect(report.writes.races.oneAdmitted).toBe(report.writes.races.pairs)
        expect(report.writes.races.loserLostConcurrentConflict).toBe(report.writes.races.pairs)
      }
      if (name === 'compaction') {
        // docs/design.md "Compaction: epochs": every running peer moved, through a crash, a partition and a join.
        expect(report.outcome.epochs[0], 'the least epoch among the running peers').toBeGreaterThanOrEqual(1)
        expect(report.outcome.epochs[0]).toBe(report.outcome.epochs[1])
      }
    }, 600_000)
  }
})

async function simulateInChild (name: string): Promise<{ code: number, report: RunReport }> {
  const args = ['--import', 'tsx', CLI, '--scenario', name, '--tier', 'virtual', '--nodes', String(peersOf(name)), '--seed', String(SEED), '--json', '--no-svg']
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
    child.on('error', reject)
    child.on('close', (code) => {
      try {
        resolve({ code: code ?? -1, report: JSON.parse(out) as RunReport })
      } catch {
        reject(new Error(`simulate ${name} exited ${code} without a JSON report:\n${err.slice(-2000)}`))
      }
    })
  })
}

/** The report minus what legitimately differs between two runs: wall time and memory. */
function deterministic (report: RunReport): unknown {
  const { wall: _wall, memory: _memory, ...rest } = report
  return rest
}

describe('a seeded virtual run', () => {
  it('is reproduced exactly, crashes and restarts from data dirs included', async () => {
    const scenario = await loadScenario('churn')
    const a = await runScenario(scenario, { tier: 'virtual', nodes: 24, seed: 7 })
    const b = await runScenario(scenario, { tier: 'virtual', nodes: 24, seed: 7 })
    check(a)
    expect(JSON.stringify(deterministic(b))).toBe(JSON.stringify(deterministic(a)))
    const c = await runScenario(scenario, { tier: 'virtual', nodes: 24, seed: 8 })
    expect(c.outcome.digest).not.toBe(a.outcome.digest)
  })

  it('gossip takes the scenario\'s mesh paths: with 3 a peer misses far fewer copies than with 1, and agrees all the same', async () => {
    const scenario = await loadScenario('yz-race')
    const lossy = (paths: number): typeof scenario => ({ ...scenario, network: { ...scenario.network, loss: 0.2, paths } })
    const one = await runScenario(lossy(1), { tier: 'virtual', nodes: 30, seed: 5 })
    const three = await runScenario(lossy(3), { tier: 'virtual', nodes: 30, seed: 5 })
    check(one)
    check(three)
    // Per copy: 20 % lost on one path, 0.8 % (0.2³) on three; a few copies are cut by partitions either way.
    expect(one.traffic.droppedPerPeer).toBeGreaterThan(5 * three.traffic.droppedPerPeer)
    expect(three.outcome.verdicts).toEqual(one.outcome.verdicts)
  })

  it('reaches the same verdicts with gossip coalescing off (every copy delivered alone)', async () => {
    const scenario = await loadScenario('partition-heal-storm')
    const on = await runScenario(scenario, { tier: 'virtual', nodes: 30, seed: 3 })
    const off = await runScenario(scenario, { tier: 'virtual', nodes: 30, seed: 3, coalesce: false })
    check(on)
    check(off)
    expect(off.tierStats.coalesce).toBe(false)
    expect(off.outcome.verdicts).toEqual(on.outcome.verdicts)
  })
})
