/**
 * Bounds, the queue and NeverFits (docs/design.md "Bounds and the queue"):
 * table tests of the deterministic rules in `resolve()` and `fit()`.
 */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { computeRent, fit, hlcWallMs, ledgerMaps, resolve, shortId, type Placement, type ReservationRequest, type Verdict } from '../../crdt/index.ts'
import { GiB, TestLedger, nodeId } from './helpers.ts'

const A = nodeId(1)
const B = nodeId(2)
const C = nodeId(3)

function put (l: TestLedger, by: string, request: Partial<ReservationRequest> & { id: string, bytes: number }): void {
  l.writer(by).reserve({ placement: { kind: 'any' } as Placement, ...request }, l.tick())
  if (!l.creators.has(request.id)) l.creators.set(request.id, by)
}

function verdicts (doc: Y.Doc): Map<string, Verdict> {
  return resolve(doc).verdicts
}

describe('shrink before evict on capacity loss', () => {
  it('shrinks reservations with a minimum toward it, lowest priority first, and evicts nothing when that is enough', () => {
    const l = new TestLedger({ [A]: 10 * GiB })
    put(l, A, { id: 'low', bytes: 4 * GiB, minBytes: 2 * GiB, priority: 0 })
    put(l, A, { id: 'high', bytes: 4 * GiB, minBytes: 1 * GiB, priority: 1 })
    put(l, A, { id: 'fixed', bytes: 2 * GiB, priority: 0 })
    l.capacity(A, 7 * GiB) // 3 GiB too much: 'low' gives 2 GiB (down to its minimum), then 'high' gives 1 GiB
    const res = resolve(l.doc)
    const v = res.verdicts
    expect(v.get('low')).toMatchObject({ status: 'admitted', decision: 'admitted', code: 'Shrunk', effectiveBytes: 2 * GiB, minBytes: 2 * GiB })
    expect(v.get('high')).toMatchObject({ status: 'admitted', code: 'Shrunk', effectiveBytes: 3 * GiB })
    expect(v.get('fixed')).toMatchObject({ status: 'admitted', code: 'Fits', effectiveBytes: 2 * GiB })
    expect(v.get('low')!.reason).toBe(`shrunk from 4.00 GiB to 2.00 GiB (limit 4.00 GiB, minimum 2.00 GiB): node ${shortId(A)} shrank to 7.00 GiB allocatable (at ${v.get('low')!.shrunkHlc}); lowest priority, latest first`)
    expect(v.get('high')!.reason).toMatch(/^shrunk from 4\.00 GiB to 3\.00 GiB \(limit 4\.00 GiB, minimum 1\.00 GiB\)/)
    expect(res.nodes.get(A)!.committedBytes).toBe(7 * GiB)
  })

  it('rent bills the limit until the shrink, and the limit in force after it', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    put(l, A, { id: 'elastic', bytes: 4 * GiB, minBytes: 1 * GiB })
    put(l, A, { id: 'fixed', bytes: 4 * GiB })
    l.capacity(A, 6 * GiB)
    const res = resolve(l.doc)
    const v = res.verdicts.get('elastic')!
    expect(v).toMatchObject({ code: 'Shrunk', effectiveBytes: 2 * GiB })
    const start = hlcWallMs(v.hlc!)
    const shrunk = hlcWallMs(v.shrunkHlc!)
    const nowMs = shrunk + 3_600_000
    const bill = computeRent(res, { nowMs })
    const line = (id: string): number => bill.lines.find(x => x.id === id)!.byteSeconds
    expect(line('elastic')).toBe(Math.round((4 * GiB * (shrunk - start) + 2 * GiB * (nowMs - shrunk)) / 1000))
    expect(line('fixed')).toBe(Math.round(4 * GiB * (nowMs - hlcWallMs(res.verdicts.get('fixed')!.hlc!)) / 1000))
  })

  it('among equal priorities shrinks the latest first, and only as much as needed', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    put(l, A, { id: 'early', bytes: 4 * GiB, minBytes: 1 * GiB })
    put(l, A, { id: 'late', bytes: 4 * GiB, minBytes: 1 * GiB })
    l.capacity(A, 6 * GiB)
    const v = verdicts(l.doc)
    expect(v.get('late')).toMatchObject({ code: 'Shrunk', effectiveBytes: 2 * GiB })
    expect(v.get('early')).toMatchObject({ code: 'Fits', effectiveBytes: 4 * GiB })
    expect(v.get('early')!.shrunkHlc).toBeUndefined()
  })

  it('evicts (lowest priority, latest first) only what shrinking to every minimum could not save', () => {
    const l = new TestLedger({ [A]: 10 * GiB })
    put(l, A, { id: 'a', bytes: 6 * GiB, minBytes: 4 * GiB, priority: 0 })
    put(l, A, { id: 'b', bytes: 4 * GiB, priority: 1 })
    l.capacity(A, 5 * GiB) // shrink 'a' by 2 GiB (to 4): still 3 GiB over, so 'a' (lowest priority) goes; 'b' stays
    const res = resolve(l.doc)
    expect(res.verdicts.get('a')).toMatchObject({ status: 'evicted', decision: 'admitted', code: 'CapacityLost', effectiveBytes: 4 * GiB })
    expect(res.verdicts.get('b')).toMatchObject({ status: 'admitted', code: 'Fits', effectiveBytes: 4 * GiB })
    expect(res.nodes.get(A)!.committedBytes).toBe(4 * GiB)
  })

  it('a shrunk reservation stays shrunk when the node grows back; a spread one is shrunk on every node it runs on', () => {
    const l = new TestLedger({ [A]: 4 * GiB, [B]: 4 * GiB })
    put(l, A, { id: 's', bytes: 4 * GiB, minBytes: 1 * GiB, placement: { kind: 'spread', count: 2 } })
    l.capacity(A, 3 * GiB)
    let res = resolve(l.doc)
    expect(res.verdicts.get('s')).toMatchObject({ code: 'Shrunk', effectiveBytes: 3 * GiB, runningOn: [A, B] })
    expect(res.nodes.get(B)!.committedBytes).toBe(3 * GiB)
    l.capacity(A, 4 * GiB)
    res = resolve(l.doc)
    expect(res.verdicts.get('s')).toMatchObject({ code: 'Shrunk', effectiveBytes: 3 * GiB })
    // Released: the node is charged nothing, whatever it was shrunk to.
    l.release(A, 's')
    res = resolve(l.doc)
    expect(res.nodes.get(A)!.committedBytes).toBe(0)
    expect(res.nodes.get(B)!.committedBytes).toBe(0)
  })

  it('refuses a minimum above the limit, or not a positive integer, as an invalid entry', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    const base = { bytes: 2 * GiB, placement: { kind: 'any' }, priority: 0, creator: A, seq: 99, labels: {} }
    ledgerMaps(l.doc).reservations.set(`m1@${A}`, { ...base, id: 'm1', minBytes: 3 * GiB, hlc: `000000002000000:000000:${A}` })
    ledgerMaps(l.doc).reservations.set(`m2@${A}`, { ...base, id: 'm2', minBytes: 0, hlc: `000000002000001:000000:${A}` })
    ledgerMaps(l.doc).reservations.set(`m3@${A}`, { ...base, id: 'm3', queueTimeoutMs: 5, hlc: `000000002000002:000000:${A}` })
    const v = verdicts(l.doc)
    expect(v.get('m1')).toMatchObject({ status: 'invalid', code: 'InvalidSize' })
    expect(v.get('m1')!.reason).toMatch(/minBytes \(3221225472\) must not exceed bytes \(2147483648\)/)
    expect(v.get('m2')).toMatchObject({ status: 'invalid', code: 'InvalidSize' })
    expect(v.get('m3')).toMatchObject({ status: 'invalid', code: 'InvalidValue' })
  })
})

