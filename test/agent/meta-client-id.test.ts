/**
 * meta.json names the Yjs client id a restart writes under. It must be the id
 * of the document the files on disk hold: a kill while a new epoch's snapshot
 * is still being written restarts from the old epoch's files, and an id the
 * files know nothing of — whose first structs peers may already hold, carried
 * over into the new epoch — would make the restarted node write at positions
 * peers take for ones they have, and drop (docs/decisions.md "A restart reused
 * a client id").
 *
 * A real agent with a real data dir; the store's temporary files open 1.2 s
 * late, so the move's snapshot takes that long, and a write in that window
 * makes the agent beacon and renew its clock lease (a meta.json write). Then
 * a restart whose meta.json still names the old id — a kill between the
 * snapshot and meta.json — writes under the id the snapshot names.
 */
import { readFileSync } from 'node:fs'
import { open, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Agent } from '../../agent/agent.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import { tempDir } from '../../simulations/support/cluster.ts'
import { waitFor } from '../../simulations/support/wait.ts'
import { PeerStandIn } from './stand-in.ts'

const SLOW_TMP_MS = 1200
/** Each meta.json write: the id it names, the epoch of the snapshot on disk, and the id of the agent's document then. */
const writes = vi.hoisted(() => [] as Array<{ clientId: unknown, filesEpoch: number, docId?: number }>)
const current = vi.hoisted(() => ({ agent: undefined as undefined | { ledger: { clientId: () => number } } }))

/** The epoch of the snapshot on disk: 'MGS2' or 'MGS3' and a u32 LE epoch, 'MGS1' or none for epoch 0. */
function snapshotEpoch (dir: string): number {
  try {
    const head = readFileSync(join(dir, 'ledger.snapshot')).subarray(0, 8)
    return ['MGS2', 'MGS3'].includes(head.subarray(0, 4).toString()) ? head.readUInt32LE(4) : 0
  } catch {
    return 0
  }
}

vi.mock('../../agent/store.ts', async (importOriginal) => {
  const store = await importOriginal<typeof import('../../agent/store.ts')>()
  const slowOpen = async (file: string, flags: string | number, mode?: number): ReturnType<typeof open> => {
    if (file.endsWith('.tmp') && !file.endsWith('meta.json.tmp')) await new Promise(resolve => setTimeout(resolve, SLOW_TMP_MS))
    return await open(file, flags, mode)
  }
  return {
    ...store,
    writeMeta: async (dir: string, meta: Record<string, unknown>) => {
      writes.push({ clientId: meta.clientId, filesEpoch: snapshotEpoch(dir), docId: current.agent?.ledger.clientId() })
      await store.writeMeta(dir, meta)
    },
    LedgerStore: { open: async (dir: string, init: Parameters<typeof store.LedgerStore.open>[1]) => await store.LedgerStore.open(dir, { ...init, openFile: slowOpen }) }
  }
})

const GiB = 1024 ** 3
const started: Agent[] = []

/** One member on a stand-in transport (a peer that is not a member, so it beacons), moving to a new epoch every 4 ended entries. */
async function startIn (dir: string): Promise<Agent> {
  return await Agent.start({
    network: new PeerStandIn('12D3KooWmetaself000000000000000000000000000000', ['12D3KooWmetapeer000000000000000000000000000000']),
    probe: createFakeProbe({ totalBytes: 16 * GiB, availableBytes: 16 * GiB }),
    cluster: 'meta', dataDir: dir, fsync: false, compactAfterEnded: 4, log: () => {}
  })
}
const dirs: string[] = []
afterEach(async () => {
  await Promise.all(started.splice(0).map(async a => { await a.stop() }))
  await Promise.all(dirs.splice(0).map(async d => { await rm(d, { recursive: true, force: true }) }))
})

describe('the client id meta.json names', () => {
  it('is a new epoch\'s only once that epoch\'s snapshot is on disk, though the lease is renewed while it is written', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const agent = await startIn(dir)
    started.push(agent)
    current.agent = agent
    const firstId = agent.ledger.clientId()
    for (let i = 0; i < 5; i++) {
      await agent.reserve({ id: `r${i}`, bytes: GiB, placement: { kind: 'any' } })
      await agent.release(`r${i}`)
    }
    await waitFor('a move to epoch 1', () => agent.metrics.epoch >= 1, 20_000)
    const newId = agent.ledger.clientId()
    expect(newId).not.toBe(firstId)
    // A write while the snapshot is being written: the agent beacons, and renews its lease.
    const held = agent.reserve({ id: 'during-move', bytes: GiB, placement: { kind: 'any' } })
    await held
    await waitFor('meta.json names the new id', () => writes.at(-1)?.clientId === newId, 10_000)
    const name = (id: unknown): string => id === firstId ? 'old' : id === newId ? 'new' : String(id)
    console.log(`meta.json writes (names id, snapshot on disk, document's id): ${writes.map(w => `${name(w.clientId)}/${w.filesEpoch}/${name(w.docId)}`).join(', ')}`)
    const inWindow = writes.filter(w => w.docId === newId && w.filesEpoch === 0)
    expect(inWindow.length, 'a lease write came while the move\'s snapshot was being written').toBeGreaterThan(0)
    expect(inWindow.map(w => name(w.clientId)), 'meta.json named the new epoch\'s id while the files were of the old epoch').toEqual(inWindow.map(() => 'old'))
    expect(name(writes.at(-1)!.clientId)).toBe('new')
    expect(writes.at(-1)!.filesEpoch).toBe(1)

    // A kill after the snapshot, before meta.json: it still names the old id.
    await agent.stop()
    started.splice(started.indexOf(agent), 1)
    const metaPath = join(dir, 'meta.json')
    // (A lease write queued before the stop may still land: let it.)
    await new Promise(resolve => setTimeout(resolve, 500))
    await writeFile(metaPath, JSON.stringify({ ...JSON.parse(await readFile(metaPath, 'utf8')), clientId: firstId }))
    expect(JSON.parse(await readFile(metaPath, 'utf8')).clientId).toBe(firstId)
    const restarted = await startIn(dir)
    started.push(restarted)
    expect(restarted.metrics.epoch).toBe(1)
    expect(name(restarted.ledger.clientId()), 'the restart writes under the id its snapshot names').toBe('new')
  })
})
