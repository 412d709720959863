/**
 * Reading a CPU profile (simulations/bench/profile.ts) on a hand-built one:
 * self time per function, and the project's functions by total time — their
 * callees included, a recursive function counted once per sample, library
 * frames left out.
 */
import { describe, expect, it } from 'vitest'
import { hotFunctions } from '../../simulations/bench/profile.ts'

const frame = (functionName: string, url: string): { functionName: string, url: string, lineNumber: number } => ({ functionName, url, lineNumber: 0 })

// (root) → onMessage (agent) → apply (agent) → apply (agent, recursing) → decode (library)
//                            → resolve (crdt)
//        → (idle)
const profile = {
  nodes: [
    { id: 1, callFrame: frame('(root)', ''), children: [2, 7] },
    { id: 2, callFrame: frame('onMessage', 'file:///work/main/dist/agent/agent.js'), children: [3, 6] },
    { id: 3, callFrame: frame('apply', 'file:///work/main/dist/agent/sync.js'), children: [4] },
    { id: 4, callFrame: frame('apply', 'file:///work/main/dist/agent/sync.js'), children: [5] },
    { id: 5, callFrame: frame('decode', 'file:///work/main/node_modules/yjs/dist/yjs.mjs') },
    { id: 6, callFrame: frame('resolve', 'file:///work/main/dist/crdt/resolve.js') },
    { id: 7, callFrame: frame('(idle)', '') }
  ],
  // Each sample 1 ms: decode 3, the inner apply 1, resolve 2, idle 4.
  samples: [5, 5, 5, 4, 6, 6, 7, 7, 7, 7],
  timeDeltas: Array(10).fill(1000),
  startTime: 0,
  endTime: 10_000
}

describe('hotFunctions', () => {
  it('totals the project\'s functions with their callees, counting a recursion once', () => {
    const summary = hotFunctions(profile, 10)
    expect(summary.totalMs).toBe(10)
    expect(summary.idleShare).toBeCloseTo(0.4)
    const own = new Map(summary.ownTotals.map(f => [f.name, f.totalMs]))
    expect(own.get('onMessage')).toBe(6)
    expect(own.get('apply')).toBe(4) // not 7: the recursing frame is the same function
    expect(own.get('resolve')).toBe(2)
    expect(own.has('decode')).toBe(false) // a library's, not the project's
    expect(summary.ownTotals.map(f => f.name)).toEqual(['onMessage', 'apply', 'resolve'])
    expect(summary.functions[0]).toMatchObject({ name: '(idle)', selfMs: 4 })
    expect(summary.functions.find(f => f.name === 'decode')?.selfMs).toBe(3)
  })

  it('keeps only the window asked for', () => {
    // The samples of the last 3.5 ms end at 7, 8, 9 and 10 ms: the idle ones.
    const summary = hotFunctions(profile, 10, 3.5)
    expect(summary.totalMs).toBe(4)
    expect(summary.ownTotals).toEqual([])
  })
})
