/**
 * agent/usage.ts over fake cgroup trees (v1 and v2 files in a temp dir): usage
 * and peak per reservation, OOM kills told apart (offender: its own limit ran
 * out; bystander: the host's OOM killer), the record written only past the
 * threshold, and the refusals of a named cgroup. Real cgroups: usage.e2e.test.ts.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { cgroupName } from '../../agent/cgroup.ts'
import { MAX_USAGE_ENTRIES } from '../../crdt/index.ts'
import { UsageTracker, UsageWatchError, type OomReport } from '../../agent/usage.ts'

const MIB = 1024 * 1024
let root: string
let now = 1_000
const clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => {}, setInterval: () => 0, clearInterval: () => {} }

beforeEach(async () => { root = await mkdtemp(path.join(os.tmpdir(), 'memgossip-usage-')) })
afterEach(async () => { await rm(root, { recursive: true, force: true }) })

async function files (dir: string, content: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true })
  for (const [name, text] of Object.entries(content)) await writeFile(path.join(dir, name), text)
}

const v2 = (current: number, peak: number, events: string): Record<string, string> => ({
  'memory.current': `${current}\n`, 'memory.peak': `${peak}\n`, 'memory.max': `${64 * MIB}\n`, 'memory.events': events
})
const v1 = (usage: number, max: number, failcnt: number, oomKill: number): Record<string, string> => ({
  'memory.usage_in_bytes': `${usage}\n`,
  'memory.max_usage_in_bytes': `${max}\n`,
  'memory.limit_in_bytes': `${64 * MIB}\n`,
  'memory.failcnt': `${failcnt}\n`,
  'memory.oom_control': `oom_kill_disable 0\nunder_oom 0\noom_kill ${oomKill}\n`
})

function tracker (init: { searchUnnamed?: boolean } = {}): { t: UsageTracker, ooms: OomReport[], logs: string[] } {
  const ooms: OomReport[] = []
  const logs: string[] = []
  const t = new UsageTracker({ clock, log: (l) => logs.push(l), onOom: (r) => ooms.push(r), cgroupRoot: root, ...init })
  return { t, ooms, logs }
}

describe.each([
  ['v2', (u: number, p: number) => v2(u, p, 'max 0\noom 0\noom_kill 0\n'), (u: number, p: number) => v2(u, p, 'max 40\noom 1\noom_kill 1\n'), (u: number, p: number) => v2(u, p, 'max 0\noom 0\noom_kill 1\n')],
  ['v1', (u: number, p: number) => v1(u, p, 0, 0), (u: number, p: number) => v1(u, p, 40, 1), (u: number, p: number) => v1(u, p, 0, 1)]
])('cgroup %s', (_version, calm, ownOom, hostOom) => {
  it('reads usage and peak of the named cgroup, and forgets it when the reservation no longer runs here', async () => {
    const { t } = tracker()
    const dir = path.join(root, 'user.slice', cgroupName('web'))
    await files(dir, calm(10 * MIB, 12 * MIB))
    expect(await t.watch('web', dir, 64 * MIB)).toMatchObject({ id: 'web', usedBytes: 10 * MIB, peakBytes: 12 * MIB, limitBytes: 64 * MIB, reservedBytes: 64 * MIB, exceededLimitKills: 0 })
    await files(dir, calm(30 * MIB, 31 * MIB))
    await t.tick(new Map([['web', 64 * MIB]]))
    expect(t.get('web')).toMatchObject({ usedBytes: 30 * MIB, peakBytes: 31 * MIB })
    await t.tick(new Map())
    expect(t.get('web')).toBeUndefined()
  })

  it('an OOM kill while its own limit ran out: the offender, once (event, log, counter)', async () => {
    const { t, ooms, logs } = tracker()
    const dir = path.join(root, cgroupName('hog'))
    await files(dir, calm(60 * MIB, 60 * MIB))
    await t.watch('hog', dir, 64 * MIB)
    await files(dir, ownOom(1 * MIB, 64 * MIB))
    await t.tick(new Map([['hog', 64 * MIB]]))
    await t.tick(new Map([['hog', 64 * MIB]])) // the same counters again: nothing new
    expect(ooms).toEqual([expect.objectContaining({ id: 'hog', cause: 'limit', kills: 1, reservedBytes: 64 * MIB, peakBytes: 64 * MIB })])
    expect(ooms[0].message).toMatch(/reservation hog exceeded its limit of 64\.00 MiB: 1 process\(es\) OOM-killed inside its cgroup \(peak 64\.00 MiB\); it is the offender/)
    expect(logs.some(l => l.startsWith('WARNING OOM offender: reservation hog exceeded its limit'))).toBe(true)
    expect(t.counters).toEqual({ oomKillsLimit: 1, oomKillsHost: 0 })
    expect(t.get('hog')).toMatchObject({ exceededLimitKills: 1, hostKills: 0 })
  })

  it('an OOM kill while within its limit: a bystander of the host running out', async () => {
    const { t, ooms } = tracker()
    const dir = path.join(root, cgroupName('victim'))
    await files(dir, calm(20 * MIB, 20 * MIB))
    await t.watch('victim', dir, 64 * MIB)
    await files(dir, hostOom(0, 20 * MIB))
    await t.tick(new Map([['victim', 64 * MIB]]))
    expect(ooms).toEqual([expect.objectContaining({ id: 'victim', cause: 'host', kills: 1 })])
    expect(ooms[0].message).toMatch(/while within its limit of 64\.00 MiB \(peak 20\.00 MiB\): the host or a parent cgroup ran out of memory; it was a bystander/)
    expect(t.counters).toEqual({ oomKillsLimit: 0, oomKillsHost: 1 })
  })

  it('a kill already counted when the agent first reads the cgroup is reported (a final reading after the command ended)', async () => {
    const { t, ooms } = tracker()
    const dir = path.join(root, cgroupName('late'))
    await files(dir, ownOom(0, 64 * MIB))
    await t.watch('late', dir, 64 * MIB)
    expect(ooms.map(o => o.cause)).toEqual(['limit'])
  })
})

it('v1 with swap accounting: a hit of the memory+swap limit (memory.memsw.failcnt) makes the offender', async () => {
  const { t, ooms } = tracker()
  const dir = path.join(root, cgroupName('memsw'))
  await files(dir, { ...v1(60 * MIB, 60 * MIB, 0, 0), 'memory.memsw.failcnt': '0\n' })
  await t.watch('memsw', dir, 64 * MIB)
  await files(dir, { ...v1(0, 64 * MIB, 0, 1), 'memory.memsw.failcnt': '12\n' })
  await t.tick(new Map([['memsw', 64 * MIB]]))
  expect(ooms.map(o => o.cause)).toEqual(['limit'])
})

it('v1 where the kernel counts no failcnt (memory+swap limit set): a peak at the limit makes the offender, one well below it the bystander', async () => {
  const { t, ooms } = tracker()
  for (const [id, peak] of [['at-limit', 64 * MIB - 4096], ['below', 40 * MIB]] as const) {
    const dir = path.join(root, cgroupName(id))
    await files(dir, v1(10 * MIB, 10 * MIB, 0, 0))
    await t.watch(id, dir, 64 * MIB)
    await files(dir, v1(0, peak, 0, 1))
  }
  await t.tick(new Map([['at-limit', 64 * MIB], ['below', 64 * MIB]]))
  expect(ooms.map(o => [o.id, o.cause])).toEqual([['at-limit', 'limit'], ['below', 'host']])
})

describe('the node record', () => {
  it('is written when a reservation appears or goes, or its usage moves past the threshold — not at rest', async () => {
    const { t } = tracker()
    const dir = path.join(root, cgroupName('a'))
    await files(dir, v2(10 * MIB, 10 * MIB, 'max 0\noom 0\noom_kill 0\n'))
    await t.watch('a', dir, 64 * MIB)
    const first = t.recordIfMoved(32 * MIB)
    expect(first).toEqual({ a: { usedBytes: 10 * MIB, peakBytes: 10 * MIB } })
    t.published(first!)
    await files(dir, v2(40 * MIB, 40 * MIB, 'max 0\noom 0\noom_kill 0\n'))
    await t.tick(new Map([['a', 64 * MIB]]))
    expect(t.recordIfMoved(32 * MIB)).toBeUndefined() // moved 30 MiB: within the threshold
    await files(dir, v2(43 * MIB, 43 * MIB, 'max 0\noom 0\noom_kill 0\n'))
    await t.tick(new Map([['a', 64 * MIB]]))
    const moved = t.recordIfMoved(32 * MIB)
    expect(moved).toEqual({ a: { usedBytes: 43 * MIB, peakBytes: 43 * MIB } })
    t.published(moved!)
    await t.tick(new Map())
    expect(t.recordIfMoved(32 * MIB)).toEqual({})
  })
})

it('the record keeps at most MAX_USAGE_ENTRIES reservations, the largest users (a larger record would be refused by every peer)', async () => {
  const t = new UsageTracker({ clock, log: () => {}, onOom: () => {}, cgroupRoot: root, read: async (dir) => ({ currentBytes: Number(path.basename(dir).slice('memgossip-r'.length)) * 4096, limitHits: 0, oomKills: 0 }) })
  for (let i = 0; i < MAX_USAGE_ENTRIES + 3; i++) await t.watch(`r${i}`, path.join(root, cgroupName(`r${i}`)), MIB)
  const record = t.recordIfMoved(0)!
  expect(Object.keys(record)).toHaveLength(MAX_USAGE_ENTRIES)
  expect(record.r0).toBeUndefined()
  expect(record[`r${MAX_USAGE_ENTRIES + 2}`]).toBeDefined()
})

describe('cgroups nobody named (the agent restarted while run kept its command going)', () => {
  it('are found once below the cgroup root, v1 and v2, and a reservation without one is searched for only once', async () => {
    const { t, logs } = tracker({ searchUnnamed: true })
    await files(path.join(root, 'memory', 'process_api', 'abc', cgroupName('v1-job')), v1(5 * MIB, 6 * MIB, 0, 0))
    await files(path.join(root, 'user.slice', 'app.scope', cgroupName('v2-job')), v2(7 * MIB, 8 * MIB, 'max 0\noom 0\noom_kill 0\n'))
    await files(path.join(root, 'cpu', cgroupName('v1-job')), { 'cpu.shares': '1024\n' }) // same name, not a memory cgroup
    const running = new Map([['v1-job', 64 * MIB], ['v2-job', 64 * MIB], ['no-cgroup', MIB]])
    await t.tick(running)
    expect(t.get('v1-job')).toMatchObject({ usedBytes: 5 * MIB, cgroup: path.join(root, 'memory', 'process_api', 'abc', cgroupName('v1-job')) })
    expect(t.get('v2-job')).toMatchObject({ usedBytes: 7 * MIB })
    expect(t.get('no-cgroup')).toBeUndefined()
    expect(logs.filter(l => l.startsWith('usage: found the cgroup of'))).toHaveLength(2)
    // Made later, it is not searched for again while it runs.
    await files(path.join(root, 'memory', cgroupName('no-cgroup')), v1(MIB, MIB, 0, 0))
    now += 60_000
    await t.tick(running)
    expect(t.get('no-cgroup')).toBeUndefined()
  })

  it('off by default (a simulated or fake-memory agent must not walk the host), and at most once per interval', async () => {
    await files(path.join(root, 'memory', cgroupName('a')), v1(MIB, MIB, 0, 0))
    await files(path.join(root, 'memory', cgroupName('b')), v1(MIB, MIB, 0, 0))
    const off = tracker()
    await off.t.tick(new Map([['a', MIB]]))
    expect(off.t.get('a')).toBeUndefined()
    const on = tracker({ searchUnnamed: true })
    await on.t.tick(new Map([['a', MIB]]))
    expect(on.t.get('a')).toBeDefined()
    await on.t.tick(new Map([['a', MIB], ['b', MIB]])) // b admitted a moment later: waits for the next search
    expect(on.t.get('b')).toBeUndefined()
    now += 30_000
    await on.t.tick(new Map([['a', MIB], ['b', MIB]]))
    expect(on.t.get('b')).toBeDefined()
  })

  it('a search visits at most searchMaxDirs directories', async () => {
    const t = new UsageTracker({ clock, log: () => {}, onOom: () => {}, cgroupRoot: root, searchUnnamed: true, searchMaxDirs: 3 })
    await files(path.join(root, 'memory', 'a', 'b', 'c', cgroupName('deep')), v1(MIB, MIB, 0, 0))
    await t.tick(new Map([['deep', MIB]]))
    expect(t.get('deep')).toBeUndefined()
  })
})

describe('a named cgroup is checked', () => {
  it.each([
    ['relative', 'memgossip-x', /must be an absolute, normalized path/],
    ['not normalized', '/a/../memgossip-x', /must be an absolute, normalized path/],
    ['outside the cgroup root', '/tmp/memgossip-x', /is not below the cgroup root/],
    ['another reservation\'s', 'ROOT/memgossip-y', /is not the cgroup of 'x' \(its name would be memgossip-x\)/],
    ['not a memory cgroup', 'ROOT/memgossip-x', /is not a memory cgroup/]
  ])('%s', async (_name, dir, message) => {
    const { t } = tracker()
    const error = await t.watch('x', dir.replace('ROOT', root), MIB).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(UsageWatchError)
    expect((error as Error).message).toMatch(message)
    expect(t.list()).toEqual([])
  })
})
