/**
 * The clock lease in the data dir's meta.json (agent/lease.ts), on real
 * files: a lease past every beacon's stamp, renewed ahead and in the
 * background, the wait it imposes on a restart, the client id each write
 * names, and a data dir of another peer refused.
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ClockLease } from '../../agent/lease.ts'
import { writeMeta } from '../../agent/store.ts'
import { tempDir } from '../../simulations/support/cluster.ts'
import { waitFor } from '../../simulations/support/wait.ts'
import { VirtualClock } from '../../simulations/virtual/clock.ts'

const START_MS = 1_700_000_000_000
const PERIOD_MS = 1000
const dirs: string[] = []

async function dataDir (): Promise<string> {
  const dir = await tempDir('memgossip-lease-')
  dirs.push(dir)
  return dir
}

/** A lease on a fresh data dir, opened, its files holding client id 7. */
async function freshLease (): Promise<{ dir: string, clock: VirtualClock, lease: ClockLease }> {
  const dir = await dataDir()
  const clock = new VirtualClock({ startMs: START_MS })
  const lease = new ClockLease({ dataDir: dir, self: 'peer-a', clock, periodMs: PERIOD_MS })
  expect(await lease.open()).toBeUndefined()
  await lease.filesHold(7, { write: true })
  return { dir, clock, lease }
}

async function meta (dir: string): Promise<{ clientId?: number, peerId?: string, clockLeaseMs?: number }> {
  return JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'))
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true })
})

describe('clock lease', () => {
  it('is on disk past a stamp before hold returns, and renewed only half a period before it runs out', async () => {
    const { dir, lease } = await freshLease()
    expect(await meta(dir)).toEqual({ clientId: 7, peerId: 'peer-a' })

    await lease.hold(START_MS)
    expect(await meta(dir)).toEqual({ clientId: 7, peerId: 'peer-a', clockLeaseMs: START_MS + PERIOD_MS })
    // Within the first half of the period: nothing is written.
    await lease.hold(START_MS + PERIOD_MS / 2 - 1)
    expect((await meta(dir)).clockLeaseMs).toBe(START_MS + PERIOD_MS)
    // Past it: renewed in the background (the stamp is covered by the lease
    // on disk already).
    await lease.hold(START_MS + PERIOD_MS / 2 + 10)
    await lease.hold(START_MS + PERIOD_MS - 1)
    await waitFor('the renewed lease on disk', async () => (await meta(dir)).clockLeaseMs === START_MS + PERIOD_MS * 1.5 + 10, 5000)
    // A stamp at or past the lease on disk waits for the write that covers it.
    await lease.hold(START_MS + 5 * PERIOD_MS)
    expect((await meta(dir)).clockLeaseMs).toBe(START_MS + 6 * PERIOD_MS)
  })

  it('makes a restart wait until the wall clock passes the lease its last run held', async () => {
    const { dir, clock, lease: first } = await freshLease()
    await first.hold(START_MS + 200)
    expect(first.waitMs()).toBe(0)

    const again = new ClockLease({ dataDir: dir, self: 'peer-a', clock, periodMs: PERIOD_MS })
    expect(await again.open()).toBe(7)
    expect(again.waitMs()).toBe(1200)
    await clock.advance(1200)
    expect(again.waitMs()).toBe(0)
  })

  it("names the new epoch's client id once moved, keeping the lease", async () => {
    const { dir, lease } = await freshLease()
    await lease.hold(START_MS)
    await lease.moved(9)
    expect(await meta(dir)).toEqual({ clientId: 9, peerId: 'peer-a', clockLeaseMs: START_MS + PERIOD_MS })
    await lease.hold(START_MS + 5 * PERIOD_MS)
    expect((await meta(dir)).clientId).toBe(9)
  })

  it("refuses another peer's data dir", async () => {
    const dir = await dataDir()
    await writeMeta(dir, { clientId: 3, peerId: 'peer-b' })
    const lease = new ClockLease({ dataDir: dir, self: 'peer-a', clock: new VirtualClock({ startMs: START_MS }), periodMs: PERIOD_MS })
    await expect(lease.open()).rejects.toThrow(`data dir ${dir} belongs to peer peer-b, not peer-a`)
  })

  it('without a data dir, holds nothing and never waits', async () => {
    const lease = new ClockLease({ self: 'peer-a', clock: new VirtualClock({ startMs: START_MS }), periodMs: PERIOD_MS })
    expect(await lease.open()).toBeUndefined()
    await lease.filesHold(7, { write: true })
    await lease.hold(START_MS)
    await lease.moved(9)
    expect(lease.waitMs()).toBe(0)
  })
})
