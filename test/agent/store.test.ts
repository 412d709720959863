import { spawn } from 'node:child_process'
import { open, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { LedgerStore, LOG_FILE, META_FILE, readMeta, SNAPSHOT_FILE, writeMeta } from '../../agent/store.ts'
import type { LedgerStoreInit } from '../../agent/store.ts'
import { seededRandom } from '../../simulations/support/random.ts'

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const MAGIC_BYTES = 4
const HEADER_BYTES = 8

/** Small seeded generator, so a failing run can be replayed from its seed. */
const rng = seededRandom

function testSeed (): number {
  const fromEnv = Number(process.env.MEMGOSSIP_TEST_SEED)
  return Number.isSafeInteger(fromEnv) ? fromEnv : Math.floor(Math.random() * 2 ** 31)
}

function payload (i: number, length = 16 + (i % 50)): Uint8Array {
  const bytes = new Uint8Array(length)
  for (let j = 0; j < length; j++) bytes[j] = (i * 31 + j * 7) & 0xff
  bytes[0] = i & 0xff
  bytes[1] = (i >> 8) & 0xff
  return bytes
}

function toArrays (updates: Uint8Array[]): number[][] {
  return updates.map((u) => Array.from(u))
}

function errorOf (fn: () => Promise<unknown>): Promise<{ name: string, code?: string, message: string }> {
  return fn().then(() => { throw new Error('expected a rejection') }, (err: unknown) => err as { name: string, code?: string, message: string })
}

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'memgossip-store-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function writeRecords (target: string, records: Uint8Array[], init?: LedgerStoreInit): Promise<void> {
  const { store } = await LedgerStore.open(target, init)
  for (const r of records) await store.append(r, { durable: false })
  await store.close()
}

describe('LedgerStore basics', () => {
  it('creates the directory 0700 and files 0600, empty on first open', async () => {
    const fresh = path.join(dir, 'data', 'nested')
    const { store, updates, recovered } = await LedgerStore.open(fresh)
    expect(updates).toEqual([])
    expect(recovered).toEqual({ records: 0, droppedTailBytes: 0 })
    expect((await stat(fresh)).mode & 0o777).toBe(0o700)
    expect((await stat(path.join(fresh, LOG_FILE))).mode & 0o777).toBe(0o600)
    expect((await readFile(path.join(fresh, LOG_FILE))).toString('latin1')).toBe('MGL1')
    expect(store.sizeBytes()).toBe(MAGIC_BYTES)
    await store.close()
  })

  it('round-trips many updates, durable and not, across reopen', async () => {
    const random = rng(7)
    const records = Array.from({ length: 2000 }, (_, i) => payload(i, 1 + Math.floor(random() * 300)))
    const { store } = await LedgerStore.open(dir)
    await Promise.all(records.map(async (r, i) => { await store.append(r, { durable: i % 3 === 0 }) }))
    const expectedSize = MAGIC_BYTES + records.reduce((sum, r) => sum + HEADER_BYTES + r.byteLength, 0)
    expect(store.sizeBytes()).toBe(expectedSize)
    expect(store.stats().appends).toBe(records.length)
    await store.close()

    const reopened = await LedgerStore.open(dir)
    expect(toArrays(reopened.updates)).toEqual(toArrays(records))
    expect(reopened.recovered).toEqual({ records: records.length, droppedTailBytes: 0 })
    expect(reopened.store.sizeBytes()).toBe(expectedSize)
    // Appending after a reopen continues the same log.
    await reopened.store.append(payload(9999), { durable: true })
    await reopened.store.close()
    const again = await LedgerStore.open(dir)
    expect(again.updates.length).toBe(records.length + 1)
    expect(Array.from(again.updates.at(-1) ?? [])).toEqual(Array.from(payload(9999)))
    await again.store.close()
  })

  it('refuses empty updates, and every call after close', async () => {
    const { store } = await LedgerStore.open(dir)
    expect(await errorOf(async () => { await store.append(new Uint8Array(0), { durable: true }) })).toMatchObject({ name: 'StoreError', code: 'EEMPTY' })
    await store.close()
    await store.close()
    expect(await errorOf(async () => { await store.append(payload(1), { durable: true }) })).toMatchObject({ name: 'StoreError', code: 'ECLOSED' })
    expect(await errorOf(async () => { await store.compact(payload(1)) })).toMatchObject({ name: 'StoreError', code: 'ECLOSED' })
  })

  it('writes out appends queued before close()', async () => {
    const { store } = await LedgerStore.open(dir)
    const pending = [0, 1, 2].map(async (i) => { await store.append(payload(i), { durable: false }) })
    await store.close()
    await Promise.all(pending)
    const { updates, store: s2 } = await LedgerStore.open(dir)
    expect(updates.length).toBe(3)
    await s2.close()
  })

  it('refuses a file that is not a ledger log', async () => {
    await writeFile(path.join(dir, LOG_FILE), 'hello world, not a ledger')
    const err = await errorOf(async () => await LedgerStore.open(dir))
    expect(err).toMatchObject({ name: 'StoreError', code: 'ECORRUPT' })
    expect(err.message).toContain(LOG_FILE)
  })

  it('recovers a log whose creation was torn (partial magic)', async () => {
    await writeFile(path.join(dir, LOG_FILE), 'MG')
    const { store, updates, recovered } = await LedgerStore.open(dir)
    expect(updates).toEqual([])
    expect(recovered.droppedTailBytes).toBe(2)
    await store.append(payload(1), { durable: true })
    await store.close()
    const reopened = await LedgerStore.open(dir)
    expect(reopened.updates.length).toBe(1)
    await reopened.store.close()
  })
})

