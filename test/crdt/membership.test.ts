/**
 * Table tests for membership as views (docs/design.md "Membership as views"
 * and "Finality"): each case is a failure seen on the first implementation,
 * written against the new rules, and each asserts the promise — a verdict
 * final somewhere never changes.
 */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { LedgerWriter, PROPOSAL_TTL_MS, resolve, viewDigest, type Resolution, type StreamPosition, type Verdict } from '../../crdt/index.ts'
import { GiB, TestLedger, nodeId } from './helpers.ts'

const A = nodeId(1)
const B = nodeId(2)
const C = nodeId(3)
const D = nodeId(4)
const E = nodeId(5)
const MINUTE = 60_000
const FIGURES = { totalBytes: 0, floorBytes: 0, allocatableBytes: 0, availableBytes: 0, usedBytes: 0 }

function verdict (res: Resolution, id: string): Verdict {
  const v = res.verdicts.get(id)
  if (v === undefined) throw new Error(`no verdict for ${id}`)
  return v
}

/** Decision part of every final verdict, by entry key. */
function finals (res: Resolution): Map<string, string> {
  const out = new Map<string, string>()
  for (const v of [...res.verdicts.values(), ...res.conflicts]) if (v.final) out.set(v.key, `${v.decision}|${v.decisionCode}|${v.nodes.join(',')}`)
  return out
}

function expectUnchanged (before: Map<string, string>, after: Resolution): void {
  expect(before.size).toBeGreaterThan(0)
  for (const [key, sig] of before) {
    const v = [...after.verdicts.values(), ...after.conflicts].find(x => x.key === key)
    expect(v === undefined ? undefined : `${v.decision}|${v.decisionCode}|${v.nodes.join(',')}`, key).toBe(sig)
  }
}

/** A replica: its own document and writer, synced by hand. */
class Replica {
  readonly doc = new Y.Doc()
  readonly writer: LedgerWriter
  constructor (readonly id: string, public wallMs: number) {
    this.writer = new LedgerWriter(this.doc, id)
  }

  tick (): number { return ++this.wallMs }
  res (): Resolution { return resolve(this.doc, { self: this.id, selfClock: this.writer.clock.peek() }) }
  beacon (): void { this.writer.heartbeat(FIGURES, this.tick(), this.res().seen) }
  observe (): void {
    const latest = this.res().latestHlc
    if (latest !== undefined && Number(latest.slice(0, 15)) <= this.wallMs + MINUTE) this.writer.observe(latest, this.wallMs)
  }

  positions (targets: string[]): Record<string, StreamPosition> {
    const res = this.res()
    return Object.fromEntries(targets.map(t => [t, { seq: res.nodes.get(t)?.lastSeq ?? 0, hlc: res.nodes.get(t)?.lastHlc }]))
  }
}

function sync (...replicas: Replica[]): void {
  for (const a of replicas) for (const b of replicas) if (a !== b) Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc)))
  for (const r of replicas) r.observe()
}

/** Beacons from every replica until nothing more becomes final (two rounds settle it). */
function settle (...replicas: Replica[]): void {
  for (let round = 0; round < 2; round++) {
    for (const r of replicas) r.beacon()
    sync(...replicas)
  }
}

/** A cluster of replicas, the first founding it and admitting the others, 8 GiB each. */
function cluster (ids: string[], wallMs = 1_000_000): Replica[] {
  const replicas = ids.map(id => new Replica(id, wallMs))
  replicas[0].writer.admit(ids[0], 8 * GiB, replicas[0].tick())
  for (const id of ids.slice(1)) replicas[0].writer.admit(id, 8 * GiB, replicas[0].tick())
  sync(...replicas)
  return replicas
}

