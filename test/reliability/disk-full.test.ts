/**
 * A really full disk (docs/design.md "Durability"): the data dir on a 2 MiB
 * tmpfs, reservations until a write fails. The failing write gets 503 with a
 * clear detail, the agent turns read-only (/healthz 503) but keeps answering
 * reads, and after a restart from a copy of the data dir on a bigger disk every
 * earlier 201 is there and every file loads. Needs root (mount); skipped with
 * the reason otherwise.
 */
import { execFileSync } from 'node:child_process'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { LedgerStore } from '../../agent/store.ts'
import { memoryLogger } from '../../agent/log.ts'
import { api, GiB, startAgent, tempDir, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'

const mountPoint = await mkdtemp(join(tmpdir(), 'memgossip-tmpfs-'))
let skipReason: string | undefined
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2M', 'tmpfs', mountPoint], { stdio: 'pipe' })
} catch (error) {
  skipReason = `cannot mount a tmpfs (${String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim()}); the fault-injected variant in test/agent/api.test.ts still runs`
  console.log(`disk-full: skipped: ${skipReason}`)
}

const started: TestAgent[] = []
const copies: string[] = []
afterAll(async () => {
  await Promise.all(started.map(async a => { await a.daemon.stop().catch(() => {}) }))
  if (skipReason === undefined) {
    try { execFileSync('umount', [mountPoint], { stdio: 'pipe' }) } catch (error) { console.log(`disk-full: umount failed: ${(error as Error).message}`) }
  }
  await rm(mountPoint, { recursive: true, force: true })
  await Promise.all(copies.map(async d => { await rm(d, { recursive: true, force: true }) }))
})

describe.skipIf(skipReason !== undefined)('a full disk (tmpfs of 2 MiB)', () => {
  it('the failing write → 503, read-only, reads still work; every earlier 201 survives a restart on a bigger disk', async () => {
    const dataDir = join(mountPoint, 'data')
    const log = memoryLogger()
    const a = await startAgent({ dataDir, totalBytes: 1024 * GiB, fsync: true, log })
    started.push(a)
    await waitFor('joined', () => a.daemon.agent.state().joined)
    // Leave ~96 KiB free so the disk fills after a few hundred reservations, not tens of thousands.
    const free = Number(execFileSync('df', ['--output=avail', '-B1', mountPoint]).toString().split('\n')[1].trim())
    await writeFile(join(mountPoint, 'filler'), Buffer.alloc(Math.max(0, free - 96 * 1024)))

    const acknowledged: string[] = []
    let failure: { id: string, status: number, body: any } | undefined
    for (let round = 0; failure === undefined && round < 500; round++) {
      // Eight in flight, like a deploy system would send them.
      const results = await Promise.all(Array.from({ length: 8 }, async (_, k) => {
        const id = `full-${round}-${k}`
        return { id, ...await api(a, '/v1/reservations', { body: { id, size: '1MiB', labels: { team: 'reliability', note: 'x'.repeat(100) } } }) }
      }))
      for (const r of results) {
        if (r.status === 201) acknowledged.push(r.id)
        else failure ??= r
      }
    }
    console.log(`disk-full: ${acknowledged.length} reservations acknowledged before the disk filled; first refusal: ${failure?.status} ${JSON.stringify(failure?.body)}`)
    expect(failure).toBeDefined()
    expect(acknowledged.length).toBeGreaterThan(10)
    expect(failure!.status).toBe(503)
    expect(failure!.body.error).toBe('Unavailable')
    expect(failure!.body.detail).toMatch(/read-only|no space|ENOSPC|disk/i)

    // Read-only from now on: later writes say so, health says so, reads still work.
    const later = await api(a, '/v1/reservations', { body: { id: 'after-full', size: '1MiB' } })
    expect(later.status).toBe(503)
    expect(later.body.detail).toMatch(/read-only/)
    expect(later.body.detail).toMatch(/no space|ENOSPC/i)
    const health = await api(a, '/healthz')
    expect(health.status).toBe(503)
    expect(health.body.readOnly).toMatch(/no space|ENOSPC/i)
    const got = await api(a, `/v1/reservations/${acknowledged[0]}`)
    expect(got.status).toBe(200)
    expect(got.body.status).toBe('admitted')
    expect((await api(a, '/v1/nodes')).status).toBe(200)
    expect((await api(a, '/v1/fit', { body: { size: '1MiB' } })).status).toBe(200)
    expect((await api(a, '/metrics')).body).toMatch(/^memgossip_read_only 1$/m)
    expect(log.records.filter(r => r.level === 'error').length).toBe(1)

    // Stop on the full disk, copy the dir to a big one, restart from the copy.
    await a.daemon.stop()
    started.splice(started.indexOf(a), 1)
    const copy = await tempDir('memgossip-diskfull-copy-')
    copies.push(copy)
    await cp(dataDir, copy, { recursive: true })
    // The files load by themselves: no damaged record in the middle, no refused snapshot.
    const opened = await LedgerStore.open(copy, { fsync: false })
    console.log(`disk-full: copy loads: ${opened.recovered.records} records, torn tail ${opened.recovered.droppedTailBytes} bytes`)
    await opened.store.close()

    const restartLogs: string[] = []
    const b = await startAgent({ dataDir: copy, totalBytes: 1024 * GiB, log: (l) => { restartLogs.push(l) } })
    started.push(b)
    expect(b.daemon.info.peerId).toBe(a.daemon.info.peerId)
    expect(restartLogs.filter(l => /unreadable record/.test(l))).toEqual([])
    expect((await api(b, '/healthz')).status).toBe(200)
    const missing: string[] = []
    for (const id of acknowledged) {
      const r = await api(b, `/v1/reservations/${id}`)
      if (r.status !== 200 || r.body.status !== 'admitted') missing.push(`${id}: ${r.status} ${r.body.status ?? r.body.error}`)
    }
    expect(missing).toEqual([])
    // And it writes again.
    expect((await api(b, '/v1/reservations', { body: { id: 'after-restart', size: '1MiB' } })).status).toBe(201)
  })
})
