/**
 * The product's core promise (docs/design.md "Resolution" and "Finality"): the
 * verdicts depend only on the replicated data — not on delivery order,
 * duplication, partitions, or which peer computes them — and a final verdict
 * never changes, while membership changes under it: late joins (clocks that
 * lag or lead by minutes), leaves and re-admissions, evictions proposed on
 * both sides of partitions, writes that reached only some peers.
 *
 * fast-check generates a program of writes, membership changes and network
 * events; every failure prints fast-check's seed and the shrunk program, which
 * replay it exactly (MEMGOSSIP_PROPERTY_SEED=<seed> to run one seed again).
 */
import * as Y from 'yjs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { computeRent, digestVerdicts, entryKey, ledgerMaps, resolve, viewDigest, type Placement, type Resolution, type StreamPosition, type Verdict } from '../../crdt/index.ts'
import { resolveFrom, stableCut, takeCheckpoint, type Checkpoint } from '../../crdt/checkpoint.ts'
import { carryOver, epochOf, seedEpoch } from '../../crdt/epoch.ts'
import type { EpochProposal } from '../../crdt/schema.ts'
import { GiB, MiB, nodeId } from './helpers.ts'
import { seededRandom, YDocNetwork } from './ydoc-network.ts'

const PEERS = 5
const RUNS = Number(process.env.MEMGOSSIP_PROPERTY_RUNS ?? 250)
/** About 25 ms a program on this machine; a long run (thousands) gets the time it needs. */
const TIMEOUT_MS = 60_000 + RUNS * 60
const SEED = process.env.MEMGOSSIP_PROPERTY_SEED === undefined ? undefined : Number(process.env.MEMGOSSIP_PROPERTY_SEED)
const MINUTES = 60_000

type Op =
  | { op: 'reserve', peer: number, units: number, placement: 'any' | 'node' | 'all' | 'spread', target: number, priority: number, dupId: boolean, minUnits: number, queue: boolean, timeoutMs: number }
  | { op: 'release', peer: number, pick: number, otherCreator: boolean }
  | { op: 'beacon', peer: number }
  | { op: 'capacity', peer: number, units: number, drain: boolean }
  | { op: 'squeeze', peer: number, units: number }
  | { op: 'join', peer: number, sponsor: number }
  | { op: 'leave', peer: number }
  | { op: 'propose', peer: number, mask: number }
  | { op: 'ack', peer: number }
  | { op: 'deliver', to: number, pick: number, duplicate: boolean }
  | { op: 'drop', to: number, pick: number }
  | { op: 'sync', a: number, b: number }
  | { op: 'partition', mask: number }
  | { op: 'heal' }
  | { op: 'advance', ms: number }

const peer = fc.integer({ min: 0, max: PEERS - 1 })
const reserveArb = fc.record({ op: fc.constant('reserve' as const), peer, units: fc.integer({ min: 1, max: 12 }), placement: fc.constantFrom('any' as const, 'node' as const, 'all' as const, 'spread' as const), target: peer, priority: fc.integer({ min: 0, max: 2 }), dupId: fc.boolean(), minUnits: fc.integer({ min: 0, max: 4 }), queue: fc.boolean(), timeoutMs: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 300 }) }) })
const releaseArb = fc.record({ op: fc.constant('release' as const), peer, pick: fc.nat(), otherCreator: fc.boolean() })
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: reserveArb },
  { weight: 2, arbitrary: releaseArb },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('beacon' as const), peer }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('capacity' as const), peer, units: fc.integer({ min: 0, max: 24 }), drain: fc.boolean() }) },
  // A node losing memory under its reservations: shrinks toward minimums, then evictions (docs/design.md "Bounds and the queue").
  { weight: 3, arbitrary: fc.record({ op: fc.constant('squeeze' as const), peer, units: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('join' as const), peer, sponsor: peer }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('leave' as const), peer }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('propose' as const), peer, mask: fc.integer({ min: 1, max: (1 << PEERS) - 1 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('ack' as const), peer }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant('deliver' as const), to: peer, pick: fc.nat(), duplicate: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drop' as const), to: peer, pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('sync' as const), a: peer, b: peer }) },
  // Masks split the five peers in any way: 1 | 4, 2 | 3, and 2 | 2 among four members.
  { weight: 1, arbitrary: fc.record({ op: fc.constant('partition' as const), mask: fc.integer({ min: 1, max: (1 << PEERS) - 2 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('heal' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 50 }) }) }
)
/** Clock offsets: most peers close, some minutes behind or ahead (a late joiner with a bad clock). */
const skewArb = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -20, max: 20 }) }, { weight: 1, arbitrary: fc.constantFrom(-5 * MINUTES, -2 * MINUTES, 2 * MINUTES, 5 * MINUTES) })
const programArb = fc.record({
  skew: fc.array(skewArb, { minLength: PEERS, maxLength: PEERS }),
  capacity: fc.array(fc.integer({ min: 4, max: 16 }), { minLength: PEERS, maxLength: PEERS }),
  /** How many peers are members from the start (the rest join later, or never). */
  initial: fc.integer({ min: 1, max: PEERS }),
  ops: fc.array(opArb, { minLength: 5, maxLength: 70 })
})
type Program = typeof programArb extends fc.Arbitrary<infer T> ? T : never

