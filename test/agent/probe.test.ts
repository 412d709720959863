import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  computeAllocatable,
  createFakeProbe,
  createSystemProbe,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  PublishGate,
  resolveFloor
} from '../../agent/probe.ts'
import type { PublishFigures } from '../../agent/probe.ts'

const KIB = 1024
const MIB = 1024 * KIB
const GIB = 1024 * MIB

function meminfo (totalKb: number, availableKb?: number, freeKb = 1000): string {
  return [
    `MemTotal:       ${totalKb} kB`,
    `MemFree:        ${freeKb} kB`,
    ...(availableKb === undefined ? [] : [`MemAvailable:   ${availableKb} kB`]),
    'Buffers:          123 kB',
    'HugePages_Total:       0',
    ''
  ].join('\n')
}

describe('createSystemProbe', () => {
  let root: string
  let procRoot: string
  let cgroupRoot: string

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'memgossip-probe-'))
    procRoot = path.join(root, 'proc')
    cgroupRoot = path.join(root, 'cgroup')
    await mkdir(path.join(procRoot, 'self'), { recursive: true })
    await mkdir(cgroupRoot, { recursive: true })
  })
  afterEach(async () => {
    await rm(root, { recursive: true, force: true })
  })

  async function cgroupFiles (dir: string, files: Record<string, string>): Promise<void> {
    await mkdir(path.join(cgroupRoot, dir), { recursive: true })
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(cgroupRoot, dir, name), text)
  }

  it('uses cgroup v2 memory.max / memory.current when the cgroup is limited', async () => {
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(16 * MIB, 12 * MIB))
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '4:memory:/old-v1\n0::/system.slice/memgossip.service\n')
    await cgroupFiles('system.slice/memgossip.service', { 'memory.max': `${2 * GIB}\n`, 'memory.current': `${512 * MIB}\n` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 2 * GIB, availableBytes: 1536 * MIB, source: 'cgroup' })
  })

  it('caps cgroup headroom at MemAvailable (the host may be short even if the cgroup is not)', async () => {
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(16 * MIB, 300 * KIB))
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/a\n')
    await cgroupFiles('a', { 'memory.max': `${2 * GIB}`, 'memory.current': `${512 * MIB}` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 2 * GIB, availableBytes: 300 * MIB, source: 'cgroup' })
  })

  it('finds a limit set on an ancestor slice when the leaf says max', async () => {
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(16 * MIB, 12 * MIB))
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/limited.slice/leaf\n')
    await cgroupFiles('limited.slice', { 'memory.max': `${4 * GIB}`, 'memory.current': `${1 * GIB}` })
    await cgroupFiles('limited.slice/leaf', { 'memory.max': 'max\n', 'memory.current': `${100 * MIB}` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 4 * GIB, availableBytes: 3 * GIB, source: 'cgroup' })
  })

  it('falls back to meminfo when memory.max is "max" (unlimited)', async () => {
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(16 * MIB, 12 * MIB))
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/user.slice\n')
    await cgroupFiles('user.slice', { 'memory.max': 'max\n', 'memory.current': `${512 * MIB}` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 16 * GIB, availableBytes: 12 * GIB, source: 'meminfo' })
  })

  it('falls back to meminfo when the cgroup limit is above the host memory', async () => {
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(16 * MIB, 12 * MIB))
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '0::/big\n')
    await cgroupFiles('big', { 'memory.max': `${64 * GIB}`, 'memory.current': `${1 * GIB}` })
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample.source).toBe('meminfo')
    expect(sample.totalBytes).toBe(16 * GIB)
  })

  it('falls back to meminfo on cgroup v1 (no 0:: line)', async () => {
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(8 * MIB, 5 * MIB))
    await writeFile(path.join(procRoot, 'self', 'cgroup'), '4:memory:/docker/abc\n1:cpu:/\n')
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 8 * GIB, availableBytes: 5 * GIB, source: 'meminfo' })
  })

  it('uses MemFree when MemAvailable is missing (kernels before 3.14)', async () => {
    await writeFile(path.join(procRoot, 'meminfo'), meminfo(8 * MIB, undefined, 2 * MIB))
    const sample = await createSystemProbe({ procRoot, cgroupRoot }).sample()
    expect(sample).toEqual({ totalBytes: 8 * GIB, availableBytes: 2 * GIB, source: 'meminfo' })
  })

  it('falls back to os.totalmem/freemem when no file is readable', async () => {
    const sample = await createSystemProbe({ procRoot: path.join(root, 'nope'), cgroupRoot: path.join(root, 'nope') }).sample()
    expect(sample.source).toBe('os')
    expect(sample.totalBytes).toBe(os.totalmem())
    expect(sample.availableBytes).toBeGreaterThan(0)
  })

  it('reads this host without injected roots', async () => {
    const sample = await createSystemProbe().sample()
    expect(['cgroup', 'meminfo', 'os']).toContain(sample.source)
    expect(Number.isSafeInteger(sample.totalBytes) && sample.totalBytes > 0).toBe(true)
    expect(sample.availableBytes).toBeLessThanOrEqual(sample.totalBytes)
  })
})

