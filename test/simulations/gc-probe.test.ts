/**
 * The soak's GC probe (simulations/reliability/gc-probe.ts), preloaded into a
 * real child process as the bounded soak preloads it: asked with SIGUSR2
 * through the shared ask-and-read (simulations/support/probe-file.ts), it
 * answers with memory read after a full collection — a heap that dropped
 * the garbage the child made, and an increasing `seq`.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, expect, it } from 'vitest'
import { askProbe } from '../../simulations/support/probe-file.ts'
import { waitFor } from '../../simulations/support/wait.ts'

const REPO = join(import.meta.dirname, '../..')
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => { for (const c of cleanups.splice(0)) await c() })

it('answers SIGUSR2 with the heap after a full collection and RSS, each answer newer than the last', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gc-probe-'))
  const file = join(dir, 'gc-probe.json')
  // The child keeps 64 MiB of garbage-to-be alive until told (by a line on stdin) to drop it.
  const script = `
    let junk = Array.from({ length: 64 }, () => new Array(131072).fill(1.5))
    process.stdin.on('data', () => { junk = undefined; process.stdout.write('dropped\\n') })
    process.stdout.write('ready ' + process.memoryUsage().heapUsed + '\\n')
    setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', '--import', join(REPO, 'simulations/reliability/gc-probe.ts'), '-e', script], {
    cwd: REPO, env: { ...process.env, MEMGOSSIP_GC_PROBE: file }, stdio: ['pipe', 'pipe', 'inherit']
  })
  cleanups.push(async () => { child.kill('SIGKILL'); await rm(dir, { recursive: true, force: true }) })
  const lines: string[] = []
  child.stdout.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(l => l !== '')))
  await waitFor('the child ready', () => lines.some(l => l.startsWith('ready')), 15_000)

  const held = await askProbe<{ rss: number, rssAtOnce: number, heapUsed: number, gcMs: number }>(child.pid!, file, 10_000)
  expect(held).toBeDefined()
  expect(held!.heapUsed).toBeGreaterThan(60 * 1024 ** 2)
  expect(held!.rss).toBeGreaterThan(held!.heapUsed)
  expect(held!.rssAtOnce).toBeGreaterThan(0)
  child.stdin.write('drop\n')
  await waitFor('the garbage dropped', () => lines.includes('dropped'), 5000)
  const dropped = await askProbe<{ seq: number, heapUsed: number }>(child.pid!, file, 10_000)
  expect(dropped!.seq).toBe(held!.seq + 1)
  // What was dropped is gone from the reading: it was taken after a full collection.
  expect(held!.heapUsed - dropped!.heapUsed).toBeGreaterThan(60 * 1024 ** 2)
}, 30_000)