/**
 * Programs for bounds and the queue (docs/design.md "Bounds and the queue"):
 * most peers members from the start, longer, and heavy on reservations,
 * releases and nodes losing memory, so that shrinks, queue admissions and
 * timeouts happen in most runs — under partitions and reordering as above.
 */
const boundsOpArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: reserveArb },
  { weight: 5, arbitrary: releaseArb },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('squeeze' as const), peer, units: fc.integer({ min: 1, max: 8 }) }) },
  // Nodes growing back (room for the queue), now and then draining.
  { weight: 3, arbitrary: fc.record({ op: fc.constant('capacity' as const), peer, units: fc.integer({ min: 8, max: 24 }), drain: fc.constantFrom(false, false, false, true) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('join' as const), peer, sponsor: peer }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('beacon' as const), peer }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant('deliver' as const), to: peer, pick: fc.nat(), duplicate: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('sync' as const), a: peer, b: peer }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('partition' as const), mask: fc.integer({ min: 1, max: (1 << PEERS) - 2 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('heal' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 50 }) }) }
)
const boundsProgramArb: fc.Arbitrary<Program> = fc.record({
  skew: fc.array(fc.integer({ min: -20, max: 20 }), { minLength: PEERS, maxLength: PEERS }),
  capacity: fc.array(fc.integer({ min: 4, max: 16 }), { minLength: PEERS, maxLength: PEERS }),
  initial: fc.integer({ min: 3, max: PEERS }),
  ops: fc.array(boundsOpArb, { minLength: 20, maxLength: 80 })
})

const UNIT = 512 * MiB
const FIGURES = { totalBytes: 32 * GiB, floorBytes: 0, allocatableBytes: 0, availableBytes: 0, usedBytes: 0 }

/**
 * Decision signature of one entry: what must never change once final. (Which
 * entry a lookup by id returns is not part of it: it may move from a rejected
 * non-member's entry to a member's later one — the rejected entry holds
 * nothing — and from an entry that ended to a later entry that took the id
 * after it, docs/design.md "Resolution".)
 */
function signature (res: Resolution, key: string): string | undefined {
  const v = res.verdicts.get(key.slice(0, key.indexOf('@'))) ?? undefined
  const entry = v?.key === key ? v : res.conflicts.find(c => c.key === key)
  // A queued entry's decision includes the point of the log that made it.
  return entry === undefined ? undefined : `${entry.decision}|${entry.decisionCode}|${entry.nodes.join(',')}|${entry.winner ?? ''}|${entry.decidedHlc ?? ''}`
}

interface Outcome { net: YDocNetwork, finals: Map<string, string>, failures: string[] }

