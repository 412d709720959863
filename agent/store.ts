/**
 * The durable ledger of one data directory (docs/design.md "Durability"): the
 * sequence of Yjs updates that make up the local replica, persisted so a
 * restarted agent resumes where it was, and a reservation is acknowledged only
 * once it is on disk.
 *
 * Files in the data directory:
 *
 *   ledger.log       append-only; written after start and after each compaction
 *     offset 0   4 bytes   magic 'MGL1' (ASCII), once at file start
 *     then records, back to back, until end of file:
 *       +0       u32 LE    payload length n, 1 ≤ n ≤ MAX_RECORD_BYTES
 *       +4       u32 LE    CRC-32 (zlib polynomial) of the payload
 *       +8       n bytes   payload: one Yjs update, opaque here
 *
 *   ledger.snapshot  the compacted state; replaced whole, atomically
 *     offset 0   4 bytes   magic 'MGS1'
 *     +4         exactly one record, framed as above (length may reach
 *                MAX_SNAPSHOT_BYTES), and nothing after it
 *
 *   meta.json        small agent metadata (e.g. the Yjs client id), JSON, 0600
 *
 * Epochs (docs/design.md "Compaction: epochs"): once the ledger has moved to
 * a new document, the snapshot and the log name its epoch, as magic 'MGS2'
 * or 'MGL2' followed by the epoch as a u32 LE (the 'MGS1'/'MGL1' files are
 * epoch 0). A log of an older epoch than its snapshot is what a crash
 * between writing the new epoch's snapshot and starting its log leaves: its
 * records belong to the old document, which the snapshot has replaced (it
 * holds everything of it that is still needed), so they are not loaded.
 *
 * A snapshot written with the Yjs client id of its document is 'MGS3': the
 * epoch, then the client id, each a u32 LE. The id a restarted agent writes
 * under must be the one its document's own structs were written under (Yjs
 * integrates one client's structs in order: docs/design.md "State"), and only
 * the snapshot changes with the document, atomically; meta.json is a second
 * file, written after it (docs/decisions.md "A restart reused a client id").
 *
 * Loading is snapshot payload first, then every log record in order. Replaying
 * an update twice is harmless for Yjs (integration is idempotent), which is what
 * makes compaction crash-safe without a two-file transaction: see
 * {@link LedgerStore.compact}.
 *
 * Corruption policy: a crash can only tear the end of the log, so a bad record
 * with nothing valid after it is a torn tail and is cut away (reported once). A
 * bad record followed by valid ones is damage in the middle: cutting it would
 * drop acknowledged records, so loading refuses with a {@link StoreError}. A
 * damaged snapshot is always refused. Nothing acknowledged is lost silently.
 */
import { constants as fsConstants } from 'node:fs'
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { crc32 } from 'node:zlib'

/** Magic of the log file. */
export const LOG_MAGIC = 'MGL1'
/** Magic of the snapshot file. */
export const SNAPSHOT_MAGIC = 'MGS1'
/** Magics of the files of an epoch after the first: followed by the epoch, u32 LE. */
export const LOG_MAGIC_EPOCH = 'MGL2'
export const SNAPSHOT_MAGIC_EPOCH = 'MGS2'
/** Magic of a snapshot that names its document's Yjs client id: epoch, then client id, each u32 LE. */
export const SNAPSHOT_MAGIC_CLIENT = 'MGS3'
/** The append-only log, inside the data directory. */
export const LOG_FILE = 'ledger.log'
/** The compacted state, inside the data directory. */
export const SNAPSHOT_FILE = 'ledger.snapshot'
/** Small agent metadata, inside the data directory. */
export const META_FILE = 'meta.json'
const TMP_SUFFIX = '.tmp'

const MAGIC_BYTES = 4
/** Magic and u32 epoch. */
const EPOCH_HEADER_BYTES = 8
/** Magic, u32 epoch and u32 client id ('MGS3'). */
const CLIENT_HEADER_BYTES = 12
/** u32 length + u32 crc. */
const RECORD_HEADER_BYTES = 8
/**
 * Largest log record accepted. A Yjs update is tens of bytes to a few KiB
 * (the limits of docs/design.md "Network" keep what comes in far below this); a
 * length above it can only be a torn or damaged header, so it marks the end of
 * the valid data.
 */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024
/** Largest snapshot payload accepted (the whole ledger state). */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024

/** Data directory and files are private to the agent's user. */
const DIR_MODE = 0o700
const FILE_MODE = 0o600

