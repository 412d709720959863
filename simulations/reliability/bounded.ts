/**
 * The bounded soak (issue 16, docs/reliability.md "Bounded"): real agent
 * processes under steady churn at a constant live count, with compaction by
 * epochs on; memory and disk sampled per agent; the verdict computed from the
 * slopes once every agent has passed its first epoch — never from a label.
 *
 *   npx tsx simulations/reliability/bounded.ts [--minutes 60] [--agents 3] [--live 150] [--rate 5] [--compact-after 1000] [--sample-seconds 15] [--out DIR]
 *   npx tsx simulations/reliability/bounded.ts --analyse bounded.json [--out DIR]
 *
 * A writer keeps `--live` reservations alive, spread over the agents through
 * their HTTP APIs, making and releasing `--rate` a second. Every
 * `--sample-seconds` it reads each agent's `/metrics` (RSS, V8 heap in use,
 * epoch, the size of its ledger files), and once a minute each agent's memory
 * after a full collection: the agents run with the GC probe preloaded
 * (simulations/reliability/gc-probe.ts, `--expose-gc`), which on SIGUSR2
 * collects twice and writes the heap in use, and RSS half a second later (once
 * V8 has returned the pages the collection freed).
 *
 * What is judged, per agent:
 * - RSS and the heap after collection: the probe's readings. (A run judged
 *   again with `--analyse` from samples without them — runs before the probe
 *   — falls back to the least `/metrics` reading in each window of eight
 *   samples; `estimator` in the JSON says which.) A reading of `/metrics`
 *   lands anywhere between two collections, swinging by the garbage of
 *   re-resolving the epoch's document; those readings are drawn, not judged.
 * - Disk: the least reading in each epoch — the files right after a move,
 *   the new epoch's snapshot. Within an epoch the log grows by design (up to
 *   `--compact-after` ended entries); what would grow with history shows in
 *   that floor.
 *
 * Flat means: from the first sample after every agent reached epoch 1 to the
 * end, the least-squares slope per agent per hour is below the tolerance —
 * a tenth of what the same churn costs without compaction, by the heap
 * findings (docs/decisions.md "Heap findings": about 3.2 KB of heap and 0.7 KB
 * of disk per reservation made, and an RSS that grew 16× faster than the
 * heap), so a leak of a tenth of the old growth would still show.
 *
 * Output: `bounded.json` and `bounded.svg` in `--out` (default
 * simulations/results), a summary on stdout, progress on stderr.
 */
import '../../agent/shim.ts'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { numberFlag, parseArgs, UsageError, type FlagSpec } from '../../cli/args.ts'
import { Registry, startMemgossip, type MemgossipProc } from '../bench/procs.ts'
import { httpJson, scrapeMetrics } from '../support/http.ts'
import { el, esc, px, svgDocument, svgOpen, text, ticks } from '../support/svg.ts'
import { sleep } from '../support/wait.ts'
import { slope } from '../support/slope.ts'
import { askProbe } from '../support/probe-file.ts'

const HELP = `usage: bounded [--minutes 60] [--agents 3] [--live 150] [--rate 5] [--compact-after 1000] [--sample-seconds 15] [--out DIR]
       bounded --analyse bounded.json [--out DIR]   (judge a run again from its samples)

Real agents under steady churn at a constant live count, compaction by epochs
on; RSS, heap and disk per agent; flat or not from the slopes after the first
epoch.`

const FLAGS: Record<string, FlagSpec> = {
  help: { type: 'boolean', short: 'h' },
  minutes: { type: 'string' },
  agents: { type: 'string' },
  live: { type: 'string' },
  rate: { type: 'string' },
  'compact-after': { type: 'string' },
  'sample-seconds': { type: 'string' },
  out: { type: 'string' },
  analyse: { type: 'string' }
}

/** Bytes per reservation made without compaction (docs/decisions.md "Heap findings"). */
const HEAP_PER_RESERVATION = 3200
const DISK_PER_RESERVATION = 700
const RSS_PER_RESERVATION = 12_000
/** Flat: below this share of the growth without compaction. */
const TOLERANCE_SHARE = 0.1

