/**
 * Measuring memory and turning a measurement into what reservations may use
 * (docs/design.md "Measuring memory").
 *
 * - {@link createSystemProbe}: the cgroup (v2, or the v1 memory controller) when
 *   the agent runs in a limited one, else `/proc/meminfo`, else
 *   `os.totalmem()` / `os.freemem()`.
 * - {@link createFakeProbe}: a probe that tests and simulations drive by hand.
 * - {@link resolveFloor}, {@link computeAllocatable}: pure rules, no I/O.
 * - {@link PublishGate}: "publish on change, not on every tick", time passed in.
 */
import { readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { ACCEPTED_SIZE_FORMS, formatSize, parseSize } from '../crdt/size.ts'
import type { MemoryProbe, MemorySample } from './types.ts'

const MIB = 1024 * 1024
const KIB = 1024

/** Where procfs is mounted. */
export const DEFAULT_PROC_ROOT = '/proc'
/** Where the cgroup v2 unified hierarchy is mounted; the v1 memory controller is at `<root>/memory`. */
export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup'

/** Default floor: this share of total memory is kept free… */
export const DEFAULT_FLOOR_PCT_TOTAL = 5
/** …but never less than this, so small hosts keep room for the kernel and sshd. */
export const DEFAULT_FLOOR_MIN_BYTES = 256 * MIB

/** Default publish threshold: a figure moving by more than this share of total… */
export const DEFAULT_PUBLISH_THRESHOLD_PCT_TOTAL = 1
/** …or by more than this many bytes, whichever is larger. */
export const DEFAULT_PUBLISH_THRESHOLD_MIN_BYTES = 32 * MIB
/** Publish at least this often, so liveness and finality (docs/design.md "Finality") keep advancing. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 5000

/** The floor environment variables, in precedence order (docs/design.md "Measuring memory"). */
export const FLOOR_ENV = {
  free: 'MEMGOSSIP_MINMEM_FREE',
  pctTotal: 'MEMGOSSIP_MINMEM_PCT_TOTAL',
  pctFree: 'MEMGOSSIP_MINMEM_PCT_FREE'
} as const

const ACCEPTED_PERCENT_FORMS = "accepted: a percentage from 0 to 100, e.g. '10', '2.5' or '10%'"

/**
 * A configuration value (environment variable or config file field) that cannot
 * be used. The message names the setting and the accepted forms.
 *
 * Lives here rather than in an `agent/errors.ts` only because that file is owned
 * by another change in flight; move it there when both land.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  /** The setting that was refused, e.g. `MEMGOSSIP_MINMEM_FREE`. */
  readonly setting: string

  constructor (setting: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.setting = setting
  }
}

// ---------------------------------------------------------------------------
// Probes

/** Options of {@link createSystemProbe}; every field is optional. */
export interface SystemProbeInit {
  /** Root of procfs; default {@link DEFAULT_PROC_ROOT}. Tests point it at fixture files. */
  procRoot?: string
  /** Root of the cgroup v2 hierarchy (v1 memory controller at `<cgroupRoot>/memory`); default {@link DEFAULT_CGROUP_ROOT}. */
  cgroupRoot?: string
}

/**
 * The probe of the host the agent runs on.
 *
 * On Linux (or whenever a root is injected): if the process sits in a cgroup v2
 * whose `memory.max` (or an ancestor's), or in a cgroup v1 memory cgroup whose
 * `memory.limit_in_bytes` (or an ancestor's), is a number below the host's
 * `MemTotal`, total is that limit and available is `limit − usage`, never more than
 * `MemAvailable` (a cgroup cannot use memory the host does not have). Otherwise
 * `/proc/meminfo` `MemTotal` / `MemAvailable`. Elsewhere, or when nothing is
 * readable, `os.totalmem()` / `os.freemem()`. Each sample re-reads the files, so
 * a limit changed at run time (`systemctl set-property`) shows up at once.
 */
