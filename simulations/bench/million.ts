/**
 * Memory and disk after a million reservations (issue 16, docs/benchmarks.md
 * "Bounded ledger"): a synthetic writer makes and releases `--reservations`
 * at a constant `--live`, in a three-member ledger, with compaction by epochs
 * (the code the agent runs: crdt/epoch.ts's checkpoint, seed and carry-over,
 * and resolution from the checkpoint) and without. For each, at the end: the
 * ledger's snapshot on disk (agent/store.ts, as the agent writes it), and the
 * process's heap and RSS after garbage collection while it holds the
 * document and its resolution — what an agent holds.
 *
 *   npx tsx simulations/bench/million.ts [--reservations 1000000] [--live 1000] [--every 20000] [--modes epochs,none] [--out DIR]
 *
 * Each mode runs in its own child process (`node --expose-gc`), so the
 * figures of one are not the other's garbage. It writes `million.json` in
 * `--out` (default simulations/results) and prints progress on stderr. The
 * writer writes straight into the document (one Yjs transaction per entry,
 * as the agent's writer does); the agent's per-write work (durable append,
 * gossip, re-resolution) is not in it — resolution runs at each checkpoint
 * and at the end.
 */
import '../../agent/shim.ts'
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import {
  carryOver, LedgerWriter, readLedger, replayFrom, replayLedger, finishResolution, readMapRecord, MAP_NODES, seedEpoch, stableCut, takeCheckpoint,
  type Checkpoint, type Resolution
} from '../../crdt/index.ts'
import { numberFlag, parseArgs, UsageError, type FlagSpec } from '../../cli/args.ts'
import { LedgerStore } from '../../agent/store.ts'

const MiB = 1024 ** 2
const NODES = ['node-a', 'node-b', 'node-c']

export interface MillionFigures {
  mode: 'epochs' | 'none'
  reservations: number
  live: number
  epochs: number
  /** The snapshot file the store writes (header, CRC and the encoded document). */
  diskBytes: number
  /** Entries in the document at the end. */
  entries: number
  heapBytes: number
  rssBytes: number
  /** Wall time of the writer and the compactions, and of the final resolution. */
  writeSeconds: number
  resolveSeconds: number
  /** What the final resolution says: the live count must be `live` in both modes. */
  running: number
  released: number
}

function gc (): void {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) throw new Error('run with node --expose-gc (the parent does)')
  g(); g()
}

/** Resolution of a document, from its epoch's checkpoint when it has one, with every member's beacon at its clock now (all of them hold everything: one process). */
function resolveAll (doc: Y.Doc, checkpoint: Checkpoint | undefined, writers: LedgerWriter[], wallMs: number): Resolution {
  const snapshot = readLedger(doc)
  const replayed = checkpoint !== undefined ? replayFrom(checkpoint, snapshot) : replayLedger(snapshot)
  const beacons = new Map(writers.map((w, i) => { const b = w.beacon(wallMs); return [NODES[i], [{ ...b, seen: b.hlc }]] }))
  return finishResolution(replayed, readMapRecord(doc, MAP_NODES), { self: NODES[0], selfClock: writers[0].clock.peek(), beacons })
}

