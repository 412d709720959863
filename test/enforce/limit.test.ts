/**
 * agent/limit.ts: the limit in force follows the ledger into the running
 * cgroup (docs/design.md "Bounds and the queue"). Over a fake v2 tree for the
 * file mapping and the rules (lower only, minimum kept at most the limit,
 * errors survived); then the whole chain — a real agent shrinks the
 * reservation when its node loses memory, and the follower reads the verdict
 * over HTTP and lowers the limit of a real memory cgroup (skipped, with the
 * reason, where none can be made).
 */
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { cgroupName, detectCgroupController, type MemoryCgroup } from '../../agent/cgroup.ts'
import { LimitFollower } from '../../agent/limit.ts'
import { api, GiB, startAgent, stopAll, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'
import { spawnCli } from '../cli/procs.ts'
import { whyNoCgroups } from './cgroups.ts'

const MIB = 1024 * 1024
const removeDir = async (dir: string): Promise<void> => { await rm(dir, { recursive: true, force: true }) }
const read = async (file: string): Promise<string> => (await readFile(file, 'utf8')).trim()

describe('LimitFollower over a fake v2 tree', () => {
  let root: string
  let cg: MemoryCgroup

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'memgossip-limit-'))
    const procRoot = path.join(root, 'proc')
    const cgroupRoot = path.join(root, 'cgroup')
    await mkdir(path.join(procRoot, 'self'), { recursive: true })
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/app.scope\n')
    await mkdir(path.join(cgroupRoot, 'app.scope'), { recursive: true })
    await writeFile(path.join(cgroupRoot, 'cgroup.controllers'), 'memory\n')
    await writeFile(path.join(cgroupRoot, 'app.scope', 'cgroup.subtree_control'), '\n')
    await writeFile(path.join(cgroupRoot, 'app.scope', 'cgroup.procs'), '')
    cg = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('job')
    await writeFile(path.join(cg.dir, 'memory.min'), '0')
    await cg.setLimits({ maxBytes: 256 * MIB, minBytes: 128 * MIB })
  })
  afterEach(async () => { await rm(root, { recursive: true, force: true }) })

  it('lowers memory.max to the limit in force, keeps the minimum at most the limit, and never raises it', async () => {
    const script = [256 * MIB, 200 * MIB, undefined, 100 * MIB, 300 * MIB]
    const shrinks: Array<[number, number]> = []
    const follower = new LimitFollower({
      initialBytes: 256 * MIB,
      minBytes: 128 * MIB,
      read: async () => script.shift(),
      apply: async (limits) => { await cg.setLimits(limits) },
      onShrink: (from, to) => shrinks.push([from, to])
    })
    await follower.check() // unchanged
    expect(await read(path.join(cg.dir, 'memory.max'))).toBe(String(256 * MIB))
    await follower.check() // shrunk to 200 MiB
    expect(await read(path.join(cg.dir, 'memory.max'))).toBe(String(200 * MIB))
    expect(await read(path.join(cg.dir, 'memory.min'))).toBe(String(128 * MIB))
    await follower.check() // unreadable this time: nothing changes
    await follower.check() // 100 MiB, below the minimum the cgroup was given: the protection follows it down
    expect(await read(path.join(cg.dir, 'memory.max'))).toBe(String(100 * MIB))
    expect(await read(path.join(cg.dir, 'memory.min'))).toBe(String(100 * MIB))
    await follower.check() // larger again: never raised (a shrink is not undone)
    expect(await read(path.join(cg.dir, 'memory.max'))).toBe(String(100 * MIB))
    expect(shrinks).toEqual([[256 * MIB, 200 * MIB], [200 * MIB, 100 * MIB]])
    expect(follower.limitBytes).toBe(100 * MIB)
  })

  it('reports a failed read or write and keeps the old limit, then carries on', async () => {
    const errors: string[] = []
    let fail = true
    const follower = new LimitFollower({
      initialBytes: 256 * MIB,
      read: async () => { if (fail) throw new Error('agent unreachable'); return 64 * MIB },
      apply: async (limits) => { await cg.setLimits(limits) },
      onError: (e) => errors.push(e.message)
    })
    await follower.check()
    expect(errors).toEqual(['agent unreachable'])
    expect(follower.limitBytes).toBe(256 * MIB)
    fail = false
    await follower.check()
    expect(await read(path.join(cg.dir, 'memory.max'))).toBe(String(64 * MIB))
  })

  it('polls on its own once started, and stop() ends it', async () => {
    let reads = 0
    const follower = new LimitFollower({ initialBytes: 256 * MIB, intervalMs: 10, read: async () => { reads++; return 128 * MIB }, apply: async (limits) => { await cg.setLimits(limits) } })
    follower.start()
    await waitFor('a tick', () => reads >= 2, 5000, 5)
    await follower.stop()
    const after = reads
    await new Promise(resolve => setTimeout(resolve, 50))
    expect(reads).toBe(after)
    expect(await read(path.join(cg.dir, 'memory.max'))).toBe(String(128 * MIB))
  })
})

