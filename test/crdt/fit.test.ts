import { describe, expect, it } from 'vitest'
import { computeRent, fit, resolve, shortId } from '../../crdt/index.ts'
import { GiB, MiB, TestLedger, nodeId } from './helpers.ts'

const [A, B, C, D, E] = [1, 2, 3, 4, 5].map(nodeId)

describe('fit(): the dry-run plan', () => {
  it('names the node it would land on and the headroom before and after', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 4 * GiB })
    l.reserve(A, 'x', 1 * GiB, { kind: 'node', node: B })
    l.heartbeatAll()
    const answer = fit(resolve(l.doc), { bytes: 2 * GiB, placement: { kind: 'any' } })
    expect(answer).toMatchObject({ fits: true, code: 'Fits', nodes: [B], final: true, waitsFor: [], histogram: '2/2 nodes fit' })
    const row = answer.perNode.find(r => r.node === B)!
    expect(row).toMatchObject({ chosen: true, headroomBytes: 3 * GiB, headroomAfterBytes: 1 * GiB, committedBytes: 1 * GiB })
    expect(answer.reason).toMatch(/^fits on node .* \(best fit\): 2\.00 GiB of 3\.00 GiB headroom$/)
  })

  it('gives a Kubernetes-style histogram and the numbers behind a refusal', () => {
    const l = new TestLedger({ [A]: 2 * GiB, [B]: 2 * GiB, [C]: 1 * GiB, [D]: 8 * GiB, [E]: 8 * GiB })
    l.capacity(D, 8 * GiB, 'draining')
    l.capacity(E, 8 * GiB, 'draining')
    l.heartbeatAll()
    const answer = fit(resolve(l.doc), { bytes: 3 * GiB, placement: { kind: 'any' } })
    expect(answer.fits).toBe(false)
    expect(answer.code).toBe('NoNodeFits')
    expect(answer.histogram).toBe('0/5 nodes fit: 3 InsufficientMemory, 2 Draining')
    expect(answer.reason).toBe(`does not fit: needs 3.00 GiB, largest headroom is 2.00 GiB on node ${shortId(A)}`)
    expect(answer.perNode.map(r => [r.node, r.fit, r.headroomBytes])).toEqual([
      [A, 'InsufficientMemory', 2 * GiB], [B, 'InsufficientMemory', 2 * GiB], [C, 'InsufficientMemory', 1 * GiB],
      [D, 'Draining', 8 * GiB], [E, 'Draining', 8 * GiB]
    ])
  })

  it('warns when a placement leaves a node above 85% committed, or lands on a stale node', () => {
    const l = new TestLedger({ [A]: 10 * GiB })
    l.reserve(A, 'x', 8 * GiB)
    l.heartbeatAll()
    const answer = fit(resolve(l.doc), { bytes: 1 * GiB, placement: { kind: 'any' } }, { staleNodes: new Set([A]) })
    expect(answer.fits).toBe(true)
    expect(answer.warnings).toEqual([
      `node ${shortId(A)} would be 90.0% committed (9.00 GiB of 10.00 GiB), above 85%`,
      `node ${shortId(A)} has not been heard from lately`
    ])
  })

  it('says the answer is tentative and whom it waits for', () => {
    const l = new TestLedger({ [A]: 10 * GiB, [B]: 10 * GiB })
    l.heartbeatAll()
    l.reserve(A, 'x', 1 * GiB)
    const answer = fit(resolve(l.doc), { bytes: 1 * GiB, placement: { kind: 'all' } })
    expect(answer).toMatchObject({ fits: true, final: false, waitingOn: 'clocks', waitsFor: [B], nodes: [A, B] })
    expect(answer.warnings.some(w => w.startsWith("tentative: 1 verdict(s) not final yet; waiting on members' clocks: 1 member(s)"))).toBe(true)
    // B's clock passes it; then it waits for a majority to confirm it.
    l.beacon(B)
    const later = fit(resolve(l.doc), { bytes: 1 * GiB, placement: { kind: 'all' } })
    expect(later).toMatchObject({ final: false, waitingOn: 'confirmations' })
    // A later write, past B's clock: the answer waits on what the latest tentative verdict waits on
    // (B's clock), not on what the oldest does (confirmations of x).
    l.reserve(A, 'y', 1 * GiB)
    const res = resolve(l.doc)
    expect(res.verdicts.get('x')!.waitingOn).toBe('confirmations')
    expect(fit(res, { bytes: 1 * GiB, placement: { kind: 'all' } })).toMatchObject({ final: false, waitingOn: 'clocks', waitsFor: [B] })
  })

  it('agrees with resolve(): what fit() admits, the next write admits on the same node', () => {
    const l = new TestLedger({ [A]: 3 * GiB, [B]: 5 * GiB, [C]: 4 * GiB })
    for (let i = 0; i < 20; i++) {
      const bytes = (1 + (i * 7) % 5) * 256 * MiB
      const placement = i % 3 === 0 ? { kind: 'spread' as const, count: 2 } : { kind: 'any' as const }
      const answer = fit(resolve(l.doc), { bytes, placement })
      l.reserve(A, `r${i}`, bytes, placement)
      const v = resolve(l.doc).verdicts.get(`r${i}`)!
      expect(v.status === 'admitted', `r${i}`).toBe(answer.fits)
      if (answer.fits) expect(v.nodes).toEqual(answer.nodes)
    }
  })
})