describe('admission by a sponsor', () => {
  it('a joiner whose clock is 5 minutes behind cannot move final placements onto itself', () => {
    const [a, b] = cluster([A, B])
    for (let i = 0; i < 6; i++) a.writer.reserve({ id: `w${i}`, bytes: 1 * GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b)
    settle(a, b)
    const before = finals(a.res())
    expect(before.size).toBe(6)
    // The joiner's wall clock is 5 minutes slow: its own writes sort before everything.
    const c = new Replica(C, a.wallMs - 5 * MINUTE)
    sync(a, b, c)
    c.writer.requestAdmission(A, 16 * GiB, c.tick())
    c.writer.capacity(16 * GiB, 'active', c.tick()) // stamped 5 minutes in the past: before its admission
    sync(a, b, c)
    a.writer.admit(C, 16 * GiB, a.tick()) // the sponsor's stamp: after everything the sponsor saw
    sync(a, b, c)
    settle(a, b, c)
    for (const r of [a, b, c]) {
      const res = r.res()
      expectUnchanged(before, res)
      expect(res.members).toEqual([A, B, C])
      expect(res.nodes.get(C)).toMatchObject({ member: true, sponsor: A, allocatableBytes: 16 * GiB })
      expect(res.issues.some(i => i.map === 'capacity' && i.code === 'CreatorNotMember')).toBe(true)
    }
    // A member now, but its clock still 5 minutes slow: what it writes is stamped
    // before its own admission and does not count (it would sort before final decisions).
    c.writer.reserve({ id: 'from-the-past', bytes: 1 * GiB, placement: { kind: 'node', node: C } }, c.tick())
    sync(a, b, c)
    settle(a, b, c)
    for (const r of [a, b, c]) {
      // Stamped even before the cluster's first admission (view 0), it stays tentative — and rejected, whatever comes.
      expect(verdict(r.res(), 'from-the-past')).toMatchObject({ status: 'rejected', code: 'CreatorNotMember', view: 0 })
      expectUnchanged(before, r.res())
    }
  })

  it('writes of a node whose admission is void (its sponsor was not a member) are rejected, never admitted', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    l.writer(B) // never admitted
    l.writer(C)
    l.writer(B).admit(C, 8 * GiB, l.tick()) // B sponsors C, but B is no member
    l.reserve(C, 'from-c', 1 * GiB)
    l.heartbeatAll()
    const res = resolve(l.doc)
    expect(res.members).toEqual([A])
    expect(res.issues.some(i => i.code === 'SponsorNotMember')).toBe(true)
    expect(verdict(res, 'from-c')).toMatchObject({ status: 'rejected', code: 'CreatorNotMember', final: true })
  })

  it('a node admits itself only into an empty view (the first of a cluster)', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    l.writer(B).admit(B, 8 * GiB, l.tick())
    l.reserve(B, 'from-b', 1 * GiB)
    const res = resolve(l.doc)
    expect(res.members).toEqual([A])
    expect(res.issues.some(i => i.code === 'SelfAdmission')).toBe(true)
    expect(verdict(res, 'from-b')).toMatchObject({ status: 'rejected', code: 'CreatorNotMember' })
  })
})

