/**
 * The page's copies of the CLI's formatting (agent/ui/format.js) print what
 * the originals print, so the page and `memgossip status` agree to the
 * character. Property-based over sizes, ages and reasons.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { readableReason } from '../../cli/commands/print.ts'
import { formatAge, percent } from '../../cli/format.ts'
import { formatSize, shortId } from '../../crdt/index.ts'
// @ts-expect-error the page's modules are plain JavaScript, type-checked on their own (agent/ui/tsconfig.json)
import * as ui from '../../agent/ui/format.js'

const page = ui as { formatSize: (n: number) => string, shortId: (s: string) => string, formatAge: (n: number | undefined) => string, percent: (a: number, b: number) => string, readableReason: (s: string) => string }

const PEER = '12D3KooWGusGYfk175Wr7ccsMxVoVebtDSTPNEWq5xFiFqTito1t'

describe("the page's formatting is the CLI's", () => {
  it('sizes, ids, ages and shares', () => {
    fc.assert(fc.property(fc.oneof(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.integer({ min: 0, max: 1 << 20 })), (n) => {
      expect(page.formatSize(n)).toBe(formatSize(n))
    }))
    fc.assert(fc.property(fc.option(fc.double({ min: -1e3, max: 1e9, noNaN: true }), { nil: undefined }), (ms) => {
      expect(page.formatAge(ms)).toBe(formatAge(ms))
    }))
    fc.assert(fc.property(fc.nat(), fc.integer({ min: -5, max: 1e12 }), (a, b) => {
      expect(page.percent(a, b)).toBe(percent(a, b))
    }))
    fc.assert(fc.property(fc.string({ maxLength: 60 }), (id) => {
      expect(page.shortId(id)).toBe(shortId(id))
    }))
  })

  it('reasons: stamps become times, peer ids are shortened', () => {
    const reasons = [
      `released at 001796551894479:000000:${PEER} by ${PEER}`,
      'fits on node 12D3KooWGusGYfk175Wr7ccsMxVoVebtDSTPNEWq5xFiFqTito1t (best fit): 3.00 GiB of 7.60 GiB headroom',
      'no stamp, no id'
    ]
    for (const reason of reasons) expect(page.readableReason(reason)).toBe(readableReason(reason))
  })
})