const noCgroups = await whyNoCgroups('limit')
if (noCgroups !== undefined) console.log(`test/enforce/limit: skipping the real-cgroup chain, none can be created here (${noCgroups})`)

describe.skipIf(noCgroups !== undefined)('the chain: ledger shrink → verdict → real cgroup limit', () => {
  const started: TestAgent[] = []
  let cg: MemoryCgroup | undefined
  afterAll(async () => {
    await cg?.remove()
    await stopAll(started)
  })

  it('a node losing memory shrinks a reservation toward its minimum, and the cgroup limit follows', async () => {
    const a = await startAgent({ totalBytes: 16 * GiB })
    started.push(a)
    await waitFor('joined', () => a.daemon.agent.state().joined)
    const self = a.daemon.agent.self
    const made = await api(a, '/v1/reservations', { body: { id: 'shrinkable', size: '8GiB', min: '2GiB', placement: `node:${self}` } })
    expect(made.status, JSON.stringify(made.body)).toBe(201)
    cg = await (await detectCgroupController()).create(`limit-chain-${process.pid}`)
    await cg.setLimits({ maxBytes: 8 * GiB, minBytes: 2 * GiB })
    const limitFile = path.join(cg.dir, cg.version === 2 ? 'memory.max' : 'memory.limit_in_bytes')
    const follower = new LimitFollower({
      initialBytes: 8 * GiB,
      minBytes: 2 * GiB,
      intervalMs: 50,
      read: async () => (await api(a, '/v1/reservations/shrinkable')).body.effectiveBytes,
      apply: async (limits) => { await cg!.setLimits(limits) }
    })
    follower.start()
    try {
      // The host loses memory: the agent publishes a smaller allocatable, resolve() shrinks the reservation.
      a.probe.set({ totalBytes: 6 * GiB, availableBytes: 6 * GiB })
      await waitFor('the reservation shrunk', () => a.daemon.agent.verdict('shrinkable')?.code === 'Shrunk', 20_000)
      const v = a.daemon.agent.verdict('shrinkable')!
      expect(v.effectiveBytes).toBeLessThan(8 * GiB)
      expect(v.effectiveBytes).toBeGreaterThanOrEqual(2 * GiB)
      expect(v.status).toBe('admitted')
      // The kernel rounds a limit down to whole pages.
      await waitFor('the cgroup limit lowered', async () => Number(await read(limitFile)) <= v.effectiveBytes, 10_000)
      expect(Number(await read(limitFile))).toBeGreaterThan(v.effectiveBytes - 4096 * 16)
    } finally {
      await follower.stop()
    }
  })

  it('a reservation evicted by capacity loss, once final, stops its command: memgossip run sends SIGTERM, says why, removes the cgroup', async () => {
    const b = await startAgent({ totalBytes: 16 * GiB })
    started.push(b)
    await waitFor('joined', () => b.daemon.agent.state().joined)
    const { proc, done } = spawnCli(['run', 'evictable', '8GiB', '--api', b.daemon.api.url, '--', 'sh', '-c', 'echo started; exec sleep 60'])
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor('the command to start', () => out.includes('started'), 30_000)
    // The host loses memory: the agent publishes a smaller allocatable, resolve() evicts (no --min to shrink to).
    b.probe.set({ totalBytes: 4 * GiB, availableBytes: 4 * GiB })
    const r = await done
    const verdict = b.daemon.agent.verdict('evictable')!
    expect(verdict.status).toBe('evicted')
    expect(verdict.code).toBe('CapacityLost')
    expect(r.code, r.stderr).toBe(143)
    expect(r.stderr).toMatch(/'evictable' was evicted by the ledger \(final\): .*\[CapacityLost\]; stopping the command/)
    expect(r.stderr).toMatch(/stopped because the reservation was evicted/)
    expect(r.stderr).not.toContain('offender')
    const dir = path.join((await detectCgroupController()).parentDir, cgroupName('evictable'))
    expect(await access(dir).then(() => 'still there', () => 'gone')).toBe('gone')
  }, 60_000)
})