/**
 * A failure of the ledger store: a disk error (with the `code` of the system
 * call), a damaged file, or a use of a closed or failed store. Tests match on
 * `name` and `code`, not on the wording.
 */
export class StoreError extends Error {
  override readonly name = 'StoreError'
  /**
   * The system error code (`ENOSPC`, `EIO`, `EROFS`, …) when the disk refused,
   * else one of the store's own: `ECORRUPT`, `ECLOSED`, `EFAILED`, `ETOOBIG`, `EEMPTY`.
   */
  readonly code: string
  /** The file concerned, when there is one. */
  readonly file: string | undefined

  constructor (code: string, message: string, options?: { file?: string, cause?: unknown }) {
    super(message, { cause: options?.cause })
    this.code = code
    this.file = options?.file
  }
}

/** Options of {@link LedgerStore.open}; every field is optional. */
export interface LedgerStoreInit {
  /** Where recovery notes go (a torn tail that was cut); default: nowhere. */
  logger?: (msg: string) => void
  /**
   * fsync for durability; default true. `false` is for tests and simulations
   * that run many agents and never lose power: durable appends then resolve
   * once written to the page cache.
   */
  fsync?: boolean
  /**
   * Opens the log and snapshot files; default `fs.promises.open`. A seam for
   * fault injection in tests (a handle that fails with ENOSPC on the n-th write).
   */
  openFile?: (file: string, flags: string | number, mode?: number) => Promise<FileHandle>
}

/** What {@link LedgerStore.open} found on disk. */
export interface RecoveryReport {
  /** Records loaded (the snapshot counts as one). */
  records: number
  /** Bytes of torn tail cut from the log; 0 when it was clean. */
  droppedTailBytes: number
  /** Why bytes were dropped, when they were. */
  reason?: string
}

/** The result of {@link LedgerStore.open}. */
export interface OpenedLedger {
  store: LedgerStore
  /**
   * The persisted updates, snapshot first, in the order they were appended.
   * They are views into the bytes read from disk: apply them, or copy the ones
   * kept for long.
   */
  updates: Uint8Array[]
  recovered: RecoveryReport
  /** The epoch of the snapshot (0 when there is none, or it is of the first epoch). */
  epoch: number
  /** The Yjs client id the snapshot's document was written under, when the snapshot names it ('MGS3'). */
  clientId?: number
}

/** Counters of a store's activity since it was opened. */
export interface StoreStats {
  /** Records appended (each `append` call that succeeded). */
  appends: number
  /** `write` calls on the log; concurrent appends are written in one. */
  writes: number
  /** `fsync` calls on the log; concurrent durable appends share one (group commit). */
  fsyncs: number
  /** Compactions completed. */
  compactions: number
}

interface PendingAppend {
  /** Framed bytes to write; empty for a flush request. */
  frame: Uint8Array
  durable: boolean
  resolve: () => void
  reject: (err: unknown) => void
}

interface Barrier {
  barrier: () => Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

type QueueItem = PendingAppend | Barrier

interface SyncWaiter {
  /** Resolved once the log is synced up to this offset. */
  target: number
  resolve: () => void
  reject: (err: unknown) => void
}

/**
 * The ledger file of one data directory. Obtain one with {@link LedgerStore.open}.
 *
 * Writes go through one queue, in call order: concurrent appends are written in
 * one `write` and durable ones wait for the next `fsync`, which every durable
 * append written while the previous fsync was in flight shares (group commit).
 */
export class LedgerStore {
  /** The data directory. */
  readonly dir: string
  private readonly logPath: string
  private readonly snapshotPath: string
  private readonly fsyncEnabled: boolean
  private readonly openFile: NonNullable<LedgerStoreInit['openFile']>

  private fh: FileHandle
  /** End of the valid data in the log = where the next record goes. */
  private endOffset: number
  /** The log is known durable up to here. */
  private syncedOffset: number
  private snapshotBytes: number
  private filesEpoch = 0

  private readonly queue: QueueItem[] = []
  private pumping = false
  private syncWaiters: SyncWaiter[] = []
  private syncing = false
  /** Called whenever the sync stage goes idle (used by barriers to drain it). */
  private syncIdle: Array<() => void> = []
  /** Set when the store can no longer guarantee what is on disk; every call rejects with it. */
  private failure: StoreError | undefined
  private closed = false
  private closing: Promise<void> | undefined
  private readonly counters: StoreStats = { appends: 0, writes: 0, fsyncs: 0, compactions: 0 }

