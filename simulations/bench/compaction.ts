/**
 * How to remove dead entries before a checkpoint's cut (issue 16,
 * docs/decisions.md "Compaction: deletes or a new epoch"): the Yjs document's
 * size after N reservations made and released at a constant live count,
 * under each option.
 *
 * - `none`: nothing removed (today).
 * - `delete`: every writer deletes its own dead entries (reservations it
 *   created that ended, the releases it wrote) once they are before the cut —
 *   one writer per key kept; Yjs keeps a tombstone (a delete-set range and
 *   the struct's id) for each.
 * - `epoch`: a new document seeded with the live entries only (what a
 *   checkpoint at the cut plus the live document would carry): no tombstones.
 *
 * For each: the encoded document (what sync and the store's snapshot carry),
 * the heap a replica of it takes after loading it in a fresh Y.Doc, and its
 * struct count. One process, in memory; run
 *
 *   node --expose-gc --import tsx simulations/bench/compaction.ts [--reservations 20000] [--live 150] [--writers 3] [--every 1000]
 *
 * JSON on stdout. Without --expose-gc the heap figures are null.
 */
import * as Y from 'yjs'
import { LedgerWriter, ledgerMaps } from '../../crdt/index.ts'
import { numberFlag, parseArgs, UsageError } from '../../cli/args.ts'

const MiB = 1024 ** 2

export interface CompactionFigures {
  option: 'none' | 'delete' | 'epoch'
  reservations: number
  live: number
  encodedBytes: number
  bytesPerReservationMade: number
  heapBytes: number | null
  structs: number
}

function gc (): boolean {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) return false
  g(); g()
  return true
}

/** Heap a fresh replica takes to hold this encoded document. */
function heapOf (update: Uint8Array): { heapBytes: number | null, structs: number } {
  const hasGc = gc()
  const before = process.memoryUsage().heapUsed
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  gc()
  const heapBytes = hasGc ? process.memoryUsage().heapUsed - before : null
  let structs = 0
  for (const list of doc.store.clients.values()) structs += list.length
  doc.destroy()
  return { heapBytes, structs }
}

/** Make and release `reservations` at `live` live over `writers` nodes; compact every `every` under the option. */
export function churn (option: CompactionFigures['option'], reservations: number, live: number, writers: number, every: number): CompactionFigures {
  let doc = new Y.Doc()
  const ids = Array.from({ length: writers }, (_, i) => `node-${i}`)
  let w = ids.map(id => new LedgerWriter(doc, id))
  let wall = 1_700_000_000_000
  w[0].admit(ids[0], 1024 * 1024 * MiB, wall)
  for (let i = 1; i < writers; i++) w[0].admit(ids[i], 1024 * 1024 * MiB, ++wall)
  const running: Array<{ id: string, creator: number }> = []
  const dead: Array<{ id: string, creator: number, by: number }> = []
  for (let n = 0; n < reservations; n++) {
    const creator = n % writers
    if (running.length >= live) {
      const r = running.shift()!
      const by = (creator + 1) % writers
      w[by].release(r.id, ids[r.creator], ++wall)
      dead.push({ ...r, by })
    }
    const id = `deploy-${n}`
    w[creator].reserve({ id, bytes: 16 * MiB, placement: { kind: 'any' }, priority: 0 }, ++wall)
    running.push({ id, creator })
    if ((n + 1) % every !== 0 || option === 'none') continue
    if (option === 'delete') {
      // Each writer deletes its own keys: the entry by its creator, the release by its releaser.
      const maps = ledgerMaps(doc)
      for (const d of dead) {
        doc.transact(() => { maps.reservations.delete(`${d.id}@${ids[d.creator]}`) }, 'local')
        doc.transact(() => { maps.releases.delete(`${d.id}@${ids[d.creator]}@${ids[d.by]}`) }, 'local')
      }
      dead.length = 0
    } else {
      // A new epoch: a fresh document seeded with what is live (the checkpoint carries the rest).
      const maps = ledgerMaps(doc)
      const next = new Y.Doc()
      const nextMaps = ledgerMaps(next)
      next.transact(() => {
        for (const name of ['nodes', 'capacity', 'membership'] as const) for (const [k, v] of maps[name].entries()) nextMaps[name].set(k, v)
        for (const r of running) {
          const key = `${r.id}@${ids[r.creator]}`
          nextMaps.reservations.set(key, maps.reservations.get(key))
        }
      })
      const clocks = w.map(x => x.clock)
      doc.destroy()
      doc = next
      w = ids.map((id, i) => { const x = new LedgerWriter(doc, id); x.observe(clocks[i].peek(), wall); return x })
      dead.length = 0
    }
  }
  const update = Y.encodeStateAsUpdate(doc)
  const { heapBytes, structs } = heapOf(update)
  return { option, reservations, live, encodedBytes: update.byteLength, bytesPerReservationMade: Math.round(update.byteLength / reservations * 10) / 10, heapBytes, structs }
}

const HELP = 'usage: node --expose-gc --import tsx simulations/bench/compaction.ts [--reservations 20000] [--live 150] [--writers 3] [--every 1000]'

async function main (argv: string[]): Promise<number> {
  try {
    const { flags } = parseArgs(argv, { help: { type: 'boolean', short: 'h' }, reservations: { type: 'string' }, live: { type: 'string' }, writers: { type: 'string' }, every: { type: 'string' } })
    if (flags.help === true) { process.stdout.write(HELP + '\n'); return 0 }
    const reservations = numberFlag(flags, 'reservations', { integer: true, min: 1 }) ?? 20_000
    const live = numberFlag(flags, 'live', { integer: true, min: 1 }) ?? 150
    const writers = numberFlag(flags, 'writers', { integer: true, min: 1, max: 64 }) ?? 3
    const every = numberFlag(flags, 'every', { integer: true, min: 1 }) ?? 1000
    const results = (['none', 'delete', 'epoch'] as const).map(option => churn(option, reservations, live, writers, every))
    process.stdout.write(JSON.stringify({ reservations, live, writers, every, results }, null, 2) + '\n')
    return 0
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`compaction: ${err.message}\n${HELP}\n`)
    return 2
  }
}

if (process.argv[1]?.endsWith('compaction.ts') === true) process.exitCode = await main(process.argv.slice(2))