/** How often each agent is asked for its memory after a full collection. */
const GC_PROBE_EVERY_S = 60

interface Sample {
  atS: number
  made: number
  live: number
  /** `rssGc`/`heapGc`: after a full collection (the GC probe), in the samples where it was asked. */
  agents: Array<{ rss: number, heap: number, disk: number, epoch: number, rssGc?: number, heapGc?: number }>
}

export interface Slope { perHour: number, tolerancePerHour: number, flat: boolean }

export interface BoundedResult {
  settings: { minutes: number, agents: number, live: number, rate: number, compactAfter: number, sampleSeconds: number }
  made: number
  released: number
  writeErrors: number
  firstEpochAtS?: number
  epochs: number[]
  samples: Sample[]
  /** What RSS and heap were judged on: the GC probe's readings, or (older runs) window minima of `/metrics`. */
  estimator: 'gc-probe' | 'window-minima'
  /** Per agent, from the first sample after every agent reached epoch 1. */
  slopes: Array<{ rss: Slope, heapAfterGc: Slope, disk: Slope }>
  flat: boolean
  verdict: string
}


/** The least value of each epoch, at the x where it was read: `[x, y, epoch]` in time order. */
export function epochFloors (points: Array<[number, number, number]>): Array<[number, number]> {
  const floors = new Map<number, [number, number]>()
  for (const [x, y, epoch] of points) {
    const floor = floors.get(epoch)
    if (floor === undefined || y < floor[1]) floors.set(epoch, [x, y])
  }
  return [...floors.values()].sort((a, b) => a[0] - b[0])
}

/** The least value in each window of `size` consecutive points (at the window's last x). */
export function windowMinima (points: Array<[number, number]>, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (let i = 0; i + size <= points.length; i += size) {
    const window = points.slice(i, i + size)
    out.push([window[window.length - 1][0], Math.min(...window.map(([, y]) => y))])
  }
  return out
}