describe('createFakeProbe', () => {
  it('returns what it was set to', async () => {
    const probe = createFakeProbe({ totalBytes: 8 * GIB, availableBytes: 6 * GIB })
    expect(await probe.sample()).toEqual({ totalBytes: 8 * GIB, availableBytes: 6 * GIB, source: 'fake' })
    probe.set({ availableBytes: 1 * GIB })
    expect(await probe.sample()).toEqual({ totalBytes: 8 * GIB, availableBytes: 1 * GIB, source: 'fake' })
    expect(() => { probe.set({ totalBytes: -1 }) }).toThrow(RangeError)
  })
})

describe('resolveFloor', () => {
  const sample = { totalBytes: 16 * GIB, availableBytes: 10 * GIB }
  const small = { totalBytes: 2 * GIB, availableBytes: 1 * GIB }

  const cases: Array<{ name: string, env: Record<string, string | undefined>, config?: { floor?: string }, sample?: typeof sample, floorBytes: number, rule: RegExp }> = [
    { name: 'default is 5% of total', env: {}, floorBytes: Math.ceil(16 * GIB * 0.05), rule: /^default/ },
    { name: 'default is at least 256 MiB', env: {}, sample: small, floorBytes: 256 * MIB, rule: /^default/ },
    { name: 'config size', env: {}, config: { floor: '1GiB' }, floorBytes: GIB, rule: /^config floor 1GiB/ },
    { name: 'config percent of total', env: {}, config: { floor: '10%' }, floorBytes: Math.ceil(16 * GIB * 0.1), rule: /^config floor 10%/ },
    { name: 'PCT_FREE beats config', env: { MEMGOSSIP_MINMEM_PCT_FREE: '10' }, config: { floor: '1GiB' }, floorBytes: GIB, rule: /^MEMGOSSIP_MINMEM_PCT_FREE=10 / },
    { name: 'PCT_TOTAL beats PCT_FREE', env: { MEMGOSSIP_MINMEM_PCT_TOTAL: '25%', MEMGOSSIP_MINMEM_PCT_FREE: '10' }, floorBytes: 4 * GIB, rule: /^MEMGOSSIP_MINMEM_PCT_TOTAL=25%/ },
    { name: 'FREE beats everything', env: { MEMGOSSIP_MINMEM_FREE: '512MiB', MEMGOSSIP_MINMEM_PCT_TOTAL: '25', MEMGOSSIP_MINMEM_PCT_FREE: '10' }, config: { floor: '1GiB' }, floorBytes: 512 * MIB, rule: /^MEMGOSSIP_MINMEM_FREE=512MiB$/ },
    { name: 'FREE in Kubernetes form', env: { MEMGOSSIP_MINMEM_FREE: '2Gi' }, floorBytes: 2 * GIB, rule: /FREE=2Gi/ },
    { name: 'FREE as bare bytes, zero allowed', env: { MEMGOSSIP_MINMEM_FREE: '0' }, floorBytes: 0, rule: /FREE=0/ },
    { name: 'fractional percent rounds up', env: { MEMGOSSIP_MINMEM_PCT_TOTAL: '2.5' }, sample: { totalBytes: 1001, availableBytes: 0 }, floorBytes: 26, rule: /2\.5% of total/ },
    { name: 'empty variable counts as unset', env: { MEMGOSSIP_MINMEM_FREE: '', MEMGOSSIP_MINMEM_PCT_TOTAL: ' ' }, floorBytes: Math.ceil(16 * GIB * 0.05), rule: /^default/ }
  ]
  it.each(cases)('$name', ({ env, config, sample: s, floorBytes, rule }) => {
    const result = resolveFloor(env, s ?? sample, config)
    expect(result.floorBytes).toBe(floorBytes)
    expect(result.rule).toMatch(rule)
  })

  const bad: Array<{ env: Record<string, string>, config?: { floor?: string }, names: string }> = [
    { env: { MEMGOSSIP_MINMEM_FREE: '512mb' }, names: 'MEMGOSSIP_MINMEM_FREE' },
    { env: { MEMGOSSIP_MINMEM_FREE: '-1GiB' }, names: 'MEMGOSSIP_MINMEM_FREE' },
    { env: { MEMGOSSIP_MINMEM_FREE: '1.5' }, names: 'MEMGOSSIP_MINMEM_FREE' },
    { env: { MEMGOSSIP_MINMEM_FREE: '512m' }, names: 'MEMGOSSIP_MINMEM_FREE' },
    { env: { MEMGOSSIP_MINMEM_PCT_TOTAL: '150' }, names: 'MEMGOSSIP_MINMEM_PCT_TOTAL' },
    { env: { MEMGOSSIP_MINMEM_PCT_TOTAL: '-5' }, names: 'MEMGOSSIP_MINMEM_PCT_TOTAL' },
    { env: { MEMGOSSIP_MINMEM_PCT_TOTAL: 'ten' }, names: 'MEMGOSSIP_MINMEM_PCT_TOTAL' },
    { env: { MEMGOSSIP_MINMEM_PCT_FREE: '5GiB' }, names: 'MEMGOSSIP_MINMEM_PCT_FREE' },
    { env: { MEMGOSSIP_MINMEM_PCT_FREE: '1e2' }, names: 'MEMGOSSIP_MINMEM_PCT_FREE' },
    { env: {}, config: { floor: 'lots' }, names: 'config floor' },
    { env: {}, config: { floor: '101%' }, names: 'config floor' },
    // A bad higher-precedence variable is an error even when a lower one is fine.
    { env: { MEMGOSSIP_MINMEM_FREE: 'x', MEMGOSSIP_MINMEM_PCT_TOTAL: '10' }, names: 'MEMGOSSIP_MINMEM_FREE' }
  ]
  it.each(bad)('refuses $env $config with ConfigError', ({ env, config, names }) => {
    let error: unknown
    try {
      resolveFloor(env, sample, config)
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(Error)
    expect((error as Error).name).toBe('ConfigError')
    expect((error as { setting: string }).setting).toBe(names)
    expect((error as Error).message).toContain(names)
    expect((error as Error).message).toMatch(/accepted/)
  })
})

describe('computeAllocatable', () => {
  const cases = [
    { totalBytes: 16 * GIB, floorBytes: GIB, expected: 15 * GIB },
    { totalBytes: 16 * GIB, floorBytes: GIB, systemReservedBytes: 2 * GIB, expected: 13 * GIB },
    { totalBytes: 16 * GIB, floorBytes: GIB, systemReservedBytes: 2 * GIB, capBytes: 8 * GIB, expected: 8 * GIB },
    { totalBytes: 16 * GIB, floorBytes: GIB, capBytes: 20 * GIB, expected: 15 * GIB },
    { totalBytes: GIB, floorBytes: 2 * GIB, expected: 0 },
    { totalBytes: GIB, floorBytes: 512 * MIB, systemReservedBytes: 512 * MIB, expected: 0 },
    { totalBytes: 16 * GIB, floorBytes: 0, capBytes: 0, expected: 0 },
    { totalBytes: 1000.7, floorBytes: 0, expected: 1000 }
  ]
  it.each(cases)('total $totalBytes floor $floorBytes reserved $systemReservedBytes cap $capBytes → $expected', ({ expected, ...input }) => {
    const result = computeAllocatable(input)
    expect(result).toBe(expected)
    expect(Number.isInteger(result)).toBe(true)
  })
})

describe('PublishGate', () => {
  const base: PublishFigures = { totalBytes: 16 * GIB, availableBytes: 8 * GIB, allocatableBytes: 15 * GIB }
  // Default threshold at 16 GiB: max(1% = 163.84 MiB, 32 MiB).
  const t16 = Math.ceil(16 * GIB / 100)

  const cases: Array<{ name: string, init?: ConstructorParameters<typeof PublishGate>[0], figures: Partial<PublishFigures>, afterMs: number, expected: string | undefined }> = [
    { name: 'nothing moved, before the heartbeat', figures: {}, afterMs: 1000, expected: undefined },
    { name: 'nothing moved, at the heartbeat', figures: {}, afterMs: DEFAULT_HEARTBEAT_INTERVAL_MS, expected: 'heartbeat' },
    { name: 'available moved exactly the threshold', figures: { availableBytes: 8 * GIB - t16 }, afterMs: 1000, expected: undefined },
    { name: 'available moved past the threshold', figures: { availableBytes: 8 * GIB - t16 - 1 }, afterMs: 1000, expected: 'changed' },
    { name: 'allocatable moved past the threshold', figures: { allocatableBytes: 15 * GIB + t16 + 1 }, afterMs: 1000, expected: 'changed' },
    { name: 'total moved past the threshold', figures: { totalBytes: 8 * GIB }, afterMs: 1000, expected: 'changed' },
    { name: 'explicit threshold', init: { thresholdBytes: 10 * MIB }, figures: { availableBytes: 8 * GIB - 11 * MIB }, afterMs: 1000, expected: 'changed' },
    { name: 'explicit threshold, small move', init: { thresholdBytes: 10 * MIB }, figures: { availableBytes: 8 * GIB - 9 * MIB }, afterMs: 1000, expected: undefined },
    { name: 'custom heartbeat', init: { heartbeatIntervalMs: 1000 }, figures: {}, afterMs: 1000, expected: 'heartbeat' },
    { name: 'clock stepped backwards', figures: {}, afterMs: -10, expected: 'heartbeat' }
  ]
  it.each(cases)('$name → $expected', ({ init, figures, afterMs, expected }) => {
    const gate = new PublishGate(init)
    const t0 = 1_700_000_000_000
    expect(gate.check(base, t0)).toBe('first')
    gate.published(base, t0)
    const next = { ...base, ...figures }
    expect(gate.check(next, t0 + afterMs)).toBe(expected)
    expect(gate.shouldPublish(next, t0 + afterMs)).toBe(expected !== undefined)
  })

  it('uses the 32 MiB minimum on small hosts (1% of 1 GiB is only 10 MiB)', () => {
    const small = { totalBytes: GIB, availableBytes: 512 * MIB, allocatableBytes: 700 * MIB }
    const gate = new PublishGate()
    expect(gate.thresholdFor(GIB)).toBe(32 * MIB)
    gate.published(small, 0)
    expect(gate.check({ ...small, availableBytes: 512 * MIB - 20 * MIB }, 1000)).toBeUndefined()
    expect(gate.check({ ...small, availableBytes: 512 * MIB - 33 * MIB }, 1000)).toBe('changed')
  })

  it('compares against the last published figures, not the last sampled ones', () => {
    const gate = new PublishGate({ thresholdBytes: 10 * MIB })
    gate.published(base, 0)
    // Drift of 6 MiB twice: neither step alone crosses, the sum does.
    const step1 = { ...base, availableBytes: base.availableBytes - 6 * MIB }
    expect(gate.shouldPublish(step1, 1000)).toBe(false)
    const step2 = { ...base, availableBytes: base.availableBytes - 12 * MIB }
    expect(gate.shouldPublish(step2, 2000)).toBe(true)
    gate.published(step2, 2000)
    expect(gate.shouldPublish(step2, 3000)).toBe(false)
    expect(gate.shouldPublish(step2, 7000)).toBe(true)
  })
})