export function createSystemProbe (init: SystemProbeInit = {}): MemoryProbe {
  const procRoot = init.procRoot ?? DEFAULT_PROC_ROOT
  const cgroupRoot = init.cgroupRoot ?? DEFAULT_CGROUP_ROOT
  // With injected roots the fixture files decide, whatever the platform.
  const tryLinux = process.platform === 'linux' || init.procRoot !== undefined || init.cgroupRoot !== undefined

  return {
    sample: async (): Promise<MemorySample> => {
      if (tryLinux) {
        const meminfo = await readMeminfo(procRoot)
        const cgroup = await readCgroupLimit(procRoot, cgroupRoot)
        // A limit at or above the host's memory does not limit anything: report
        // the host, so `source` says `cgroup` only when the cgroup is what binds.
        if (cgroup !== undefined && (meminfo === undefined || cgroup.limitBytes < meminfo.totalBytes)) {
          const available = Math.min(cgroup.headroomBytes, meminfo?.availableBytes ?? Infinity)
          return { totalBytes: cgroup.limitBytes, availableBytes: Math.max(0, available), source: 'cgroup' }
        }
        if (meminfo !== undefined) {
          return { ...meminfo, source: 'meminfo' }
        }
      }
      return { totalBytes: os.totalmem(), availableBytes: os.freemem(), source: 'os' }
    }
  }
}

/** A probe whose figures are set by hand. */
export interface FakeProbe extends MemoryProbe {
  /** Change some figures; the next {@link MemoryProbe.sample} returns them. */
  set: (figures: Partial<Pick<MemorySample, 'totalBytes' | 'availableBytes'>>) => void
}

/**
 * A probe for tests and simulations (docs/design.md "Measuring memory",
 * "Simulation harness"): returns what it was last {@link FakeProbe.set set} to,
 * with `source: 'fake'`.
 */
export function createFakeProbe (initial: { totalBytes: number, availableBytes: number }): FakeProbe {
  let current = checkFakeFigures({ ...initial })
  return {
    sample: async () => ({ ...current, source: 'fake' }),
    set: (figures) => {
      current = checkFakeFigures({ ...current, ...figures })
    }
  }
}

function checkFakeFigures (figures: { totalBytes: number, availableBytes: number }): { totalBytes: number, availableBytes: number } {
  for (const [key, value] of Object.entries(figures)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`fake probe: ${key} must be a non-negative integer, got ${String(value)}`)
    }
  }
  return figures
}

/** `MemTotal` / `MemAvailable` in bytes, or undefined when meminfo is unreadable. */
async function readMeminfo (procRoot: string): Promise<{ totalBytes: number, availableBytes: number } | undefined> {
  const text = await readOptional(path.join(procRoot, 'meminfo'))
  if (text === undefined) return undefined
  const fields = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+)\s*kB\s*$/.exec(line)
    if (match != null) fields.set(match[1], Number(match[2]) * KIB)
  }
  const totalBytes = fields.get('MemTotal')
  if (totalBytes === undefined) return undefined
  // Kernels before 3.14 have no MemAvailable; MemFree is the conservative stand-in
  // (it ignores reclaimable page cache, so it under-reports, never over-reports).
  const availableBytes = fields.get('MemAvailable') ?? fields.get('MemFree')
  if (availableBytes === undefined) return undefined
  return { totalBytes, availableBytes }
}

/**
 * v1 reports "no limit" as the largest page-aligned counter (9223372036854771712
 * on x86-64); a value this large limits nothing.
 */
const V1_UNLIMITED_AT = 2 ** 62

/**
 * The tightest memory limit over the process's cgroup and its ancestors, in
 * cgroup v2 (`memory.max` / `memory.current`) and in the cgroup v1 memory
 * controller (`memory.limit_in_bytes` / `memory.usage_in_bytes` under
 * `<cgroupRoot>/memory`, as hybrid hosts mount it): a limit set on a parent
 * binds the child too, and the child's own file then reads `max` (v2) or the
 * "unlimited" number (v1). Undefined when no level has a numeric limit.
 */
