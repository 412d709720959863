/**
 * Usage per reservation (docs/design.md "Enforcement"): what each reservation
 * running on this node really uses, read from the memory cgroup `memgossip run`
 * made for it, and what its OOM kills mean.
 *
 * - {@link oomKillsSince}: the one rule that tells an offender (OOM-killed
 *   because it ran out of its own limit) from a bystander (killed by the host's
 *   or a parent cgroup's OOM killer while within its limit). `memgossip run`
 *   uses it for its closing report, the agent for its events.
 * - {@link UsageTracker}: the reservations' cgroups this agent watches — `memgossip
 *   run` names each one to the agent (`POST /v1/reservations/:id/usage`) when
 *   the command starts and once more when it ends, before the cgroup is removed
 *   — read at every sample (a restarted agent looks once for the cgroups of
 *   reservations running here that nobody named); an OOM kill becomes an event, a log line and a
 *   counter; the figures for the node record move only past a threshold.
 *
 * Narrow dependencies: a clock, a log, an event sink and a reader of cgroup
 * files (agent/cgroup.ts by default, a fake in tests).
 */
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { formatSize, MAX_USAGE_ENTRIES } from '../crdt/index.ts'
import { cgroupName, DEFAULT_CGROUP_ROOT, openCgroup, type CgroupUsage } from './cgroup.ts'
import type { Clock } from './types.ts'

/** Why processes of a reservation were OOM-killed. */
export type OomCause = 'limit' | 'host'

/**
 * OOM kills counted between two readings of one cgroup (`before` undefined:
 * since it was made), and their cause: `limit` when the cgroup's own limit ran
 * out in that time (v2 `memory.events` `oom`; v1 has no such counter, so a hit
 * of the limit, `memory.failcnt`, or a peak at the limit), else `host` — the host or a parent cgroup
 * ran out, and this reservation was a bystander. Undefined when nothing was
 * killed.
 */
export function oomKillsSince (before: CgroupUsage | undefined, after: CgroupUsage): { kills: number, cause: OomCause } | undefined {
  const kills = after.oomKills - (before?.oomKills ?? 0)
  if (kills <= 0) return undefined
  if (after.limitOoms !== undefined) return { kills, cause: after.limitOoms - (before?.limitOoms ?? 0) > 0 ? 'limit' : 'host' }
  // v1: no counter of its own limit's OOMs. A hit of the limit counts, and so does
  // a peak at the limit — with the memory+swap limit set (as `memgossip run` does)
  // the kernel here counts no failcnt at all when the limit runs out.
  const hits = after.limitHits - (before?.limitHits ?? 0)
  const peakAtLimit = after.limitBytes !== undefined && after.peakBytes !== undefined && after.peakBytes + LIMIT_SLACK_BYTES >= after.limitBytes
  return { kills, cause: hits > 0 || peakAtLimit ? 'limit' : 'host' }
}

/**
 * A peak this close to the limit is at the limit: the kernel charges memory to
 * a cgroup in batches of up to 64 pages (256 KiB), so usage can stop short of
 * the limit by that much when a charge fails.
 */
const LIMIT_SLACK_BYTES = 256 * 1024

/** One reservation's usage as this agent last read it. Integer bytes. */
export interface ReservationUsage {
  id: string
  /** The cgroup directory read. */
  cgroup: string
  /** What the ledger charges for it here. */
  reservedBytes: number
  usedBytes: number
  /** Highest charge seen; undefined where the kernel reports none. */
  peakBytes?: number
  /** The limit in force in the cgroup; undefined when unlimited. */
  limitBytes?: number
  /** Processes OOM-killed because the reservation ran out of its limit (offender). */
  exceededLimitKills: number
  /** Processes OOM-killed by the host while within its limit (bystander). */
  hostKills: number
  /** When it was read (wall ms). */
  atMs: number
}

/** What the node record carries per reservation (docs/design.md "Enforcement"). */
export interface UsageRecord {
  usedBytes: number
  peakBytes?: number
  /** OOM kills of it as the offender, since it started. */
  oomKills?: number
}

