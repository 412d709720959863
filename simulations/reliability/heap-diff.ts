/**
 * Where an agent's memory goes under steady churn (issue 16, docs/decisions.md
 * "Heap findings").
 *
 *   npx tsx simulations/reliability/heap-diff.ts run [--minutes 15] [--warmup-minutes 2] [--live 150] [--rate 4] [--peers 1] [--snapshots 2] [--compact-after N] [--node-arg FLAG]… [--out DIR]
 *   npx tsx simulations/reliability/heap-diff.ts diff BEFORE.heapsnapshot AFTER.heapsnapshot [--made N] [--top 40]
 *
 * `run` starts real agent processes (the compiled CLI, as the benchmark does:
 * `--local-cluster --fake-memory 64GiB`), agent 0 with
 * `--heapsnapshot-signal=SIGUSR2`, plus `--peers` more agents in its cluster,
 * and a synthetic writer that keeps `--live` reservations alive on agent 0
 * through the HTTP API, making and releasing `--rate` per second. It takes a
 * heap snapshot of agent 0 after the warm-up and `--snapshots` − 1 more,
 * evenly spaced to the end, and diffs the first and the last (and each
 * consecutive pair, for what stops growing). Between snapshots it samples
 * agent 0's RSS every 15 s (a snapshot itself inflates RSS, so those samples
 * are taken away from them) and fits RSS against reservations made. `diff` sums the self size of every object in each snapshot by
 * constructor (V8's node name), and prints what grew, in bytes and in bytes
 * per reservation made between the two snapshots (`--made`).
 *
 * Output: one JSON document on stdout (the `run` one includes the diff);
 * progress on stderr.
 */
import '../../agent/shim.ts'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { numberFlag, parseArgs, UsageError, type FlagSpec } from '../../cli/args.ts'
import { Registry, startMemgossip, type MemgossipProc } from '../bench/procs.ts'
import { sleep } from '../support/wait.ts'

const HELP = `usage:
  heap-diff run [--minutes 15] [--warmup-minutes 2] [--live 150] [--rate 4] [--peers 1] [--snapshots 2] [--compact-after N] [--node-arg FLAG]… [--out DIR]
  heap-diff diff BEFORE.heapsnapshot AFTER.heapsnapshot [--made N] [--top 40]

run   real agents + a writer at constant live count; heap snapshots of agent 0
      after the warm-up and --snapshots - 1 more to the end, diffed by
      constructor; RSS sampled between them and fitted per reservation.
diff  self size by constructor in two snapshots, what grew, per reservation made.`

const FLAGS: Record<string, FlagSpec> = {
  help: { type: 'boolean', short: 'h' },
  minutes: { type: 'string' },
  'warmup-minutes': { type: 'string' },
  live: { type: 'string' },
  rate: { type: 'string' },
  peers: { type: 'string' },
  snapshots: { type: 'string' },
  'node-arg': { type: 'list' },
  'compact-after': { type: 'string' },
  out: { type: 'string' },
  made: { type: 'string' },
  top: { type: 'string' }
}

// ------------------------------------------------------------ snapshot reading

/** Self size and object count of one constructor (or V8 node type) in one snapshot. */
export interface HeapGroup {
  name: string
  count: number
  selfBytes: number
}

interface SnapshotFile {
  snapshot: { meta: { node_fields: string[], node_types: unknown[] } }
  nodes: number[]
  strings: string[]
}

/**
 * Sum self sizes by group: objects by constructor name, closures as
 * `(closure)`, strings as `(string)`, arrays and other V8 internals by type
 * (`(array)`, `(code)`, …). Names are truncated: V8 names some objects after
 * their source text.
 */