async function readCgroupLimit (procRoot: string, cgroupRoot: string): Promise<{ limitBytes: number, headroomBytes: number } | undefined> {
  const membership = await readOptional(path.join(procRoot, 'self', 'cgroup'))
  if (membership === undefined) return undefined
  let best: { limitBytes: number, headroomBytes: number } | undefined
  const tighter = (level: { limitBytes: number, headroomBytes: number }): void => {
    best = best === undefined
      ? level
      : { limitBytes: Math.min(best.limitBytes, level.limitBytes), headroomBytes: Math.min(best.headroomBytes, level.headroomBytes) }
  }
  for (const line of membership.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim())
    if (match === null) continue
    const [, hierarchy, controllers, cgroupPath] = match
    // v2 is the `0::<path>` line; in v1 only the memory controller's line matters.
    if (hierarchy === '0' && controllers === '') {
      await walkUp(path.join(cgroupRoot), cgroupPath, 'memory.max', 'memory.current', tighter)
    } else if (controllers.split(',').includes('memory')) {
      await walkUp(path.join(cgroupRoot, 'memory'), cgroupPath, 'memory.limit_in_bytes', 'memory.usage_in_bytes', tighter)
    }
  }
  return best
}

/** Each level from `cgroupPath` up to the root of `mount` with a numeric limit and usage. */
async function walkUp (
  mount: string,
  cgroupPath: string,
  limitFile: string,
  usageFile: string,
  found: (level: { limitBytes: number, headroomBytes: number }) => void
): Promise<void> {
  let dir = path.posix.normalize('/' + cgroupPath.trim())
  for (;;) {
    const level = path.join(mount, dir)
    const max = (await readOptional(path.join(level, limitFile)))?.trim()
    if (max !== undefined && /^\d+$/.test(max) && Number(max) < V1_UNLIMITED_AT) {
      const limitBytes = Number(max)
      const current = (await readOptional(path.join(level, usageFile)))?.trim()
      // A limit without a usage figure cannot give a headroom: skip the level
      // rather than guess (meminfo or another level still answers).
      if (current !== undefined && /^\d+$/.test(current)) {
        found({ limitBytes, headroomBytes: Math.max(0, limitBytes - Number(current)) })
      }
    }
    if (dir === '/') break
    dir = path.posix.dirname(dir)
  }
}

async function readOptional (file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch {
    // Missing or unreadable both mean "this source does not apply here".
    return undefined
  }
}

// ---------------------------------------------------------------------------
// Floor and allocatable

/** The floor that applies and why, for display (`memgossip status`). */
export interface FloorResolution {
  /** Memory that must stay free on the node, integer bytes. */
  floorBytes: number
  /** Which rule applied, e.g. `MEMGOSSIP_MINMEM_PCT_TOTAL=10 (10% of 16.00 GiB)`. */
  rule: string
}

/** The floor fields of the config file. */
export interface FloorConfig {
  /** A size (`2GiB`) or a percentage of total memory (`10%`). */
  floor?: string
}

/**
 * The floor rule of docs/design.md "Measuring memory"; the first rule that is
 * set wins: `MEMGOSSIP_MINMEM_FREE` (a size), `MEMGOSSIP_MINMEM_PCT_TOTAL`
 * (percent of total), `MEMGOSSIP_MINMEM_PCT_FREE` (percent of available in
 * `sample`), then `config.floor`, then {@link DEFAULT_FLOOR_PCT_TOTAL}% of
 * total but at least {@link DEFAULT_FLOOR_MIN_BYTES}. A variable set to the
 * empty string counts as unset (`VAR= memgossip agent` is how shells unset for
 * one command).
 *
 * `MEMGOSSIP_MINMEM_PCT_FREE` depends on the moment: resolve the floor once at
 * start (and on config reload), not on every sample, or allocatable would follow
 * usage and every sample would become a capacity event (docs/design.md
 * "Measuring memory").
 *
 * @throws {ConfigError} naming the variable and the accepted forms.
 */
