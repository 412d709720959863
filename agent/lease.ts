/**
 * The data dir's `meta.json` and the clock lease it holds (docs/design.md
 * "Clock channel": a restarted agent and its beacons).
 *
 * Beacons are not ledger entries, so a restarted agent cannot learn from its
 * files the highest stamp its peers hold from it. Before a beacon stamped at
 * wall time `t` leaves, `meta.json` records a lease past `t`; a restart
 * writes nothing, and sends no beacon, until its wall clock passes the lease
 * it finds there. It waits rather than jumping its clock ahead: a clock that
 * jumped would drag the cluster's stamps ahead of the wall clocks.
 *
 * The same file names the peer the data dir belongs to, and the Yjs client id
 * of the document its files hold — the fallback for a snapshot that does not
 * name it (docs/decisions.md "A restart reused a client
 * id"). Every write of the lease names that id, so it changes only
 * once a new epoch's snapshot is on disk ({@link ClockLease.moved}).
 */
import { UnavailableError } from './errors.ts'
import { readMeta, writeMeta } from './store.ts'
import type { Clock, PeerIdStr } from './types.ts'

export interface ClockLeaseInit {
  /** No data dir: nothing survives a restart, so there is nothing to lease. */
  dataDir?: string
  self: PeerIdStr
  clock: Clock
  /** How far past a beacon's stamp a lease is written (`clockLeaseMs`). */
  periodMs: number
}

export class ClockLease {
  readonly periodMs: number
  private readonly init: ClockLeaseInit
  /** The lease on disk. */
  private heldMs = 0
  /** The furthest lease asked for, written or on its way. */
  private askedMs = 0
  /** The lease found at start: no write until the wall clock passes it. */
  private restartMs = 0
  /** Writes of `meta.json`, in order. */
  private tail: Promise<void> = Promise.resolve()
  /** The client id of the document the files hold: what every write names. */
  private filesClientId = 0

  constructor (init: ClockLeaseInit) {
    this.init = init
    this.periodMs = init.periodMs
  }

  /**
   * Read `meta.json` at start: take the lease a previous run held, and return
   * the client id it names (undefined when none). Refuses another peer's data
   * dir.
   */
  async open (): Promise<number | undefined> {
    const { dataDir, self } = this.init
    if (dataDir === undefined) return undefined
    const meta = await readMeta<{ clientId?: number, peerId?: string, clockLeaseMs?: number }>(dataDir)
    if (meta?.peerId !== undefined && meta.peerId !== self) {
      throw new UnavailableError(`data dir ${dataDir} belongs to peer ${meta.peerId}, not ${self}`)
    }
    if (typeof meta?.clockLeaseMs === 'number' && Number.isSafeInteger(meta.clockLeaseMs)) {
      this.heldMs = this.askedMs = this.restartMs = meta.clockLeaseMs
    }
    return typeof meta?.clientId === 'number' ? meta.clientId : undefined
  }

  /** The client id the files hold, as found at start; written to `meta.json` when `write` (a new data dir). */
  async filesHold (clientId: number, options: { write?: boolean } = {}): Promise<void> {
    this.filesClientId = clientId
    const dataDir = this.init.dataDir
    if (options.write === true && dataDir !== undefined) await writeMeta(dataDir, { clientId, peerId: this.init.self })
  }

  /** How long until the wall clock passes the lease a previous run held (0 once it has). */
  waitMs (): number {
    return Math.max(0, this.restartMs - this.init.clock.now())
  }

  /**
   * Hold a lease past `wallMs` before a beacon stamped there leaves this
   * node. Renewed a lease period ahead, so at most one small fsync per
   * period — and half a period before it runs out, without waiting for it:
   * the write is eight steps through the event loop (open, write, fsync,
   * close, rename, and the directory's open, fsync, close), and a beacon or
   * the answer to a beacon pull that waited for it on an agent starved of
   * CPU waited for eight turns of a late loop (at 50 agents on two cores,
   * beacon pulls not answered within 10 s).
   */
  async hold (wallMs: number): Promise<void> {
    const dataDir = this.init.dataDir
    if (dataDir === undefined) return
    if (wallMs + this.periodMs / 2 >= this.askedMs) {
      const leaseMs = wallMs + this.periodMs
      this.askedMs = leaseMs
      this.tail = this.tail.catch(() => {}).then(async () => {
        if (leaseMs <= this.heldMs) return
        await writeMeta(dataDir, { clientId: this.filesClientId, peerId: this.init.self, clockLeaseMs: leaseMs })
        this.heldMs = leaseMs
      })
      // Awaited below only when the lease has run out; a failed write rejects there, or at the next beacon.
      this.tail.catch(() => {})
    }
    // The lease asked for last is past wallMs: once the writes queued so far are done, it covers it.
    if (wallMs >= this.heldMs) await this.tail
  }

  /** The files now hold a new epoch's document, under `clientId`: `meta.json` names it, after the lease writes queued before. */
  async moved (clientId: number): Promise<void> {
    const dataDir = this.init.dataDir
    if (dataDir === undefined) return
    this.filesClientId = clientId
    this.tail = this.tail.catch(() => {}).then(async () => {
      await writeMeta(dataDir, { clientId, peerId: this.init.self, clockLeaseMs: this.heldMs })
    })
    await this.tail
  }
}
