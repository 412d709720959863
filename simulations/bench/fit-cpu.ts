/**
 * fit() at 1,000 nodes × 10,000 reservations, timed two ways per call: wall
 * time (what runCrdtBench reports) and this thread's CPU time
 * (`process.cpuUsage`), with the garbage collections that overlapped slow
 * calls. On a machine shared with other work the wall-clock tail is mostly
 * the process waiting for a core, not fit() computing; the CPU-time tail
 * says what fit() itself costs.
 *
 * The benchmark runs it in a process of its own (simulations/bench/run.ts),
 * so that the garbage of its other phases is not collected during these
 * calls:
 *
 *   node --expose-gc --import tsx simulations/bench/fit-cpu.ts [--calls 4000]
 *
 * Before the timed calls, `warmup` untimed ones compile fit() (an agent
 * answers with warm code), and where `gc()` is exposed one full collection
 * takes the garbage of building the ledger: the collections during the timed
 * calls are then those of fit()'s own allocations.
 */
import { PerformanceObserver } from 'node:perf_hooks'
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { numberFlag, parseArgs } from '../../cli/args.ts'
import { fit, resolve } from '../../crdt/index.ts'
import { buildLedger, fitQuestion } from './crdt.ts'
import { summarize, type Summary } from './stats.ts'

export interface FitCpuResult {
  nodes: number
  reservations: number
  calls: number
  wallMs: Summary
  cpuMs: Summary
  /** Calls slower than 1 ms of wall time, and how many of them overlapped a GC or used > 1 ms of CPU. */
  slowCalls: number
  slowWithGc: number
  slowWithCpu: number
  /** Slow calls with neither: the thread was waiting for a core. */
  slowWaiting?: number
  gcCount: number
  gcMaxMs: number
  /** Untimed calls first, and whether a full collection ran before the timed ones (absent in results written before 2026-12-07, evening). */
  warmup?: number
  collectedFirst?: boolean
}

export async function runFitCpu (options: { nodes?: number, reservations?: number, calls?: number, warmup?: number } = {}): Promise<FitCpuResult> {
  const nodes = options.nodes ?? 1000
  const reservations = options.reservations ?? 10_000
  const calls = options.calls ?? 4000
  const res = resolve(buildLedger(nodes, reservations))
  const warmup = options.warmup ?? 200
  for (let i = 0; i < warmup; i++) fit(res, fitQuestion(i))
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const gcs: Array<{ start: number, end: number }> = []
  const observer = new PerformanceObserver(list => { for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration }) })
  observer.observe({ entryTypes: ['gc'] })
  const wall: number[] = []
  const cpu: number[] = []
  const starts: number[] = []
  for (let i = 0; i < calls; i++) {
    const question = fitQuestion(i)
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    fit(res, question)
    wall.push(performance.now() - t0)
    const c = process.cpuUsage(c0)
    cpu.push((c.user + c.system) / 1000)
    starts.push(t0)
  }
  // GC entries are delivered asynchronously.
  await new Promise(resolve => setTimeout(resolve, 50))
  observer.disconnect()
  const slow = wall.map((w, i) => ({ w, c: cpu[i], s: starts[i] })).filter(x => x.w > 1)
  return {
    nodes,
    reservations,
    calls,
    wallMs: summarize(wall),
    cpuMs: summarize(cpu),
    slowCalls: slow.length,
    slowWithGc: slow.filter(x => gcs.some(g => g.start < x.s + x.w && g.end > x.s)).length,
    slowWithCpu: slow.filter(x => x.c > 1).length,
    slowWaiting: slow.filter(x => x.c <= 1 && !gcs.some(g => g.start < x.s + x.w && g.end > x.s)).length,
    gcCount: gcs.length,
    gcMaxMs: gcs.reduce((m, g) => Math.max(m, g.end - g.start), 0),
    warmup,
    collectedFirst: gc !== undefined
  }
}

if (process.argv[1] !== undefined && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { flags } = parseArgs(process.argv.slice(2), { calls: { type: 'string' } })
  const result = await runFitCpu({ calls: numberFlag(flags, 'calls', { integer: true, min: 1 }) ?? 4000 })
  process.stdout.write(JSON.stringify(result) + '\n')
}
