import { describe, expect, it } from 'vitest'
import { compareHlc, decodeHlc, encodeHlc, HlcError, HybridClock, hlcWallMs, isHlc, stampedBy } from '../../crdt/index.ts'

describe('HLC encoding', () => {
  it('round-trips and sorts as a string in (wall, counter, node) order', () => {
    const stamps = [
      { wallMs: 1000, counter: 0, node: 'b' },
      { wallMs: 999, counter: 5, node: 'z' },
      { wallMs: 1000, counter: 0, node: 'a' },
      { wallMs: 1000, counter: 12, node: 'a' },
      { wallMs: 1_763_712_000_000, counter: 2, node: '12D3KooWxyz' }
    ]
    const encoded = stamps.map(encodeHlc)
    for (const [i, s] of encoded.entries()) expect(decodeHlc(s)).toEqual(stamps[i])
    const sorted = [...encoded].sort(compareHlc).map(decodeHlc)
    expect(sorted.map(s => `${s.wallMs}/${s.counter}/${s.node}`)).toEqual([
      '999/5/z', '1000/0/a', '1000/0/b', '1000/12/a', '1763712000000/2/12D3KooWxyz'
    ])
    expect(hlcWallMs(encoded[4])).toBe(1_763_712_000_000)
  })

  it.each([['garbage'], [''], ['1:2:x'], [42]])('refuses %j', (text) => {
    expect(isHlc(text)).toBe(false)
    expect(() => decodeHlc(text as string)).toThrow(HlcError)
  })
})

describe('stampedBy', () => {
  it("is true only for the node named after the stamp's last colon, not for a node whose id ends the same", () => {
    const stamp = encodeHlc({ wallMs: 1000, counter: 3, node: '12D3KooWab' })
    expect(stampedBy(stamp, '12D3KooWab')).toBe(true)
    expect(stampedBy(stamp, 'ab')).toBe(false)
    expect(stampedBy(stamp, 'KooWab')).toBe(false)
    expect(stampedBy(stamp, '12D3KooWa')).toBe(false)
    expect(stampedBy('ab', 'ab')).toBe(false)
    expect(stampedBy(':ab', 'ab')).toBe(true)
  })
})

describe('HybridClock', () => {
  it('never goes backwards when the wall clock does', () => {
    const clock = new HybridClock('a')
    const t1 = clock.now(5000)
    const t2 = clock.now(4000)
    const t3 = clock.now(4000)
    expect(compareHlc(t1, t2)).toBe(-1)
    expect(compareHlc(t2, t3)).toBe(-1)
    expect(decodeHlc(t3)).toEqual({ wallMs: 5000, counter: 2, node: 'a' })
  })

  it.each([
    // [local wall before, remote stamp, wall at receive, expected wall, expected counter]
    ['remote ahead', 1000, { wallMs: 2000, counter: 3 }, 1500, 2000, 4],
    ['wall ahead of both', 1000, { wallMs: 1200, counter: 9 }, 3000, 3000, 0],
    ['local ahead', 5000, { wallMs: 1200, counter: 9 }, 100, 5000, 1],
    ['all equal', 1000, { wallMs: 1000, counter: 7 }, 1000, 1000, 8]
  ])('receive: %s', (_name, localWall, remote, wall, expWall, expCounter) => {
    const clock = new HybridClock('me')
    clock.now(localWall)
    const stamp = clock.receive(encodeHlc({ ...remote, node: 'peer' }), wall)
    expect(decodeHlc(stamp)).toEqual({ wallMs: expWall, counter: expCounter, node: 'me' })
    expect(compareHlc(stamp, encodeHlc({ ...remote, node: 'peer' }))).toBe(1)
  })

  it('resumes after the last stamp it was given (restart from the data dir)', () => {
    const before = new HybridClock('a')
    const last = before.now(10_000)
    const after = new HybridClock('a', last)
    expect(compareHlc(after.now(9_000), last)).toBe(1)
  })

  it('borrows the next millisecond rather than overflow the counter', () => {
    const clock = new HybridClock('a', encodeHlc({ wallMs: 7, counter: 999_999, node: 'a' }))
    expect(decodeHlc(clock.now(7))).toEqual({ wallMs: 8, counter: 0, node: 'a' })
  })

  it('stamps whole milliseconds whatever fraction the wall clock carries (a stamp stays valid)', () => {
    const clock = new HybridClock('a')
    const stamp = clock.now(1_700_000_035_045.421)
    expect(isHlc(stamp)).toBe(true)
    expect(decodeHlc(stamp).wallMs).toBe(1_700_000_035_045)
    expect(isHlc(clock.receive(encodeHlc({ wallMs: 5, counter: 0, node: 'b' }), 1_700_000_035_046.9))).toBe(true)
  })
})
