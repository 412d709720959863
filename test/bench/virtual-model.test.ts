/**
 * The virtual tier's benchmark entry point (simulations/bench/tiers.ts
 * `benchVirtual`) at the smallest size where it fits its memory model: a
 * formation-only run at half the size first, with the scenario's own timers,
 * then the scenario, then the fit of memory per peer as a + b·N over the two.
 * The full benchmark is the only other caller, and a formation-only run that
 * its scenario's timers broke once failed there alone.
 */
import { describe, expect, it } from 'vitest'
import { benchVirtual } from '../../simulations/bench/tiers.ts'

describe('benchVirtual with its memory model', () => {
  const seed = 3
  it(`yz-race at 40 virtual peers, seed ${seed}`, async () => {
    const result = await benchVirtual({ nodes: 40, seed, scenario: 'yz-race' })
    const why = `reproduce: npx tsx simulations/bench/tiers.ts virtual 40 --scenario yz-race --seed ${seed}`
    expect(result.passed, why).toBe(true)
    expect(result.nodes).toBe(40)
    expect(result.memoryModel?.fittedOn, why).toEqual([20, 40])
    expect(result.heapPerPeerBytes).toBeGreaterThan(0)
    expect(result.maxNodesEstimate, why).toBeGreaterThan(40)
    // The rest window after the scenario: the failure detector's probes at least.
    expect(result.rest?.messagesInPerNodePerS, why).toBeGreaterThan(0)
  }, 120_000)
})
