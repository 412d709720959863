/**
 * An in-memory network of Y.Docs for property tests, in the spirit of yjs's
 * own test connector: every local write becomes a message to every other peer;
 * the test program decides when each message is delivered, duplicated, dropped,
 * or held back by a partition, and finally runs anti-entropy (state-vector
 * exchange) so that every replica has everything.
 */
import * as Y from 'yjs'
import { LedgerWriter, resolve, type Resolution } from '../../crdt/index.ts'

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
    return this.docs.map(d => resolve(d))
  }
}

export { seededRandom } from '../../simulations/random.ts'