  private constructor (dir: string, fh: FileHandle, endOffset: number, snapshotBytes: number, init: LedgerStoreInit) {
    this.dir = dir
    this.logPath = path.join(dir, LOG_FILE)
    this.snapshotPath = path.join(dir, SNAPSHOT_FILE)
    this.fsyncEnabled = init.fsync ?? true
    this.openFile = init.openFile ?? open
    this.fh = fh
    this.endOffset = endOffset
    this.syncedOffset = endOffset
    this.snapshotBytes = snapshotBytes
  }

  /**
   * Open (or create, mode 0700) the data directory `dir` and load its ledger.
   * A torn log tail is cut away and reported through `init.logger` and in
   * `recovered`; a damaged snapshot, or damage in the middle of the log, is a
   * {@link StoreError} (code `ECORRUPT`), because loading past it would lose
   * acknowledged data without a word.
   */
  static async open (dir: string, init: LedgerStoreInit = {}): Promise<OpenedLedger> {
    const fsyncEnabled = init.fsync ?? true
    const openFile = init.openFile ?? open
    const logPath = path.join(dir, LOG_FILE)
    const snapshotPath = path.join(dir, SNAPSHOT_FILE)

    await guard(async () => await mkdir(dir, { recursive: true, mode: DIR_MODE }), 'creating data directory', dir)
    // Leftovers of a crash in the middle of an atomic replace. The files they
    // were meant to replace are still whole, so they carry nothing needed.
    for (const tmp of [logPath + TMP_SUFFIX, snapshotPath + TMP_SUFFIX]) {
      await guard(async () => await rm(tmp, { force: true }), 'removing', tmp)
    }

    const updates: Uint8Array[] = []
    let snapshotBytes = 0
    let epoch = 0
    let clientId: number | undefined
    const snapshot = await readIfExists(snapshotPath)
    if (snapshot !== undefined) {
      const decoded = decodeSnapshot(snapshot, snapshotPath)
      updates.push(decoded.payload)
      epoch = decoded.epoch
      clientId = decoded.clientId
      snapshotBytes = snapshot.byteLength
    }

    const recovered: RecoveryReport = { records: updates.length, droppedTailBytes: 0 }
    let log = await readIfExists(logPath)
    if (log === undefined || isTornHeader(log)) {
      // No log yet, or a crash tore its creation: start a clean one. A log is
      // only ever created empty, so a torn header held no records.
      if (log !== undefined && log.byteLength > 0) {
        recovered.droppedTailBytes = log.byteLength
        recovered.reason = `torn header (${log.byteLength} bytes, shorter than the header)`
      }
      log = logHeader(epoch)
      await writeFileAtomic(logPath, log, { fsync: fsyncEnabled, openFile })
    }
    const scan = scanLog(log, logPath)
    if (scan.epoch > epoch) throw new StoreError('ECORRUPT', `${logPath} is of epoch ${scan.epoch}, after its snapshot's epoch ${epoch}: a log is only started after its snapshot is written`, { file: logPath })
    if (scan.epoch < epoch) {
      // A crash between the new epoch's snapshot and its log: the old log's
      // records are of the replaced document. Start the new epoch's log.
      init.logger?.(`${logPath}: ${scan.records.length} records of epoch ${scan.epoch} not loaded: the snapshot moved to epoch ${epoch} and holds what of them is still needed`)
      log = logHeader(epoch)
      await writeFileAtomic(logPath, log, { fsync: fsyncEnabled, openFile })
      scan.records.length = 0
      scan.validEnd = log.byteLength
    }
    for (const payload of scan.records) updates.push(payload)
    recovered.records = updates.length

    const fh = await guard(async () => await openFile(logPath, 'r+', FILE_MODE), 'opening', logPath)
    try {
      if (scan.validEnd < log.byteLength) {
        const dropped = log.byteLength - scan.validEnd
        recovered.droppedTailBytes += dropped
        recovered.reason = scan.tailReason
        // Cut the tail now so the next append starts on a record boundary; a
        // later reader must never see new records after garbage.
        await guard(async () => await fh.truncate(scan.validEnd), 'truncating torn tail of', logPath)
        if (fsyncEnabled) await guard(async () => await fh.sync(), 'syncing', logPath)
      }
    } catch (err) {
      await fh.close().catch(() => {})
      throw err
    }
    if (recovered.droppedTailBytes > 0) {
      init.logger?.(
        `${logPath}: dropped ${recovered.droppedTailBytes} bytes of torn tail at offset ${scan.validEnd} ` +
        `(${recovered.reason ?? 'unknown'}); ${scan.records.length} log records kept. ` +
        'Only a write that was never acknowledged as durable can be torn.'
      )
    }

    const store = new LedgerStore(dir, fh, scan.validEnd, snapshotBytes, init)
    store.filesEpoch = epoch
    return { store, updates, recovered, epoch, ...(clientId !== undefined ? { clientId } : {}) }
  }