export function summarise (snapshot: SnapshotFile): Map<string, HeapGroup> {
  const fields = snapshot.snapshot.meta.node_fields
  const types = snapshot.snapshot.meta.node_types[0] as string[]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const groups = new Map<string, HeapGroup>()
  const { nodes, strings } = snapshot
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]]
    let name: string
    if (type === 'object' || type === 'native') name = strings[nodes[i + nameAt]].slice(0, 60)
    else if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)'
    else name = `(${type})`
    let group = groups.get(name)
    if (group === undefined) groups.set(name, group = { name, count: 0, selfBytes: 0 })
    group.count++
    group.selfBytes += nodes[i + sizeAt]
  }
  return groups
}

export async function readSnapshot (path: string): Promise<Map<string, HeapGroup>> {
  return summarise(JSON.parse(await readFile(path, 'utf8')) as SnapshotFile)
}

export interface HeapDiff {
  beforeBytes: number
  afterBytes: number
  grewBytes: number
  made?: number
  grewPerReservationBytes?: number
  top: Array<{ name: string, countBefore: number, countAfter: number, grewBytes: number, grewCount: number, perReservationBytes?: number }>
}

export function diff (before: Map<string, HeapGroup>, after: Map<string, HeapGroup>, made: number | undefined, top: number): HeapDiff {
  const total = (m: Map<string, HeapGroup>): number => [...m.values()].reduce((s, g) => s + g.selfBytes, 0)
  const names = new Set([...before.keys(), ...after.keys()])
  const rows = [...names].map(name => {
    const b = before.get(name) ?? { count: 0, selfBytes: 0 }
    const a = after.get(name) ?? { count: 0, selfBytes: 0 }
    const grewBytes = a.selfBytes - b.selfBytes
    return {
      name,
      countBefore: b.count,
      countAfter: a.count,
      grewBytes,
      grewCount: a.count - b.count,
      ...(made !== undefined && made > 0 ? { perReservationBytes: Math.round(grewBytes / made * 10) / 10 } : {})
    }
  }).sort((x, y) => y.grewBytes - x.grewBytes)
  const beforeBytes = total(before)
  const afterBytes = total(after)
  return {
    beforeBytes,
    afterBytes,
    grewBytes: afterBytes - beforeBytes,
    ...(made !== undefined && made > 0 ? { made, grewPerReservationBytes: Math.round((afterBytes - beforeBytes) / made) } : {}),
    top: rows.slice(0, top)
  }
}

// ------------------------------------------------------------ the run

/** Keeps `live` reservations on one agent, making and releasing `rate` per second. */
class Writer {
  made = 0
  released = 0
  failures = 0
  private readonly live: string[] = []
  private stopped = false
  private next = 0

  constructor (private readonly api: string, private readonly target: number, private readonly rate: number) {}

  async run (): Promise<void> {
    const intervalMs = 1000 / this.rate
    while (!this.stopped) {
      const started = Date.now()
      try {
        if (this.live.length >= this.target) await this.release()
        await this.reserve()
      } catch (err) {
        this.failures++
        if (this.failures % 20 === 1) process.stderr.write(`writer: ${(err as Error).message}\n`)
      }
      await sleep(Math.max(0, intervalMs - (Date.now() - started)))
    }
  }

  stop (): void { this.stopped = true }

