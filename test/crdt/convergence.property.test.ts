/**
 * The product's core promise (DESIGN.md §4): the verdicts depend only on the
 * replicated data — not on delivery order, duplication, partitions, or which
 * peer computes them — and a final verdict never changes.
 *
 * fast-check generates a program of writes and network events; every failure
 * prints fast-check's seed and the shrunk program, which replay it exactly.
 */
import * as Y from 'yjs'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { resolve, type Placement, type Resolution } from '../../crdt/index.ts'
import { GiB, MiB, nodeId } from './helpers.ts'
import { seededRandom, YDocNetwork } from './ydoc-network.ts'

const PEERS = 4
const RUNS = Number(process.env.MEMGOSSIP_PROPERTY_RUNS ?? 250)

type Op =
  | { op: 'reserve', peer: number, units: number, placement: 'any' | 'node' | 'all' | 'spread', target: number, priority: number, dupId: boolean }
  | { op: 'release', peer: number, pick: number }
  | { op: 'heartbeat', peer: number }
  | { op: 'capacity', peer: number, units: number, drain: boolean }
  | { op: 'deliver', to: number, pick: number, duplicate: boolean }
  | { op: 'drop', to: number, pick: number }
  | { op: 'sync', a: number, b: number }
  | { op: 'partition', mask: number }
  | { op: 'heal' }
  | { op: 'advance', ms: number }

const peer = fc.integer({ min: 0, max: PEERS - 1 })
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('reserve' as const), peer, units: fc.integer({ min: 1, max: 12 }), placement: fc.constantFrom('any' as const, 'node' as const, 'all' as const, 'spread' as const), target: peer, priority: fc.integer({ min: 0, max: 2 }), dupId: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('release' as const), peer, pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('heartbeat' as const), peer }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('capacity' as const), peer, units: fc.integer({ min: 0, max: 24 }), drain: fc.boolean() }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant('deliver' as const), to: peer, pick: fc.nat(), duplicate: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drop' as const), to: peer, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('sync' as const), a: peer, b: peer }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('partition' as const), mask: fc.integer({ min: 1, max: (1 << PEERS) - 2 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('heal' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 50 }) }) }
)
const programArb = fc.record({
  skew: fc.array(fc.integer({ min: -20, max: 20 }), { minLength: PEERS, maxLength: PEERS }),
  capacity: fc.array(fc.integer({ min: 4, max: 16 }), { minLength: PEERS, maxLength: PEERS }),
  ops: fc.array(opArb, { minLength: 5, maxLength: 60 })
})
type Program = typeof programArb extends fc.Arbitrary<infer T> ? T : never

const UNIT = 512 * MiB

/** Decision signature: what must never change once final. */
function signature (res: Resolution, id: string): string | undefined {
  const v = res.verdicts.get(id)
  return v === undefined ? undefined : `${v.key}|${v.decision}|${v.decisionCode}|${v.nodes.join(',')}|${v.winner ?? ''}`
}

interface Outcome { net: YDocNetwork, finals: Map<string, string>, failures: string[] }

