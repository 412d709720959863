/**
 * agent/cgroup.ts over fake cgroup trees in a temp dir: detection, the v2 and
 * v1 file mappings, usage and OOM counters, and the typed refusals. The real
 * kernel is exercised by run.e2e.test.ts.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { CgroupError, cgroupName, detectCgroupController, parseProcCgroup } from '../../agent/cgroup.ts'

const MIB = 1024 * 1024
const removeDir = async (dir: string): Promise<void> => { await rm(dir, { recursive: true, force: true }) }

let root: string
let procRoot: string
let cgroupRoot: string

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'memgossip-cgroup-'))
  procRoot = path.join(root, 'proc')
  cgroupRoot = path.join(root, 'cgroup')
  await mkdir(path.join(procRoot, 'self'), { recursive: true })
  await mkdir(cgroupRoot, { recursive: true })
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

async function files (dir: string, content: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true })
  for (const [name, text] of Object.entries(content)) await writeFile(path.join(dir, name), text)
}

const read = async (file: string): Promise<string> => (await readFile(file, 'utf8')).trim()

describe('parseProcCgroup', () => {
  it.each([
    ['pure v2', '0::/user.slice/app.scope\n', { unified: '/user.slice/app.scope' }],
    ['hybrid', '9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n', { unified: '/', memoryV1: '/process_api/abc' }],
    ['v1 with joined controllers', '3:cpu,memory:/docker/x\n', { memoryV1: '/docker/x' }],
    ['garbage lines ignored', 'nonsense\n\n', {}]
  ])('%s', (_name, text, expected) => {
    expect(parseProcCgroup(text)).toEqual(expected)
  })
})

describe('cgroupName', () => {
  it('keeps safe ids and escapes / and : so different ids never collide', () => {
    expect(cgroupName('web-1.a_b')).toBe('memgossip-web-1.a_b')
    expect(cgroupName('a/b:c')).toBe('memgossip-a%2Fb%3Ac')
    expect(cgroupName('a/b')).not.toBe(cgroupName('a_b'))
  })
})

describe('detection', () => {
  it('prefers v2 when the unified hierarchy has the memory controller', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/app.scope\n')
    await files(cgroupRoot, { 'cgroup.controllers': 'cpuset cpu io memory pids\n' })
    await files(path.join(cgroupRoot, 'app.scope'), { 'cgroup.subtree_control': 'memory\n' })
    const controller = await detectCgroupController({ procRoot, cgroupRoot, removeDir })
    expect(controller.version).toBe(2)
    expect(controller.parentDir).toBe(path.join(cgroupRoot, 'app.scope'))
  })

  it('uses v1 on a hybrid host whose unified mount has no memory controller', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '4:memory:/process_api/abc\n0::/\n')
    await files(path.join(cgroupRoot, 'unified'), { 'cgroup.controllers': 'hugetlb\n' })
    await files(path.join(cgroupRoot, 'memory'), { 'memory.limit_in_bytes': '9223372036854771712\n' })
    const controller = await detectCgroupController({ procRoot, cgroupRoot, removeDir })
    expect(controller.version).toBe(1)
    expect(controller.parentDir).toBe(path.join(cgroupRoot, 'memory', 'process_api/abc'))
  })

  it('refuses with NoController when neither is there, naming both places', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/\n')
    const error = await detectCgroupController({ procRoot, cgroupRoot }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(CgroupError)
    expect((error as CgroupError).failure).toBe('NoController')
    expect((error as CgroupError).message).toMatch(/cgroup v2.*cgroup v1 memory controller/)
  })

  it('refuses with NoController when /proc/self/cgroup is missing (not Linux)', async () => {
    const error = await detectCgroupController({ procRoot, cgroupRoot }).catch((e: unknown) => e)
    expect((error as CgroupError).failure).toBe('NoController')
  })
})

describe('v2 backend over a fake tree', () => {
  const scope = (): string => path.join(cgroupRoot, 'app.scope')

  beforeEach(async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/app.scope\n')
    await files(cgroupRoot, { 'cgroup.controllers': 'cpu memory pids\n' })
    await files(scope(), { 'cgroup.subtree_control': '\n', 'cgroup.procs': '' })
  })

  it('creates the cgroup, enables memory for children, maps limits to memory.max / memory.min', async () => {
    const controller = await detectCgroupController({ procRoot, cgroupRoot, removeDir })
    const cg = await controller.create('web/1')
    expect(cg.dir).toBe(path.join(scope(), 'memgossip-web%2F1'))
    // A real kernel writes "+memory" as "memory"; the fake keeps what was written.
    expect(await read(path.join(scope(), 'cgroup.subtree_control'))).toBe('+memory')
    // The kernel would create these; the fake tree needs them to pick memory.min and set the extras.
    await files(cg.dir, { 'memory.min': '0', 'memory.swap.max': 'max', 'memory.oom.group': '0' })
    await cg.setLimits({ maxBytes: 256 * MIB, minBytes: 64 * MIB })
    expect(await read(path.join(cg.dir, 'memory.max'))).toBe(String(256 * MIB))
    expect(await read(path.join(cg.dir, 'memory.min'))).toBe(String(64 * MIB))
    expect(await read(path.join(cg.dir, 'memory.swap.max'))).toBe('0')
    expect(await read(path.join(cg.dir, 'memory.oom.group'))).toBe('1')
    await cg.addProcess(4242)
    expect(await read(cg.procsFile)).toBe('4242')
  })

  it('falls back to memory.low on kernels without memory.min', async () => {
    const cg = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('old')
    await cg.setLimits({ maxBytes: 128 * MIB, minBytes: 32 * MIB })
    expect(await read(path.join(cg.dir, 'memory.low'))).toBe(String(32 * MIB))
  })

  it('reads usage, peak, limit hits and OOM kills from memory.current/peak/events', async () => {
    const cg = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('u')
    await files(cg.dir, {
      'memory.current': `${100 * MIB}\n`,
      'memory.peak': `${256 * MIB}\n`,
      'memory.max': `${256 * MIB}\n`,
      'memory.events': 'low 0\nhigh 0\nmax 17\noom 1\noom_kill 1\noom_group_kill 0\n'
    })
    expect(await cg.usage()).toEqual({ currentBytes: 100 * MIB, peakBytes: 256 * MIB, limitBytes: 256 * MIB, limitHits: 17, oomKills: 1, limitOoms: 1 })
  })

  it('reports an unlimited memory.max and a missing memory.peak as undefined', async () => {
    const cg = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('u')
    await files(cg.dir, { 'memory.current': '4096\n', 'memory.max': 'max\n', 'memory.events': 'max 0\noom_kill 0\n' })
    expect(await cg.usage()).toEqual({ currentBytes: 4096, peakBytes: undefined, limitBytes: undefined, limitHits: 0, oomKills: 0, limitOoms: 0 })
  })

  it('takes over an empty leftover of a crashed run, refuses one that still holds processes', async () => {
    const controller = await detectCgroupController({ procRoot, cgroupRoot, removeDir })
    await files(path.join(scope(), 'memgossip-left'), { 'cgroup.procs': '' })
    expect((await controller.create('left')).dir).toBe(path.join(scope(), 'memgossip-left'))
    await files(path.join(scope(), 'memgossip-busy'), { 'cgroup.procs': '999999\n' })
    const error = await controller.create('busy').catch((e: unknown) => e)
    expect((error as CgroupError).failure).toBe('Busy')
  })

  it('removes the cgroup', async () => {
    const cg = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('gone')
    await cg.remove()
    await expect(readFile(path.join(cg.dir, 'cgroup.procs'))).rejects.toThrow()
  })

  it('refuses with NoDelegation when its own cgroup is not visible (another namespace)', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/elsewhere.scope\n')
    const error = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('x').catch((e: unknown) => e)
    expect((error as CgroupError).failure).toBe('NoDelegation')
    expect((error as CgroupError).message).toContain('Delegate=yes')
  })

  it.skipIf(process.getuid?.() === 0)('refuses with PermissionDenied when the cgroup is not writable, with the fix', async () => {
    await chmod(scope(), 0o555)
    await writeFile(path.join(scope(), 'cgroup.subtree_control'), 'memory\n')
    const error = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('x').catch((e: unknown) => e)
    expect((error as CgroupError).failure).toBe('PermissionDenied')
    expect((error as CgroupError).message).toMatch(/not root.*systemd-run/)
  })
})

describe('v1 backend over a fake tree', () => {
  const own = (): string => path.join(cgroupRoot, 'memory', 'process_api/abc')

  beforeEach(async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n')
    await files(path.join(cgroupRoot, 'memory'), { 'memory.limit_in_bytes': '9223372036854771712\n' })
    await files(own(), { 'cgroup.procs': '' })
  })

  it('maps the limit to memory.limit_in_bytes and the minimum to memory.soft_limit_in_bytes', async () => {
    const controller = await detectCgroupController({ procRoot, cgroupRoot, removeDir })
    const cg = await controller.create('job')
    expect(cg.dir).toBe(path.join(own(), 'memgossip-job'))
    await files(cg.dir, { 'memory.memsw.limit_in_bytes': '9223372036854771712\n' })
    await cg.setLimits({ maxBytes: 64 * MIB, minBytes: 16 * MIB })
    expect(await read(path.join(cg.dir, 'memory.limit_in_bytes'))).toBe(String(64 * MIB))
    expect(await read(path.join(cg.dir, 'memory.soft_limit_in_bytes'))).toBe(String(16 * MIB))
    expect(await read(path.join(cg.dir, 'memory.memsw.limit_in_bytes'))).toBe(String(64 * MIB))
  })

  it('sets no soft limit (-1) without a minimum', async () => {
    const cg = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('job')
    await cg.setLimits({ maxBytes: 64 * MIB })
    expect(await read(path.join(cg.dir, 'memory.soft_limit_in_bytes'))).toBe('-1')
  })

  it('reads usage, max usage, failcnt and the oom_kill counter of memory.oom_control', async () => {
    const cg = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('job')
    await files(cg.dir, {
      'memory.usage_in_bytes': `${10 * MIB}\n`,
      'memory.max_usage_in_bytes': `${64 * MIB}\n`,
      'memory.limit_in_bytes': `${64 * MIB}\n`,
      'memory.failcnt': '108\n',
      'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n'
    })
    expect(await cg.usage()).toEqual({ currentBytes: 10 * MIB, peakBytes: 64 * MIB, limitBytes: 64 * MIB, limitHits: 108, oomKills: 1 })
  })

  it('treats the v1 "unlimited" value as no limit, and an old kernel without oom_kill as 0 kills', async () => {
    const cg = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('job')
    await files(cg.dir, {
      'memory.usage_in_bytes': '0\n',
      'memory.limit_in_bytes': '9223372036854771712\n',
      'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\n'
    })
    const usage = await cg.usage()
    expect(usage.limitBytes).toBeUndefined()
    expect(usage.oomKills).toBe(0)
  })

  it('creates under an explicit parent', async () => {
    await files(path.join(cgroupRoot, 'memory', 'jobs'), {})
    const controller = await detectCgroupController({ procRoot, cgroupRoot, removeDir, parent: '/jobs' })
    expect((await controller.create('x')).dir).toBe(path.join(cgroupRoot, 'memory', 'jobs', 'memgossip-x'))
  })

  it('refuses with NoDelegation when its own cgroup is not visible', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '4:memory:/not/here\n')
    const error = await (await detectCgroupController({ procRoot, cgroupRoot, removeDir })).create('x').catch((e: unknown) => e)
    expect((error as CgroupError).failure).toBe('NoDelegation')
  })
})
