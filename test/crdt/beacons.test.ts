/**
 * Finality from the clock channel (docs/design.md "Clock channel"): beacons
 * are not ledger entries, and a member's clock counts only once this peer
 * holds that member's stream up to the beacon's position.
 */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { finishResolution, LedgerWriter, MAP_NODES, readLedger, readMapRecord, replayLedger, resolve, type Beacon, type Resolution } from '../../crdt/index.ts'
import { GiB, nodeId } from './helpers.ts'

const A = nodeId(1)
const B = nodeId(2)
const C = nodeId(3)

class Replica {
  readonly doc = new Y.Doc()
  readonly writer: LedgerWriter
  /** Beacons this replica holds from the others, newest last. */
  readonly held = new Map<string, Beacon[]>()
  constructor (readonly id: string, public wallMs: number) {
    this.writer = new LedgerWriter(this.doc, id)
  }

  tick (): number { return ++this.wallMs }
  res (): Resolution { return resolve(this.doc, { self: this.id, selfClock: this.writer.clock.peek(), beacons: this.held }) }
  /** This replica's beacon now: its clock, its stream position, its completeness line. */
  beacon (): Beacon { return this.writer.beacon(this.tick(), this.res().seen) }
  hear (from: Replica, beacon: Beacon): void { this.held.set(from.id, [...(this.held.get(from.id) ?? []), beacon]) }
}

function sync (from: Replica, to: Replica): void {
  Y.applyUpdate(to.doc, Y.encodeStateAsUpdate(from.doc, Y.encodeStateVector(to.doc)))
  const latest = to.res().latestHlc
  if (latest !== undefined) to.writer.observe(latest, to.wallMs)
}

/** Three members admitted by A, everyone holding everything. */
function cluster (): Replica[] {
  const rs = [A, B, C].map(id => new Replica(id, 1_000_000))
  for (const id of [A, B, C]) rs[0].writer.admit(id, 8 * GiB, rs[0].tick())
  for (const r of rs.slice(1)) sync(rs[0], r)
  return rs
}

/** Everyone beacons and everyone hears everyone, twice (the second round carries the lines). */
function beaconRounds (rs: Replica[], rounds = 2): void {
  for (let i = 0; i < rounds; i++) {
    const sent = rs.map(r => [r, r.beacon()] as const)
    for (const [from, beacon] of sent) for (const to of rs) if (to !== from) to.hear(from, beacon)
  }
}