/** An OOM kill inside a reservation's cgroup, as reported on `/v1/events`. */
export interface OomReport {
  id: string
  cause: OomCause
  kills: number
  reservedBytes: number
  peakBytes?: number
  message: string
}

/** Counters for `/metrics`. */
export interface UsageCounters {
  /** Processes OOM-killed because their reservation ran out of its limit. */
  oomKillsLimit: number
  /** Processes OOM-killed by the host while within their reservation's limit. */
  oomKillsHost: number
}

export interface UsageTrackerDeps {
  clock: Clock
  log: (line: string) => void
  /** An OOM kill was counted inside a reservation's cgroup. */
  onOom: (report: OomReport) => void
  /** Reads a cgroup; default agent/cgroup.ts. Undefined when it is gone. */
  read?: (dir: string) => Promise<CgroupUsage | undefined>
  /** Where cgroups may be; a named cgroup must be below it. Default {@link DEFAULT_CGROUP_ROOT}. */
  cgroupRoot?: string
  /** Counters to add to (the agent's metrics); default a fresh set. */
  counters?: UsageCounters
  /**
   * Look for the cgroups of reservations nobody named (default off: only an
   * agent on the host's own memory turns it on; a simulated or fake-memory
   * agent has no cgroups of its own to find, and must not walk the host's).
   */
  searchUnnamed?: boolean
  /** Most directories one search for unnamed cgroups visits; default {@link SEARCH_MAX_DIRS}. */
  searchMaxDirs?: number
  /** At most one search this often; default {@link SEARCH_INTERVAL_MS}. */
  searchIntervalMs?: number
}

/** Reservations admitted here in a burst are looked for together, at most once this often. */
export const SEARCH_INTERVAL_MS = 30_000

/**
 * A search for cgroups nobody named (an agent restarted while `run` kept its
 * command going) visits at most this many directories, breadth first from the
 * v1 memory controller, the hybrid `unified` mount, then the root: a host has
 * a few hundred cgroups; the bound keeps a pathological one cheap.
 */
export const SEARCH_MAX_DIRS = 5000

/**
 * Why a named cgroup was refused; the message names the field. Here rather than
 * in agent/errors.ts for the reason CgroupError is in cgroup.ts (that file is
 * owned by another change in flight); the API maps it to a 400.
 */
export class UsageWatchError extends Error {
  override readonly name = 'UsageWatchError'
}

interface Watched {
  dir: string
  reservedBytes: number
  last?: CgroupUsage
  usage?: ReservationUsage
}

export class UsageTracker {
  readonly counters: UsageCounters
  private readonly watched = new Map<string, Watched>()
  private readonly read: (dir: string) => Promise<CgroupUsage | undefined>
  private readonly cgroupRoot: string
  private publishedRecord = new Map<string, UsageRecord>()
  /** Reservations already searched for: each is looked for once while it runs here. */
  private readonly searched = new Set<string>()
  private lastSearchMs = -Infinity

  constructor (private readonly deps: UsageTrackerDeps) {
    this.counters = deps.counters ?? { oomKillsLimit: 0, oomKillsHost: 0 }
    this.read = deps.read ?? (async (dir) => await (await openCgroup(dir))?.usage())
    this.cgroupRoot = path.resolve(deps.cgroupRoot ?? DEFAULT_CGROUP_ROOT)
  }

