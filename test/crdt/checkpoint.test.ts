/**
 * Checkpoints (docs/design.md "Checkpoints"), case by case: what a checkpoint
 * holds grows with the live reservations and the members, not with the
 * reservations ever made; ids across a cut follow the same rule as without
 * one; and two replicas that differ only in a write that cannot change the
 * state at the cut take the same checkpoint. The property tests in
 * convergence.property.test.ts check the same over random programs.
 */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { checkpointIntact, resolveFrom, stableCut, takeCheckpoint, type Checkpoint } from '../../crdt/checkpoint.ts'
import { carryOver, seedEpoch } from '../../crdt/epoch.ts'
import { DuplicateReservationError, entryKey, fingerprint, ledgerMaps, LedgerWriter, resolve, type Verdict } from '../../crdt/index.ts'
import { GiB, TestLedger, nodeId } from './helpers.ts'

const A = nodeId(1)
const B = nodeId(2)
const C = nodeId(3)
/** Never admitted: its writes do not count. */
const N = nodeId(9)

/** Everything written so far final, then the checkpoint at this replica's stable cut. */
function checkpointNow (l: TestLedger): Checkpoint {
  l.heartbeatAll()
  const cut = stableCut(resolve(l.doc))
  if (cut === undefined) throw new Error('no stable cut')
  return takeCheckpoint(l.doc, cut)
}

function entry (res: { verdicts: Map<string, Verdict>, conflicts: Verdict[] }, key: string): Verdict | undefined {
  return [...res.verdicts.values(), ...res.conflicts].find(v => v.key === key)
}

describe('a checkpoint is proportional to the live set', () => {
  /** `ended` reservations made and released (through two creators), plus the same three live ones. */
  function churn (ended: number): Checkpoint {
    const l = new TestLedger({ [A]: 16 * GiB, [B]: 16 * GiB })
    for (let i = 0; i < ended; i++) {
      const by = i % 2 === 0 ? A : B
      l.reserve(by, `gone-${String(i).padStart(4, '0')}`, 1 * GiB)
      l.release(by, `gone-${String(i).padStart(4, '0')}`, by)
    }
    for (const id of ['live-1', 'live-2', 'live-3']) l.reserve(A, id, 1 * GiB)
    return checkpointNow(l)
  }

  it('its size does not grow with the ids of ended entries (20 vs 400 made and released)', () => {
    const few = churn(20)
    const many = churn(400)
    expect(checkpointIntact(many)).toBe(true)
    expect(many.running.map(r => r.reservation.id)).toEqual(['live-1', 'live-2', 'live-3'])
    expect(many.ended.counts.released).toBe(400)
    // What differs is digits (counts, rent, stream positions, stamps) and the
    // ids in each node's last few admissions — not one entry per id ever owned
    // (about 100 B each: 38 KB here).
    const size = (c: Checkpoint): number => JSON.stringify(c).length
    expect(Math.abs(size(many) - size(few)), `${size(few)} B vs ${size(many)} B`).toBeLessThan(200)
    const text = JSON.stringify(many)
    const named = [...text.matchAll(/gone-\d{4}/g)].map(m => m[0])
    // Only the ended entries among each node's last 8 admissions are named (they name a conflict's winner).
    expect(new Set(named).size).toBeLessThanOrEqual(2 * 8)
  })
})

describe('ids across a checkpoint', () => {
  it('an entry live at the cut keeps its id after it; an id whose entry ended at or before the cut is free — as without the checkpoint', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.reserve(A, 'live', 1 * GiB)
    l.reserve(A, 'ended', 1 * GiB)
    l.release(A, 'ended', A)
    const checkpoint = checkpointNow(l)
    expect(checkpoint.running.map(r => r.key)).toEqual([entryKey('live', A)])
    l.reserve(B, 'live', 1 * GiB)
    l.reserve(B, 'ended', 1 * GiB)
    l.heartbeatAll()
    const whole = resolve(l.doc)
    const from = resolveFrom(checkpoint, l.doc)
    for (const res of [whole, from]) {
      expect(entry(res, entryKey('live', B))).toMatchObject({ status: 'rejected', code: 'IdTaken', final: true })
      expect(res.verdicts.get('live')).toMatchObject({ creator: A, status: 'admitted' })
      expect(res.verdicts.get('ended')).toMatchObject({ creator: B, status: 'admitted', final: true })
    }
    // The entry that ended before the cut is left out of the resolution from the checkpoint; nothing else differs.
    expect(entry(whole, entryKey('ended', A))).toMatchObject({ status: 'released' })
    expect(entry(from, entryKey('ended', A))).toBeUndefined()
    expect(from.counts).toEqual(whole.counts)
  })

  it('an entry live at the cut that ends after it frees its id for a later entry only', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB, [C]: 8 * GiB })
    l.reserve(A, 'dup', 1 * GiB)
    const checkpoint = checkpointNow(l)
    l.reserve(B, 'dup', 1 * GiB) // before the release: loses
    l.release(A, 'dup', A)
    l.reserve(C, 'dup', 1 * GiB) // after it: takes the id
    l.heartbeatAll()
    const whole = resolve(l.doc)
    const from = resolveFrom(checkpoint, l.doc)
    expect(from.digest).toBe(whole.digest)
    for (const res of [whole, from]) {
      expect(entry(res, entryKey('dup', B))).toMatchObject({ code: 'IdTaken' })
      expect(entry(res, entryKey('dup', A))).toMatchObject({ status: 'released' })
      expect(res.verdicts.get('dup')).toMatchObject({ creator: C, status: 'admitted' })
    }
  })
})

