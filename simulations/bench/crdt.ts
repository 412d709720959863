/**
 * Ledger-core benchmark (issue: the ledger core; docs/design.md "State",
 * "Resolution", "Ledger size"):
 * - `resolve()` at 100 nodes × 1,000 reservations and 1,000 × 10,000;
 * - `fit()` p50/p99 at the same sizes;
 * - encoded ledger size after 1,000,000 heartbeats from 100 nodes, and bytes
 *   kept per reservation made and released.
 *
 * Run: `npm run bench:crdt [-- --quick]`. Prints a table, writes
 * simulations/results/crdt-<date>.json. Targets: fit() < 1 ms and resolve()
 * < 50 ms at 1,000 × 10,000; ≤ 100 bytes per node under heartbeats.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import * as Y from 'yjs'
import { fit, LedgerWriter, readLedger, resolve, type Placement } from '../../crdt/index.ts'
import { parseArgs, UsageError } from '../../cli/args.ts'

const GiB = 1024 ** 3
const MiB = 1024 ** 2

export interface CrdtBenchResult {
  resolve: Array<{ nodes: number, reservations: number, readMs: number, p50Ms: number, p99Ms: number, runs: number }>
  fit: Array<{ nodes: number, reservations: number, p50Ms: number, p99Ms: number, runs: number }>
  heartbeats: { nodes: number, heartbeats: number, encodedBytes: number, bytesPerNode: number, usPerHeartbeat: number }
  churn: { reservations: number, encodedBytes: number, bytesPerReservation: number }
  targets: Array<{ name: string, target: string, value: number, met: boolean }>
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

/** A ledger of `nodes` members and `reservations` mixed placements, in one document. */
export function buildLedger (nodes: number, reservations: number): Y.Doc {
  const doc = new Y.Doc()
  const ids = Array.from({ length: nodes }, (_, i) => `12D3KooWbench${String(i).padStart(5, '0')}`)
  const writers = ids.map(id => new LedgerWriter(doc, id))
  let wall = 1_700_000_000_000
  writers.forEach((_, i) => { writers[0].admit(ids[i], (16 + (i % 48)) * GiB, ++wall) })
  for (let r = 0; r < reservations; r++) {
    const w = writers[r % nodes]
    const kind = r % 50 === 0 ? 'spread' : r % 7 === 0 ? 'node' : 'any'
    const placement = kind === 'node' ? { kind: 'node' as const, node: ids[(r * 31) % nodes] } : kind === 'spread' ? { kind: 'spread' as const, count: 3 } : { kind: 'any' as const }
    w.reserve({ id: `dep-${r}`, bytes: (64 + (r * 37) % 2048) * MiB, placement, priority: r % 3 }, ++wall)
    if (r % 10 === 9) w.release(`dep-${r - 5}`, ids[(r - 5) % nodes], ++wall)
  }
  for (const w of writers) w.heartbeat({ totalBytes: 64 * GiB, floorBytes: GiB, allocatableBytes: 32 * GiB, availableBytes: 40 * GiB, usedBytes: 24 * GiB }, ++wall)
  return doc
}

/** The i-th question of the fit() benchmarks: placements spread:3, all, any, any in turn, 1 to 8 GiB. */
export function fitQuestion (i: number): { bytes: number, placement: Placement } {
  const placement: Placement = i % 4 === 0 ? { kind: 'spread', count: 3 } : i % 4 === 1 ? { kind: 'all' } : { kind: 'any' }
  return { bytes: (1 + (i % 8)) * GiB, placement }
}