describe('the queue', () => {
  it('admits queued entries first come, first served by stamp, at the release that makes room; one that still does not fit keeps its place', () => {
    const l = new TestLedger({ [A]: 4 * GiB })
    put(l, A, { id: 'r1', bytes: 3 * GiB })
    put(l, A, { id: 'q1', bytes: 3 * GiB, queue: true })
    put(l, A, { id: 'q2', bytes: 3 * GiB, queue: true })
    let v = verdicts(l.doc)
    expect(v.get('q1')).toMatchObject({ status: 'queued', decision: 'queued', code: 'Queued', queuePosition: 1, queueLength: 2, nodes: [] })
    expect(v.get('q2')).toMatchObject({ status: 'queued', queuePosition: 2, queueLength: 2 })
    expect(v.get('q1')!.reason).toBe(`queued: needs 3.00 GiB, largest headroom is 1.00 GiB on node ${shortId(A)}`)
    l.release(A, 'r1')
    const releaseHlc = (ledgerMaps(l.doc).releases.get(`r1@${A}@${A}`) as { hlc: string }).hlc
    v = verdicts(l.doc)
    expect(v.get('q1')).toMatchObject({ status: 'admitted', decision: 'admitted', code: 'Fits', nodes: [A], admittedHlc: releaseHlc, decidedHlc: releaseHlc })
    expect(v.get('q1')!.reason).toBe(`admitted from the queue at ${releaseHlc} (queued at ${v.get('q1')!.hlc}): on node ${shortId(A)} (best fit): 3.00 GiB of 4.00 GiB headroom`)
    expect(v.get('q2')).toMatchObject({ status: 'queued', queuePosition: 1, queueLength: 1 })
    l.release(A, 'q1')
    v = verdicts(l.doc)
    expect(v.get('q2')).toMatchObject({ status: 'admitted', nodes: [A] })
  })

  it('lets a later, smaller entry in when the head of the queue still does not fit (it keeps its place)', () => {
    const l = new TestLedger({ [A]: 4 * GiB })
    put(l, A, { id: 'r1', bytes: 3 * GiB })
    put(l, A, { id: 'r2', bytes: 1 * GiB })
    put(l, A, { id: 'big', bytes: 4 * GiB, queue: true })
    put(l, A, { id: 'small', bytes: 1 * GiB, queue: true })
    l.release(A, 'r2')
    let v = verdicts(l.doc)
    expect(v.get('small')).toMatchObject({ status: 'admitted' })
    expect(v.get('big')).toMatchObject({ status: 'queued', queuePosition: 1 })
    l.release(A, 'r1')
    l.release(A, 'small')
    v = verdicts(l.doc)
    expect(v.get('big')).toMatchObject({ status: 'admitted', nodes: [A] })
  })

  it('admits at the same point of the log on every replica, whatever order the updates arrived in', () => {
    const l = new TestLedger({ [A]: 4 * GiB, [B]: 2 * GiB })
    put(l, A, { id: 'r1', bytes: 4 * GiB, placement: { kind: 'node', node: A } })
    put(l, B, { id: 'q1', bytes: 3 * GiB, queue: true })
    put(l, A, { id: 'q2', bytes: 3 * GiB, queue: true })
    l.release(A, 'r1')
    // Split the state into per-map updates and apply them in two different orders.
    const parts = (['reservations', 'releases', 'membership', 'capacity'] as const).map(name => {
      const d = new Y.Doc()
      const m = d.getMap(name)
      for (const [k, val] of ledgerMaps(l.doc)[name].entries()) m.set(k, val)
      return Y.encodeStateAsUpdate(d)
    })
    const forward = new Y.Doc()
    const backward = new Y.Doc()
    for (const p of parts) Y.applyUpdate(forward, p)
    for (const p of [...parts].reverse()) Y.applyUpdate(backward, p)
    const f = resolve(forward)
    const b = resolve(backward)
    expect(f.digest).toBe(b.digest)
    expect(f.digest).toBe(resolve(l.doc).digest)
    for (const res of [f, b]) {
      expect(res.verdicts.get('q1')).toMatchObject({ status: 'admitted', nodes: [A] })
      expect(res.verdicts.get('q2')).toMatchObject({ status: 'queued', queuePosition: 1 })
      expect(res.verdicts.get('q1')!.decidedHlc).toBe(res.verdicts.get('r1')!.endedHlc)
    }
  })

  it('admits on a node growing or joining, at that event', () => {
    const l = new TestLedger({ [A]: 2 * GiB })
    put(l, A, { id: 'grow', bytes: 3 * GiB, queue: true })
    put(l, A, { id: 'join', bytes: 6 * GiB, queue: true })
    l.capacity(A, 3 * GiB)
    let v = verdicts(l.doc)
    expect(v.get('grow')).toMatchObject({ status: 'admitted', nodes: [A] })
    expect(v.get('join')).toMatchObject({ status: 'queued' })
    l.join(B, 8 * GiB)
    v = verdicts(l.doc)
    expect(v.get('join')).toMatchObject({ status: 'admitted', nodes: [B] })
  })

  it('times out at its own stamp plus its timeout, a point of the log (not a local clock) once the log has reached it', () => {
    const l = new TestLedger({ [A]: 4 * GiB })
    put(l, A, { id: 'r1', bytes: 4 * GiB })
    put(l, A, { id: 'patient', bytes: 2 * GiB, queue: true, queueTimeoutMs: 1000 })
    put(l, A, { id: 'hasty', bytes: 2 * GiB, queue: true, queueTimeoutMs: 5 })
    let hasty = verdicts(l.doc).get('hasty')!
    expect(hasty.queueExpiresHlc).toBe(`${String(Number(hasty.hlc!.slice(0, 15)) + 5).padStart(15, '0')}:000000:${A}`)
    // Nothing in the log is stamped past its timeout yet: a write stamped before it could still admit it.
    expect(hasty).toMatchObject({ status: 'queued', queuePosition: 2 })
    l.wallMs += 100
    l.release(A, 'r1') // stamped past hasty's timeout, before patient's
    const v = verdicts(l.doc)
    hasty = v.get('hasty')!
    expect(hasty).toMatchObject({ status: 'rejected', decision: 'rejected', code: 'QueueTimeout', decidedHlc: hasty.queueExpiresHlc })
    expect(hasty.reason).toMatch(/^rejected: waited in the queue from .* \(timeout 5 ms\) and never fitted; last: needs 2\.00 GiB/)
    expect(v.get('patient')).toMatchObject({ status: 'admitted', decidedHlc: v.get('r1')!.endedHlc })
  })

  it('a release of a queued entry withdraws it', () => {
    const l = new TestLedger({ [A]: 1 * GiB })
    put(l, A, { id: 'q', bytes: 2 * GiB, queue: true })
    l.release(A, 'q')
    l.capacity(A, 4 * GiB)
    expect(verdicts(l.doc).get('q')).toMatchObject({ status: 'rejected', code: 'Withdrawn' })
  })

  it('a queued entry is never final while it waits; once admitted it is final when the release that admitted it is', () => {
    const l = new TestLedger({ [A]: 4 * GiB, [B]: 0, [C]: 0 })
    put(l, A, { id: 'r1', bytes: 4 * GiB })
    put(l, B, { id: 'q', bytes: 4 * GiB, queue: true })
    l.heartbeatAll()
    let v = verdicts(l.doc)
    expect(v.get('r1')!.final).toBe(true)
    expect(v.get('q')).toMatchObject({ status: 'queued', final: false, waitingOn: 'capacity' })
    expect(resolve(l.doc).pending).toBe(0) // waiting is not tentative: fit answers stay final
    l.release(A, 'r1')
    v = verdicts(l.doc)
    expect(v.get('q')).toMatchObject({ status: 'admitted', final: false })
    expect(v.get('q')!.waitingOn).not.toBe('capacity')
    l.heartbeatAll()
    expect(verdicts(l.doc).get('q')).toMatchObject({ status: 'admitted', final: true })
  })
})