  /**
   * Watch reservation `id`'s cgroup at `dir` and read it now (a final reading
   * when its command has just ended). The directory must be an absolute path
   * below the cgroup root named `memgossip-<id>`, and a memory cgroup.
   *
   * @throws {UsageWatchError} naming what is wrong.
   */
  async watch (id: string, dir: string, reservedBytes: number): Promise<ReservationUsage> {
    if (!path.isAbsolute(dir) || path.resolve(dir) !== dir) throw new UsageWatchError(`cgroup: '${dir}' must be an absolute, normalized path`)
    if (!dir.startsWith(this.cgroupRoot + path.sep)) throw new UsageWatchError(`cgroup: '${dir}' is not below the cgroup root ${this.cgroupRoot}`)
    if (path.basename(dir) !== cgroupName(id)) throw new UsageWatchError(`cgroup: '${dir}' is not the cgroup of '${id}' (its name would be ${cgroupName(id)})`)
    const existing = this.watched.get(id)
    const entry: Watched = existing !== undefined && existing.dir === dir ? existing : { dir, reservedBytes }
    entry.reservedBytes = reservedBytes
    const reading = await this.readOne(id, entry)
    if (reading === undefined) throw new UsageWatchError(`cgroup: '${dir}' is not a memory cgroup (no memory.current or memory.usage_in_bytes)`)
    this.watched.set(id, entry)
    return reading
  }

  /**
   * Read every watched cgroup; forget those whose reservation no longer runs
   * here (`running`: id → bytes charged here) or whose cgroup is gone.
   */
  async tick (runningHere: ReadonlyMap<string, number> | (() => ReadonlyMap<string, number>)): Promise<void> {
    if (!this.active) return
    const running = typeof runningHere === 'function' ? runningHere() : runningHere
    for (const id of this.searched) if (!running.has(id)) this.searched.delete(id)
    if (this.deps.searchUnnamed === true) await this.search(running)
    for (const [id, entry] of [...this.watched]) {
      const reserved = running.get(id)
      if (reserved === undefined) {
        this.watched.delete(id)
        continue
      }
      entry.reservedBytes = reserved
      if (await this.readOne(id, entry) === undefined) this.watched.delete(id)
    }
  }

  /**
   * Whether {@link tick} has anything to do: a cgroup watched, or the search on.
   * An agent with neither neither computes what runs here nor awaits anything
   * at a sample (the simulator's seeded runs stay what they were).
   */
  get active (): boolean {
    return this.watched.size > 0 || this.deps.searchUnnamed === true
  }

  /** The latest reading of `id`, if it is watched. */
  get (id: string): ReservationUsage | undefined {
    return this.watched.get(id)?.usage
  }

  list (): ReservationUsage[] {
    return [...this.watched.values()].flatMap(w => w.usage !== undefined ? [w.usage] : [])
  }

  /**
   * The per-reservation usage for the node record when it must be written:
   * a reservation appeared or went, its usage moved by more than
   * `thresholdBytes` since it was last written, or it was OOM-killed as the
   * offender. Undefined when the last written record still holds.
   */
  recordIfMoved (thresholdBytes: number): Record<string, UsageRecord> | undefined {
    const next = new Map<string, UsageRecord>()
    // A record past the schema's bound would be refused by every peer: keep the largest users.
    const list = this.list().sort((a, b) => b.usedBytes - a.usedBytes || (a.id < b.id ? -1 : 1)).slice(0, MAX_USAGE_ENTRIES)
    for (const u of list) {
      const record: UsageRecord = { usedBytes: u.usedBytes }
      if (u.peakBytes !== undefined) record.peakBytes = u.peakBytes
      if (u.exceededLimitKills > 0) record.oomKills = u.exceededLimitKills
      next.set(u.id, record)
    }
    let moved = next.size !== this.publishedRecord.size
    for (const [id, record] of next) {
      const before = this.publishedRecord.get(id)
      if (before === undefined || Math.abs(record.usedBytes - before.usedBytes) > thresholdBytes || (record.oomKills ?? 0) !== (before.oomKills ?? 0)) moved = true
    }
    if (!moved) return undefined
    return Object.fromEntries([...next].sort(([a], [b]) => a < b ? -1 : 1))
  }

  /** The record `recordIfMoved` returned was written. */
  published (record: Record<string, UsageRecord>): void {
    this.publishedRecord = new Map(Object.entries(record))
  }