export function resolveFloor (
  env: Record<string, string | undefined>,
  sample: Pick<MemorySample, 'totalBytes' | 'availableBytes'>,
  config: FloorConfig = {}
): FloorResolution {
  const free = nonEmpty(env[FLOOR_ENV.free])
  if (free !== undefined) {
    const floorBytes = parseSizeSetting(FLOOR_ENV.free, free)
    return { floorBytes, rule: `${FLOOR_ENV.free}=${free}` }
  }
  const pctTotal = nonEmpty(env[FLOOR_ENV.pctTotal])
  if (pctTotal !== undefined) {
    const pct = parsePercent(FLOOR_ENV.pctTotal, pctTotal)
    return {
      floorBytes: percentOf(pct, sample.totalBytes),
      rule: `${FLOOR_ENV.pctTotal}=${pctTotal} (${pct}% of total ${formatSize(sample.totalBytes)})`
    }
  }
  const pctFree = nonEmpty(env[FLOOR_ENV.pctFree])
  if (pctFree !== undefined) {
    const pct = parsePercent(FLOOR_ENV.pctFree, pctFree)
    return {
      floorBytes: percentOf(pct, sample.availableBytes),
      rule: `${FLOOR_ENV.pctFree}=${pctFree} (${pct}% of available ${formatSize(sample.availableBytes)} when resolved)`
    }
  }
  const configured = nonEmpty(config.floor)
  if (configured !== undefined) {
    if (configured.endsWith('%')) {
      const pct = parsePercent('config floor', configured)
      return {
        floorBytes: percentOf(pct, sample.totalBytes),
        rule: `config floor ${configured} (of total ${formatSize(sample.totalBytes)})`
      }
    }
    return { floorBytes: parseSizeSetting('config floor', configured), rule: `config floor ${configured}` }
  }
  const floorBytes = Math.max(percentOf(DEFAULT_FLOOR_PCT_TOTAL, sample.totalBytes), DEFAULT_FLOOR_MIN_BYTES)
  return {
    floorBytes,
    rule: `default (${DEFAULT_FLOOR_PCT_TOTAL}% of total, at least ${formatSize(DEFAULT_FLOOR_MIN_BYTES)})`
  }
}

function nonEmpty (value: string | undefined): string | undefined {
  const trimmed = value?.trim()
  return trimmed === undefined || trimmed === '' ? undefined : trimmed
}

function parseSizeSetting (setting: string, value: string): number {
  try {
    return parseSize(value)
  } catch (err) {
    // parseSize's own message already lists the accepted forms; keep it whole.
    const detail = err instanceof Error ? err.message : ACCEPTED_SIZE_FORMS
    throw new ConfigError(setting, `${setting}: invalid size '${value}': ${detail}`, { cause: err })
  }
}

function parsePercent (setting: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*%?$/.exec(value)
  const pct = match == null ? NaN : Number(match[1])
  if (!(pct >= 0 && pct <= 100)) {
    throw new ConfigError(setting, `${setting}: invalid percentage '${value}'; ${ACCEPTED_PERCENT_FORMS}`)
  }
  return pct
}

/**
 * `pct`% of `bytes`, rounded up: the floor is memory kept free, so rounding
 * errs on the safe side.
 */
function percentOf (pct: number, bytes: number): number {
  return Math.ceil((bytes * pct) / 100)
}

/** Inputs of {@link computeAllocatable}, integer bytes. */
export interface AllocatableInput {
  /** Total memory of the node (or its cgroup limit). */
  totalBytes: number
  /** Memory that must stay free ({@link resolveFloor}). */
  floorBytes: number
  /** An operator's reserve for the system (daemons, the agent itself); default 0. */
  systemReservedBytes?: number
  /** An upper bound on allocatable, e.g. from config; default none. */
  capBytes?: number
}