export function runCrdtBench (options: { quick?: boolean, log?: (line: string) => void } = {}): CrdtBenchResult {
  const log = options.log ?? ((line: string) => console.log(line))
  const sizes: Array<[number, number]> = [[100, 1000], [1000, 10_000]]
  const result: CrdtBenchResult = { resolve: [], fit: [], heartbeats: undefined as never, churn: undefined as never, targets: [] }

  for (const [nodes, reservations] of sizes) {
    log(`building ledger ${nodes} nodes × ${reservations} reservations…`)
    const doc = buildLedger(nodes, reservations)
    const runs = options.quick === true ? 10 : 30
    let t = performance.now()
    const snapshot = readLedger(doc)
    const readMs = performance.now() - t
    const times: number[] = []
    let res = resolve(snapshot)
    for (let i = 0; i < runs; i++) {
      t = performance.now()
      res = resolve(doc)
      times.push(performance.now() - t)
      process.stdout.write(`\r  resolve ${i + 1}/${runs}`)
    }
    process.stdout.write('\n')
    times.sort((a, b) => a - b)
    result.resolve.push({ nodes, reservations, readMs, p50Ms: percentile(times, 0.5), p99Ms: percentile(times, 0.99), runs })
    const fitTimes: number[] = []
    const fitRuns = options.quick === true ? 200 : 2000
    for (let i = 0; i < fitRuns; i++) {
      const question = fitQuestion(i)
      t = performance.now()
      fit(res, question)
      fitTimes.push(performance.now() - t)
    }
    fitTimes.sort((a, b) => a - b)
    result.fit.push({ nodes, reservations, p50Ms: percentile(fitTimes, 0.5), p99Ms: percentile(fitTimes, 0.99), runs: fitRuns })
  }

  const hbNodes = 100
  const hbTotal = options.quick === true ? 100_000 : 1_000_000
  log(`${hbTotal} heartbeats from ${hbNodes} nodes…`)
  {
    // As in production: every node is its own Yjs client writing only its own
    // key; the cluster's document is the merge of all of them.
    const figures = (i: number) => ({ totalBytes: 64 * GiB, floorBytes: GiB, allocatableBytes: 32 * GiB, availableBytes: (20 + (i % 17)) * GiB, usedBytes: 24 * GiB })
    const docs = Array.from({ length: hbNodes }, () => new Y.Doc())
    const writers = docs.map((doc, i) => new LedgerWriter(doc, `12D3KooWhb${String(i).padStart(4, '0')}`))
    const merged = new Y.Doc()
    let wall = 1_700_000_000_000
    const t = performance.now()
    for (let i = 0; i < hbTotal; i++) {
      writers[i % hbNodes].heartbeat(figures(i), wall += 1)
      if (i % 100_000 === 0) process.stdout.write(`\r  ${i}/${hbTotal}`)
    }
    process.stdout.write('\n')
    const elapsed = performance.now() - t
    for (const doc of docs) Y.applyUpdate(merged, Y.encodeStateAsUpdate(doc))
    const encodedBytes = Y.encodeStateAsUpdate(merged).length
    // Growth = size beyond one live heartbeat per node.
    const oneEach = new Y.Doc()
    writers.forEach((w, i) => {
      const d = new Y.Doc()
      new LedgerWriter(d, w.node).heartbeat(figures(i), wall)
      Y.applyUpdate(oneEach, Y.encodeStateAsUpdate(d))
    })
    const baseline = Y.encodeStateAsUpdate(oneEach).length
    result.heartbeats = { nodes: hbNodes, heartbeats: hbTotal, encodedBytes, bytesPerNode: Math.max(0, encodedBytes - baseline) / hbNodes, usPerHeartbeat: (elapsed * 1000) / hbTotal }
  }

  const churn = options.quick === true ? 2000 : 10_000
  log(`${churn} reservations made and released…`)
  {
    const doc = new Y.Doc()
    const w = new LedgerWriter(doc, '12D3KooWchurn')
    let wall = 1_700_000_000_000
    w.admit(w.node, 64 * GiB, ++wall)
    const before = Y.encodeStateAsUpdate(doc).length
    for (let i = 0; i < churn; i++) {
      w.reserve({ id: `deploy-${i}`, bytes: GiB, placement: { kind: 'any' } }, ++wall)
      w.release(`deploy-${i}`, w.node, ++wall)
    }
    const encodedBytes = Y.encodeStateAsUpdate(doc).length
    result.churn = { reservations: churn, encodedBytes, bytesPerReservation: (encodedBytes - before) / churn }
  }

  const big = result.resolve[result.resolve.length - 1]
  const bigFit = result.fit[result.fit.length - 1]
  result.targets = [
    { name: 'resolve() p50 at 1,000 × 10,000', target: '< 50 ms', value: big.p50Ms, met: big.p50Ms < 50 },
    { name: 'fit() p99 at 1,000 × 10,000', target: '< 1 ms', value: bigFit.p99Ms, met: bigFit.p99Ms < 1 },
    { name: 'ledger growth per node under heartbeats', target: '≤ 100 B', value: result.heartbeats.bytesPerNode, met: result.heartbeats.bytesPerNode <= 100 }
  ]
  return result
}

function printCrdt (r: CrdtBenchResult): void {
  console.log('\nresolve()')
  for (const x of r.resolve) console.log(`  ${x.nodes} nodes × ${x.reservations} reservations: p50 ${x.p50Ms.toFixed(2)} ms, p99 ${x.p99Ms.toFixed(2)} ms (readLedger ${x.readMs.toFixed(2)} ms, ${x.runs} runs)`)
  console.log('fit()')
  for (const x of r.fit) console.log(`  ${x.nodes} nodes × ${x.reservations} reservations: p50 ${(x.p50Ms * 1000).toFixed(0)} µs, p99 ${(x.p99Ms * 1000).toFixed(0)} µs (${x.runs} calls)`)
  console.log(`heartbeats: ${r.heartbeats.heartbeats} from ${r.heartbeats.nodes} nodes → ${r.heartbeats.encodedBytes} B encoded, ${r.heartbeats.bytesPerNode.toFixed(1)} B growth per node, ${r.heartbeats.usPerHeartbeat.toFixed(1)} µs per heartbeat`)
  console.log(`churn: ${r.churn.reservations} reserved+released → ${r.churn.encodedBytes} B, ${r.churn.bytesPerReservation.toFixed(1)} B kept per reservation`)
  console.log('targets')
  for (const t of r.targets) console.log(`  ${t.met ? 'met   ' : 'MISSED'} ${t.name}: ${t.value.toFixed(3)} (target ${t.target})`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let quick = false
  try {
    const { positionals, flags } = parseArgs(process.argv.slice(2), { quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } })
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
    if (flags.help === true) { console.log('Usage: npm run bench:crdt [-- --quick]'); process.exit(0) }
    quick = flags.quick === true
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`bench:crdt: ${error.message}\nUsage: npm run bench:crdt [-- --quick]`)
    process.exit(2)
  }
  const r = runCrdtBench({ quick })
  printCrdt(r)
  mkdirSync('simulations/results', { recursive: true })
  const file = `simulations/results/crdt-${new Date().toISOString().slice(0, 10)}.json`
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, quick, ...r }, null, 2))
  console.log(`\nwrote ${file}`)
}