  private async reserve (): Promise<void> {
    const id = `heap-${this.next++}`
    const res = await fetch(`${this.api}/v1/reservations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, size: '16MiB', labels: { app: 'heap-diff' } })
    })
    await res.text()
    if (res.status !== 201) throw new Error(`reserve ${id}: HTTP ${res.status}`)
    this.made++
    this.live.push(id)
  }

  private async release (): Promise<void> {
    const id = this.live.shift()!
    const res = await fetch(`${this.api}/v1/reservations/${id}`, { method: 'DELETE' })
    await res.text()
    if (res.status >= 300) throw new Error(`release ${id}: HTTP ${res.status}`)
    this.released++
  }
}

/** Least-squares slope of y over x (0 with fewer than two distinct x). */
export function slope (x: number[], y: number[]): number {
  const n = x.length
  if (n < 2) return 0
  const mx = x.reduce((s, v) => s + v, 0) / n
  const my = y.reduce((s, v) => s + v, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) { num += (x[i] - mx) * (y[i] - my); den += (x[i] - mx) ** 2 }
  return den === 0 ? 0 : num / den
}

async function rssBytes (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = /VmRSS:\s+(\d+)/.exec(status)?.[1]
  return Number(kib ?? 0) * 1024
}

async function dirBytes (dir: string): Promise<number> {
  let sum = 0
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) sum += await dirBytes(path)
    else if (entry.isFile()) sum += (await stat(path)).size
  }
  return sum
}

/** SIGUSR2 the agent and wait for the new .heapsnapshot file to be complete. */
async function takeSnapshot (agent: MemgossipProc, dir: string): Promise<string> {
  const before = new Set(await readdir(dir))
  process.kill(agent.pid, 'SIGUSR2')
  for (let i = 0; i < 600; i++) {
    await sleep(1000)
    const fresh = (await readdir(dir)).filter(f => f.endsWith('.heapsnapshot') && !before.has(f))
    if (fresh.length === 0) continue
    const path = join(dir, fresh[0])
    // Complete once its size stops changing and it parses as JSON's end.
    const a = (await stat(path)).size
    await sleep(1500)
    const b = (await stat(path)).size
    if (a === b && a > 0) {
      const text = await readFile(path, 'utf8')
      if (text.trimEnd().endsWith('}')) return path
    }
  }
  throw new Error('the agent wrote no heap snapshot within 10 minutes')
}

interface Sample { label: string, atMs: number, made: number, released: number, rssBytes: number, dataDirBytes: number, snapshot: string }

async function run (flags: Record<string, unknown>): Promise<void> {
  const parsed = { flags: flags as Record<string, string | undefined> }
  const minutes = numberFlag(parsed.flags, 'minutes', { min: 0.1 }) ?? 15
  const warmupMinutes = numberFlag(parsed.flags, 'warmup-minutes', { min: 0 }) ?? 2
  const live = numberFlag(parsed.flags, 'live', { integer: true, min: 1 }) ?? 150
  const rate = numberFlag(parsed.flags, 'rate', { min: 0.1 }) ?? 4
  const peers = numberFlag(parsed.flags, 'peers', { integer: true, min: 0, max: 8 }) ?? 1
  const snapshots = numberFlag(parsed.flags, 'snapshots', { integer: true, min: 2, max: 10 }) ?? 2
  const registry = new Registry()
  const stop = (): void => { void registry.cleanup().then(() => process.exit(130)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    const out = parsed.flags.out ?? await registry.tempDir('heapdiff-out-')
    const dataDir = await registry.tempDir('hd0-')
    // --node-arg: extra V8 flags for agent 0 (e.g. --max-old-space-size=96, to tell retained memory from GC headroom).
    const nodeArgs = (flags['node-arg'] as string[] | undefined) ?? []
    // `--compact-after`: the agents' own flag (default 2000 ended); small values make many moves between snapshots.
    const compactAfter = numberFlag(parsed.flags, 'compact-after', { integer: true, min: 0 })
    const extraArgs = compactAfter !== undefined ? ['--compact-after', String(compactAfter)] : []
    const agent = await startMemgossip({ registry, index: 0, dataDir, extraArgs, nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${out}`, ...nodeArgs] })
    for (let i = 1; i <= peers; i++) {
      await startMemgossip({ registry, index: i, dataDir: await registry.tempDir(`hd${i}-`), bootstrap: [agent.multiaddrs[0]], extraArgs })
    }
    process.stderr.write(`agent 0 pid ${agent.pid} api ${agent.api}; ${peers} peer(s); snapshots in ${out}\n`)
    const writer = new Writer(agent.api, live, rate)
    const writing = writer.run()
    const samples: Sample[] = []
    const t0 = Date.now()
    const sample = async (label: string): Promise<void> => {
      const made = writer.made
      const released = writer.released
      const snapshot = await takeSnapshot(agent, out)
      const s = { label, atMs: Date.now() - t0, made, released, rssBytes: await rssBytes(agent.pid), dataDirBytes: await dirBytes(dataDir), snapshot }
      samples.push(s)
      process.stderr.write(`${label}: ${made} made, ${released} released, RSS ${(s.rssBytes / 2 ** 20).toFixed(1)} MiB, data dir ${(s.dataDirBytes / 1024).toFixed(0)} KiB\n`)
    }
    await sleep(warmupMinutes * 60_000)
    await sample('warm')
    const rss: Array<{ made: number, rssBytes: number }> = []
    const progress = setInterval(() => { process.stderr.write(`  ${writer.made} made, ${writer.released} released, ${writer.failures} failures\n`) }, 60_000)
    for (let k = 1; k < snapshots; k++) {
      const until = Date.now() + minutes * 60_000 / (snapshots - 1)
      // RSS away from the snapshots: the first 15 s after one are skipped.
      while (Date.now() + 15_000 < until) {
        await sleep(15_000)
        rss.push({ made: writer.made, rssBytes: await rssBytes(agent.pid) })
      }
      await sleep(Math.max(0, until - Date.now()))
      await sample(k === snapshots - 1 ? 'end' : `mid${k}`)
    }
    clearInterval(progress)
    writer.stop()
    await writing
    const a = samples[0]
    const b = samples[samples.length - 1]
    const made = b.made - a.made
    const steps = []
    for (let k = 1; k < samples.length; k++) {
      const d = diff(await readSnapshot(samples[k - 1].snapshot), await readSnapshot(samples[k].snapshot), samples[k].made - samples[k - 1].made, 6)
      steps.push({ from: samples[k - 1].label, to: samples[k].label, made: d.made, grewBytes: d.grewBytes, grewPerReservationBytes: d.grewPerReservationBytes, top: d.top })
    }
    const result = {
      minutes, warmupMinutes, live, rate, peers, nodeArgs, failures: writer.failures,
      samples,
      rss,
      rssSlopePerReservationBytes: Math.round(slope(rss.map(r => r.made), rss.map(r => r.rssBytes))),
      diskPerReservationBytes: Math.round((b.dataDirBytes - a.dataDirBytes) / made),
      heap: diff(await readSnapshot(a.snapshot), await readSnapshot(b.snapshot), made, 40),
      steps
    }
    process.stdout.write(JSON.stringify(result, null, 2) + '\n')
  } finally {
    await registry.cleanup()
  }
}

async function main (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs(argv, FLAGS)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`heap-diff: ${err.message}\n${HELP}\n`)
    return 2
  }
  const [command, ...rest] = parsed.positionals
  if (parsed.flags.help === true || command === undefined) {
    process.stdout.write(HELP + '\n')
    return command === undefined && parsed.flags.help !== true ? 2 : 0
  }
  try {
    if (command === 'run') {
      await run(parsed.flags)
      return 0
    }
    if (command === 'diff') {
      if (rest.length !== 2) throw new UsageError('diff needs two .heapsnapshot files')
      const made = numberFlag(parsed.flags, 'made', { integer: true, min: 1 })
      const top = numberFlag(parsed.flags, 'top', { integer: true, min: 1 }) ?? 40
      process.stdout.write(JSON.stringify(diff(await readSnapshot(rest[0]), await readSnapshot(rest[1]), made, top), null, 2) + '\n')
      return 0
    }
    throw new UsageError(`unknown command '${command}' (expected run or diff)`)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`heap-diff: ${err.message}\n${HELP}\n`)
    return 2
  }
}

if (process.argv[1]?.endsWith('heap-diff.ts') === true || process.argv[1]?.endsWith('heap-diff.js') === true) process.exitCode = await main(process.argv.slice(2))