  /**
   * Append one update. With `durable: true` (a local change,
   * docs/design.md "Durability") it resolves only once the record is fsynced;
   * with `durable: false` (an update received from a peer, which peers can
   * resend) once it is written, and it becomes durable with the next durable
   * append, {@link flush} or {@link close}.
   *
   * On a disk error the record is cut back out of the file (truncate to the last
   * good offset) and the promise rejects with a {@link StoreError} carrying the
   * system `code`. If even that truncate fails, the store is marked failed and
   * rejects every later call; the next {@link LedgerStore.open} then cuts the half
   * record by its CRC. A failed fsync always marks the store failed: after one,
   * Linux may have dropped the dirty pages, so nothing written since the last
   * good fsync can be trusted; reopen to see what is really on disk.
   */
  async append (update: Uint8Array, { durable }: { durable: boolean }): Promise<void> {
    if (update.byteLength === 0) {
      throw new StoreError('EEMPTY', `refusing an empty update for ${this.logPath} (a Yjs update is never empty)`, { file: this.logPath })
    }
    if (update.byteLength > MAX_RECORD_BYTES) {
      throw new StoreError('ETOOBIG', `update of ${update.byteLength} bytes exceeds the record limit of ${MAX_RECORD_BYTES} bytes for ${this.logPath}`, { file: this.logPath })
    }
    await new Promise<void>((resolve, reject) => {
      this.enqueue({ frame: encodeRecord(update), durable, resolve, reject })
    })
    this.counters.appends++
  }