  /**
   * Look once for the cgroups of reservations running here that nobody named
   * (`memgossip-<id>` below the cgroup root, e.g. after this agent restarted
   * while `run` kept its command going). A reservation reserved without `run`
   * has none; it is searched for once, not at every sample.
   */
  private async search (running: ReadonlyMap<string, number>): Promise<void> {
    const now = this.deps.clock.now()
    if (now - this.lastSearchMs < (this.deps.searchIntervalMs ?? SEARCH_INTERVAL_MS)) return
    const wanted = new Map<string, string>()
    for (const id of running.keys()) {
      if (this.watched.has(id) || this.searched.has(id)) continue
      this.searched.add(id)
      wanted.set(cgroupName(id), id)
    }
    if (wanted.size === 0) return
    this.lastSearchMs = now
    const max = this.deps.searchMaxDirs ?? SEARCH_MAX_DIRS
    const queue = [path.join(this.cgroupRoot, 'memory'), path.join(this.cgroupRoot, 'unified'), this.cgroupRoot]
    const seen = new Set<string>()
    while (queue.length > 0 && seen.size < max && wanted.size > 0) {
      const dir = queue.shift()!
      if (seen.has(dir)) continue
      seen.add(dir)
      let entries: Array<{ name: string, isDirectory: () => boolean }>
      try {
        entries = await readdir(dir, { withFileTypes: true })
      } catch {
        continue
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue
        const child = path.join(dir, e.name)
        const id = wanted.get(e.name)
        if (id !== undefined) {
          const watched = await this.watch(id, child, running.get(id) ?? 0).then(() => true, () => false)
          if (watched) {
            wanted.delete(e.name)
            this.deps.log(`usage: found the cgroup of '${id}' at ${child}`)
            continue
          }
        }
        queue.push(child)
      }
    }
  }

  private async readOne (id: string, entry: Watched): Promise<ReservationUsage | undefined> {
    let reading: CgroupUsage | undefined
    try {
      reading = await this.read(entry.dir)
    } catch {
      reading = undefined
    }
    if (reading === undefined) return undefined
    const previous = entry.usage
    const usage: ReservationUsage = {
      id,
      cgroup: entry.dir,
      reservedBytes: entry.reservedBytes,
      usedBytes: reading.currentBytes,
      peakBytes: reading.peakBytes,
      limitBytes: reading.limitBytes,
      exceededLimitKills: previous?.exceededLimitKills ?? 0,
      hostKills: previous?.hostKills ?? 0,
      atMs: this.deps.clock.now()
    }
    const oom = oomKillsSince(entry.last, reading)
    entry.last = reading
    entry.usage = usage
    if (oom !== undefined) this.reportOom(usage, oom)
    return usage
  }

  private reportOom (u: ReservationUsage, oom: { kills: number, cause: OomCause }): void {
    const peak = u.peakBytes !== undefined ? `peak ${formatSize(u.peakBytes)}` : 'peak not reported by this kernel'
    let message: string
    if (oom.cause === 'limit') {
      u.exceededLimitKills += oom.kills
      this.counters.oomKillsLimit += oom.kills
      message = `reservation ${u.id} exceeded its limit of ${formatSize(u.reservedBytes)}: ${oom.kills} process(es) OOM-killed inside its cgroup (${peak}); it is the offender: reserve more or make it use less`
    } else {
      u.hostKills += oom.kills
      this.counters.oomKillsHost += oom.kills
      message = `reservation ${u.id} lost ${oom.kills} process(es) to the kernel's OOM killer while within its limit of ${formatSize(u.reservedBytes)} (${peak}): the host or a parent cgroup ran out of memory; it was a bystander`
    }
    // A warning either way: a process of the reservation was killed.
    this.deps.log(`WARNING OOM ${oom.cause === 'limit' ? 'offender' : 'bystander'}: ${message}`)
    this.deps.onOom({ id: u.id, cause: oom.cause, kills: oom.kills, reservedBytes: u.reservedBytes, peakBytes: u.peakBytes, message })
  }
}
