/**
 * The memory probe reads the agent's own cgroup limit on cgroup v1 (the memory
 * controller under `<cgroupRoot>/memory`, as hybrid hosts mount it) as well as
 * on v2, over a fake tree. The v2 cases are in test/agent/probe.test.ts.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createSystemProbe } from '../../agent/probe.ts'

const KIB = 1024
const MIB = 1024 * KIB
const GIB = 1024 * MIB
const V1_UNLIMITED = '9223372036854771712\n'

const meminfo = (totalKb: number, availableKb: number): string =>
  `MemTotal:       ${totalKb} kB\nMemFree:        1000 kB\nMemAvailable:   ${availableKb} kB\n`

describe('createSystemProbe on cgroup v1', () => {
  let root: string
  let procRoot: string
  let cgroupRoot: string

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'memgossip-probe-v1-'))
    procRoot = path.join(root, 'proc')
    cgroupRoot = path.join(root, 'cgroup')
    await mkdir(path.join(procRoot, 'self'), { recursive: true })
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(16 * MIB, 12 * MIB))
  })
  afterEach(async () => {
    await rm(root, { recursive: true, force: true })
  })

  async function memoryFiles (dir: string, files: Record<string, string>): Promise<void> {
    const full = path.join(cgroupRoot, 'memory', dir)
    await mkdir(full, { recursive: true })
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(full, name), text)
  }

  it('uses memory.limit_in_bytes / memory.usage_in_bytes of its v1 memory cgroup (hybrid host)', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n')
    await memoryFiles('process_api/abc', { 'memory.limit_in_bytes': `${2 * GIB}\n`, 'memory.usage_in_bytes': `${512 * MIB}\n` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 2 * GIB, availableBytes: 1536 * MIB, source: 'cgroup' })
  })

  it('takes a limit set on an ancestor when its own cgroup reads "unlimited"', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '4:memory:/jobs/abc\n')
    await memoryFiles('jobs', { 'memory.limit_in_bytes': `${4 * GIB}\n`, 'memory.usage_in_bytes': `${1 * GIB}\n` })
    await memoryFiles('jobs/abc', { 'memory.limit_in_bytes': V1_UNLIMITED, 'memory.usage_in_bytes': `${256 * MIB}\n` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 4 * GIB, availableBytes: 3 * GIB, source: 'cgroup' })
  })

  it('reads the host from meminfo when every v1 level is unlimited', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '4:memory:/process_api/abc\n')
    await memoryFiles('', { 'memory.limit_in_bytes': V1_UNLIMITED, 'memory.usage_in_bytes': `${8 * GIB}\n` })
    await memoryFiles('process_api/abc', { 'memory.limit_in_bytes': V1_UNLIMITED, 'memory.usage_in_bytes': `${400 * MIB}\n` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 16 * GIB, availableBytes: 12 * GIB, source: 'meminfo' })
  })

  it('finds the memory controller on a line that names several controllers', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '3:cpu,memory:/docker/x\n')
    await memoryFiles('docker/x', { 'memory.limit_in_bytes': `${1 * GIB}\n`, 'memory.usage_in_bytes': `${100 * MIB}\n` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample.totalBytes).toBe(1 * GIB)
    expect(sample.source).toBe('cgroup')
  })

  it('takes the tighter of a v2 and a v1 limit when both exist', async () => {
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '4:memory:/a\n0::/b\n')
    await memoryFiles('a', { 'memory.limit_in_bytes': `${3 * GIB}\n`, 'memory.usage_in_bytes': `${1 * GIB}\n` })
    await mkdir(path.join(cgroupRoot, 'b'), { recursive: true })
    await writeFile(path.join(cgroupRoot, 'b', 'memory.max'), `${2 * GIB}\n`)
    await writeFile(path.join(cgroupRoot, 'b', 'memory.current'), `${1 * GIB}\n`)
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 2 * GIB, availableBytes: 1 * GIB, source: 'cgroup' })
  })

  it('caps v1 headroom at MemAvailable', async () => {
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(16 * MIB, 300 * KIB))
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '4:memory:/a\n')
    await memoryFiles('a', { 'memory.limit_in_bytes': `${2 * GIB}\n`, 'memory.usage_in_bytes': '0\n' })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 2 * GIB, availableBytes: 300 * MIB, source: 'cgroup' })
  })
})