/** Run a program; check the per-step properties (2, 3, 5) as it goes; `onStep` sees the network after every step. */
function run (program: Program, onStep?: (net: YDocNetwork, step: number) => void): Outcome {
  const ids = Array.from({ length: PEERS }, (_, i) => nodeId(i + 1))
  // The initial members' clocks are good; only later joiners may be minutes off.
  const net = new YDocNetwork(ids, program.skew.map((s, i) => (i < program.initial ? Math.max(-20, Math.min(20, s)) : s)))
  net.writers[0].admit(ids[0], program.capacity[0] * UNIT, net.wall[0])
  for (let i = 1; i < program.initial; i++) net.writers[0].admit(ids[i], program.capacity[i] * UNIT, net.wall[0] + i)
  net.syncAll()
  const finals = new Map<string, string>()
  const failures: string[] = []
  let counter = 0
  const made: Array<{ id: string, creator: string }> = []

  const check = (step: number): void => {
    for (const [r, res] of net.resolveAll().entries()) {
      for (const node of res.nodes.values()) {
        if (node.committedBytes > node.allocatableBytes) failures.push(`step ${step}: replica ${r} over-commits ${node.id}: ${node.committedBytes} > ${node.allocatableBytes}`)
      }
      // One entry at a time holds an id: the one a lookup gives, and no other runs or waits under it.
      for (const v of res.conflicts) {
        if (v.status === 'admitted' || v.status === 'queued') failures.push(`step ${step}: replica ${r} ${v.key} is ${v.status} but ${res.verdicts.get(v.id)?.key ?? 'nothing'} holds id ${v.id}`)
      }
      for (const v of [...res.verdicts.values(), ...res.conflicts]) {
        if (!v.final) continue
        const sig = signature(res, v.key)!
        const known = finals.get(v.key)
        if (known === undefined) finals.set(v.key, sig)
        else if (known !== sig) failures.push(`step ${step}: replica ${r} final verdict of ${v.key} is ${sig}, was final as ${known}`)
      }
      // 5. An eviction completes only with the acknowledgements, in the ledger, of a strict majority of its view.
      const records = [...ledgerMaps(net.docs[r]).membership.entries()] as Array<[string, { kind: string, proposal?: string, by: string }]>
      for (const p of res.proposals) {
        if (p.status !== 'done' || p.force) continue
        const ackers = new Set(records.filter(([, rec]) => rec.kind === 'ack' && rec.proposal === p.key).map(([, rec]) => rec.by))
        ackers.add(p.by)
        const remaining = p.viewMembers.filter(m => !p.targets.includes(m))
        const acked = remaining.filter(m => ackers.has(m))
        if (acked.length !== remaining.length || 2 * acked.length <= p.viewMembers.length) {
          failures.push(`step ${step}: replica ${r} completed eviction ${p.key} of ${p.targets.join(',')} with ${acked.length} of ${p.viewMembers.length} acknowledging`)
        }
      }
    }
  }

  /** What peer i holds of each node's stream. */
  const positions = (res: Resolution, nodes: string[]): Record<string, StreamPosition> =>
    Object.fromEntries(nodes.map(n => [n, { seq: res.nodes.get(n)?.lastSeq ?? 0, hlc: res.nodes.get(n)?.lastHlc }]))

  const wall = (p: number): number => { net.wall[p] += 1; return net.wall[p] }
  /** A member acknowledges every open proposal it holds and has not acknowledged, with what it holds. */
  const acknowledge = (i: number): void => {
    const res = net.resolveAt(i)
    for (const p of res.proposals) {
      if (p.status !== 'open' || p.acks[ids[i]] !== undefined || p.targets.includes(ids[i]) || !p.viewMembers.includes(ids[i])) continue
      net.writers[i].ackEviction(p, positions(res, p.targets), wall(i))
    }
  }

  program.ops.forEach((op, step) => {
    switch (op.op) {
      case 'reserve': {
        // Anyone writes, member or not: a node that does not know yet it was evicted, or never was admitted.
        const id = op.dupId && made.length > 0 ? made[counter % made.length].id : `r${counter}`
        counter++
        const placement: Placement = op.placement === 'node'
          ? { kind: 'node', node: ids[op.target] }
          : op.placement === 'spread' ? { kind: 'spread', count: 2 } : { kind: op.placement }
        try {
          // Bounds and the queue: a minimum (0: none) up to the limit; queued entries, some with a timeout (0: none).
          const minBytes = op.minUnits > 0 ? Math.min(op.minUnits, op.units) * UNIT : undefined
          const queueTimeoutMs = op.queue && op.timeoutMs > 0 ? op.timeoutMs : undefined
          net.writers[op.peer].reserve({ id, bytes: op.units * UNIT, placement, priority: op.priority, minBytes, queue: op.queue, queueTimeoutMs }, wall(op.peer))
          made.push({ id, creator: ids[op.peer] })
        } catch (error) {
          // The same node re-using its own id is refused locally (write-once); another node's id is the IdTaken race.
          expect((error as Error).name).toBe('DuplicateReservationError')
        }
        break
      }
      case 'release': {
        if (made.length === 0) break
        const target = made[op.pick % made.length]
        // Releases name an exact entry; sometimes the entry of the other creator of the same id.
        const other = made.find(m => m.id === target.id && m.creator !== target.creator)
        const creator = op.otherCreator && other !== undefined ? other.creator : target.creator
        net.writers[op.peer].release(target.id, creator, wall(op.peer))
        break
      }
      case 'beacon': {
        const seen = net.resolveAt(op.peer).seen
        net.writers[op.peer].heartbeat(FIGURES, wall(op.peer), seen)
        break
      }
      case 'capacity':
        net.writers[op.peer].capacity(op.units * UNIT, op.drain ? 'draining' : 'active', wall(op.peer))
        break
      case 'join': {
        // The joiner asks; the sponsor admits it if, as far as the sponsor knows, it is a member and the joiner is not.
        if (op.peer === op.sponsor) break
        net.writers[op.peer].requestAdmission(ids[op.sponsor], program.capacity[op.peer] * UNIT, wall(op.peer))
        const res = net.resolveAt(op.sponsor)
        if (res.members.includes(ids[op.sponsor]) && !res.members.includes(ids[op.peer])) {
          net.writers[op.sponsor].admit(ids[op.peer], program.capacity[op.peer] * UNIT, wall(op.sponsor))
        }
        break
      }
      case 'squeeze':
        net.writers[op.peer].capacity(op.units * UNIT, 'active', wall(op.peer))
        break
      case 'leave':
        net.writers[op.peer].capacity(0, 'left', wall(op.peer))
        break
      case 'propose': {
        // Evict the masked members of the proposer's view (never itself), as a silent-timeout or an operator would.
        const res = net.resolveAt(op.peer)
        if (!res.members.includes(ids[op.peer])) break
        const targets = ids.filter((id, i) => ((op.mask >> i) & 1) === 1 && i !== op.peer && res.members.includes(id))
        if (targets.length === 0) break
        net.writers[op.peer].proposeEviction(targets, viewDigest(res.members), positions(res, targets), wall(op.peer))
        break
      }
      case 'ack': acknowledge(op.peer); break
      case 'deliver': net.deliver(op.to, op.pick, op.duplicate); break
      case 'drop': net.drop(op.to, op.pick); break
      case 'sync': net.sync(op.a, op.b); break
      case 'partition': net.group = net.group.map((_, i) => (op.mask >> i) & 1); break
      case 'heal': net.heal(); break
      case 'advance': net.advance(op.ms); break
    }
    check(step)
    onStep?.(net, step)
  })
  net.syncAll()
  // Every member acknowledges what it holds open, as the agent does at once (an
  // open eviction holds finality back until it completes or is void).
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < PEERS; i++) acknowledge(i)
    net.syncAll()
  }
  // Two rounds of beacons after the merge (clocks past everything, then lines
  // announced), so every verdict can become final; time passes enough that a
  // write stamped minutes ahead by a fast clock is behind every clock too.
  for (let round = 0; round < 2; round++) {
    net.advance(round === 0 ? 11 * MINUTES : 1000)
    net.writers.forEach((w, i) => w.heartbeat(FIGURES, net.wall[i], net.resolveAt(i).seen))
    net.syncAll()
  }
  check(program.ops.length)
  return { net, finals, failures }
}