  /** Resolve once everything appended before this call is fsynced. */
  async flush (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.enqueue({ frame: new Uint8Array(0), durable: true, resolve, reject })
    })
  }

  /**
   * Replace the ledger with `fullState` (e.g. `Y.encodeStateAsUpdate(doc)`),
   * which must include every update passed to {@link append} before this call.
   * Appends made after this call go to the new log.
   *
   * Order, each step atomic (write `.tmp`, fsync, rename, fsync the directory):
   * 1. the new snapshot replaces the old one;
   * 2. a new empty log replaces the old one.
   * A crash before 1 completes leaves the old snapshot and old log; between 1
   * and 2, the new snapshot and the old log, whose records are all already in
   * the snapshot and replay as no-ops (applying a Yjs update twice changes
   * nothing); after 2, the new snapshot and an empty log. Every point loads.
   */
  async compact (fullState: Uint8Array, options: { epoch?: number, clientId?: number } = {}): Promise<void> {
    if (fullState.byteLength === 0 || fullState.byteLength > MAX_SNAPSHOT_BYTES) {
      throw new StoreError(fullState.byteLength === 0 ? 'EEMPTY' : 'ETOOBIG',
        `snapshot of ${fullState.byteLength} bytes is outside 1..${MAX_SNAPSHOT_BYTES} for ${this.snapshotPath}`,
        { file: this.snapshotPath })
    }
    await new Promise<void>((resolve, reject) => {
      this.enqueue({ barrier: async () => { await this.compactNow(fullState, options.epoch ?? this.filesEpoch, options.clientId) }, resolve, reject })
    })
    this.counters.compactions++
  }

  /** The epoch of the files (docs/design.md "Compaction: epochs"). */
  get epoch (): number {
    return this.filesEpoch
  }

  /** Bytes on disk: snapshot plus log. */
  sizeBytes (): number {
    return this.snapshotBytes + this.endOffset
  }

  /** Counters since open. */
  stats (): StoreStats {
    return { ...this.counters }
  }

  /**
   * Write out and fsync what is queued, then close the log. Idempotent; later
   * calls other than `close` reject with `ECLOSED`.
   */
  async close (): Promise<void> {
    if (this.closing !== undefined) return await this.closing
    // Refuse new calls at once; what was queued before this call still goes out.
    this.closed = true
    this.closing = (async () => {
      try {
        await new Promise<void>((resolve, reject) => {
          this.push({ frame: new Uint8Array(0), durable: true, resolve, reject })
        })
      } catch {
        // Only a store that already failed gets here; it is closed all the same.
      } finally {
        await this.fh.close().catch(() => {})
      }
    })()
    await this.closing
  }

  // -------------------------------------------------------------------------
  // Write pipeline: the queue is drained by one pump (writes are serial, in call
  // order); fsyncs run beside it in the sync stage, so appends keep being
  // written while an fsync is in flight and then share the next one.

  private enqueue (item: QueueItem): void {
    if (this.closed) {
      item.reject(new StoreError('ECLOSED', `${this.logPath} is closed`, { file: this.logPath }))
      return
    }
    this.push(item)
  }

  private push (item: QueueItem): void {
    if (this.failure !== undefined) {
      item.reject(this.failure)
      return
    }
    this.queue.push(item)
    if (!this.pumping) void this.pump()
  }

  private async pump (): Promise<void> {
    this.pumping = true
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]
        if ('barrier' in head) {
          this.queue.shift()
          await this.runBarrier(head)
          continue
        }
        // Every append queued so far goes out in one write.
        const batch: PendingAppend[] = []
        while (this.queue.length > 0 && !('barrier' in this.queue[0])) {
          batch.push(this.queue.shift() as PendingAppend)
        }
        await this.writeBatch(batch)
      }
    } finally {
      this.pumping = false
    }
  }

  private async writeBatch (batch: PendingAppend[]): Promise<void> {
    const failure = this.failure
    if (failure !== undefined) {
      for (const item of batch) item.reject(failure)
      return
    }
    const bytes = concat(batch.map((item) => item.frame))
    if (bytes.byteLength > 0) {
      const start = this.endOffset
      try {
        this.counters.writes++
        await writeAll(this.fh, bytes, start)
      } catch (err) {
        const error = toStoreError(err, 'appending to', this.logPath)
        try {
          // Cut whatever part of the batch reached the file, so the next record
          // starts at a boundary and no half record ever sits before good ones.
          await this.fh.truncate(start)
        } catch (truncateErr) {
          this.fail(toStoreError(truncateErr, 'truncating a failed append from', this.logPath))
        }
        for (const item of batch) item.reject(error)
        return
      }
      this.endOffset = start + bytes.byteLength
    }
    for (const item of batch) {
      if (item.durable && this.fsyncEnabled) {
        this.waitForSync(this.endOffset, item)
      } else {
        item.resolve()
      }
    }
  }

  private waitForSync (target: number, waiter: Omit<SyncWaiter, 'target'>): void {
    if (target <= this.syncedOffset) {
      waiter.resolve()
      return
    }
    this.syncWaiters.push({ target, ...waiter })
    this.startSync()
  }

  /**
   * One fsync for everything written so far; waiters that arrive while it runs
   * wait for the next one (which then covers all of them: group commit).
   */
  private startSync (): void {
    if (this.syncing || this.syncWaiters.length === 0) return
    this.syncing = true
    const target = this.endOffset
    const fh = this.fh
    this.counters.fsyncs++
    fh.sync().then(() => {
      this.syncedOffset = Math.max(this.syncedOffset, target)
      const waiting = this.syncWaiters
      this.syncWaiters = waiting.filter((w) => w.target > target)
      for (const w of waiting) if (w.target <= target) w.resolve()
    }, (err: unknown) => {
      this.fail(toStoreError(err, 'syncing', this.logPath))
    }).finally(() => {
      this.syncing = false
      if (this.failure === undefined) this.startSync()
      if (!this.syncing) {
        const idle = this.syncIdle
        this.syncIdle = []
        for (const notify of idle) notify()
      }
    })
  }

  private async syncDrained (): Promise<void> {
    if (!this.syncing && this.syncWaiters.length === 0) return
    await new Promise<void>((resolve) => { this.syncIdle.push(resolve) })
  }

  private async runBarrier (item: Barrier): Promise<void> {
    try {
      await this.syncDrained()
      if (this.failure !== undefined) throw this.failure
      await item.barrier()
      item.resolve()
    } catch (err) {
      item.reject(err)
    }
  }

  private fail (error: StoreError): void {
    if (this.failure === undefined) {
      this.failure = new StoreError('EFAILED', `${this.logPath} can no longer be written safely; reopen the store: ${error.message}`, { file: this.logPath, cause: error })
    }
    const waiting = this.syncWaiters
    this.syncWaiters = []
    for (const w of waiting) w.reject(error)
  }

  private async compactNow (fullState: Uint8Array, epoch: number, clientId?: number): Promise<void> {
    if (!Number.isSafeInteger(epoch) || epoch < this.filesEpoch || epoch > 0xffffffff) throw new StoreError('EINVAL', `cannot compact into epoch ${epoch}: the store is at epoch ${this.filesEpoch}`, { file: this.snapshotPath })
    const fsyncOpts = { fsync: this.fsyncEnabled, openFile: this.openFile }
    if (clientId !== undefined && (!Number.isSafeInteger(clientId) || clientId < 0 || clientId > 0xffffffff)) throw new StoreError('EINVAL', `client id ${clientId} is not a u32`, { file: this.snapshotPath })
    const snapshot = concat([snapshotHeader(epoch, clientId), encodeRecord(fullState)])
    await writeFileAtomic(this.snapshotPath, snapshot, fsyncOpts)
    this.snapshotBytes = snapshot.byteLength
    // From here a restart loads the new epoch's snapshot and skips the old
    // log (its epoch is older), whether or not the rename below happens.
    this.filesEpoch = epoch

    // The new log is opened before its rename and kept open, so the handle
    // always points at the file that is named ledger.log after the rename.
    const tmp = this.logPath + TMP_SUFFIX
    const fresh = await guard(async () => await this.openFile(tmp, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_TRUNC, FILE_MODE), 'creating', tmp)
    try {
      await guard(async () => { await writeAll(fresh, logHeader(epoch), 0) }, 'writing', tmp)
      if (this.fsyncEnabled) await guard(async () => { await fresh.sync() }, 'syncing', tmp)
      await guard(async () => { await rename(tmp, this.logPath) }, 'renaming into place', this.logPath)
    } catch (err) {
      await fresh.close().catch(() => {})
      await rm(tmp, { force: true }).catch(() => {})
      // The snapshot is in place and the old log is intact: a valid state
      // (duplicates on load), so the store keeps appending to the old log.
      throw err
    }
    const old = this.fh
    this.fh = fresh
    this.endOffset = logHeader(epoch).byteLength
    this.syncedOffset = this.endOffset
    await old.close().catch(() => {})
    if (this.fsyncEnabled) await syncDir(this.dir)
  }
}