describe('LedgerStore torn and damaged tails', () => {
  const count = 20
  const records = Array.from({ length: count }, (_, i) => payload(i, 40))
  let original: Buffer
  let lastStart: number

  beforeEach(async () => {
    await writeRecords(dir, records)
    original = await readFile(path.join(dir, LOG_FILE))
    lastStart = original.byteLength - HEADER_BYTES - 40
  })

  it('cuts a tail torn at every offset of the last record, then appends cleanly', async () => {
    const logFile = path.join(dir, LOG_FILE)
    for (let cut = lastStart; cut < original.byteLength; cut++) {
      await writeFile(logFile, original.subarray(0, cut))
      const logs: string[] = []
      const { store, updates, recovered } = await LedgerStore.open(dir, { logger: (m) => logs.push(m) })
      const dropped = cut - lastStart
      expect(toArrays(updates), `cut at ${cut}`).toEqual(toArrays(records.slice(0, count - 1)))
      expect(recovered.droppedTailBytes, `cut at ${cut}`).toBe(dropped)
      expect(recovered.records).toBe(count - 1)
      if (dropped > 0) {
        expect(logs.length, `cut at ${cut}`).toBe(1)
        expect(logs[0]).toContain(`dropped ${dropped} bytes`)
        expect(recovered.reason).toMatch(/short record/)
      } else {
        expect(logs).toEqual([])
      }
      expect((await stat(logFile)).size).toBe(lastStart)
      await store.append(payload(500), { durable: true })
      await store.close()
      const reopened = await LedgerStore.open(dir)
      expect(reopened.recovered.droppedTailBytes).toBe(0)
      expect(toArrays(reopened.updates)).toEqual(toArrays([...records.slice(0, count - 1), payload(500)]))
      await reopened.store.close()
    }
  })

  it('drops the last record when any of its bytes has a flipped bit', async () => {
    const logFile = path.join(dir, LOG_FILE)
    for (let at = lastStart; at < original.byteLength; at++) {
      const damaged = Buffer.from(original)
      damaged[at] ^= 1 << (at % 8)
      await writeFile(logFile, damaged)
      const { store, updates, recovered } = await LedgerStore.open(dir)
      expect(updates.length, `flip at ${at}`).toBe(count - 1)
      expect(recovered.droppedTailBytes, `flip at ${at}`).toBe(original.byteLength - lastStart)
      expect(recovered.reason).toBeDefined()
      await store.close()
    }
  })

  it('refuses damage in the middle of the log and leaves the file untouched', async () => {
    const logFile = path.join(dir, LOG_FILE)
    const middle = MAGIC_BYTES + 5 * (HEADER_BYTES + 40)
    for (const at of [middle + 2 /* length */, middle + 5 /* crc */, middle + 20 /* payload */]) {
      const damaged = Buffer.from(original)
      damaged[at] ^= 0x10
      await writeFile(logFile, damaged)
      const err = await errorOf(async () => await LedgerStore.open(dir))
      expect(err, `flip at ${at}`).toMatchObject({ name: 'StoreError', code: 'ECORRUPT' })
      expect(err.message).toContain(`offset ${middle}`)
      expect(Buffer.compare(await readFile(logFile), damaged)).toBe(0)
    }
  })
})