/** MEMGOSSIP_PROPERTY_PROGRAM='<counterexample JSON>' replays one program (the array fast-check prints, or its one element). */
const PROGRAM = process.env.MEMGOSSIP_PROPERTY_PROGRAM === undefined ? undefined : [JSON.parse(process.env.MEMGOSSIP_PROPERTY_PROGRAM)].flat()[0] as Program
const base = { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) }
const params: fc.Parameters<[Program]> = PROGRAM !== undefined ? { numRuns: 1, examples: [[PROGRAM]] } : base
const params6: fc.Parameters<[Program, number]> = PROGRAM !== undefined ? { numRuns: 1, examples: [[PROGRAM, 1]] } : base

describe('convergence and finality over an in-memory network of Y.Docs, with membership changing', () => {
  it(`1. once every update is delivered everywhere, every replica yields the same verdict digest (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { net } = run(program)
      const digests = net.resolveAll().map(r => r.digest)
      expect(new Set(digests).size, `digests ${digests.join(' ')}`).toBe(1)
    }), params)
  }, TIMEOUT_MS)

  it(`2. no node is ever committed beyond its allocatable in any replica, at any step (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { failures } = run(program)
      expect(failures.filter(f => f.includes('over-commits'))).toEqual([])
    }), params)
  }, TIMEOUT_MS)

  it(`3. a verdict final at any replica at any step never changes later, with membership changing (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { net, finals, failures } = run(program)
      expect(failures.filter(f => f.includes('final verdict'))).toEqual([])
      // …and it is what every replica holds once converged.
      for (const res of net.resolveAll()) {
        for (const [key, sig] of finals) expect(signature(res, key), key).toBe(sig)
      }
    }), params)
  }, TIMEOUT_MS)

  it(`4. a minority can never complete an eviction: every completed one carries a strict majority's acknowledgements (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { failures } = run(program)
      expect(failures.filter(f => f.includes('completed eviction'))).toEqual([])
    }), params)
  }, TIMEOUT_MS)

  it(`5. a release ends only the entry it names: no reservation is released by a release of another entry; one entry at a time holds an id (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { net, failures } = run(program)
      expect(failures.filter(f => f.includes('holds id'))).toEqual([])
      for (const [r, res] of net.resolveAll().entries()) {
        const releases = [...ledgerMaps(net.docs[r]).releases.values()] as Array<{ id: string, creator: string }>
        // Entries that held an id before a later one took it are with the conflicts.
        for (const v of [...res.verdicts.values(), ...res.conflicts]) {
          if (v.status !== 'released') continue
          expect(releases.some(x => entryKey(x.id, x.creator) === v.key), `${v.key} released without a release naming it`).toBe(true)
        }
      }
    }), params)
  }, TIMEOUT_MS)

  it(`6. the result does not depend on the order updates were applied (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, fc.integer(), (program, seed) => {
      const { net } = run(program)
      const expected = resolve(net.docs[0]).digest
      const random = seededRandom(seed)
      const shuffled = [...net.log]
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]]
      }
      for (const order of [shuffled, [...net.log].reverse()]) {
        const doc = new Y.Doc()
        for (const update of order) Y.applyUpdate(doc, update)
        expect(resolve(doc).digest, `shuffle seed ${seed}`).toBe(expected)
      }
    }), params6)
  }, TIMEOUT_MS)

  it(`every verdict whose view still has a majority of its members becomes final once everything is delivered and members announce (liveness, ${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { net } = run(program)
      for (const res of net.resolveAll()) {
        // Confirmations come from the view at t: when most of it left before
        // announcing (or the view was empty: a genesis stamped earlier could
        // still appear) the verdict stays tentative, and says so.
        for (const v of res.verdicts.values()) if (v.status === 'queued') expect(v.final, `${v.key} queued and final`).toBe(false)
        const confirmable = (view: readonly string[]): boolean => 2 * view.filter(m => res.members.includes(m)).length > view.length
        // An entry still queued is not decided: it waits for room, not for finality (it is never final while it waits).
        const stuck = [...res.verdicts.values(), ...res.conflicts].filter(v => v.status !== 'invalid' && v.status !== 'queued' && confirmable(res.views[v.view!].members) && !v.final)
        expect(stuck.map(v => `${v.key} waits on ${v.waitingOn} ${v.waitsFor.join(',')}; proposals ${JSON.stringify(res.proposals.map(p => [p.key, p.status, p.targets, p.waitingFor]))}`)).toEqual([])
      }
    }), params)
  }, TIMEOUT_MS)
})

const BOUNDS_RUNS = Math.max(20, Math.ceil(RUNS / 2))

describe('bounds and the queue under the same network: shrinks, queue admissions and timeouts converge, never over-commit, and stay final', () => {
  it(`digests agree, nothing is over-committed, a final verdict (a queue admission with its point) never changes, and the order updates were applied does not matter (${BOUNDS_RUNS} programs)`, () => {
    fc.assert(fc.property(boundsProgramArb, fc.integer(), (program, seed) => {
      const { net, finals, failures } = run(program)
      expect(failures).toEqual([])
      const all = net.resolveAll()
      expect(new Set(all.map(r => r.digest)).size, `digests ${all.map(r => r.digest).join(' ')}`).toBe(1)
      for (const res of all) for (const [key, sig] of finals) expect(signature(res, key), key).toBe(sig)
      const random = seededRandom(seed)
      const shuffled = [...net.log]
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]]
      }
      const doc = new Y.Doc()
      for (const update of shuffled) Y.applyUpdate(doc, update)
      expect(resolve(doc).digest, `shuffle seed ${seed}`).toBe(all[0].digest)
    }), PROGRAM !== undefined ? { numRuns: 1, examples: [[PROGRAM, 1]] } : { ...base, numRuns: BOUNDS_RUNS })
  }, TIMEOUT_MS)

  // The programs must reach what they are about, or the property above holds
  // vacuously. Checked over a fixed sample (seed 14), so it cannot flake.
  it('the bounds programs reach shrinks, queue admissions, timeouts, entries left waiting, ids lost and ids taken again after their entry ended (fixed seed 14, 100 programs)', () => {
    const seen = { shrunk: 0, fromQueue: 0, timedOut: 0, waiting: 0, idTaken: 0, takenAgain: 0 }
    fc.assert(fc.property(boundsProgramArb, (program) => {
      const res = run(program).net.resolveAll()[0]
      for (const v of res.verdicts.values()) {
        if (v.shrunkHlc !== undefined) seen.shrunk++
        if (v.decision === 'admitted' && v.decidedHlc !== v.hlc) seen.fromQueue++
        if (v.decisionCode === 'QueueTimeout') seen.timedOut++
        if (v.status === 'queued') seen.waiting++
      }
      for (const c of res.conflicts) {
        if (c.decisionCode === 'IdTaken') seen.idTaken++
        // An entry that held its id and ended before a later entry took it.
        else if (c.status !== 'invalid' && !['CreatorNotMember', 'CreatorLeft', 'CreatorEvicted'].includes(c.decisionCode)) seen.takenAgain++
      }
    }), { seed: 14, numRuns: 100 })
    for (const [what, count] of Object.entries(seen)) expect(count, `${what} in ${JSON.stringify(seen)}`).toBeGreaterThan(0)
  }, TIMEOUT_MS)
})

/**
 * Checkpoints (docs/design.md "Checkpoints"): at random steps a random peer
 * takes a checkpoint at its stable cut (half the time from its previous one),
 * while the program goes on — membership changes, partitions and all. Once
 * everything is delivered, on every replica: the checkpoint at the same cut
 * has the same digest (nothing it summarises changed), and resolving from it
 * gives the verdicts of a resolution of the whole document — the same
 * decisions, statuses and finality, the same digest over them — less only
 * entries that had ended, final, at or before the cut; the same counts; no
 * over-commit; and the rent accrued across the cut is the rent without it.
 */
interface Taken { peer: number, step: number, checkpoint: Checkpoint, chained: boolean }

/**
 * `settle` (the default): the peer's side settles before it takes its cut
 * (two rounds of beacons and anti-entropy). Without: one round only, so the
 * lines its side announced lag what it holds — the same random choices
 * otherwise.
 */
function runWithCheckpoints (program: Program, seed: number, settle = true): { net: YDocNetwork, taken: Taken[], failures: string[] } {
  const random = seededRandom(seed)
  const taken: Taken[] = []
  const latest = new Map<number, Checkpoint>()
  const { net, failures } = run(program, (net, step) => {
    if (random() >= 0.2) return
    const peer = Math.floor(random() * PEERS)
    // The peer's side of any partition settles first (beacons, anti-entropy,
    // twice: clocks past, then lines announced; once when not settling), as a quiet moment in an agent
    // would; a member on the other side still holds the cut back.
    const side = net.ids.map((_, i) => i).filter(i => net.group[i] === net.group[peer])
    for (let round = 0; round < (settle ? 2 : 1); round++) {
      for (const i of side) net.writers[i].heartbeat(FIGURES, net.wall[i], net.resolveAt(i).seen)
      for (const a of side) for (const b of side) if (a < b) net.sync(a, b)
    }
    const cut = stableCut(net.resolveAt(peer))
    if (cut === undefined) return
    const earlier = latest.get(peer)
    const chained = earlier !== undefined && earlier.cut < cut && random() < 0.5
    const checkpoint = takeCheckpoint(net.docs[peer], cut, chained ? earlier : undefined)
    taken.push({ peer, step, checkpoint, chained })
    if (earlier === undefined || earlier.cut < cut) latest.set(peer, checkpoint)
  })
  return { net, taken, failures }
}

/** Everything a verdict says, as text: fields in name order, undefined ones left out. */
function verdictText (v: Verdict): string {
  return JSON.stringify(Object.fromEntries(Object.entries(v).filter(([, value]) => value !== undefined).sort(([a], [b]) => (a < b ? -1 : 1))))
}

function checkFromCheckpoint (net: YDocNetwork, t: Taken, label: string): void {
  const { checkpoint } = t
  const nowMs = Math.max(...net.wall) + 1
  for (let q = 0; q < PEERS; q++) {
    const at = `${label}: checkpoint ${checkpoint.cut} of peer ${t.peer} at step ${t.step}${t.chained ? ' (chained)' : ''}, replica ${q}`
    const direct = takeCheckpoint(net.docs[q], checkpoint.cut)
    expect(direct, `${at}: the same cut`).toEqual(checkpoint)
    expect(direct.digest, `${at}: digest of the same cut`).toBe(checkpoint.digest)
    const options = { self: net.ids[q], selfClock: net.writers[q].clock.peek() }
    const full = resolve(net.docs[q], options)
    const from = resolveFrom(checkpoint, net.docs[q], options)
    const fullByKey = new Map([...full.verdicts.values(), ...full.conflicts].map(v => [v.key, v]))
    const fromAll = [...from.verdicts.values(), ...from.conflicts]
    for (const v of fromAll) {
      const whole = fullByKey.get(v.key)
      expect(whole, `${at}: ${v.key} only from the checkpoint`).toBeDefined()
      expect(verdictText(v), `${at}: ${v.key}`).toBe(verdictText(whole!))
    }
    const kept = new Set(fromAll.map(v => v.key))
    for (const v of fullByKey.values()) {
      if (kept.has(v.key)) continue
      // Left out: it had ended at or before the cut. (Its finality flag may
      // lapse later — most of its view left before announcing — but its
      // decision and end cannot change: property 3.)
      const end = v.status === 'rejected' ? v.decidedHlc : v.endedHlc
      expect(end !== undefined && end <= checkpoint.cut && ['released', 'evicted', 'rejected'].includes(v.status),
        `${at}: ${v.key} left out but ${v.status}, ended at ${end}`).toBe(true)
    }
    expect(from.digest, `${at}: digest`).toBe(digestVerdicts([...fullByKey.values()].filter(v => kept.has(v.key))))
    expect(from.counts, `${at}: counts`).toEqual(full.counts)
    expect([from.seen, from.watermark, from.members], `${at}: finality line and view`).toEqual([full.seen, full.watermark, full.members])
    for (const node of from.nodes.values()) {
      expect(node.committedBytes, `${at}: ${node.id} over-committed`).toBeLessThanOrEqual(node.allocatableBytes)
      expect([node.committedBytes, node.reservations], `${at}: ${node.id}`).toEqual([full.nodes.get(node.id)!.committedBytes, full.nodes.get(node.id)!.reservations])
    }
    expect(computeRent(from, { nowMs }).totalByteSeconds + checkpoint.ended.byteSeconds, `${at}: rent`).toBe(computeRent(full, { nowMs }).totalByteSeconds)
  }
}

/**
 * The epoch a checkpoint seeds (crdt/epoch.ts): every replica builds the seed
 * and carries over what it holds that the checkpoint does not summarise,
 * judged by its own resolution; the replicas' new documents are merged (as
 * peers of the new epoch sync). Resolving the merged document from the
 * checkpoint gives what resolving the whole history from it gives: the same
 * verdicts, digest, counts and committed bytes. And the seeds are byte for
 * byte the same on every replica.
 */
function checkEpoch (net: YDocNetwork, t: Taken, label: string): void {
  const { checkpoint } = t
  const proposal: EpochProposal = { epoch: 1, cut: checkpoint.cut, digest: checkpoint.digest, proposer: net.ids[t.peer], hlc: `${'9'.repeat(13)}:0000:${net.ids[t.peer]}`, seq: 1 }
  const seeds = net.docs.map(() => seedEpoch(proposal, checkpoint))
  for (const s of seeds) expect(Buffer.from(s).equals(Buffer.from(seeds[0])), `${label}: seeds differ between replicas`).toBe(true)
  const merged = new Y.Doc()
  const sizes: number[] = []
  net.docs.forEach((doc, q) => {
    const next = new Y.Doc()
    next.clientID = 1000 + q
    Y.applyUpdate(next, seeds[q])
    carryOver(doc, next, checkpoint.cut, { verdicts: resolve(doc, { self: net.ids[q] }) })
    sizes.push(next.getMap('reservations').size)
    Y.applyUpdate(merged, Y.encodeStateAsUpdate(next))
  })
  expect(epochOf(merged).checkpoint?.digest, `${label}: the merged epoch's checkpoint`).toBe(checkpoint.digest)
  const options = { self: net.ids[0], selfClock: net.writers[0].clock.peek() }
  const whole = resolveFrom(checkpoint, net.docs[0], options)
  const epoch = resolveFrom(epochOf(merged).checkpoint!, merged, options)
  const text = (r: Resolution): string[] => [...r.verdicts.values(), ...r.conflicts].map(verdictText).sort()
  expect(text(epoch), `${label}: verdicts in the new epoch`).toEqual(text(whole))
  expect([epoch.digest, epoch.counts, epoch.members], `${label}: digest, counts, view`).toEqual([whole.digest, whole.counts, whole.members])
  for (const node of epoch.nodes.values()) expect(node.committedBytes, `${label}: ${node.id}`).toBe(whole.nodes.get(node.id)!.committedBytes)
  expect(merged.getMap('reservations').size, `${label}: the merged epoch holds no more entries than one replica carried`).toBe(Math.max(...sizes))
  // What is live at the cut stays in the document (the writer's duplicate check and listings read it).
  for (const { key } of [...checkpoint.running, ...checkpoint.queue]) expect(merged.getMap('reservations').has(key), `${label}: ${key}, live at the cut, carried`).toBe(true)
}

