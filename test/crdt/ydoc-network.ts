/**
 * An in-memory network of Y.Docs for property tests, in the spirit of yjs's
 * own test connector: every local write becomes a message to every other peer;
 * the test program decides when each message is delivered, duplicated, dropped,
 * or held back by a partition, and finally runs anti-entropy (state-vector
 * exchange) so that every replica has everything.
 */
import * as Y from 'yjs'
import { latestWithin, LedgerWriter, resolve, type Resolution } from '../../crdt/index.ts'

/** Remote stamps further ahead of a peer's wall clock than this do not drag its clock (as in the agent). */
const MAX_DRAG_MS = 60_000

export interface InFlight { from: number, update: Uint8Array }

export class YDocNetwork {
  readonly docs: Y.Doc[] = []
  readonly writers: LedgerWriter[] = []
  /** Messages waiting at each receiver. */
  readonly inbox: InFlight[][] = []
  /** Every update ever produced, for order-independence checks. */
  readonly log: Uint8Array[] = []
  /** Group of each peer; messages cross only within a group. */
  group: number[]
  /** Wall clock per peer (skewed). */
  readonly wall: number[]

  constructor (readonly ids: string[], skewMs: number[] = []) {
    this.group = ids.map(() => 0)
    this.wall = ids.map((_, i) => 1_000_000 + (skewMs[i] ?? 0))
    ids.forEach((id, i) => {
      const doc = new Y.Doc()
      doc.clientID = i + 1
      doc.on('update', (update: Uint8Array, origin: unknown) => {
        if (origin !== 'remote') {
          this.log.push(update)
          for (let j = 0; j < ids.length; j++) if (j !== i) this.inbox[j].push({ from: i, update })
        }
      })
      this.docs.push(doc)
      this.inbox.push([])
      this.writers.push(new LedgerWriter(doc, id))
    })
  }

  advance (ms: number): void {
    for (let i = 0; i < this.wall.length; i++) this.wall[i] += ms
  }

  /** Deliver message `pick` (mod queue length) of peer `to`'s inbox, if its sender is reachable. */
  deliver (to: number, pick: number, keep = false): void {
    const reachable = this.inbox[to].filter(m => this.group[m.from] === this.group[to])
    if (reachable.length === 0) return
    const message = reachable[pick % reachable.length]
    if (!keep) this.inbox[to].splice(this.inbox[to].indexOf(message), 1)
    Y.applyUpdate(this.docs[to], message.update, 'remote')
    this.observe(to)
  }

  /** A peer merges the latest stamp it holds into its clock, as the agent does after every update (unless far ahead). */
  observe (i: number): void {
    const latest = latestWithin(resolve(this.docs[i]), this.wall[i] + MAX_DRAG_MS)
    if (latest !== undefined) this.writers[i].observe(latest, this.wall[i])
  }

  /** Peer `i`'s resolution, with finality as that peer computes it (its own stream complete up to its clock). */
  resolveAt (i: number): Resolution {
    return resolve(this.docs[i], { self: this.ids[i], selfClock: this.writers[i].clock.peek() })
  }

  drop (to: number, pick: number): void {
    if (this.inbox[to].length > 0) this.inbox[to].splice(pick % this.inbox[to].length, 1)
  }

  /** Anti-entropy between two reachable peers: each sends what the other's state vector lacks. */
  sync (a: number, b: number): void {
    if (this.group[a] !== this.group[b]) return
    const da = this.docs[a]
    const db = this.docs[b]
    const toB = Y.encodeStateAsUpdate(da, Y.encodeStateVector(db))
    const toA = Y.encodeStateAsUpdate(db, Y.encodeStateVector(da))
    Y.applyUpdate(db, toB, 'remote')
    Y.applyUpdate(da, toA, 'remote')
    this.observe(a)
    this.observe(b)
  }

  heal (): void {
    this.group = this.group.map(() => 0)
  }

  /** Everyone syncs with everyone: after this, every replica holds every update. */
  syncAll (): void {
    this.heal()
    for (let a = 0; a < this.docs.length; a++) for (let b = a + 1; b < this.docs.length; b++) this.sync(a, b)
    for (let a = 0; a < this.docs.length; a++) for (let b = a + 1; b < this.docs.length; b++) this.sync(a, b)
    for (const q of this.inbox) q.length = 0
  }

  resolveAll (): Resolution[] {
    return this.docs.map((_, i) => this.resolveAt(i))
  }
}

export { seededRandom } from '../../simulations/support/random.ts'