describe('LedgerStore snapshot and compaction', () => {
  /** The content of the maps of a ledger (a fresh Y.Doc only shows types once they are asked for). */
  function content (doc: Y.Doc): unknown {
    return { nodes: doc.getMap('nodes').toJSON(), reservations: doc.getMap('reservations').toJSON() }
  }
  function contentOf (updates: Uint8Array[]): unknown {
    const doc = new Y.Doc()
    for (const u of updates) Y.applyUpdate(doc, u)
    return content(doc)
  }

  it('compacts, keeps appending, and reopens to the same Yjs content', async () => {
    const doc = new Y.Doc()
    const captured: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => captured.push(u))
    const nodes = doc.getMap('nodes')
    const reservations = doc.getMap('reservations')

    const { store } = await LedgerStore.open(dir)
    let appended = 0
    const appendNew = async (durable: boolean): Promise<void> => {
      for (; appended < captured.length; appended++) await store.append(captured[appended], { durable })
    }
    for (let i = 0; i < 300; i++) {
      // Heartbeats overwrite one key; reservations add keys (docs/design.md "Ledger size").
      nodes.set('self', { availableBytes: 1000 + i, seq: i })
      if (i % 10 === 0) reservations.set(`dep-${i}`, { bytes: i * 1024, placement: { kind: 'any' } })
      await appendNew(i % 10 === 0)
    }
    const before = store.sizeBytes()
    await store.compact(Y.encodeStateAsUpdate(doc))
    expect(store.sizeBytes()).toBeLessThan(before / 5)
    expect(store.stats().compactions).toBe(1)
    for (let i = 300; i < 320; i++) {
      reservations.set(`dep-${i}`, { bytes: i, placement: { kind: 'all' } })
      await appendNew(true)
    }
    await store.close()

    const { store: reopened, updates, recovered } = await LedgerStore.open(dir)
    expect(recovered).toEqual({ records: 1 + 20, droppedTailBytes: 0 })
    expect(contentOf(updates)).toEqual(content(doc))
    await reopened.close()
  })

  it('orders compaction between concurrent appends: later appends land in the new log', async () => {
    const { store } = await LedgerStore.open(dir, { fsync: false })
    const early = Array.from({ length: 50 }, (_, i) => store.append(payload(i), { durable: true }))
    const compaction = store.compact(payload(10_000, 64))
    const late = Array.from({ length: 30 }, (_, i) => store.append(payload(100 + i), { durable: i % 2 === 0 }))
    await Promise.all([...early, compaction, ...late])
    await store.close()
    const { updates, store: s2 } = await LedgerStore.open(dir)
    expect(toArrays(updates)).toEqual(toArrays([payload(10_000, 64), ...Array.from({ length: 30 }, (_, i) => payload(100 + i))]))
    await s2.close()
  })

  it('loads a crash between the snapshot and the log swap (duplicates replay harmlessly)', async () => {
    const doc = new Y.Doc()
    const captured: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => captured.push(u))
    for (let i = 0; i < 50; i++) doc.getMap('reservations').set(`dep-${i}`, { bytes: i })
    expect(captured.length).toBe(50)
    await writeRecords(dir, captured)
    const oldLog = await readFile(path.join(dir, LOG_FILE))

    const { store } = await LedgerStore.open(dir)
    await store.compact(Y.encodeStateAsUpdate(doc))
    await store.close()
    // Put the old log back, as if the crash hit after step 1, and leave a
    // half-written temporary file behind as a crash would.
    await writeFile(path.join(dir, LOG_FILE), oldLog)
    await writeFile(path.join(dir, LOG_FILE + '.tmp'), 'MG')
    await writeFile(path.join(dir, SNAPSHOT_FILE + '.tmp'), 'garbage')

    const { store: s2, updates } = await LedgerStore.open(dir)
    expect(updates.length).toBe(1 + 50)
    expect(contentOf(updates)).toEqual(content(doc))
    await s2.close()
    await expect(stat(path.join(dir, LOG_FILE + '.tmp'))).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(stat(path.join(dir, SNAPSHOT_FILE + '.tmp'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('moves to a new epoch: the snapshot and the log name it, and later appends load after it', async () => {
    const { store, epoch } = await LedgerStore.open(dir, { fsync: false })
    expect(epoch).toBe(0)
    for (let i = 0; i < 20; i++) await store.append(payload(i), { durable: true })
    await store.compact(payload(5000, 80), { epoch: 3 })
    expect(store.epoch).toBe(3)
    for (let i = 20; i < 25; i++) await store.append(payload(i), { durable: true })
    await expect(store.compact(payload(1, 10), { epoch: 2 })).rejects.toMatchObject({ name: 'StoreError', code: 'EINVAL' })
    await store.close()
    expect((await readFile(path.join(dir, SNAPSHOT_FILE))).toString('latin1', 0, 4)).toBe('MGS2')
    expect((await readFile(path.join(dir, LOG_FILE))).toString('latin1', 0, 4)).toBe('MGL2')
    const reopened = await LedgerStore.open(dir)
    expect(reopened.epoch).toBe(3)
    expect(toArrays(reopened.updates)).toEqual(toArrays([payload(5000, 80), ...Array.from({ length: 5 }, (_, i) => payload(20 + i))]))
    // Compacting again without an epoch stays in it.
    await reopened.store.compact(payload(6000, 40))
    await reopened.store.close()
    const third = await LedgerStore.open(dir)
    expect([third.epoch, toArrays(third.updates)]).toEqual([3, toArrays([payload(6000, 40)])])
    await third.store.close()
  })

  it('a snapshot written with its document\'s client id names it (MGS3), in a new epoch or the same; one without it names none', async () => {
    const { store } = await LedgerStore.open(dir, { fsync: false })
    await store.compact(payload(1, 30), { epoch: 2 })
    await store.close()
    const plain = await LedgerStore.open(dir)
    expect([plain.epoch, plain.clientId]).toEqual([2, undefined])
    await plain.store.compact(payload(2, 30), { epoch: 4, clientId: 0xfedcba98 })
    await plain.store.append(payload(3), { durable: true })
    await plain.store.close()
    expect((await readFile(path.join(dir, SNAPSHOT_FILE))).toString('latin1', 0, 4)).toBe('MGS3')
    const named = await LedgerStore.open(dir)
    expect([named.epoch, named.clientId, toArrays(named.updates)]).toEqual([4, 0xfedcba98, toArrays([payload(2, 30), payload(3)])])
    await named.store.compact(payload(4, 30), { clientId: 7 })
    await expect(named.store.compact(payload(5, 30), { clientId: 2 ** 32 })).rejects.toMatchObject({ name: 'StoreError', code: 'EINVAL' })
    await named.store.close()
    const again = await LedgerStore.open(dir)
    expect([again.epoch, again.clientId]).toEqual([4, 7])
    await again.store.close()
    // Cut short inside its header: refused as damaged, like any snapshot.
    const snapshot = await readFile(path.join(dir, SNAPSHOT_FILE))
    await writeFile(path.join(dir, SNAPSHOT_FILE), snapshot.subarray(0, 10))
    expect(await errorOf(async () => await LedgerStore.open(dir))).toMatchObject({ name: 'StoreError', code: 'ECORRUPT' })
  })

  it('a crash between a new epoch\'s snapshot and its log: the old epoch\'s records are not loaded', async () => {
    const logged: string[] = []
    await writeRecords(dir, Array.from({ length: 10 }, (_, i) => payload(i)))
    const oldLog = await readFile(path.join(dir, LOG_FILE))
    const { store } = await LedgerStore.open(dir)
    await store.compact(payload(7000, 50), { epoch: 1 })
    await store.close()
    await writeFile(path.join(dir, LOG_FILE), oldLog)
    const { store: s2, updates, epoch } = await LedgerStore.open(dir, { logger: m => logged.push(m) })
    expect([epoch, toArrays(updates)]).toEqual([1, toArrays([payload(7000, 50)])])
    expect(logged.join('\n')).toMatch(/10 records of epoch 0 not loaded/)
    await s2.append(payload(99), { durable: true })
    await s2.close()
    const s3 = await LedgerStore.open(dir)
    expect(toArrays(s3.updates)).toEqual(toArrays([payload(7000, 50), payload(99)]))
    await s3.store.close()
  })

  it('refuses a log of a later epoch than its snapshot', async () => {
    const { store } = await LedgerStore.open(dir)
    await store.compact(payload(1, 30), { epoch: 2 })
    await store.close()
    const log = await readFile(path.join(dir, LOG_FILE))
    log.writeUInt32LE(5, 4)
    await writeFile(path.join(dir, LOG_FILE), log)
    const err = await errorOf(async () => await LedgerStore.open(dir))
    expect(err).toMatchObject({ name: 'StoreError', code: 'ECORRUPT' })
    expect(err.message).toMatch(/epoch 5, after its snapshot's epoch 2/)
  })

  it('refuses a damaged snapshot with a StoreError naming the file', async () => {
    const { store } = await LedgerStore.open(dir)
    await store.compact(payload(1, 200))
    await store.close()
    const snapFile = path.join(dir, SNAPSHOT_FILE)
    const good = await readFile(snapFile)

    const damages: Array<[string, Buffer]> = [
      ['bit flip in payload', Buffer.from(good).fill(0x55, 100, 101)],
      ['bit flip in crc', (() => { const b = Buffer.from(good); b[9] ^= 1; return b })()],
      ['truncated', good.subarray(0, good.byteLength - 1)],
      ['only the magic', good.subarray(0, 4)],
      ['empty file', Buffer.alloc(0)],
      ['wrong magic', Buffer.concat([Buffer.from('MGL1'), good.subarray(4)])],
      ['trailing bytes', Buffer.concat([good, Buffer.from([0])])]
    ]
    for (const [what, bytes] of damages) {
      await writeFile(snapFile, bytes)
      const err = await errorOf(async () => await LedgerStore.open(dir))
      expect(err, what).toMatchObject({ name: 'StoreError', code: 'ECORRUPT' })
      expect(err.message, what).toContain(SNAPSHOT_FILE)
    }
  })
})

describe('LedgerStore group commit', () => {
  it('shares fsyncs between concurrent durable appends', async () => {
    const { store } = await LedgerStore.open(dir)
    const n = 200
    await Promise.all(Array.from({ length: n }, async (_, i) => { await store.append(payload(i), { durable: true }) }))
    const stats = store.stats()
    expect(stats.appends).toBe(n)
    expect(stats.fsyncs).toBeGreaterThan(0)
    expect(stats.fsyncs).toBeLessThan(n / 10)
    expect(stats.writes).toBeLessThan(n / 10)
    await store.close()
    const reopened = await LedgerStore.open(dir)
    expect(reopened.updates.length).toBe(n)
    await reopened.store.close()
  })

  it('costs one fsync per append when appends are awaited one by one, none for non-durable', async () => {
    const { store } = await LedgerStore.open(dir)
    for (let i = 0; i < 10; i++) await store.append(payload(i), { durable: true })
    expect(store.stats().fsyncs).toBe(10)
    for (let i = 0; i < 10; i++) await store.append(payload(i), { durable: false })
    expect(store.stats().fsyncs).toBe(10)
    await store.flush()
    expect(store.stats().fsyncs).toBe(11)
    await store.flush()
    expect(store.stats().fsyncs).toBe(11)
    await store.close()
  })
})

describe('LedgerStore disk errors', () => {
  /** Wraps real file handles; `plan` decides, per write/sync call on the log, whether to fail. */
  function faultyOpen (plan: { failWriteAt?: number, failSyncAt?: number, code?: string }): NonNullable<LedgerStoreInit['openFile']> {
    let writes = 0
    let syncs = 0
    let armed = false
    return async (file, flags, mode) => {
      const fh = await open(file, flags, mode)
      if (path.basename(file) !== LOG_FILE) return fh
      const errno = (): Error => Object.assign(new Error(`injected ${plan.code ?? 'ENOSPC'}`), { code: plan.code ?? 'ENOSPC' })
      return new Proxy(fh, {
        get (target, prop) {
          if (prop === 'write') {
            return async (buf: Uint8Array, offset: number, length: number, position: number) => {
              writes++
              if (armed) {
                armed = false
                throw errno()
              }
              if (writes === plan.failWriteAt) {
                // A short write first (half the bytes reach the file), then the error:
                // the worst case, a half record on disk.
                armed = true
                return await target.write(buf, offset, Math.max(1, Math.floor(length / 2)), position)
              }
              return await target.write(buf, offset, length, position)
            }
          }
          if (prop === 'sync') {
            return async () => {
              syncs++
              if (syncs === plan.failSyncAt) throw errno()
              await target.sync()
            }
          }
          const value = Reflect.get(target, prop) as unknown
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
        }
      }) as FileHandle
    }
  }

  it('reports a full disk, cuts the half record, and keeps working', async () => {
    await writeRecords(dir, [payload(0), payload(1)])
    const { store } = await LedgerStore.open(dir, { openFile: faultyOpen({ failWriteAt: 2 }) })
    await store.append(payload(2), { durable: true })
    const err = await errorOf(async () => { await store.append(payload(3), { durable: true }) })
    expect(err).toMatchObject({ name: 'StoreError', code: 'ENOSPC' })
    expect(err.message).toMatch(/^disk full while appending to .*ledger\.log/)
    // Space came back: later appends succeed and nothing of the failed one remains.
    await store.append(payload(4), { durable: true })
    await store.close()
    const { updates, recovered, store: s2 } = await LedgerStore.open(dir)
    expect(recovered.droppedTailBytes).toBe(0)
    expect(toArrays(updates)).toEqual(toArrays([payload(0), payload(1), payload(2), payload(4)]))
    await s2.close()
  })

  it('fails the store after a failed fsync (the kernel may have dropped the pages)', async () => {
    const { store } = await LedgerStore.open(dir, { openFile: faultyOpen({ failSyncAt: 2, code: 'EIO' }) })
    await store.append(payload(0), { durable: true })
    const err = await errorOf(async () => { await store.append(payload(1), { durable: true }) })
    expect(err).toMatchObject({ name: 'StoreError', code: 'EIO' })
    expect(err.message).toMatch(/^I\/O error while syncing/)
    expect(await errorOf(async () => { await store.append(payload(2), { durable: false }) })).toMatchObject({ name: 'StoreError', code: 'EFAILED' })
    await store.close()
    const { updates, store: s2 } = await LedgerStore.open(dir)
    expect(updates.length).toBeGreaterThanOrEqual(1)
    await s2.close()
  })

  it('turns a read-only file system into a StoreError with the code kept', async () => {
    const openFile: LedgerStoreInit['openFile'] = async (file) => {
      throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS', path: file })
    }
    const err = await errorOf(async () => await LedgerStore.open(dir, { openFile }))
    expect(err).toMatchObject({ name: 'StoreError', code: 'EROFS' })
    expect(err.message).toMatch(/^read-only file system while/)
  })
})

describe('meta.json', () => {
  it('round-trips atomically with mode 0600', async () => {
    expect(await readMeta(dir)).toBeUndefined()
    await writeMeta(dir, { clientId: 123456789, createdAt: '2025-01-01' })
    expect(await readMeta(dir)).toEqual({ clientId: 123456789, createdAt: '2025-01-01' })
    expect((await stat(path.join(dir, META_FILE))).mode & 0o777).toBe(0o600)
    await writeMeta(dir, { clientId: 42 })
    expect(await readMeta<{ clientId: number }>(dir)).toEqual({ clientId: 42 })
  })

  it('refuses a damaged meta.json', async () => {
    await writeFile(path.join(dir, META_FILE), '{"clientId": 12')
    expect(await errorOf(async () => await readMeta(dir))).toMatchObject({ name: 'StoreError', code: 'ECORRUPT' })
    await writeFile(path.join(dir, META_FILE), '[1,2]')
    expect(await errorOf(async () => await readMeta(dir))).toMatchObject({ name: 'StoreError', code: 'ECORRUPT' })
  })
})

describe('LedgerStore crash (kill -9 of a real process)', () => {
  const CHILD = `
import * as Y from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('yjs')).href)}
import { LedgerStore } from ${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'agent', 'store.ts')).href)}

const [dir, run, seedText] = process.argv.slice(2)
let seed = Number(seedText) >>> 0
const random = () => { seed = (seed * 1664525 + 1013904223) >>> 0; return seed / 2 ** 32 }
const { store, updates } = await LedgerStore.open(dir)
const doc = new Y.Doc()
for (const u of updates) Y.applyUpdate(doc, u)
let last
doc.on('update', (u) => { last = u })
const map = doc.getMap('acked')
let next = 0
process.stdout.write('ready\\n')
async function worker () {
  for (;;) {
    const i = next++
    map.set(run + ':' + i, 'x'.repeat(Math.floor(random() * 400)))
    await store.append(last, { durable: true })
    process.stdout.write(i + '\\n')
    // Compact now and then, concurrently with the appends, so kills land inside it too.
    if (i % 150 === 149) store.compact(Y.encodeStateAsUpdate(doc)).catch((e) => { console.error(e); process.exit(3) })
  }
}
for (let w = 0; w < 4; w++) worker().catch((e) => { console.error(e); process.exit(2) })
`

  it('keeps every acknowledged record and always loads', async () => {
    const seed = testSeed()
    console.log(`store crash test seed=${seed} (rerun with MEMGOSSIP_TEST_SEED=${seed})`)
    const random = rng(seed)
    const childFile = path.join(dir, 'child.mts')
    await writeFile(childFile, CHILD)
    const dataDir = path.join(dir, 'data')
    const allAcked: string[] = []
    const rounds = Number(process.env.MEMGOSSIP_CRASH_ROUNDS ?? 4)

    for (let run = 0; run < rounds; run++) {
      const killAfterMs = Math.floor(random() * 400)
      const child = spawn(process.execPath, ['--import', 'tsx', childFile, dataDir, `r${run}`, String(seed + run)], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe']
      })
      const acked: string[] = []
      let stderr = ''
      let buffered = ''
      let ready!: () => void
      const isReady = new Promise<void>((resolve) => { ready = resolve })
      child.stdout.setEncoding('utf8')
      child.stdout.on('data', (chunk: string) => {
        buffered += chunk
        const lines = buffered.split('\n')
        buffered = lines.pop() ?? ''
        for (const line of lines) {
          if (line === 'ready') ready()
          else acked.push(`r${run}:${line}`)
        }
      })
      child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => {
        child.on('exit', (code, signal) => { resolve(signal ?? code) })
      })
      await Promise.race([isReady, exited])
      await new Promise((resolve) => setTimeout(resolve, killAfterMs))
      child.kill('SIGKILL')
      const how = await exited
      expect(how, `seed=${seed} run=${run} child died on its own: ${stderr}`).toBe('SIGKILL')
      allAcked.push(...acked)

      const { store, updates, recovered } = await LedgerStore.open(dataDir)
      const doc = new Y.Doc()
      for (const u of updates) Y.applyUpdate(doc, u)
      const keys = new Set(doc.getMap('acked').keys())
      const missing = allAcked.filter((k) => !keys.has(k))
      console.log(`  run ${run}: killed after ${killAfterMs} ms, ${acked.length} acked, loaded ${updates.length} updates (${keys.size} keys), dropped ${recovered.droppedTailBytes} B`)
      expect(missing, `seed=${seed} run=${run} killed after ${killAfterMs} ms, ${acked.length} acked, recovered ${JSON.stringify(recovered)}`).toEqual([])
      await store.close()
    }
    expect(allAcked.length).toBeGreaterThan(0)
  })
})

describe('LedgerStore edge cases', () => {
  it('a log cut to just the magic loads empty', async () => {
    await writeRecords(dir, [payload(1)])
    await truncate(path.join(dir, LOG_FILE), MAGIC_BYTES)
    const { updates, store } = await LedgerStore.open(dir)
    expect(updates).toEqual([])
    await store.close()
  })
})