async function main (argv: string[]): Promise<void> {
  const parsed = parseArgs(argv, FLAGS)
  const flags = parsed.flags
  if (flags.help === true) { process.stdout.write(HELP + '\n'); return }
  const minutes = numberFlag(flags, 'minutes', { min: 0.1 }) ?? 60
  const count = numberFlag(flags, 'agents', { integer: true, min: 1 }) ?? 3
  const liveTarget = numberFlag(flags, 'live', { integer: true, min: 1 }) ?? 150
  const rate = numberFlag(flags, 'rate', { min: 0.01 }) ?? 5
  const compactAfter = numberFlag(flags, 'compact-after', { integer: true, min: 1 }) ?? 1000
  const sampleSeconds = numberFlag(flags, 'sample-seconds', { min: 1 }) ?? 15
  const out = typeof flags.out === 'string' ? flags.out : 'simulations/results'
  if (typeof flags.analyse === 'string') {
    // Judge a run again from its samples (e.g. after the rule changed).
    const earlier = JSON.parse(await readFile(flags.analyse, 'utf8')) as BoundedResult
    const result = analyse(earlier.settings, earlier.samples, earlier.made, earlier.released, earlier.writeErrors)
    await mkdir(out, { recursive: true })
    await writeFile(join(out, 'bounded.json'), JSON.stringify(result, null, 2) + '\n')
    await writeFile(join(out, 'bounded.svg'), chart(result))
    process.stdout.write(`${result.verdict}\nwritten: ${join(out, 'bounded.json')}, ${join(out, 'bounded.svg')}\n`)
    return
  }
  if (count < 1 || liveTarget < 1 || rate <= 0 || minutes <= 0) throw new UsageError('--agents, --live, --rate and --minutes must be positive')

  const registry = new Registry()
  process.once('SIGINT', () => { void registry.cleanup().then(() => process.exit(130)) })
  const agents: MemgossipProc[] = []
  try {
    for (let i = 0; i < count; i++) {
      const dataDir = await registry.tempDir(`memgossip-bounded-${i}-`)
      agents.push(await startMemgossip({ registry, index: i, dataDir, bootstrap: i === 0 ? undefined : agents[0].multiaddrs, extraArgs: ['--compact-after', String(compactAfter)], gcProbe: join(dataDir, 'gc-probe.json') }))
    }
    process.stderr.write(`bounded: ${count} agents (pids ${agents.map(a => a.pid).join(', ')}), ${liveTarget} live, ${rate}/s made and released, --compact-after ${compactAfter}, ${minutes} min\n`)
    for (let waited = 0; ; waited += 500) {
      const states = await Promise.all(agents.map(async a => (await httpJson(`${a.api}/v1/state`)).body as { members?: unknown[] }))
      if (states.every(s => (s.members?.length ?? 0) === count)) break
      if (waited > 60_000) throw new Error('agents did not form one view within 60 s')
      await sleep(500)
    }

    const live: Array<{ id: string, agent: number }> = []
    let made = 0
    let released = 0
    let writeErrors = 0
    const started = Date.now()
    const endAt = started + minutes * 60_000
    const samples: Sample[] = []
    let stopWriter = false
    const writer = (async () => {
      let next = Date.now()
      while (!stopWriter) {
        next += 1000 / rate
        const agent = made % count
        const id = `soak-${made}`
        try {
          const r = await httpJson(`${agents[agent].api}/v1/reservations`, { body: { id, size: '16MiB', placement: 'any' }, timeoutMs: 10_000 })
          if (r.status === 200 || r.status === 201) live.push({ id, agent })
          else writeErrors++
        } catch { writeErrors++ }
        made++
        while (live.length > liveTarget) {
          const oldest = live.shift()!
          try {
            const r = await httpJson(`${agents[oldest.agent].api}/v1/reservations/${encodeURIComponent(oldest.id)}`, { method: 'DELETE', timeoutMs: 10_000 })
            if (r.status === 200) released++
            else writeErrors++
          } catch { writeErrors++ }
        }
        const wait = next - Date.now()
        if (wait > 0) await sleep(wait)
        else next = Date.now()
      }
    })()

    let probedAt = -Infinity
    while (Date.now() < endAt) {
      await sleep(sampleSeconds * 1000)
      const sample: Sample = { atS: (Date.now() - started) / 1000, made, live: live.length, agents: [] }
      const probe = sample.atS - probedAt >= GC_PROBE_EVERY_S
      if (probe) probedAt = sample.atS
      sample.agents = await Promise.all(agents.map(async a => {
        const m = await scrapeMetrics(a.api)
        const gc = probe ? await askProbe<{ rss: number, heapUsed: number }>(a.pid, join(a.dataDir, 'gc-probe.json'), 10_000) : undefined
        return { rss: m.get('process_resident_memory_bytes') ?? NaN, heap: m.get('nodejs_heap_used_bytes') ?? NaN, disk: m.get('memgossip_ledger_bytes') ?? NaN, epoch: m.get('memgossip_epoch') ?? NaN, rssGc: gc?.rss, heapGc: gc?.heapUsed }
      }))
      samples.push(sample)
      const mib = (b: number | undefined): string => b === undefined ? '-' : (b / 1024 ** 2).toFixed(1)
      process.stderr.write(`  ${sample.atS.toFixed(0).padStart(5)} s: ${made} made, ${live.length} live; ${sample.agents.map((s, i) => `#${i} epoch ${s.epoch} rss ${mib(s.rss)}${probe ? ` (${mib(s.rssGc)} after GC)` : ''} heap ${mib(s.heap)}${probe ? ` (${mib(s.heapGc)})` : ''} disk ${mib(s.disk)} MiB`).join('; ')}\n`)
    }
    stopWriter = true
    await writer

    const result = analyse({ minutes, agents: count, live: liveTarget, rate, compactAfter, sampleSeconds }, samples, made, released, writeErrors)
    await mkdir(out, { recursive: true })
    await writeFile(join(out, 'bounded.json'), JSON.stringify(result, null, 2) + '\n')
    await writeFile(join(out, 'bounded.svg'), chart(result))
    process.stdout.write(`${result.verdict}\nwritten: ${join(out, 'bounded.json')}, ${join(out, 'bounded.svg')}\n`)
  } finally {
    await registry.cleanup()
  }
}

export function analyse (settings: BoundedResult['settings'], samples: Sample[], made: number, released: number, writeErrors: number): BoundedResult {
  const first = samples.find(s => s.agents.every(a => a.epoch >= 1))
  const after = first === undefined ? [] : samples.filter(s => s.atS >= first.atS)
  const estimator = samples.some(s => s.agents.some(a => a.rssGc !== undefined)) ? 'gc-probe' : 'window-minima'
  const perHourMade = settings.rate * 3600
  const tolerance = (perReservation: number): number => perReservation * perHourMade * TOLERANCE_SHARE / settings.agents
  const slopes = settings.agents > 0
    ? Array.from({ length: settings.agents }, (_, i) => {
      const series = (pick: (a: Sample['agents'][number]) => number | undefined): Array<[number, number]> =>
        after.flatMap(s => { const v = pick(s.agents[i]); return v === undefined ? [] : [[s.atS / 3600, v]] })
      const afterGc = (gc: (a: Sample['agents'][number]) => number | undefined, any: (a: Sample['agents'][number]) => number): Array<[number, number]> =>
        estimator === 'gc-probe' ? series(gc) : windowMinima(series(any), 8)
      const judge = (points: Array<[number, number]>, perReservation: number): Slope => {
        const perHour = slope(points)
        const tolerancePerHour = tolerance(perReservation)
        return { perHour, tolerancePerHour, flat: points.length >= 4 && perHour <= tolerancePerHour }
      }
      return {
        rss: judge(afterGc(a => a.rssGc, a => a.rss), RSS_PER_RESERVATION),
        heapAfterGc: judge(afterGc(a => a.heapGc, a => a.heap), HEAP_PER_RESERVATION),
        disk: judge(epochFloors(after.map(s => [s.atS / 3600, s.agents[i].disk, s.agents[i].epoch])), DISK_PER_RESERVATION)
      }
    })
    : []
  const flat = first !== undefined && slopes.every(s => s.rss.flat && s.heapAfterGc.flat && s.disk.flat)
  const mib = (b: number): string => (b / 1024 ** 2).toFixed(2)
  const lines = slopes.map((s, i) => `agent ${i}: RSS after GC ${mib(s.rss.perHour)} MiB/h (tolerance ${mib(s.rss.tolerancePerHour)}), heap after GC ${mib(s.heapAfterGc.perHour)} MiB/h (${mib(s.heapAfterGc.tolerancePerHour)}), disk ${mib(s.disk.perHour)} MiB/h (${mib(s.disk.tolerancePerHour)})`)
  const epochs = samples.length > 0 ? samples[samples.length - 1].agents.map(a => a.epoch) : []
  const verdict = first === undefined
    ? `NOT SHOWN: no sample with every agent past its first epoch (${made} made; raise --minutes or lower --compact-after)`
    : `${flat ? 'FLAT' : 'GROWING'}: ${made} made, ${released} released, ${writeErrors} write errors; every agent in epoch ≥ 1 from ${first.atS.toFixed(0)} s, epochs at the end ${epochs.join('/')}; slopes per agent per hour (${estimator === 'gc-probe' ? 'RSS and heap after a full collection' : 'RSS and heap as the least reading of each two-minute window'}) over ${((samples[samples.length - 1].atS - first.atS) / 60).toFixed(0)} min:\n  ${lines.join('\n  ')}`
  return { settings, made, released, writeErrors, firstEpochAtS: first?.atS, epochs, samples, estimator, slopes, flat, verdict }
}

/** Live reservations beside each agent's RSS, heap and disk, over time. */
export function chart (result: BoundedResult): string {
  const W = 900
  const H = 520
  const left = 70
  const right = 70
  const panels: Array<{ title: string, pick: (a: Sample['agents'][number]) => number, gc?: (a: Sample['agents'][number]) => number | undefined }> = [
    { title: 'RSS (MiB); dots: after a full collection', pick: a => a.rss, gc: a => a.rssGc },
    { title: 'V8 heap in use (MiB); dots: after a full collection', pick: a => a.heap, gc: a => a.heapGc },
    { title: 'data directory (MiB)', pick: a => a.disk }
  ]
  const samples = result.samples
  const maxT = Math.max(1, ...samples.map(s => s.atS))
  const x = (t: number): number => left + (W - left - right) * t / maxT
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#8c564b', '#e377c2']
  const parts: string[] = [svgOpen(W, H), text({ x: left, y: 18, 'font-weight': 'bold' }, esc(`bounded soak: ${result.flat ? 'flat' : result.firstEpochAtS === undefined ? 'not shown' : 'growing'} — ${result.made} reservations made at ${result.settings.live} live, ${result.settings.agents} agents`))]
  const panelH = (H - 60) / panels.length
  panels.forEach((panel, p) => {
    const top = 30 + p * panelH
    const bottom = top + panelH - 28
    const values = samples.flatMap(s => s.agents.map(panel.pick)).filter(Number.isFinite)
    const maxV = Math.max(1, ...values) / 1024 ** 2 * 1.1
    const y = (v: number): number => bottom - (bottom - top) * (v / 1024 ** 2) / maxV
    parts.push(text({ x: left, y: top + 10, 'font-size': 11 }, esc(panel.title)))
    for (const t of ticks(0, maxV, 3)) parts.push(text({ x: left - 6, y: px(bottom - (bottom - top) * t / maxV), 'text-anchor': 'end', 'font-size': 10 }, t.toFixed(maxV < 10 ? 1 : 0)))
    parts.push(el('line', { x1: left, y1: bottom, x2: W - right, y2: bottom, stroke: '#999' }))
    // Live reservations on the right axis, in every panel.
    const maxLive = Math.max(1, ...samples.map(s => s.live)) * 1.1
    const yl = (v: number): number => bottom - (bottom - top) * v / maxLive
    parts.push(el('polyline', { fill: 'none', stroke: '#aaa', 'stroke-dasharray': '4 3', points: samples.map(s => `${px(x(s.atS))},${px(yl(s.live))}`).join(' ') }))
    parts.push(text({ x: W - right + 6, y: px(yl(samples[samples.length - 1]?.live ?? 0)), 'font-size': 10, fill: '#888' }, 'live'))
    samples[0]?.agents.forEach((_, i) => {
      parts.push(el('polyline', { fill: 'none', stroke: colors[i % colors.length], 'stroke-width': 1.5, 'stroke-opacity': panel.gc !== undefined ? 0.45 : 1, points: samples.map(s => `${px(x(s.atS))},${px(y(panel.pick(s.agents[i])))}`).join(' ') }))
      for (const s of samples) {
        const v = panel.gc?.(s.agents[i])
        if (v !== undefined) parts.push(el('circle', { cx: px(x(s.atS)), cy: px(y(v)), r: 2.2, fill: colors[i % colors.length] }))
      }
    })
    if (result.firstEpochAtS !== undefined) parts.push(el('line', { x1: px(x(result.firstEpochAtS)), y1: top, x2: px(x(result.firstEpochAtS)), y2: bottom, stroke: '#555', 'stroke-dasharray': '2 2' }))
  })
  parts.push(text({ x: left, y: H - 8, 'font-size': 10 }, esc(`time (s, 0 – ${maxT.toFixed(0)}); dashed grey: live reservations (right); dotted line: every agent past its first epoch; one colour per agent`)))
  return svgDocument(parts)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`bounded: ${(error as Error).message}\n`)
    process.exit(error instanceof UsageError ? 2 : 1)
  })
}