/**
 * What reservations may use on a node (docs/design.md "Measuring memory"):
 * `max(0, min(total − floor − systemReserved, cap))`, an integer.
 */
export function computeAllocatable ({ totalBytes, floorBytes, systemReservedBytes = 0, capBytes }: AllocatableInput): number {
  const uncapped = totalBytes - floorBytes - systemReservedBytes
  return Math.max(0, Math.floor(Math.min(uncapped, capBytes ?? Infinity)))
}

// ---------------------------------------------------------------------------
// Publish gate

/** The figures of a heartbeat that the gate compares, integer bytes. */
export interface PublishFigures {
  totalBytes: number
  availableBytes: number
  allocatableBytes: number
}

/** Why a sample must be published; undefined from {@link PublishGate.check} means "not now". */
export type PublishReason = 'first' | 'changed' | 'heartbeat'

/** Options of {@link PublishGate}; every field is optional. */
export interface PublishGateInit {
  /**
   * A figure must move by more than this to publish early. Default: the larger
   * of {@link DEFAULT_PUBLISH_THRESHOLD_PCT_TOTAL}% of total and
   * {@link DEFAULT_PUBLISH_THRESHOLD_MIN_BYTES}.
   */
  thresholdBytes?: number
  /** Publish at least this often; default {@link DEFAULT_HEARTBEAT_INTERVAL_MS}. */
  heartbeatIntervalMs?: number
}

/**
 * "Publish on change, not on every tick" (docs/design.md "Measuring memory"):
 * the agent samples every second and asks the gate whether this sample must go
 * out. Pure: time is an argument, the gate only remembers the last published
 * figures and when.
 */
export class PublishGate {
  private readonly thresholdBytes: number | undefined
  private readonly heartbeatIntervalMs: number
  private last: { figures: PublishFigures, atMs: number } | undefined

  constructor (init: PublishGateInit = {}) {
    this.thresholdBytes = init.thresholdBytes
    this.heartbeatIntervalMs = init.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS
  }

  /** The threshold that applies to figures with this total. */
  thresholdFor (totalBytes: number): number {
    return this.thresholdBytes ??
      Math.max(Math.ceil((totalBytes * DEFAULT_PUBLISH_THRESHOLD_PCT_TOTAL) / 100), DEFAULT_PUBLISH_THRESHOLD_MIN_BYTES)
  }

  /**
   * Why `figures` must be published at `nowMs`, or undefined when they need
   * not be. The refresh interval is stretched `scale` times (agent/sync.ts
   * `pushPullScale`: every peer receives every member's record).
   */
  check (figures: PublishFigures, nowMs: number, scale = 1): PublishReason | undefined {
    if (this.last === undefined) return 'first'
    const threshold = this.thresholdFor(figures.totalBytes)
    const prev = this.last.figures
    if (Math.abs(figures.totalBytes - prev.totalBytes) > threshold ||
        Math.abs(figures.availableBytes - prev.availableBytes) > threshold ||
        Math.abs(figures.allocatableBytes - prev.allocatableBytes) > threshold) {
      return 'changed'
    }
    const elapsedMs = nowMs - this.last.atMs
    // A clock that stepped backwards would otherwise silence heartbeats until it
    // caught up again, stalling liveness and finality; publish and restart the count.
    if (elapsedMs >= this.heartbeatIntervalMs * scale || elapsedMs < 0) return 'heartbeat'
    return undefined
  }

  /** True when `figures` must be published at `nowMs`. */
  shouldPublish (figures: PublishFigures, nowMs: number, scale = 1): boolean {
    return this.check(figures, nowMs, scale) !== undefined
  }

  /** Record that `figures` were published at `nowMs`. */
  published (figures: PublishFigures, nowMs: number): void {
    this.last = {
      figures: { totalBytes: figures.totalBytes, availableBytes: figures.availableBytes, allocatableBytes: figures.allocatableBytes },
      atMs: nowMs
    }
  }
}