// ---------------------------------------------------------------------------
// Framing

function encodeRecord (payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.byteLength)
  frame.writeUInt32LE(payload.byteLength, 0)
  frame.writeUInt32LE(crc32(payload), 4)
  frame.set(payload, RECORD_HEADER_BYTES)
  return frame
}

interface LogScan {
  records: Uint8Array[]
  /** Offset just past the last valid record. */
  validEnd: number
  /** The epoch named in the header (0 for an 'MGL1' log). */
  epoch: number
  tailReason?: string
}

/**
 * Read the records of a log file. Stops at the first bad record; if a valid
 * record can be found anywhere after it, the damage is not a torn tail and
 * this throws, since cutting there would drop records that were acknowledged.
 */
function scanLog (buf: Buffer, file: string): LogScan {
  const header = readHeader(buf, LOG_MAGIC, LOG_MAGIC_EPOCH)
  if (header === undefined) {
    throw new StoreError('ECORRUPT', `${file} is not a memgossip ledger log (expected magic '${LOG_MAGIC}' or '${LOG_MAGIC_EPOCH}' at offset 0)`, { file })
  }
  const records: Uint8Array[] = []
  let offset = header.bytes
  while (offset < buf.byteLength) {
    const problem = recordProblem(buf, offset, MAX_RECORD_BYTES)
    if (problem !== undefined) {
      const resync = findValidRecord(buf, offset + 1)
      if (resync !== undefined) {
        throw new StoreError('ECORRUPT',
          `${file} is damaged at offset ${offset} (${problem}) but holds valid records after it (from offset ${resync}); ` +
          'this is not a torn write, so refusing to cut acknowledged records. Move the file aside to start from the ' +
          'snapshot and let peers resupply the rest.', { file })
      }
      return { records, validEnd: offset, tailReason: problem, epoch: header.epoch }
    }
    const length = buf.readUInt32LE(offset)
    records.push(buf.subarray(offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + length))
    offset += RECORD_HEADER_BYTES + length
  }
  return { records, validEnd: offset, epoch: header.epoch }
}

