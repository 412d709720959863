import * as Y from 'yjs'
import { LedgerWriter, type Placement } from '../../crdt/index.ts'

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

  /** Join nodes (the first sponsors itself, the rest name it) with allocatable bytes. */
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
    this.writer(id).join(sponsor ?? first, this.tick())
    this.writer(id).capacity(allocatableBytes, 'active', this.tick())
  }

  reserve (by: string, id: string, bytes: number, placement: Placement = { kind: 'any' }, priority = 0): void {
    this.writer(by).reserve({ id, bytes, placement, priority }, this.tick())
  }

  release (by: string, id: string): void {
    this.writer(by).release(id, this.tick())
  }

  capacity (id: string, bytes: number, state: 'active' | 'draining' | 'left' = 'active'): void {
    this.writer(id).capacity(bytes, state, this.tick())
  }

  /** Every writer heartbeats now, which makes everything before final. */
  heartbeatAll (): void {
    for (const w of this.writers.values()) {
      w.heartbeat({ totalBytes: 0, floorBytes: 0, allocatableBytes: 0, availableBytes: 0, usedBytes: 0 }, this.tick())
    }
  }
}