describe('the same checkpoint on every replica', () => {
  // Regression (fast-check seed -921267392, docs/decisions.md "Checkpoints:
  // fixed"): a release that sorts before the entry it names is kept while no
  // counted entry of that key is stamped at or before the cut. A non-member's
  // entry never counts and can arrive after any cut; a replica that held it
  // dropped the release, one that did not kept it.
  it("a release waiting for a non-member's entry stamped before the cut: equal whether the entry has arrived or not", () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    // The non-member's clock runs 50 ms ahead: A's release of its entry sorts before it.
    const lateWall = l.wallMs + 50
    const withEntry = new Y.Doc()
    Y.applyUpdate(withEntry, Y.encodeStateAsUpdate(l.doc))
    new LedgerWriter(withEntry, N).reserve({ id: 'x', bytes: 1 * GiB, placement: { kind: 'any' } }, lateWall)
    l.release(A, 'x', N)
    l.wallMs += 100
    l.reserve(B, 'after', 1 * GiB)
    const checkpoint = checkpointNow(l)
    Y.applyUpdate(withEntry, Y.encodeStateAsUpdate(l.doc))
    const nonMember = entry(resolve(withEntry), entryKey('x', N))!
    expect(nonMember).toMatchObject({ status: 'rejected', code: 'CreatorNotMember' })
    expect(nonMember.hlc! <= checkpoint.cut).toBe(true)
    expect(checkpoint.pendingReleases.map(([key]) => key)).toEqual([entryKey('x', N)])
    expect(takeCheckpoint(withEntry, checkpoint.cut)).toEqual(checkpoint)
  })
})