/** About 0.4–2 s a program (a checkpoint is checked on every replica): a tenth of the runs, at least 10. */
const CHECKPOINT_RUNS = Math.max(10, Math.ceil(RUNS / 10))
/** With MEMGOSSIP_PROPERTY_PROGRAM: the checkpoint seed of the counterexample (its second element). */
const CHECKPOINT_SEED = Number(process.env.MEMGOSSIP_CHECKPOINT_SEED ?? 1)

describe('checkpoints at stable cuts, taken anywhere in the programs', () => {
  it(`the same checkpoint on every replica, and resolving from it gives the whole resolution's verdicts, digest, counts and rent (${CHECKPOINT_RUNS} programs, membership changing)`, () => {
    fc.assert(fc.property(programArb, fc.integer(), (program, seed) => {
      const { net, taken, failures } = runWithCheckpoints(program, seed)
      expect(failures).toEqual([])
      for (const t of taken) { checkFromCheckpoint(net, t, `checkpoint seed ${seed}`); checkEpoch(net, t, `checkpoint seed ${seed}`) }
    }), PROGRAM !== undefined ? { numRuns: 1, examples: [[PROGRAM, CHECKPOINT_SEED]] } : { ...base, numRuns: CHECKPOINT_RUNS })
  }, TIMEOUT_MS)

  // Fixed seed unless MEMGOSSIP_PROPERTY_SEED is set; counterexamples random
  // seeds found are replayed below as regressions.
  const boundsCheckpointProperty = fc.property(boundsProgramArb, fc.integer(), (program, seed) => {
    const { net, taken, failures } = runWithCheckpoints(program, seed)
    expect(failures).toEqual([])
    for (const t of taken) { checkFromCheckpoint(net, t, `checkpoint seed ${seed}`); checkEpoch(net, t, `checkpoint seed ${seed}`) }
  })
  it(`the same under bounds and the queue: shrinks, queued entries carried across a cut, timeouts after it (${CHECKPOINT_RUNS} programs)`, () => {
    fc.assert(boundsCheckpointProperty, PROGRAM !== undefined ? { numRuns: 1, examples: [[PROGRAM, CHECKPOINT_SEED]] } : { ...base, seed: SEED ?? 20261206, numRuns: CHECKPOINT_RUNS })
  }, TIMEOUT_MS)

  // A peer takes its stable cut before its side has settled: the lines its
  // side announced lag what it holds (about 4 checkpoints a program, half of
  // them with entries running or queued at the cut).
  it(`the same when a peer takes its cut before its side has settled (${2 * CHECKPOINT_RUNS} programs of both kinds)`, () => {
    fc.assert(fc.property(fc.oneof(programArb, boundsProgramArb), fc.integer(), (program, seed) => {
      const { net, taken, failures } = runWithCheckpoints(program, seed, false)
      expect(failures).toEqual([])
      for (const t of taken) { checkFromCheckpoint(net, t, `checkpoint seed ${seed}, unsettled`); checkEpoch(net, t, `checkpoint seed ${seed}, unsettled`) }
    }), PROGRAM !== undefined ? { numRuns: 1, examples: [[PROGRAM, CHECKPOINT_SEED]] } : { ...base, numRuns: 2 * CHECKPOINT_RUNS })
  }, TIMEOUT_MS)

  /**
   * Counterexamples random seeds found, each replayed as found (program and
   * checkpoint seed), so a change of the generators cannot lose them
   * (docs/decisions.md "Checkpoints: fixed: …").
   */
  const regressions: Array<{ what: string, program: Program, seed: number }> = [
    {
      // fast-check seed -921267392: a release sorting before a non-member's
      // entry stamped before the cut was kept by a peer that had not received
      // the entry yet, and dropped by one that had.
      what: 'a release waiting for a non-member\'s entry that arrives after the cut (fast-check seed -921267392)',
      program: {"skew":[4,0,-17,-4,16],"capacity":[14,16,7,9,6],"initial":4,"ops":[{"op":"partition","mask":15},{"op":"deliver","to":2,"pick":1710253586,"duplicate":false},{"op":"capacity","peer":4,"units":11,"drain":true},{"op":"deliver","to":2,"pick":1167888199,"duplicate":false},{"op":"reserve","peer":4,"units":8,"placement":"spread","target":1,"priority":2,"dupId":false,"minUnits":2,"queue":true,"timeoutMs":0},{"op":"deliver","to":1,"pick":1010207096,"duplicate":true},{"op":"reserve","peer":3,"units":10,"placement":"node","target":2,"priority":1,"dupId":true,"minUnits":2,"queue":false,"timeoutMs":0},{"op":"release","peer":3,"pick":1664801390,"otherCreator":false},{"op":"advance","ms":30},{"op":"deliver","to":3,"pick":1533628873,"duplicate":true},{"op":"deliver","to":2,"pick":39060397,"duplicate":false},{"op":"deliver","to":1,"pick":1715179803,"duplicate":true},{"op":"capacity","peer":3,"units":21,"drain":false},{"op":"release","peer":2,"pick":1426393850,"otherCreator":false},{"op":"beacon","peer":4},{"op":"release","peer":3,"pick":2054930911,"otherCreator":true},{"op":"join","peer":0,"sponsor":1},{"op":"capacity","peer":2,"units":15,"drain":false},{"op":"release","peer":1,"pick":1411063070,"otherCreator":false},{"op":"deliver","to":4,"pick":1116534443,"duplicate":false},{"op":"squeeze","peer":0,"units":2},{"op":"squeeze","peer":4,"units":2},{"op":"reserve","peer":4,"units":8,"placement":"any","target":4,"priority":0,"dupId":false,"minUnits":4,"queue":true,"timeoutMs":0},{"op":"deliver","to":2,"pick":185000409,"duplicate":false},{"op":"release","peer":2,"pick":741197135,"otherCreator":false},{"op":"squeeze","peer":4,"units":2}]},
      seed: 1533455104
    },
    {
      // Found by the fixed seed while ids became free again: an entry that
      // held an id and ended before another took it was left out of the
      // bill (rent read the current holders only).
      what: 'an id taken again after its entry was released: both are billed, with and without the checkpoint',
      program: {"skew":[0,0,0,0,0],"capacity":[4,4,4,4,4],"initial":3,"ops":[{"op":"beacon","peer":0},{"op":"partition","mask":1},{"op":"capacity","peer":0,"units":8,"drain":false},{"op":"advance","ms":0},{"op":"beacon","peer":0},{"op":"deliver","to":0,"pick":0,"duplicate":false},{"op":"beacon","peer":0},{"op":"reserve","peer":2,"units":1,"placement":"any","target":0,"priority":0,"dupId":false,"minUnits":0,"queue":false,"timeoutMs":0},{"op":"heal"},{"op":"deliver","to":0,"pick":0,"duplicate":false},{"op":"advance","ms":0},{"op":"release","peer":0,"pick":0,"otherCreator":false},{"op":"deliver","to":0,"pick":0,"duplicate":false},{"op":"reserve","peer":0,"units":1,"placement":"any","target":0,"priority":0,"dupId":false,"minUnits":0,"queue":false,"timeoutMs":0},{"op":"squeeze","peer":0,"units":1},{"op":"advance","ms":0},{"op":"deliver","to":0,"pick":0,"duplicate":false},{"op":"release","peer":0,"pick":0,"otherCreator":false},{"op":"reserve","peer":0,"units":1,"placement":"any","target":0,"priority":0,"dupId":true,"minUnits":0,"queue":false,"timeoutMs":1},{"op":"beacon","peer":0}]},
      seed: 0
    }
  ]
  for (const { what, program, seed } of regressions) {
    it(`regression: ${what}`, () => {
      const { net, taken, failures } = runWithCheckpoints(program, seed)
      expect(failures).toEqual([])
      expect(taken.length, 'checkpoints taken').toBeGreaterThan(0)
      for (const t of taken) { checkFromCheckpoint(net, t, `checkpoint seed ${seed}`); checkEpoch(net, t, `checkpoint seed ${seed}`) }
    }, TIMEOUT_MS)
  }

  // Not vacuous: the programs take checkpoints that carry running and queued
  // entries and ended ones, chained ones, and membership changes after a cut.
  it('the checkpoint programs reach cuts with running, queued and ended entries, chains, view changes and ids taken again after the cut (fixed seed 16, 30 programs)', () => {
    const seen = { checkpoints: 0, running: 0, queued: 0, ended: 0, chained: 0, viewChangeAfter: 0, takenAgainAfter: 0 }
    fc.assert(fc.property(fc.oneof(programArb, boundsProgramArb), fc.integer(), (program, seed) => {
      const { net, taken } = runWithCheckpoints(program, seed)
      const res = net.resolveAt(0)
      for (const t of taken) {
        seen.checkpoints++
        if (t.checkpoint.running.length > 0) seen.running++
        if (t.checkpoint.queue.length > 0) seen.queued++
        if (Object.values(t.checkpoint.ended.counts).some(n => n > 0)) seen.ended++
        if (t.chained) seen.chained++
        if (res.views.some(v => v.hlc > t.checkpoint.cut)) seen.viewChangeAfter++
        // An id whose entry ended at or before the cut, taken by an entry after it.
        if (res.conflicts.some(c => (c.endedHlc ?? c.decidedHlc ?? '') <= t.checkpoint.cut && !['IdTaken', 'CreatorNotMember', 'CreatorLeft', 'CreatorEvicted'].includes(c.decisionCode) && c.status !== 'invalid' && (res.verdicts.get(c.id)?.hlc ?? '') > t.checkpoint.cut)) seen.takenAgainAfter++
      }
    }), { seed: 16, numRuns: 30 })
    for (const [what, count] of Object.entries(seen)) expect(count, `${what} in ${JSON.stringify(seen)}`).toBeGreaterThan(0)
  }, TIMEOUT_MS)
})
