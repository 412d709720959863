/**
 * simulations/reliability/heap-diff.ts reads real V8 heap snapshots: objects allocated
 * between two snapshots of this process show up as growth of their
 * constructor, counted exactly.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import { afterAll, describe, expect, it } from 'vitest'
import { diff, readSnapshot, slope } from '../../simulations/reliability/heap-diff.ts'

class HeapDiffMarker {
  constructor (readonly n: number) {}
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'mg-heapdiff-'))
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

describe('heap-diff', () => {
  it('counts the objects made between two snapshots by constructor, and per reservation', async () => {
    const kept: HeapDiffMarker[] = []
    const before = v8.writeHeapSnapshot(path.join(dir, 'a.heapsnapshot'))
    for (let i = 0; i < 5000; i++) kept.push(new HeapDiffMarker(i))
    const after = v8.writeHeapSnapshot(path.join(dir, 'b.heapsnapshot'))
    const result = diff(await readSnapshot(before), await readSnapshot(after), 1000, 20)
    const row = result.top.find(r => r.name === 'HeapDiffMarker')
    expect(row, JSON.stringify(result.top.map(r => r.name))).toBeDefined()
    expect(row!.grewCount).toBe(5000)
    expect(row!.countAfter).toBe(5000)
    expect(row!.perReservationBytes).toBe(Math.round(row!.grewBytes / 1000 * 10) / 10)
    expect(result.grewPerReservationBytes).toBe(Math.round(result.grewBytes / 1000))
    expect(kept.length).toBe(5000)
  }, 60_000)

  it('fits a slope by least squares', () => {
    expect(slope([0, 1, 2, 3], [10, 12, 14, 16])).toBe(2)
    expect(slope([5], [1])).toBe(0)
    expect(slope([1, 1], [1, 5])).toBe(0)
  })
})