describe('leave', () => {
  it('a node that left and writes `active` again below a final stamp changes nothing; coming back is a new admission', () => {
    const [a, b] = cluster([A, B])
    a.writer.reserve({ id: 'before', bytes: 6 * GiB, placement: { kind: 'any' } }, a.tick())
    b.writer.capacity(0, 'left', b.tick())
    sync(a, b)
    a.writer.reserve({ id: 'after-leave', bytes: 6 * GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b)
    settle(a, b)
    const before = finals(a.res())
    expect(before.size).toBe(2)
    // B writes `active` again, stamped (by a clock set back) below the final decisions.
    const rogue = new LedgerWriter(b.doc, B)
    rogue.capacity(64 * GiB, 'active', a.wallMs - 10 * MINUTE)
    b.writer.reserve({ id: 'from-left', bytes: 1 * GiB, placement: { kind: 'any' } }, b.tick())
    sync(a, b)
    settle(a, b)
    const res = a.res()
    expectUnchanged(before, res)
    expect(res.members).toEqual([A])
    expect(verdict(res, 'from-left')).toMatchObject({ status: 'rejected', code: 'CreatorLeft' })
    // Re-admission: a new membership from the sponsor's stamp on.
    a.writer.admit(B, 4 * GiB, a.tick())
    sync(a, b)
    b.writer.reserve({ id: 'back', bytes: 1 * GiB, placement: { kind: 'node', node: B } }, b.tick())
    sync(a, b)
    settle(a, b)
    expect(verdict(a.res(), 'back')).toMatchObject({ status: 'admitted', nodes: [B], final: true })
    expectUnchanged(before, a.res())
  })
})

describe('eviction as a flush', () => {
  it('an eviction reaching a peer before the evicted node\'s last write it counted does not cut that write', () => {
    const [a, b, c] = cluster([A, B, C])
    // C writes; only B receives it before C goes silent.
    c.writer.reserve({ id: 'late', bytes: 2 * GiB, placement: { kind: 'node', node: C } }, c.tick())
    sync(b, c)
    // A proposes evicting C with what A holds (not 'late').
    const proposal = a.writer.proposeEviction([C], viewDigest(a.res().members), a.positions([C]), a.tick())
    expect(a.positions([C])[C].seq).toBeLessThan(b.positions([C])[C].seq)
    sync(a, b)
    const p = b.res().proposals.find(x => x.key === proposal)!
    b.writer.ackEviction(p, b.positions([C]), b.tick())
    sync(a, b)
    const res = a.res()
    expect(res.members).toEqual([A, B])
    // The cut is the highest position acknowledged: B held 'late', so it counts.
    expect(verdict(res, 'late')).toMatchObject({ decision: 'admitted', status: 'evicted', code: 'NodeEvicted' })
    expect(res.nodes.get(C)!.cutSeq).toBe(b.positions([C])[C].seq)
  })

  it('a verdict final at one peer survives an eviction proposed by a peer that never saw the write', () => {
    const [a, b, c, d, e] = cluster([A, B, C, D, E])
    // E writes; A, B, C receive it (a majority); D does not.
    e.writer.reserve({ id: 'e-write', bytes: 1 * GiB, placement: { kind: 'any' } }, e.tick())
    sync(a, b, c, e)
    settle(a, b, c, e) // D is silent: its clock holds finality back…
    expect(verdict(a.res(), 'e-write').final).toBe(false)
    d.writer.heartbeat(FIGURES, d.tick()) // …until it beacons (it never saw e-write)
    sync(a, b, c, d) // E is now cut off
    settle(a, b, c, d)
    const before = finals(a.res())
    expect(before.has(`e-write@${E}`)).toBe(true)
    // D proposes evicting E with what it holds: below e-write.
    const proposal = d.writer.proposeEviction([E], viewDigest(d.res().members), d.positions([E]), d.tick())
    sync(a, b, c, d)
    for (const r of [a, b, c]) r.writer.ackEviction(r.res().proposals.find(x => x.key === proposal)!, r.positions([E]), r.tick())
    sync(a, b, c, d)
    for (const r of [a, b, c, d]) {
      expect(r.res().members).toEqual([A, B, C, D])
      expectUnchanged(before, r.res())
    }
  })

  it('while an eviction it acknowledged is open, a peer never finalizes on the target\'s later writes', () => {
    const [a, b, c, d] = cluster([A, B, C, D])
    settle(a, b, c, d)
    const proposal = a.writer.proposeEviction([D], viewDigest(a.res().members), a.positions([D]), a.tick())
    sync(a, b)
    b.writer.ackEviction(b.res().proposals.find(x => x.key === proposal)!, b.positions([D]), b.tick())
    // D, not yet cut (C has not acknowledged), writes; B and C get it after B acknowledged below it.
    d.writer.reserve({ id: 'after-ack', bytes: 1 * GiB, placement: { kind: 'node', node: D } }, d.tick())
    sync(b, c, d)
    settle(b, c, d)
    const res = b.res()
    expect(res.proposals.find(p => p.key === proposal)!.status).toBe('open')
    expect(verdict(res, 'after-ack')).toMatchObject({ final: false, waitingOn: 'view-change', waitsFor: [D] })
    // C acknowledges with what it holds (after-ack included): the cut keeps it, and it becomes final.
    c.writer.ackEviction(c.res().proposals.find(x => x.key === proposal)!, c.positions([D]), c.tick())
    sync(a, b, c)
    settle(a, b, c)
    expect(b.res().members).toEqual([A, B, C])
    expect(verdict(b.res(), 'after-ack')).toMatchObject({ final: true, decision: 'admitted', status: 'evicted' })
  })

  it('a proposal a member never acknowledges expires: past its deadline the acknowledgers finalize again, and a late acknowledgement cuts nothing', () => {
    const [a, b, c, d] = cluster([A, B, C, D])
    settle(a, b, c, d)
    const proposal = a.writer.proposeEviction([D], viewDigest(a.res().members), a.positions([D]), a.tick())
    sync(a, b, c, d)
    b.writer.ackEviction(b.res().proposals.find(x => x.key === proposal)!, b.positions([D]), b.tick())
    // C still hears D and never acknowledges; D writes on.
    d.writer.reserve({ id: 'on-d', bytes: 1 * GiB, placement: { kind: 'node', node: D } }, d.tick())
    sync(a, b, c, d)
    settle(a, b, c, d)
    expect(verdict(b.res(), 'on-d')).toMatchObject({ final: false, waitingOn: 'view-change' })
    // Everyone's clock passes the deadline (PROPOSAL_TTL_MS after the proposal) and says so.
    for (const r of [a, b, c, d]) r.wallMs += PROPOSAL_TTL_MS + 1000
    settle(a, b, c, d)
    for (const r of [a, b, c, d]) expect(verdict(r.res(), 'on-d'), r.id).toMatchObject({ final: true, status: 'admitted' })
    const before = finals(b.res())
    // C's acknowledgement, stamped after the deadline, does not count.
    c.writer.ackEviction(c.res().proposals.find(x => x.key === proposal)!, c.positions([D]), c.tick())
    sync(a, b, c, d)
    settle(a, b, c, d)
    for (const r of [a, b, c, d]) {
      expect(r.res().members).toEqual([A, B, C, D])
      expectUnchanged(before, r.res())
    }
  })

  it('a 2 | 3 partition: the 3 side evicts the 2 side and keeps deciding finally; the 2 side evicts nobody and finalizes nothing new', () => {
    const all = cluster([A, B, C, D, E])
    settle(...all)
    const [a, b, c, d, e] = all
    const minority = [a, b]
    const majority = [c, d, e]
    a.writer.reserve({ id: 'minority-write', bytes: 1 * GiB, placement: { kind: 'any' } }, a.tick())
    c.writer.reserve({ id: 'majority-write', bytes: 1 * GiB, placement: { kind: 'any' } }, c.tick())
    sync(...minority)
    sync(...majority)
    // Both sides propose evicting the other; each side acknowledges its own side's proposal.
    const pMin = a.writer.proposeEviction([C, D, E], viewDigest(a.res().members), a.positions([C, D, E]), a.tick())
    const pMaj = c.writer.proposeEviction([A, B], viewDigest(c.res().members), c.positions([A, B]), c.tick())
    sync(...minority)
    sync(...majority)
    b.writer.ackEviction(b.res().proposals.find(x => x.key === pMin)!, b.positions([C, D, E]), b.tick())
    for (const r of [d, e]) r.writer.ackEviction(r.res().proposals.find(x => x.key === pMaj)!, r.positions([A, B]), r.tick())
    sync(...minority)
    sync(...majority)
    settle(...minority)
    settle(...majority)
    const minorityRes = a.res()
    expect(minorityRes.members).toEqual([A, B, C, D, E])
    expect(minorityRes.proposals.find(p => p.key === pMin)!.status).toBe('refused') // 2 of 5 are no majority
    expect(verdict(minorityRes, 'minority-write').final).toBe(false)
    const majorityRes = c.res()
    expect(majorityRes.members).toEqual([C, D, E])
    expect(verdict(majorityRes, 'majority-write').final).toBe(true)
    const finalOnMajority = finals(majorityRes)
    // Heal: every peer agrees; nothing final changed; the minority's write is rejected, never having been final.
    sync(...all)
    settle(...all)
    const digests = new Set(all.map(r => r.res().digest))
    expect(digests.size).toBe(1)
    for (const r of all) expectUnchanged(finalOnMajority, r.res())
    expect(verdict(c.res(), 'minority-write')).toMatchObject({ status: 'rejected', code: 'CreatorEvicted' })
    // Written by A after the cut of its stream, the minority's proposal does not count at all.
    expect(c.res().proposals.find(p => p.key === pMin)).toBeUndefined()
    expect(c.res().issues.find(i => i.key === pMin)).toMatchObject({ code: 'NotAMember' })
  })

  it('a 2 | 2 split evicts nobody: both sides stay tentative until the heal', () => {
    const all = cluster([A, B, C, D])
    const [a, b, c, d] = all
    const p1 = a.writer.proposeEviction([C, D], viewDigest(a.res().members), a.positions([C, D]), a.tick())
    const p2 = c.writer.proposeEviction([A, B], viewDigest(c.res().members), c.positions([A, B]), c.tick())
    sync(a, b)
    sync(c, d)
    b.writer.ackEviction(b.res().proposals.find(x => x.key === p1)!, b.positions([C, D]), b.tick())
    d.writer.ackEviction(d.res().proposals.find(x => x.key === p2)!, d.positions([A, B]), d.tick())
    sync(a, b)
    sync(c, d)
    expect(a.res().members).toEqual([A, B, C, D])
    expect(c.res().members).toEqual([A, B, C, D])
    expect(a.res().proposals.find(p => p.key === p1)!.status).toBe('refused')
    sync(...all)
    expect(a.res().members).toEqual([A, B, C, D])
  })

  it('an eviction of a node that is not in the view (stamped before its admission) is refused, and is written once', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.writer(C)
    const key = l.writer(A).proposeEviction([C], viewDigest(resolve(l.doc).members), l.positions([C]), l.tick())
    l.join(C, 8 * GiB)
    const res = resolve(l.doc)
    expect(res.proposals.find(p => p.key === key)).toMatchObject({ status: 'refused' })
    expect(res.members).toEqual([A, B, C])
  })

  it('a proposal for a view that changed before it completed is void', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB, [C]: 8 * GiB })
    const key = l.propose(A, [C])
    l.join(D, 8 * GiB) // the view changes
    l.ack(B, key, [C])
    const res = resolve(l.doc)
    expect(res.proposals.find(p => p.key === key)!.status).toBe('void')
    expect(res.members).toEqual([A, B, C, D])
  })

  it('a cluster of two evicts only by force, and the record says so', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.reserve(B, 'on-b', 1 * GiB, { kind: 'node', node: B })
    const plain = l.propose(A, [B])
    expect(resolve(l.doc).proposals.find(p => p.key === plain)!.status).toBe('refused')
    const forced = l.propose(A, [B], true)
    const res = resolve(l.doc)
    expect(res.proposals.find(p => p.key === forced)).toMatchObject({ status: 'done', force: true })
    expect(res.members).toEqual([A])
    expect(verdict(res, 'on-b')).toMatchObject({ status: 'evicted', code: 'NodeEvicted' })
  })
})