describe('NeverFits', () => {
  const l = new TestLedger({ [A]: 8 * GiB, [B]: 4 * GiB, [C]: 2 * GiB })
  l.heartbeatAll()
  const res = resolve(l.doc)
  const cases: Array<{ name: string, bytes: number, placement: Placement, never: boolean, reason?: RegExp }> = [
    { name: 'any: larger than every member', bytes: 9 * GiB, placement: { kind: 'any' }, never: true, reason: /^never fits: needs 9\.00 GiB, more than any member's allocatable memory \(largest: 8\.00 GiB on node 12D3KooWnode001, 3 member\(s\)\)$/ },
    { name: 'any: as large as the largest', bytes: 8 * GiB, placement: { kind: 'any' }, never: false },
    { name: 'all: larger than the smallest', bytes: 3 * GiB, placement: { kind: 'all' }, never: true, reason: /^never fits: 'all' placement needs 3\.00 GiB on every node, and the smallest member has 2\.00 GiB allocatable \(node 12D3KooWnode003\)$/ },
    { name: 'all: as large as the smallest', bytes: 2 * GiB, placement: { kind: 'all' }, never: false },
    { name: 'node: larger than that node', bytes: 5 * GiB, placement: { kind: 'node', node: B }, never: true, reason: /whose allocatable memory is 4\.00 GiB$/ },
    { name: 'spread:2: only one node that large', bytes: 5 * GiB, placement: { kind: 'spread', count: 2 }, never: true, reason: /only 1 of 3 member\(s\)/ },
    { name: 'spread:2: two nodes that large', bytes: 4 * GiB, placement: { kind: 'spread', count: 2 }, never: false }
  ]
  for (const c of cases) {
    it(c.name, () => {
      const answer = fit(res, { bytes: c.bytes, placement: c.placement })
      expect(answer.fits).toBe(!c.never)
      if (c.never) {
        expect(answer.code).toBe('NeverFits')
        expect(answer.reason).toMatch(c.reason!)
      } else {
        expect(answer.code).not.toBe('NeverFits')
      }
    })
  }
})