describe('rent', () => {
  it('accrues byte-seconds from admission to release, on every node it runs on, priced per GiB-hour', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.wallMs = 10_000_000
    l.reserve(A, 'one', 1 * GiB, { kind: 'node', node: A }) // at 10_000_001
    l.reserve(A, 'both', 1 * GiB, { kind: 'all' }) // at 10_000_002
    l.wallMs = 10_000_000 + 3_600_000 // one hour later
    l.release(A, 'one') // at +1 h + 1 ms
    const bill = computeRent(resolve(l.doc), { nowMs: 10_000_002 + 7_200_000, pricePerGiBHour: 0.5 })
    const one = bill.lines.find(x => x.id === 'one')!
    const both = bill.lines.find(x => x.id === 'both')!
    expect(one).toMatchObject({ status: 'released', nodeCount: 1, byteSeconds: GiB * 3600 })
    expect(one.cost).toBeCloseTo(0.5, 6)
    expect(both).toMatchObject({ status: 'admitted', nodeCount: 2, byteSeconds: 2 * GiB * 7200 })
    expect(both.cost).toBeCloseTo(2.0, 6)
    expect(bill.totalByteSeconds).toBe(one.byteSeconds + both.byteSeconds)
    // A billing window clips the start.
    const window = computeRent(resolve(l.doc), { nowMs: 10_000_002 + 7_200_000, sinceMs: 10_000_002 + 3_600_000 })
    expect(window.lines.find(x => x.id === 'both')!.byteSeconds).toBe(2 * GiB * 3600)
    expect(window.lines.find(x => x.id === 'one')!.byteSeconds).toBe(0)
  })

  it('is the same on every peer holding the same ledger', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    l.reserve(A, 'x', 3 * GiB)
    const first = computeRent(resolve(l.doc), { nowMs: 99_999_999, pricePerGiBHour: 1 })
    const second = computeRent(resolve(resolve(l.doc) && l.doc), { nowMs: 99_999_999, pricePerGiBHour: 1 })
    expect(second).toEqual(first)
  })
})

describe('a fit answer on a quiet cluster', () => {
  it('is final when nothing is pending and this peer holds a completeness line, though no member announced one (no beacons at rest)', () => {
    const l = new TestLedger({ [nodeId(1)]: 8 * GiB, [nodeId(2)]: 8 * GiB, [nodeId(3)]: 8 * GiB })
    const res = resolve(l.doc, { self: nodeId(1), selfClock: `${String(l.wallMs + 10).padStart(15, '0')}:000000:${nodeId(1)}` })
    expect(res.watermark).toBeUndefined()
    expect(res.pending).toBe(0)
    expect(fit(res, { bytes: GiB, placement: { kind: 'any' } })).toMatchObject({ fits: true, final: true })
    // A peer that holds nothing of the cluster cannot vouch for an answer.
    expect(fit(resolve(new TestLedger().doc), { bytes: GiB, placement: { kind: 'any' } }).final).toBe(false)
  })
})