/** Why the record at `offset` is not valid, or undefined when it is. */
function recordProblem (buf: Buffer, offset: number, maxLength: number): string | undefined {
  const remaining = buf.byteLength - offset
  if (remaining < RECORD_HEADER_BYTES) return `short record header: ${remaining} of ${RECORD_HEADER_BYTES} bytes`
  const length = buf.readUInt32LE(offset)
  if (length === 0) return 'zero-length record'
  if (length > maxLength) return `record length ${length} exceeds the limit of ${maxLength}`
  if (remaining - RECORD_HEADER_BYTES < length) return `short record: header says ${length} bytes, ${remaining - RECORD_HEADER_BYTES} present`
  const expected = buf.readUInt32LE(offset + 4)
  const actual = crc32(buf.subarray(offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + length))
  if (expected !== actual) return `checksum mismatch (stored ${hex(expected)}, computed ${hex(actual)})`
  return undefined
}

/**
 * The first offset at or after `from` where a whole, checksummed record starts.
 * Only run after a bad record; a torn tail is short, so this is cheap then, and
 * a random match needs a length that fits and a 32-bit CRC that agrees.
 */
function findValidRecord (buf: Buffer, from: number): number | undefined {
  for (let offset = from; offset + RECORD_HEADER_BYTES < buf.byteLength; offset++) {
    const length = buf.readUInt32LE(offset)
    if (length === 0 || length > buf.byteLength - offset - RECORD_HEADER_BYTES) continue
    if (recordProblem(buf, offset, MAX_RECORD_BYTES) === undefined) return offset
  }
  return undefined
}

function decodeSnapshot (buf: Buffer, file: string): { payload: Uint8Array, epoch: number, clientId?: number } {
  const corrupt = (what: string): StoreError => new StoreError('ECORRUPT',
    `${file} is damaged: ${what}. Refusing to start from a partial ledger; restore the file or move the data ` +
    'directory aside to rejoin as a new node.', { file })
  const withClient = buf.byteLength >= MAGIC_BYTES && buf.toString('latin1', 0, MAGIC_BYTES) === SNAPSHOT_MAGIC_CLIENT
  const header = withClient
    ? (buf.byteLength >= CLIENT_HEADER_BYTES ? { epoch: buf.readUInt32LE(MAGIC_BYTES), clientId: buf.readUInt32LE(EPOCH_HEADER_BYTES), bytes: CLIENT_HEADER_BYTES } : undefined)
    : readHeader(buf, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_EPOCH)
  if (header === undefined) throw corrupt(`expected magic '${SNAPSHOT_MAGIC}', '${SNAPSHOT_MAGIC_EPOCH}' or '${SNAPSHOT_MAGIC_CLIENT}' and its header at offset 0`)
  const problem = recordProblem(buf, header.bytes, MAX_SNAPSHOT_BYTES)
  if (problem !== undefined) throw corrupt(problem)
  const length = buf.readUInt32LE(header.bytes)
  const end = header.bytes + RECORD_HEADER_BYTES + length
  if (end !== buf.byteLength) throw corrupt(`${buf.byteLength - end} unexpected bytes after the record`)
  return { payload: buf.subarray(header.bytes + RECORD_HEADER_BYTES, end), epoch: header.epoch, ...('clientId' in header ? { clientId: header.clientId } : {}) }
}

/** A log shorter than its header, as a crash while creating it leaves it (it held no records). */
function isTornHeader (buf: Buffer): boolean {
  if (buf.byteLength < MAGIC_BYTES) return LOG_MAGIC.startsWith(buf.toString('latin1')) || LOG_MAGIC_EPOCH.startsWith(buf.toString('latin1'))
  return buf.byteLength < EPOCH_HEADER_BYTES && buf.toString('latin1', 0, MAGIC_BYTES) === LOG_MAGIC_EPOCH
}

/** Magic, then the epoch when it is not 0. */
function header (magic: string, epochMagic: string, epoch: number): Buffer {
  if (epoch === 0) return Buffer.from(magic, 'latin1')
  const buf = Buffer.alloc(EPOCH_HEADER_BYTES)
  buf.write(epochMagic, 0, 'latin1')
  buf.writeUInt32LE(epoch, MAGIC_BYTES)
  return buf
}

const logHeader = (epoch: number): Buffer => header(LOG_MAGIC, LOG_MAGIC_EPOCH, epoch)
function snapshotHeader (epoch: number, clientId?: number): Buffer {
  if (clientId === undefined) return header(SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_EPOCH, epoch)
  const buf = Buffer.alloc(CLIENT_HEADER_BYTES)
  buf.write(SNAPSHOT_MAGIC_CLIENT, 0, 'latin1')
  buf.writeUInt32LE(epoch, MAGIC_BYTES)
  buf.writeUInt32LE(clientId, EPOCH_HEADER_BYTES)
  return buf
}