describe('finality from beacons', () => {
  it('a reservation becomes final from beacons alone: no heartbeat is written to the ledger', () => {
    const [a, b, c] = cluster()
    a.writer.reserve({ id: 'r1', bytes: GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b); sync(a, c)
    const nodesBefore = a.doc.getMap('nodes').size
    expect(a.res().verdicts.get('r1')?.final).toBe(false)
    beaconRounds([a, b, c])
    for (const r of [a, b, c]) expect(r.res().verdicts.get('r1')).toMatchObject({ status: 'admitted', final: true })
    expect(a.doc.getMap('nodes').size).toBe(nodesBefore)
  })

  it("a member's beacon does not count while this peer lacks its stream up to the beacon's position", () => {
    const [a, b, c] = cluster()
    // B writes something C never receives, then beacons past a reservation of A's.
    a.writer.reserve({ id: 'r1', bytes: GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b); sync(a, c)
    b.writer.reserve({ id: 'from-b', bytes: GiB, placement: { kind: 'any' } }, b.tick())
    b.wallMs = a.wallMs + 10
    beaconRounds([a, b, c])
    // C holds B's beacon but not B's write below it: B's writes at or below
    // that stamp may still be on their way, so nothing after B's last held write is final at C.
    const atC = c.res()
    expect(atC.verdicts.get('r1')?.final).toBe(false)
    expect(atC.verdicts.get('r1')?.waitsFor).toContain(B)
    sync(b, c)
    expect(c.res().verdicts.get('r1')?.final).toBe(true)
    expect(c.res().verdicts.get('from-b')?.final).toBe(true)
  })

  it('an older beacon keeps counting while the newest is not covered yet (finality never goes back)', () => {
    const [a, b, c] = cluster()
    a.writer.reserve({ id: 'r1', bytes: GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b); sync(a, c)
    beaconRounds([a, b, c])
    expect(c.res().verdicts.get('r1')?.final).toBe(true)
    // B writes (C does not get it yet) and beacons at the new position.
    b.writer.reserve({ id: 'later', bytes: GiB, placement: { kind: 'any' } }, b.tick())
    c.hear(b, b.beacon())
    expect(c.res().verdicts.get('r1')?.final).toBe(true)
    // Only the newest beacon: the line for B falls back to B's last held write.
    const onlyNewest = new Map(c.held)
    onlyNewest.set(B, c.held.get(B)!.slice(-1))
    expect(resolve(c.doc, { self: C, selfClock: c.writer.clock.peek(), beacons: onlyNewest }).verdicts.get('r1')?.final).toBe(false)
  })

  it("a member's announcements count while its writes would: not one stamped after it left", () => {
    const [a, b, c] = cluster()
    a.writer.reserve({ id: 'r1', bytes: GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b); sync(a, c)
    // C holds A's and B's clocks past r1 (they carried no line), so its own line passes r1.
    for (const r of [a, b]) c.hear(r, r.writer.beacon(r.tick()))
    const r1 = a.res().verdicts.get('r1')!.hlc!
    const before = c.beacon()
    expect(before.seen! >= r1).toBe(true)
    c.writer.capacity(0, 'left', c.tick())
    sync(c, a)
    const after = c.beacon()
    expect(after.seen! >= r1).toBe(true)
    // At A: B's clock (no line), and C's announcement from after its leave. A's own line and C's would be two of three.
    a.hear(b, b.writer.beacon(b.tick()))
    a.hear(c, after)
    expect(a.res().verdicts.get('r1')).toMatchObject({ final: false, waitingOn: 'confirmations' })
    // The same line announced while C was a member counts.
    a.hear(c, before)
    expect(a.res().verdicts.get('r1')?.final).toBe(true)
  })

  it('a majority must announce: the lines of one member are not enough', () => {
    const [a, b, c] = cluster()
    a.writer.reserve({ id: 'r1', bytes: GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b); sync(a, c)
    // A hears B's and C's clocks, but their beacons carried no line past r1.
    for (const r of [b, c]) a.hear(r, r.writer.beacon(r.tick()))
    const atA = a.res()
    expect(atA.seen! >= atA.verdicts.get('r1')!.hlc!).toBe(true)
    expect(atA.verdicts.get('r1')).toMatchObject({ final: false, waitingOn: 'confirmations' })
    // B announces its line: A and B are a majority of three.
    b.hear(a, a.beacon()); b.hear(c, c.writer.beacon(c.tick()))
    a.hear(b, b.beacon())
    expect(a.res().verdicts.get('r1')?.final).toBe(true)
  })

  it("a beacon stamped under another node's name, or by a node that is not a member, counts for nothing", () => {
    const [a, b, c] = cluster()
    a.writer.reserve({ id: 'r1', bytes: GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, b); sync(a, c)
    beaconRounds([a, b, c])
    const honest = new Map(a.held)
    expect(resolve(a.doc, { self: A, selfClock: a.writer.clock.peek(), beacons: honest }).verdicts.get('r1')?.final).toBe(true)
    // C's beacons filed under B (stamps that name C), and a stranger's beacon announcing everything.
    const stranger = nodeId(9)
    const far = `999999999999999:000000:${stranger}`
    const forged = new Map(honest)
    forged.set(B, honest.get(C)!)
    forged.set(stranger, [{ hlc: far, seq: 0, seen: far }])
    const res = resolve(a.doc, { self: A, selfClock: a.writer.clock.peek(), beacons: forged })
    expect(res.verdicts.get('r1')).toMatchObject({ final: false, waitingOn: 'clocks', waitsFor: [B] })
  })

  it('a beacon far in the future makes nothing final while its position is not held', () => {
    const [a, b, c] = cluster()
    b.writer.reserve({ id: 'unseen', bytes: GiB, placement: { kind: 'any' } }, b.tick())
    a.writer.reserve({ id: 'r1', bytes: GiB, placement: { kind: 'any' } }, a.tick())
    sync(a, c)
    const farB: Beacon = { hlc: `${String(a.wallMs + 365 * 86_400_000).padStart(15, '0')}:000000:${B}`, seq: b.writer.lastSeq, seen: `${String(a.wallMs + 365 * 86_400_000).padStart(15, '0')}:000000:${B}` }
    c.hear(b, farB)
    a.hear(b, farB)
    c.hear(a, a.beacon())
    a.hear(c, c.beacon())
    expect(c.res().verdicts.get('r1')?.final).toBe(false)
    expect(a.res().verdicts.get('r1')?.final).toBe(false)
  })

  it("a node's view over one replay is built again when its beacon moves its line, and handed out again while nothing of it moved", () => {
    // The agent replays the ledger only when an entry changes; beacons re-run
    // finishResolution() over the same replay, which reuses node views.
    const [a, b, c] = cluster()
    beaconRounds([a, b, c])
    const replayed = replayLedger(readLedger(a.doc))
    const nodes = readMapRecord(a.doc, MAP_NODES)
    const finish = (records = nodes): Resolution => finishResolution(replayed, records, { self: a.id, selfClock: a.writer.clock.peek(), beacons: a.held })
    const first = finish()
    const before = first.nodes.get(B)!.heldTo
    // Its clock moves on, its announced line does not: only its line here moves.
    b.wallMs += 50
    const beacon = b.writer.beacon(b.tick(), a.held.get(B)!.at(-1)!.seen)
    a.hear(b, beacon)
    const second = finish()
    expect(beacon.hlc > (before ?? '')).toBe(true)
    expect(second.nodes.get(B)!.heldTo).toBe(beacon.hlc)
    expect(second.nodes.get(B)!.seen).toBe(first.nodes.get(B)!.seen)
    // A view once handed out never changes: the earlier resolution still says what it said.
    expect(first.nodes.get(B)!.heldTo).toBe(before)
    expect(second.nodes.get(C)).toBe(first.nodes.get(C))
    // A record written and received (not a ledger entry: no replay) is a new input too.
    c.writer.heartbeat({ totalBytes: 16 * GiB, floorBytes: 0, allocatableBytes: 8 * GiB, availableBytes: 12 * GiB, usedBytes: 4 * GiB }, c.tick())
    sync(c, a)
    const third = finish(readMapRecord(a.doc, MAP_NODES))
    expect(third.nodes.get(C)!.heartbeat?.availableBytes).toBe(12 * GiB)
    expect(third.nodes.get(C)!.lastSeq).toBeGreaterThan(second.nodes.get(C)!.lastSeq)
    expect(third.nodes.get(B)).toBe(second.nodes.get(B))
  })
})