describe('versions', () => {
  /** The digest as crdt/checkpoint.ts computes it: a fingerprint of the JSON with object keys sorted, without the digest. */
  function digest (body: Record<string, unknown>): string {
    const canonical = (value: unknown): string => {
      if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
      if (value !== null && typeof value === 'object') {
        const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`
      }
      return JSON.stringify(value)
    }
    const { digest: _, ...rest } = body
    return fingerprint(canonical(rest))
  }

  it('a version 1 checkpoint (which listed every id ever owned) is still read, its list ignored; another version or a wrong digest is refused', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.reserve(A, 'live', 1 * GiB)
    l.reserve(A, 'ended', 1 * GiB)
    l.release(A, 'ended', A)
    const current = checkpointNow(l)
    expect(current.version).toBe(2)
    expect(digest(current as unknown as Record<string, unknown>)).toBe(current.digest)
    const v1Body = { ...current, version: 1, owners: [['ended', { creator: A, hlc: current.cut }], ['live', { creator: A, hlc: current.cut }]] }
    const v1 = { ...v1Body, digest: digest(v1Body) } as unknown as Checkpoint
    expect(checkpointIntact(v1)).toBe(true)
    l.reserve(B, 'ended', 1 * GiB)
    l.reserve(B, 'live', 1 * GiB)
    l.heartbeatAll()
    const from1 = resolveFrom(v1, l.doc)
    expect(from1.digest).toBe(resolveFrom(current, l.doc).digest)
    expect(from1.verdicts.get('ended')).toMatchObject({ creator: B, status: 'admitted' })
    expect(entry(from1, entryKey('live', B))).toMatchObject({ code: 'IdTaken' })
    const v3Body = { ...current, version: 3 }
    expect(checkpointIntact({ ...v3Body, digest: digest(v3Body) } as unknown as Checkpoint)).toBe(false)
    expect(checkpointIntact({ ...v1, owners: [] } as unknown as Checkpoint)).toBe(false)
  })
})

describe('an id across an epoch (crdt/epoch.ts)', () => {
  /**
   * `x` of A, released through B before the cut and again through C after it
   * (a client retrying through another peer): the second release ends
   * nothing, and it is carried over into epoch 1, where x's entry is gone.
   */
  function epochWithASecondRelease (options: { unstamped?: boolean } = {}): { l: TestLedger, checkpoint: Checkpoint, next: Y.Doc, old: string, wall: number } {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB, [C]: 8 * GiB })
    l.reserve(A, 'x', 1 * GiB)
    const old = resolve(l.doc).verdicts.get('x')!.hlc!
    l.release(B, 'x', A)
    const checkpoint = checkpointNow(l)
    l.release(C, 'x', A)
    const second = ledgerMaps(l.doc).releases.get(`${entryKey('x', A)}@${C}`) as { of?: string }
    expect(second.of).toBe(old)
    // As an agent before releases named their entry's stamp wrote it.
    if (options.unstamped === true) { const { of: _, ...bare } = second; ledgerMaps(l.doc).releases.set(`${entryKey('x', A)}@${C}`, bare) }
    l.heartbeatAll()
    const next = new Y.Doc()
    Y.applyUpdate(next, seedEpoch({ epoch: 1, cut: checkpoint.cut, digest: checkpoint.digest, proposer: A, hlc: `${'9'.repeat(15)}:000000:${A}`, seq: 1 }, checkpoint))
    carryOver(l.doc, next, checkpoint.cut, { verdicts: resolve(l.doc) })
    expect(ledgerMaps(next).reservations.has(entryKey('x', A))).toBe(false)
    expect(ledgerMaps(next).releases.has(`${entryKey('x', A)}@${C}`)).toBe(true)
    return { l, checkpoint, next, old, wall: l.wallMs + 10 }
  }

  it('its own node may write an id again whose entry ended before the cut: a carried release names the old entry\'s stamp and ends nothing of the new one', () => {
    const { checkpoint, next, wall } = epochWithASecondRelease()
    new LedgerWriter(next, A).reserve({ id: 'x', bytes: 2 * GiB, placement: { kind: 'any' } }, wall)
    expect(resolveFrom(checkpoint, next).verdicts.get('x')).toMatchObject({ creator: A, status: 'admitted', bytes: 2 * GiB })
    // The same when the new entry sorts before the carried release (A's clock behind C's, or the release reached A only after it wrote x).
    const behind = new Y.Doc()
    Y.applyUpdate(behind, Y.encodeStateAsUpdate(epochWithASecondRelease().next))
    const release = ledgerMaps(behind).releases.get(`${entryKey('x', A)}@${C}`) as { hlc: string }
    ledgerMaps(behind).reservations.set(entryKey('x', A), { id: 'x', bytes: 2 * GiB, placement: { kind: 'any' }, priority: 0, hlc: `${release.hlc.slice(0, 15)}:000000:${A}`, creator: A, seq: 99, labels: {} })
    expect((ledgerMaps(behind).reservations.get(entryKey('x', A)) as { hlc: string }).hlc < release.hlc).toBe(true)
    expect(resolveFrom(checkpoint, behind).verdicts.get('x')).toMatchObject({ creator: A, status: 'admitted' })
    // A release of the new entry names the new stamp and ends it.
    new LedgerWriter(next, B).release('x', A, wall + 5)
    expect(resolveFrom(checkpoint, next).verdicts.get('x')).toMatchObject({ creator: A, status: 'released' })
  })

  it('a carried release without a stamp (an older agent\'s) would end a new entry: its own node may not write the id then; another node may', () => {
    const { checkpoint, next, wall } = epochWithASecondRelease({ unstamped: true })
    const writerA = new LedgerWriter(next, A)
    expect(() => writerA.reserve({ id: 'x', bytes: 1 * GiB, placement: { kind: 'any' } }, wall)).toThrow(DuplicateReservationError)
    expect(() => writerA.reserve({ id: 'x', bytes: 1 * GiB, placement: { kind: 'any' } }, wall)).toThrow(/still holds a release of that entry/)
    expect(ledgerMaps(next).reservations.has(entryKey('x', A))).toBe(false)
    // What the check prevents, written past it:
    const raw = new Y.Doc()
    Y.applyUpdate(raw, Y.encodeStateAsUpdate(next))
    ledgerMaps(raw).reservations.set(entryKey('x', A), { id: 'x', bytes: 1 * GiB, placement: { kind: 'any' }, priority: 0, hlc: `${String(wall).padStart(15, '0')}:000000:${A}`, creator: A, seq: 99, labels: {} })
    expect(resolveFrom(checkpoint, raw).verdicts.get('x')).toMatchObject({ creator: A, status: 'released' })
    // Another node takes the id.
    new LedgerWriter(next, B).reserve({ id: 'x', bytes: 1 * GiB, placement: { kind: 'any' } }, wall)
    expect(resolveFrom(checkpoint, next).verdicts.get('x')).toMatchObject({ creator: B, status: 'admitted' })
  })
})
