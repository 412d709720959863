/**
 * How far this host's clock is from its peers' (agent/offsets.ts): the
 * median over the members that count, the largest sample of a window, and a
 * median recomputed when an input moved — at once, since writes are refused
 * by it — and otherwise at most once a second.
 */
import { describe, expect, it } from 'vitest'
import { ClockOffsets, OFFSET_WINDOW_MS } from '../../agent/offsets.ts'
import { VirtualClock } from '../../simulations/virtual/clock.ts'

function setup (): { offsets: ClockOffsets, clock: VirtualClock } {
  const clock = new VirtualClock({ startMs: 1_700_000_000_000 })
  return { offsets: new ClockOffsets(clock), clock }
}

const all = (): boolean => true
const view = { epoch: 1 }

describe('clock offsets', () => {
  it('takes the median over the members that count, and says who runs ahead of it', () => {
    const { offsets } = setup()
    offsets.sample('a', 100)
    offsets.sample('b', 300)
    offsets.sample('c', 200)
    offsets.sample('far', 90_000)
    offsets.update(view, (peer) => peer !== 'far')
    expect(offsets.medianMs).toBe(200)
    expect(offsets.behindMs).toBe(200)
    expect(offsets.ahead(500)).toEqual([['far', 89_800]])
    expect(offsets.has('a')).toBe(true)
    expect(offsets.has('z')).toBe(false)
  })

  it('is not behind when the peers are behind it, and 0 with nobody to count', () => {
    const { offsets } = setup()
    offsets.sample('a', -400)
    offsets.update(view, all)
    expect(offsets.medianMs).toBe(-400)
    expect(offsets.behindMs).toBe(0)
    offsets.invalidate()
    offsets.update(view, () => false)
    expect(offsets.medianMs).toBe(0)
  })

  it('keeps the largest sample of the window, then takes a smaller one', async () => {
    const { offsets, clock } = setup()
    offsets.sample('a', 800)
    offsets.sample('a', 50) // an older stamp, by sync: hides nothing
    offsets.update(view, all)
    expect(offsets.medianMs).toBe(800)
    await clock.advance(OFFSET_WINDOW_MS + 1)
    offsets.sample('a', 50)
    offsets.update(view, all)
    expect(offsets.medianMs).toBe(50)
  })

  it('recomputes at once when a sample, a liveness or the view moved, and otherwise once a second', async () => {
    const { offsets, clock } = setup()
    offsets.sample('a', 100)
    offsets.sample('b', 900)
    offsets.sample('c', 1000)
    let counted = new Set(['a', 'b', 'c'])
    const counts = (peer: string): boolean => counted.has(peer)
    offsets.update(view, counts)
    expect(offsets.medianMs).toBe(900)

    // A larger sample: the median moves at the next update, with no time passing.
    offsets.sample('a', 2000)
    offsets.update(view, counts)
    expect(offsets.medianMs).toBe(1000)

    // Who counts changed without a word: the median stands until a second passed...
    counted = new Set(['b', 'c'])
    offsets.update(view, counts)
    expect(offsets.medianMs).toBe(1000)
    // ...unless a liveness moved,
    offsets.invalidate()
    offsets.update(view, counts)
    expect(offsets.medianMs).toBe(1000) // b, c: the upper of the two
    counted = new Set(['a', 'b'])
    offsets.update(view, counts)
    expect(offsets.medianMs).toBe(1000)
    // ...or the view is another one,
    const next = { epoch: 2 }
    offsets.update(next, counts)
    expect(offsets.medianMs).toBe(2000)
    counted = new Set(['b'])
    offsets.update(next, counts)
    expect(offsets.medianMs).toBe(2000)
    // ...or a second passed.
    await clock.advance(1000)
    offsets.update(next, counts)
    expect(offsets.medianMs).toBe(900)
  })

  it('lets a sample that moved by less than 10 ms wait for the next second', async () => {
    const { offsets, clock } = setup()
    offsets.sample('a', 100)
    offsets.update(view, all)
    offsets.sample('a', 105)
    offsets.update(view, all)
    expect(offsets.medianMs).toBe(100)
    await clock.advance(1000)
    offsets.update(view, all)
    expect(offsets.medianMs).toBe(105)
    offsets.sample('a', 115)
    offsets.update(view, all)
    expect(offsets.medianMs).toBe(115)
  })
})