function readHeader (buf: Buffer, magic: string, epochMagic: string): { epoch: number, bytes: number } | undefined {
  if (buf.byteLength < MAGIC_BYTES) return undefined
  const found = buf.toString('latin1', 0, MAGIC_BYTES)
  if (found === magic) return { epoch: 0, bytes: MAGIC_BYTES }
  if (found !== epochMagic || buf.byteLength < EPOCH_HEADER_BYTES) return undefined
  return { epoch: buf.readUInt32LE(MAGIC_BYTES), bytes: EPOCH_HEADER_BYTES }
}

function hex (n: number): string {
  return '0x' + n.toString(16).padStart(8, '0')
}

function concat (parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts)
}

// ---------------------------------------------------------------------------
// File helpers

async function writeAll (fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0
  // write(2) may write less than asked (a signal, a nearly full disk); loop
  // until all is written or it throws.
  while (done < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, position + done)
    if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' })
    done += bytesWritten
  }
}

async function readIfExists (file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw toStoreError(err, 'reading', file)
  }
}

/** Replace `file` with `bytes` atomically: tmp, fsync, rename, fsync the directory. */
export async function writeFileAtomic (
  file: string,
  bytes: Uint8Array,
  opts: { fsync: boolean, openFile: NonNullable<LedgerStoreInit['openFile']> }
): Promise<void> {
  const tmp = file + TMP_SUFFIX
  try {
    const fh = await guard(async () => await opts.openFile(tmp, 'w', FILE_MODE), 'creating', tmp)
    try {
      await guard(async () => { await writeAll(fh, bytes, 0) }, 'writing', tmp)
      if (opts.fsync) await guard(async () => { await fh.sync() }, 'syncing', tmp)
    } finally {
      await fh.close().catch(() => {})
    }
    await guard(async () => { await rename(tmp, file) }, 'renaming into place', file)
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {})
    throw err
  }
  if (opts.fsync) await syncDir(path.dirname(file))
}

/** fsync a directory so a rename in it survives power loss. */
async function syncDir (dir: string): Promise<void> {
  const fh = await guard(async () => await open(dir, 'r'), 'opening directory', dir)
  try {
    await fh.sync()
  } catch (err) {
    // Some file systems (certain network and FUSE mounts) refuse fsync on a
    // directory; the rename is then as durable as they make it.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw toStoreError(err, 'syncing directory', dir)
  } finally {
    await fh.close().catch(() => {})
  }
}

async function guard<T> (fn: () => Promise<T>, action: string, file: string): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw toStoreError(err, action, file)
  }
}

const CODE_WORDS: Readonly<Record<string, string>> = {
  ENOSPC: 'disk full',
  EDQUOT: 'disk quota exceeded',
  EIO: 'I/O error',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EMFILE: 'too many open files',
  ENOENT: 'no such file or directory'
}

/** A disk error as a {@link StoreError}: "disk full while appending to <file> (ENOSPC)". */
function toStoreError (err: unknown, action: string, file: string): StoreError {
  if (err instanceof StoreError) return err
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN'
  const what = CODE_WORDS[code] ?? (err instanceof Error ? err.message : String(err))
  return new StoreError(code, `${what} while ${action} ${file} (${code})`, { file, cause: err })
}

// ---------------------------------------------------------------------------
// meta.json

/**
 * Read `<dir>/meta.json`; undefined when there is none yet.
 * @throws {StoreError} code `ECORRUPT` when it is not a JSON object.
 */
export async function readMeta<T extends Record<string, unknown> = Record<string, unknown>> (dir: string): Promise<T | undefined> {
  const file = path.join(dir, META_FILE)
  const bytes = await readIfExists(file)
  if (bytes === undefined) return undefined
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch (err) {
    throw new StoreError('ECORRUPT', `${file} is not valid JSON: ${(err as Error).message}`, { file, cause: err })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new StoreError('ECORRUPT', `${file} must hold a JSON object`, { file })
  }
  return value as T
}

/**
 * Replace `<dir>/meta.json` with `meta` atomically (mode 0600, fsynced), creating
 * `dir` (mode 0700) when missing.
 */
export async function writeMeta (dir: string, meta: Record<string, unknown>): Promise<void> {
  await guard(async () => await mkdir(dir, { recursive: true, mode: DIR_MODE }), 'creating data directory', dir)
  const bytes = Buffer.from(JSON.stringify(meta, null, 2) + '\n', 'utf8')
  await writeFileAtomic(path.join(dir, META_FILE), bytes, { fsync: true, openFile: open })
}