/** Run a program; check the per-step properties (2 and 3) as it goes. */
function run (program: Program): Outcome {
  const ids = Array.from({ length: PEERS }, (_, i) => nodeId(i + 1))
  const net = new YDocNetwork(ids, program.skew)
  // Static membership: everyone joins and publishes capacity, then everyone syncs.
  net.writers.forEach((w, i) => {
    w.join(ids[0], net.wall[i])
    w.capacity(program.capacity[i] * UNIT, 'active', net.wall[i] + 1)
  })
  net.syncAll()
  const finals = new Map<string, string>()
  const failures: string[] = []
  let counter = 0
  const made: Array<{ id: string }> = []

  const check = (step: number): void => {
    for (const [r, res] of net.resolveAll().entries()) {
      for (const node of res.nodes.values()) {
        if (node.committedBytes > node.allocatableBytes) failures.push(`step ${step}: replica ${r} over-commits ${node.id}: ${node.committedBytes} > ${node.allocatableBytes}`)
      }
      for (const v of res.verdicts.values()) {
        if (!v.final) continue
        const sig = signature(res, v.id)!
        const known = finals.get(v.id)
        if (known === undefined) finals.set(v.id, sig)
        else if (known !== sig) failures.push(`step ${step}: replica ${r} final verdict of ${v.id} is ${sig}, was final as ${known}`)
      }
    }
  }

  program.ops.forEach((op, step) => {
    const wall = (p: number): number => { net.wall[p] += 1; return net.wall[p] }
    switch (op.op) {
      case 'reserve': {
        const id = op.dupId && made.length > 0 ? made[counter % made.length].id : `r${counter}`
        counter++
        const placement: Placement = op.placement === 'node'
          ? { kind: 'node', node: ids[op.target] }
          : op.placement === 'spread' ? { kind: 'spread', count: 2 } : { kind: op.placement }
        try {
          net.writers[op.peer].reserve({ id, bytes: op.units * UNIT, placement, priority: op.priority }, wall(op.peer))
          made.push({ id })
        } catch (error) {
          // The same node re-using its own id is refused locally (write-once); another node's id is the IdTaken race.
          expect((error as Error).name).toBe('DuplicateReservationError')
        }
        break
      }
      case 'release':
        if (made.length > 0) net.writers[op.peer].release(made[op.pick % made.length].id, wall(op.peer))
        break
      case 'heartbeat':
        net.writers[op.peer].heartbeat({ totalBytes: 32 * GiB, floorBytes: 0, allocatableBytes: 0, availableBytes: 0, usedBytes: 0 }, wall(op.peer))
        break
      case 'capacity':
        net.writers[op.peer].capacity(op.units * UNIT, op.drain ? 'draining' : 'active', wall(op.peer))
        break
      case 'deliver': net.deliver(op.to, op.pick, op.duplicate); break
      case 'drop': net.drop(op.to, op.pick); break
      case 'sync': net.sync(op.a, op.b); break
      case 'partition': net.group = net.group.map((_, i) => (op.mask >> i) & 1); break
      case 'heal': net.heal(); break
      case 'advance': net.advance(op.ms); break
    }
    check(step)
  })
  net.syncAll()
  // Everyone heartbeats after the merge, so every verdict can become final.
  net.writers.forEach((w, i) => w.heartbeat({ totalBytes: 32 * GiB, floorBytes: 0, allocatableBytes: 0, availableBytes: 0, usedBytes: 0 }, net.wall[i] + 1000))
  net.syncAll()
  check(program.ops.length)
  return { net, finals, failures }
}

describe('convergence properties over an in-memory network of Y.Docs', () => {
  it(`1. once every update is delivered everywhere, every replica yields the same verdict digest (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { net } = run(program)
      const digests = net.resolveAll().map(r => r.digest)
      expect(new Set(digests).size, `digests ${digests.join(' ')}`).toBe(1)
    }), { numRuns: RUNS })
  })

  it(`2. no node is ever committed beyond its allocatable in any replica, at any step (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { failures } = run(program)
      expect(failures.filter(f => f.includes('over-commits'))).toEqual([])
    }), { numRuns: RUNS })
  })

  it(`3. a verdict final at any replica at any moment never changes later (${RUNS} programs)`, () => {
    fc.assert(fc.property(programArb, (program) => {
      const { net, finals, failures } = run(program)
      expect(failures.filter(f => f.includes('final verdict'))).toEqual([])
      // …and it is what every replica holds once converged.
      for (const res of net.resolveAll()) {
        for (const [id, sig] of finals) expect(signature(res, id), id).toBe(sig)
        expect(res.pending).toBe(0)
      }
    }), { numRuns: RUNS })
  })

  it(`4. the result does not depend on the order updates were applied (${RUNS} programs)`, () => {
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
    }), { numRuns: RUNS })
  })
})
