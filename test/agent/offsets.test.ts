/**
 * How far this host's clock is from its peers' (agent/offsets.ts): the
 * median over the members that count, and the largest sample of a window.
 */
import { describe, expect, it } from 'vitest'
import { ClockOffsets, OFFSET_WINDOW_MS } from '../../agent/offsets.ts'
import { VirtualClock } from '../../simulations/virtual/clock.ts'

const MAX_OFFSET_MS = 500

/** Offsets on a virtual clock; `sample` reads a peer's clock `offsetMs` ahead of this host's now. */
function setup (): { offsets: ClockOffsets, clock: VirtualClock, sample: (peer: string, offsetMs: number) => void } {
  const clock = new VirtualClock({ startMs: 1_700_000_000_000 })
  const offsets = new ClockOffsets(clock, MAX_OFFSET_MS)
  return { offsets, clock, sample: (peer, offsetMs) => { offsets.sample(peer, clock.now() + offsetMs) } }
}

const all = (): boolean => true

describe('clock offsets', () => {
  it('takes the median over the members that count, and says who runs ahead of it', () => {
    const { offsets, sample } = setup()
    sample('a', 100)
    sample('b', 300)
    sample('c', 200)
    sample('far', 90_000)
    offsets.update((peer) => peer !== 'far')
    expect(offsets.medianMs).toBe(200)
    expect(offsets.behindMs).toBe(200)
    expect(offsets.ahead()).toEqual([['far', 89_800]])
    expect(offsets.has('a')).toBe(true)
    expect(offsets.has('z')).toBe(false)
  })

  it('is not behind when the peers are behind it, and 0 with nobody to count', () => {
    const { offsets, sample } = setup()
    sample('a', -400)
    offsets.update(all)
    expect(offsets.medianMs).toBe(-400)
    expect(offsets.behindMs).toBe(0)
    offsets.update(() => false)
    expect(offsets.medianMs).toBe(0)
  })

  it('keeps the largest sample of the window, then takes a smaller one', async () => {
    const { offsets, clock, sample } = setup()
    sample('a', 800)
    sample('a', 50) // an older stamp, by sync: hides nothing
    offsets.update(all)
    expect(offsets.medianMs).toBe(800)
    await clock.advance(OFFSET_WINDOW_MS + 1)
    sample('a', 50)
    offsets.update(all)
    expect(offsets.medianMs).toBe(50)
  })
})
