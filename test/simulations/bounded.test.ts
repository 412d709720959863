/**
 * The bounded soak's verdict (simulations/reliability/bounded.ts) comes from
 * slopes after every agent passed its first epoch, never from a label: a flat
 * series is flat, a leak of a fraction of the old growth is not, and a run
 * that never reached an epoch shows nothing.
 */
import { describe, expect, it } from 'vitest'
import { analyse, chart, epochFloors, windowMinima } from '../../simulations/reliability/bounded.ts'

const MiB = 1024 ** 2
const settings = { minutes: 60, agents: 2, live: 150, rate: 5, compactAfter: 1000, sampleSeconds: 15 }

/** Samples every 15 s for an hour; `grow(i)` bytes added at sample i; every agent in epoch 1 from `epochAt` s. */
function samples (grow: (t: number) => number, epochAt = 300): Parameters<typeof analyse>[1] {
  return Array.from({ length: 240 }, (_, i) => {
    const atS = (i + 1) * 15
    const wobble = (i % 4) * 8 * MiB // a sawtooth between collections
    return {
      atS,
      made: atS * 5,
      live: 150,
      // Disk: a sawtooth within each 200 s epoch (the log grows, the move resets it), on a floor that grows with `grow`.
      agents: [0, 1].map(() => ({ rss: 200 * MiB + grow(atS) + wobble, heap: 40 * MiB + grow(atS) + wobble, disk: MiB + grow(atS) / 10 + (atS % 200) * 4096, epoch: atS >= epochAt ? 1 + Math.floor(atS / 200) : 0 }))
    }
  })
}

describe('the bounded soak verdict', () => {
  it('flat memory and disk after the first epoch are FLAT, whatever they did before it', () => {
    const r = analyse(settings, samples(t => (t < 300 ? t * 0.2 * MiB : 60 * MiB)), 18_000, 17_850, 0)
    expect(r.flat).toBe(true)
    expect(r.verdict).toMatch(/^FLAT/)
    expect(r.firstEpochAtS).toBe(300)
    for (const s of r.slopes) expect(Math.abs(s.rss.perHour)).toBeLessThan(MiB)
  })

  it('a leak of a fifth of the growth without compaction is GROWING', () => {
    // 3.2 KB of heap per reservation at 5/s over two agents, a fifth of it.
    const perSecond = 3200 * 5 / 2 * 0.2
    const r = analyse(settings, samples(t => t * perSecond), 18_000, 17_850, 0)
    expect(r.flat).toBe(false)
    expect(r.verdict).toMatch(/^GROWING/)
    expect(r.slopes[0].heapAfterGc.perHour).toBeGreaterThan(r.slopes[0].heapAfterGc.tolerancePerHour)
  })

  it('with the GC probe\'s readings, RSS and heap are judged on them, not on /metrics between collections', () => {
    /** Every fourth sample carries a reading after a full collection: 30 MiB under /metrics, growing by `gcGrow`. */
    const withGc = (gcGrow: (t: number) => number, metricsGrow: (t: number) => number): Parameters<typeof analyse>[1] =>
      samples(metricsGrow).map((s, i) => ({
        ...s,
        agents: s.agents.map(a => i % 4 === 0 ? { ...a, rssGc: 170 * MiB + gcGrow(s.atS), heapGc: 10 * MiB + gcGrow(s.atS) } : a)
      }))
    // Garbage between collections rising (the /metrics readings), what survives a collection flat: FLAT.
    const flat = analyse(settings, withGc(() => 0, t => t * 2000), 18_000, 17_850, 0)
    expect(flat.estimator).toBe('gc-probe')
    expect(flat.verdict).toMatch(/^FLAT/)
    expect(flat.verdict).toContain('after a full collection')
    // What survives a collection rising by a fifth of the growth without compaction: GROWING, on RSS and heap.
    const growing = analyse(settings, withGc(t => t * 3200 * 5 / 2 * 0.2, () => 0), 18_000, 17_850, 0)
    expect(growing.verdict).toMatch(/^GROWING/)
    expect(growing.slopes[0].heapAfterGc.flat).toBe(false)
    expect(chart(growing)).toContain('<circle')
    // Runs before the probe are judged as they were.
    expect(analyse(settings, samples(() => 0), 18_000, 17_850, 0).estimator).toBe('window-minima')
  })

  it('a run in which not every agent reached an epoch shows nothing', () => {
    const r = analyse(settings, samples(() => 0, Infinity), 100, 0, 0)
    expect(r.flat).toBe(false)
    expect(r.verdict).toMatch(/^NOT SHOWN/)
    expect(chart(r)).toContain('not shown')
  })

  it('the heap after collection is the least reading of each window; the disk, the least of each epoch', () => {
    expect(windowMinima([[1, 5], [2, 3], [3, 9], [4, 4], [5, 7], [6, 1]], 3)).toEqual([[3, 3], [6, 1]])
    expect(epochFloors([[1, 5, 1], [2, 3, 1], [3, 9, 2], [4, 4, 2], [5, 7, 3]])).toEqual([[2, 3], [4, 4], [5, 7]])
  })

  it('a disk sawtooth over a flat floor is flat, wherever the run cuts it; a rising floor is not', () => {
    const flat = analyse(settings, samples(() => 0).slice(0, 239), 18_000, 17_850, 0)
    expect(flat.slopes.every(s => s.disk.flat), flat.verdict).toBe(true)
    const rising = analyse(settings, samples(t => t * 4096).slice(0, 239), 18_000, 17_850, 0)
    expect(rising.slopes[0].disk.flat, rising.verdict).toBe(false)
  })
})
