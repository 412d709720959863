import * as Y from 'yjs'
import { LedgerWriter, resolve, viewDigest, type NodeId, type Placement, type StreamPosition } from '../../crdt/index.ts'

export const MiB = 1024 ** 2
export const GiB = 1024 ** 3

/** Node ids shaped like libp2p's, sorted n1 < n2 < … for readable tie-breaks. */
export const nodeId = (i: number): string => `12D3KooWnode${String(i).padStart(3, '0')}`

/**
 * A ledger in one document with one writer per node: enough for table tests of
 * resolution, which depends on the document's content only.
 */
export class TestLedger {
  readonly doc = new Y.Doc()
  readonly writers = new Map<string, LedgerWriter>()
  /** Wall clock for the next write; every write advances it by 1 ms. */
  wallMs = 1_000_000

  /** Creator of the first entry written for each id (what `release` ends by default). */
  readonly creators = new Map<string, string>()

  /** Admit nodes with allocatable bytes (the first admits itself, the first admits the rest). */
  constructor (nodes: Record<string, number> = {}) {
    for (const [id, bytes] of Object.entries(nodes)) this.join(id, bytes)
  }

  tick (): number {
    return ++this.wallMs
  }

  writer (id: string): LedgerWriter {
    let w = this.writers.get(id)
    if (w === undefined) {
      w = new LedgerWriter(this.doc, id)
      this.writers.set(id, w)
    }
    return w
  }

  join (id: string, allocatableBytes: number, sponsor?: string): void {
    const first = this.writers.size === 0 ? id : [...this.writers.keys()][0]
    this.writer(id)
    this.writer(sponsor ?? first).admit(id, allocatableBytes, this.tick())
  }

  reserve (by: string, id: string, bytes: number, placement: Placement = { kind: 'any' }, priority = 0): void {
    this.writer(by).reserve({ id, bytes, placement, priority }, this.tick())
    if (!this.creators.has(id)) this.creators.set(id, by)
  }

  release (by: string, id: string, creator = this.creators.get(id) ?? by): void {
    this.writer(by).release(id, creator, this.tick())
  }

  /** What `by` holds of each node's stream (for eviction proposals and acknowledgements). */
  positions (nodes: NodeId[]): Record<NodeId, StreamPosition> {
    const res = resolve(this.doc)
    return Object.fromEntries(nodes.map(n => [n, { seq: res.nodes.get(n)?.lastSeq ?? 0, hlc: res.nodes.get(n)?.lastHlc }]))
  }

  /** `by` proposes evicting `targets` from the current view; returns the proposal key. */
  propose (by: string, targets: NodeId[], force = false): string {
    return this.writer(by).proposeEviction(targets, viewDigest(resolve(this.doc).members), this.positions(targets), this.tick(), { force })
  }

  ack (by: string, proposal: string, targets: NodeId[]): void {
    const p = resolve(this.doc).proposals.find(x => x.key === proposal)
    if (p === undefined) throw new Error(`no proposal ${proposal}`)
    this.writer(by).ackEviction(p, this.positions(targets), this.tick())
  }

  /** One beacon from `id`, announcing its completeness line. */
  beacon (id: string): void {
    const w = this.writer(id)
    const seen = resolve(this.doc, { self: id, selfClock: w.clock.peek() }).seen
    w.heartbeat({ totalBytes: 0, floorBytes: 0, allocatableBytes: 0, availableBytes: 0, usedBytes: 0 }, this.tick(), seen)
  }

  capacity (id: string, bytes: number, state: 'active' | 'cordoned' | 'draining' | 'left' = 'active'): void {
    this.writer(id).capacity(bytes, state, this.tick())
  }

  /**
   * Two rounds of beacons from every writer: the first moves every clock past
   * what was written, the second announces that everyone saw it — which makes
   * everything before final.
   */
  heartbeatAll (): void {
    for (let round = 0; round < 2; round++) for (const id of this.writers.keys()) this.beacon(id)
  }
}