describe('releases name the exact entry', () => {
  it('the losing creator of a taken id releasing it does not end the winner\'s reservation', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.reserve(A, 'same', 6 * GiB, { kind: 'node', node: A })
    l.reserve(B, 'same', 1 * GiB, { kind: 'node', node: A })
    l.release(B, 'same', B) // B ends its own (losing) entry
    l.reserve(B, 'next', 6 * GiB, { kind: 'node', node: A }) // would fit only if the winner were wrongly released
    const res = resolve(l.doc)
    expect(verdict(res, 'same')).toMatchObject({ creator: A, status: 'admitted' })
    expect(verdict(res, 'next')).toMatchObject({ status: 'rejected' })
    expect(res.nodes.get(A)!.committedBytes).toBe(6 * GiB)
  })
})

describe('finality needs a strict majority of the view to have announced', () => {
  it('a write that reached only its writer is never final, even when every clock passed it', () => {
    const [a, b, c] = cluster([A, B, C])
    settle(a, b, c)
    a.writer.reserve({ id: 'lonely', bytes: 1 * GiB, placement: { kind: 'any' } }, a.tick())
    // B and C beacon past it without holding it (A heard their beacons; they never got 'lonely').
    b.wallMs += 1000
    c.wallMs += 1000
    b.beacon()
    c.beacon()
    sync(b, c)
    Y.applyUpdate(a.doc, Y.encodeStateAsUpdate(b.doc))
    Y.applyUpdate(a.doc, Y.encodeStateAsUpdate(c.doc))
    const res = a.res()
    expect(res.seen! >= verdict(res, 'lonely').hlc!).toBe(true) // A holds everything below it…
    expect(verdict(res, 'lonely')).toMatchObject({ final: false, waitingOn: 'confirmations' }) // …but no majority does
  })

  it('names what a tentative verdict waits for: clocks first, then confirmations', () => {
    const [a, b, c] = cluster([A, B, C])
    a.writer.reserve({ id: 'r', bytes: 1 * GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b, c)
    let v = verdict(a.res(), 'r')
    expect(v).toMatchObject({ final: false, waitingOn: 'clocks', waitsFor: [B, C] })
    b.beacon()
    c.beacon()
    sync(a, b, c)
    v = verdict(a.res(), 'r')
    expect(v.waitingOn).toBe('confirmations')
    settle(a, b, c)
    expect(verdict(a.res(), 'r')).toMatchObject({ final: true, waitsFor: [] })
  })
})
