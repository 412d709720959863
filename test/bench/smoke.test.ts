/**
 * The benchmark harness works end to end at its smallest size (`--smoke`:
 * N = 3, 2 trials, short windows), writing to a temp dir. Not a timed test:
 * it checks that every phase produced figures, not what they are. The Serf
 * part runs when `serf` is installed and is skipped (and said so) otherwise.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runBench, type BenchResults } from '../../simulations/bench/run.ts'
import { decodeMsgpack, encodeMsgpack } from '../../simulations/bench/serf-rpc.ts'
import { pairedRatios, percentile, summarize } from '../../simulations/bench/stats.ts'
import type { BenchRealResult } from '../../simulations/bench/tiers.ts'

const serfInstalled = (process.env.PATH ?? '').split(':').some(d => existsSync(join(d, 'serf')))

describe('benchmark helpers', () => {
  it('nearest-rank percentiles and trial-by-trial ratios', () => {
    expect(percentile([5, 1, 3, 2, 4], 0.5)).toBe(3)
    expect(percentile(Array.from({ length: 20 }, (_, i) => i + 1), 0.99)).toBe(20)
    expect(summarize([1, Number.NaN, 3]).n).toBe(2)
    expect(pairedRatios([10, 20, Number.NaN], [5, 0, 1])).toEqual({ ratios: [2], skipped: 2 })
  })

  it('msgpack round-trips what the Serf RPC client sends', () => {
    const value = { Command: 'event', Seq: 300, Payload: new Uint8Array([1, 2, 3]), Coalesce: false, Tags: { bench: 'x'.repeat(40) } }
    const decoded = decodeMsgpack(encodeMsgpack(value)).value as Record<string, unknown>
    expect(decoded.Command).toBe('event')
    expect(decoded.Seq).toBe(300)
    expect([...(decoded.Payload as Uint8Array)]).toEqual([1, 2, 3])
    expect((decoded.Tags as Record<string, string>).bench).toHaveLength(40)
  })
})

describe('npm run bench -- --smoke', () => {
  let dir = ''
  afterAll(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

  it('runs every phase at N = 3 and writes the JSON, the Markdown and the charts', async () => {
    dir = await mkdtemp(join(tmpdir(), 'mg-bench-smoke-'))
    const out: string[] = []
    const err: string[] = []
    const code = await runBench(['--smoke', '--out', dir, '--docs', dir], { stdout: s => { out.push(s) }, stderr: s => { err.push(s) } })
    expect(code, err.join('')).toBe(0)
    const files = await readdir(dir)
    const json = files.find(f => f.endsWith('-smoke.json'))
    expect(json).toBeDefined()
    expect(files).toContain('benchmarks.md')
    expect(files).toContain('bench-propagation.svg')
    const r = JSON.parse(await readFile(join(dir, json!), 'utf8')) as BenchResults
    expect(r.mode).toBe('smoke')
    // Propagation: both origins, every memgossip trial arrived everywhere.
    expect(r.propagation.map(p => p.origin).sort()).toEqual(['leaf', 'seed'])
    for (const p of r.propagation) {
      expect(p.trials).toHaveLength(2)
      expect(p.missed.memgossip).toBe(0)
      expect(p.memgossip.p50).toBeGreaterThan(0)
    }
    expect(r.traffic[0].windows.map(w => w.kind)).toEqual(['rest', 'load'])
    // Reservation → final on every agent, 3 agents in one process.
    const inproc = r.finalInproc?.[0]
    expect(inproc !== undefined && !('error' in inproc) ? inproc.notFinal : inproc).toBe(0)
    expect(r.traffic[0].windows[0].memgossip.socketBytesPerNodeSec).toBeGreaterThan(0)
    expect(r.heal?.trials[0].consistent).toBe(true)
    expect(r.httpFit?.requests2xx).toBeGreaterThan(0)
    expect(r.idle?.rssBytes).toBeGreaterThan(0)
    // RSS per in-process peer is a difference of two readings of this
    // process; at 3 peers its sign is noise (CI once read −13.6 kB), so the
    // smoke run checks that both readings were taken and the scenario passed.
    const realTier = r.realTier?.result as BenchRealResult | undefined
    expect(Number.isFinite(r.realTier?.rssPerPeerBytes)).toBe(true)
    expect(realTier?.baselineRssBytes).toBeGreaterThan(0)
    expect(realTier?.rssBytes).toBeGreaterThan(0)
    expect(realTier?.passed).toBe(true)
    expect(r.cliTiming?.installed.n).toBe(3)
    expect(r.cliTiming?.installed.p50).toBeGreaterThan(0)
    expect(r.targets.find(t => t.id === 'cli')?.value).toMatch(/installed/)
    expect(r.targets.length).toBeGreaterThan(5)
    const md = await readFile(join(dir, 'benchmarks.md'), 'utf8')
    expect(md).toContain('## Targets')
    if (serfInstalled) {
      expect(r.serf.available).toBe(true)
      expect(r.propagation[0].serfEvent?.n).toBe(2)
      expect(r.traffic[0].windows[0].serf?.payloadBytesPerNodeSec).toBeGreaterThan(0)
    } else {
      // Said so, in the results and in the report.
      expect(r.serf.available).toBe(false)
      expect(r.notes.join(' ')).toMatch(/Serf comparison skipped/)
      expect(md).toMatch(/Serf comparison skipped/)
      process.stderr.write('bench smoke: serf is not installed, the Serf comparison was skipped\n')
    }
    expect(out.join('')).toContain('| target |')
  }, 120_000)
})