export async function runMode (mode: MillionFigures['mode'], reservations: number, live: number, every: number, log: (line: string) => void): Promise<MillionFigures> {
  let doc = new Y.Doc({ gc: true })
  let writers = NODES.map(id => new LedgerWriter(doc, id))
  let wall = 1_800_000_000_000
  writers[0].admit(NODES[0], 1024 * 1024 * MiB, ++wall)
  for (let i = 1; i < NODES.length; i++) writers[0].admit(NODES[i], 1024 * 1024 * MiB, ++wall)
  let checkpoint: Checkpoint | undefined
  let epochs = 0
  const running: Array<{ id: string, creator: number }> = []
  const started = Date.now()
  let ended = 0
  for (let n = 0; n < reservations; n++) {
    const creator = n % NODES.length
    if (running.length >= live) {
      const r = running.shift()!
      writers[(creator + 1) % NODES.length].release(r.id, NODES[r.creator], ++wall)
      ended++
    }
    writers[creator].reserve({ id: `deploy-${n}`, bytes: 16 * MiB, placement: { kind: 'any' } }, ++wall)
    running.push({ id: `deploy-${n}`, creator })
    if ((n + 1) % 100_000 === 0) log(`  ${mode}: ${n + 1} made, ${epochs} epochs, ${((Date.now() - started) / 1000).toFixed(0)} s, heap ${(process.memoryUsage().heapUsed / MiB).toFixed(0)} MiB`)
    if (mode !== 'epochs' || ended < every) continue
    // A move, as every peer makes it (agent/epochs.ts): the checkpoint at the stable cut, the seed, the carry-over.
    const res = resolveAll(doc, checkpoint, writers, ++wall)
    const clock = writers[0].clock.now(++wall)
    const cut = stableCut(res)
    if (cut === undefined) continue
    const taken = takeCheckpoint(readLedger(doc), cut, checkpoint)
    const next = new Y.Doc({ gc: true })
    epochs++
    Y.applyUpdate(next, seedEpoch({ epoch: epochs, cut, digest: taken.digest, proposer: NODES[0], hlc: clock, seq: 1 }, taken))
    next.clientID = 1 + epochs
    carryOver(doc, next, cut, { verdicts: res })
    const positions = writers.map(w => ({ seq: w.lastSeq, clock: w.clock.peek() }))
    doc.destroy()
    doc = next
    writers = NODES.map((id, i) => { const w = new LedgerWriter(doc, id); w.resume({ seq: positions[i].seq, hlc: positions[i].clock }, wall); return w })
    checkpoint = taken
    ended = 0
  }
  const writeSeconds = (Date.now() - started) / 1000
  const resolveStart = Date.now()
  const res = resolveAll(doc, checkpoint, writers, ++wall)
  const resolveSeconds = (Date.now() - resolveStart) / 1000
  const dir = await mkdtemp(join(tmpdir(), 'memgossip-million-'))
  let diskBytes = 0
  try {
    const { store } = await LedgerStore.open(dir, { fsync: false })
    await store.compact(Y.encodeStateAsUpdate(doc), { epoch: epochs })
    diskBytes = store.sizeBytes()
    await store.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  gc()
  const memory = process.memoryUsage()
  const entries = ['reservations', 'releases'].reduce((s, m) => s + doc.getMap(m).size, 0)
  const figures: MillionFigures = {
    mode,
    reservations,
    live,
    epochs,
    diskBytes,
    entries,
    heapBytes: memory.heapUsed,
    rssBytes: memory.rss,
    writeSeconds,
    resolveSeconds,
    running: [...res.verdicts.values()].filter(v => v.status === 'admitted').length,
    released: res.counts.released
  }
  // Hold the document and the resolution until measured (as an agent holds them).
  if (res.digest === '' || doc.clientID < 0) log('unreachable')
  return figures
}

const FLAGS: Record<string, FlagSpec> = {
  help: { type: 'boolean', short: 'h' },
  reservations: { type: 'string' },
  live: { type: 'string' },
  every: { type: 'string' },
  modes: { type: 'string' },
  mode: { type: 'string' },
  out: { type: 'string' }
}
const HELP = 'usage: npx tsx simulations/bench/million.ts [--reservations 1000000] [--live 1000] [--every 20000] [--modes epochs,none] [--out DIR]'

async function child (mode: string, args: string[], log: (line: string) => void): Promise<MillionFigures> {
  const proc = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=16384', '--import', 'tsx', fileURLToPath(import.meta.url), ...args, '--mode', mode], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr.on('data', (d: Buffer) => { for (const line of d.toString().split('\n')) if (line !== '') log(line) })
  const code = await new Promise<number | null>(resolve => proc.once('exit', resolve))
  if (code !== 0) throw new Error(`mode ${mode} exited with ${code}`)
  return JSON.parse(out) as MillionFigures
}

async function main (argv: string[]): Promise<number> {
  const { flags } = parseArgs(argv, FLAGS)
  if (flags.help === true) { process.stdout.write(HELP + '\n'); return 0 }
  const reservations = numberFlag(flags, 'reservations', { integer: true, min: 1 }) ?? 1_000_000
  const live = numberFlag(flags, 'live', { integer: true, min: 1 }) ?? 1000
  const every = numberFlag(flags, 'every', { integer: true, min: 1 }) ?? 20_000
  const log = (line: string): void => { process.stderr.write(line + '\n') }
  if (typeof flags.mode === 'string') {
    if (flags.mode !== 'epochs' && flags.mode !== 'none') throw new UsageError(`--mode: '${flags.mode}' is not epochs or none`)
    process.stdout.write(JSON.stringify(await runMode(flags.mode, reservations, live, every, log)) + '\n')
    return 0
  }
  const modes = (typeof flags.modes === 'string' ? flags.modes : 'epochs,none').split(',')
  const results: MillionFigures[] = []
  for (const mode of modes) {
    log(`million: ${mode}, ${reservations} reservations at ${live} live${mode === 'epochs' ? `, an epoch every ${every} ended` : ''}…`)
    results.push(await child(mode, ['--reservations', String(reservations), '--live', String(live), '--every', String(every)], log))
    const r = results[results.length - 1]
    log(`million: ${mode}: disk ${(r.diskBytes / MiB).toFixed(2)} MiB, heap ${(r.heapBytes / MiB).toFixed(1)} MiB, RSS ${(r.rssBytes / MiB).toFixed(1)} MiB, ${r.entries} entries, ${r.epochs} epochs, ${r.running} running; write ${r.writeSeconds.toFixed(0)} s, resolve ${r.resolveSeconds.toFixed(1)} s`)
  }
  const out = typeof flags.out === 'string' ? flags.out : 'simulations/results'
  await mkdir(out, { recursive: true })
  await writeFile(join(out, 'million.json'), JSON.stringify({ reservations, live, every, results }, null, 2) + '\n')
  process.stdout.write(JSON.stringify(results) + '\n')
  return 0
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, (error: unknown) => {
    process.stderr.write(`million: ${(error as Error).message}\n`)
    process.exitCode = error instanceof UsageError ? 2 : 1
  })
}
