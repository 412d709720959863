/**
 * The pressure ladder of one node (docs/design.md "Enforcement", "Pressure
 * ladder"): measured available memory against the floor, in four levels —
 *
 * | level    | entered when available is below | what the node does |
 * | -------- | ------------------------------- | ------------------ |
 * | `ok`     | —                               | nothing |
 * | `warn`   | `warnAtFloorRatio` × floor      | every fit/reserve answer carries a warning |
 * | `refuse` | `refuseAtFloorRatio` × floor    | a capacity event `cordoned`: no new placements here |
 * | `evict`  | `evictAtFloorRatio` × floor     | a capacity event shrinking allocatable: `resolve()` evicts by the Capacity-loss rule |
 *
 * Hysteresis, so a node wobbling around a threshold does not flap its state
 * (and its capacity events): a worse level is entered at once, at its
 * threshold; a better one only once available is at least `marginFloorRatio`
 * × floor above the threshold of every level it leaves, and the current level
 * has been held for `dwellMs`. A node oscillating around one threshold
 * therefore changes level at most twice per dwell.
 *
 * Pure: time and measurements are arguments ({@link stepPressure}); the
 * agent holds the state and writes what a change calls for.
 */
import { formatSize, shortId } from '../crdt/index.ts'

export type PressureLevel = 'ok' | 'warn' | 'refuse' | 'evict'

/** Worst last: the rank of a level is its index. */
export const PRESSURE_LEVELS: readonly PressureLevel[] = ['ok', 'warn', 'refuse', 'evict']

export function pressureRank (level: PressureLevel): number {
  return PRESSURE_LEVELS.indexOf(level)
}

/** Thresholds of the ladder, as multiples of the node's floor; every field optional. */
export interface PressureConfig {
  /** Warn below this × floor available; default {@link PRESSURE_DEFAULTS}.warnAtFloorRatio. */
  warnAtFloorRatio?: number
  /** Refuse new placements below this × floor. */
  refuseAtFloorRatio?: number
  /** Shrink allocatable (evict) below this × floor. */
  evictAtFloorRatio?: number
  /** A level is left only this × floor above its threshold. */
  marginFloorRatio?: number
  /** A level is held at least this long before stepping down to a better one. */
  dwellMs?: number
}

/** Defaults, each with its reason. */
export const PRESSURE_DEFAULTS = {
  /**
   * 1.5 × floor: the floor is what the node promised to keep free; half of it
   * again is the early warning (Dask warns and spills at 70 % of its limit,
   * well before it pauses).
   */
  warnAtFloorRatio: 1.5,
  /** At the floor: below it the node already breaks its own promise, so it takes nothing new. */
  refuseAtFloorRatio: 1,
  /** Half the floor: the kernel's own reserve is next; give memory back before the OOM killer picks. */
  evictAtFloorRatio: 0.5,
  /** A quarter of the floor (64 MiB at the default 256 MiB floor): above the probe's usual noise. */
  marginFloorRatio: 0.25,
  /** 30 s: a batch job that peaks for a few seconds does not step the node up and down. */
  dwellMs: 30_000
} as const

export type ResolvedPressureConfig = Required<PressureConfig>

/**
 * Fill in the defaults and check the order `warn > refuse > evict ≥ 0`.
 *
 * @throws {RangeError} naming the field when a value is out of range.
 */
export function resolvePressureConfig (config: PressureConfig = {}): ResolvedPressureConfig {
  const c: ResolvedPressureConfig = {
    warnAtFloorRatio: config.warnAtFloorRatio ?? PRESSURE_DEFAULTS.warnAtFloorRatio,
    refuseAtFloorRatio: config.refuseAtFloorRatio ?? PRESSURE_DEFAULTS.refuseAtFloorRatio,
    evictAtFloorRatio: config.evictAtFloorRatio ?? PRESSURE_DEFAULTS.evictAtFloorRatio,
    marginFloorRatio: config.marginFloorRatio ?? PRESSURE_DEFAULTS.marginFloorRatio,
    dwellMs: config.dwellMs ?? PRESSURE_DEFAULTS.dwellMs
  }
  for (const [field, value] of Object.entries(c)) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`pressure ${field} must be a non-negative number, got ${String(value)}`)
  }
  if (!(c.warnAtFloorRatio > c.refuseAtFloorRatio && c.refuseAtFloorRatio > c.evictAtFloorRatio)) {
    throw new RangeError(`pressure thresholds must be in order warn > refuse > evict (× floor), got warn ${c.warnAtFloorRatio}, refuse ${c.refuseAtFloorRatio}, evict ${c.evictAtFloorRatio}`)
  }
  return c
}

/** The thresholds in bytes for one floor. */
export interface PressureThresholds {
  warnBelowBytes: number
  refuseBelowBytes: number
  evictBelowBytes: number
  marginBytes: number
}

export function pressureThresholds (floorBytes: number, config: ResolvedPressureConfig): PressureThresholds {
  return {
    warnBelowBytes: Math.ceil(floorBytes * config.warnAtFloorRatio),
    refuseBelowBytes: Math.ceil(floorBytes * config.refuseAtFloorRatio),
    evictBelowBytes: Math.ceil(floorBytes * config.evictAtFloorRatio),
    marginBytes: Math.ceil(floorBytes * config.marginFloorRatio)
  }
}

/** The ladder's state: the level and since when it holds. */
export interface PressureState {
  level: PressureLevel
  sinceMs: number
  /** Available memory measured when this level was entered (for the alert's numbers). */
  enteredAtAvailableBytes?: number
}

export const INITIAL_PRESSURE: PressureState = { level: 'ok', sinceMs: -Infinity }

/** The worst level whose threshold (raised by `raise`) is above `availableBytes`. */
export function levelFor (availableBytes: number, t: PressureThresholds, raise = 0): PressureLevel {
  if (availableBytes < t.evictBelowBytes + raise) return 'evict'
  if (availableBytes < t.refuseBelowBytes + raise) return 'refuse'
  if (availableBytes < t.warnBelowBytes + raise) return 'warn'
  return 'ok'
}

/**
 * One step of the ladder for one measurement. A worse level is entered at
 * once; a better one when available clears its thresholds by the margin and
 * the current level has been held for the dwell. Returns `state` itself when
 * nothing changes.
 */
export function stepPressure (state: PressureState, availableBytes: number, t: PressureThresholds, dwellMs: number, nowMs: number): PressureState {
  const worse = levelFor(availableBytes, t)
  if (pressureRank(worse) > pressureRank(state.level)) return { level: worse, sinceMs: nowMs, enteredAtAvailableBytes: availableBytes }
  const better = levelFor(availableBytes, t, t.marginBytes)
  if (pressureRank(better) < pressureRank(state.level) && nowMs - state.sinceMs >= dwellMs) {
    return { level: better, sinceMs: nowMs, enteredAtAvailableBytes: availableBytes }
  }
  return state
}

/**
 * The allocatable memory a node at `evict` writes: what it has committed less
 * what it lacks to get back to the refuse threshold, so `resolve()` evicts
 * (by its usual rule: lowest priority, then latest first) reservations worth
 * at least that much. Never above the allocatable it has.
 */
export function evictionAllocatable (i: { allocatableBytes: number, committedBytes: number, availableBytes: number, thresholds: PressureThresholds }): number {
  const lackBytes = Math.max(0, i.thresholds.refuseBelowBytes - i.availableBytes)
  return Math.max(0, Math.min(i.allocatableBytes, i.committedBytes - lackBytes))
}

/** One line with the numbers, for alerts, warnings and the log. */
export function describePressure (level: PressureLevel, availableBytes: number, floorBytes: number, t: PressureThresholds): string {
  const below = level === 'evict' ? t.evictBelowBytes : level === 'refuse' ? t.refuseBelowBytes : t.warnBelowBytes
  const does = level === 'evict'
    ? 'it shrinks its allocatable memory so that reservations are evicted'
    : level === 'refuse' ? 'it refuses new placements' : 'answers carry this warning'
  return `memory pressure '${level}': ${formatSize(availableBytes)} available, under ${formatSize(below)} ` +
    `(floor ${formatSize(floorBytes)}); ${does}`
}

/** What the agent does after a step: which capacity event to write, if any. */
export interface PressureStep {
  from: PressureLevel
  to: PressureLevel
  availableBytes: number
  /** One line with the numbers. */
  message: string
}

/**
 * The ladder of this node: the state of {@link stepPressure} and the
 * allocatable memory it wrote at `evict`. The agent feeds it every sample
 * (`observe`) and writes a capacity event when {@link nodeState} or
 * {@link allocatable} changes.
 */
export class PressureLadder {
  readonly config: ResolvedPressureConfig
  private state: PressureState = INITIAL_PRESSURE
  private floorBytes = 0
  private evictCapBytes?: number

  constructor (config: PressureConfig = {}) {
    this.config = resolvePressureConfig(config)
  }

  get level (): PressureLevel {
    return this.state.level
  }

  thresholds (floorBytes = this.floorBytes): PressureThresholds {
    return pressureThresholds(floorBytes, this.config)
  }

  /**
   * One sample. `committedBytes` (asked only on entering `evict`) and
   * `allocatableBytes` are this node's now: on entering `evict` the ladder fixes the allocatable it will
   * write ({@link evictionAllocatable}); it keeps it while it stays there.
   * Returns the step when the level changed.
   */
  observe (i: { availableBytes: number, floorBytes: number, nowMs: number, committedBytes: () => number, allocatableBytes: number }): PressureStep | undefined {
    this.floorBytes = i.floorBytes
    const t = this.thresholds()
    const next = stepPressure(this.state, i.availableBytes, t, this.config.dwellMs, i.nowMs)
    if (next === this.state) return undefined
    const from = this.state.level
    this.state = next
    this.evictCapBytes = next.level === 'evict'
      ? evictionAllocatable({ allocatableBytes: i.allocatableBytes, committedBytes: i.committedBytes(), availableBytes: i.availableBytes, thresholds: t })
      : undefined
    const message = next.level === 'ok'
      ? `memory pressure over: ${formatSize(i.availableBytes)} available, ${formatSize(t.marginBytes)} clear of the warn threshold ${formatSize(t.warnBelowBytes)} (floor ${formatSize(i.floorBytes)})`
      : describePressure(next.level, i.availableBytes, i.floorBytes, t) + (next.level === 'evict' ? ` to ${formatSize(this.evictCapBytes ?? 0)}` : '')
    return { from, to: next.level, availableBytes: i.availableBytes, message }
  }

  /** The state its capacity events carry: `cordoned` at refuse and evict. */
  nodeState (): 'active' | 'cordoned' {
    return pressureRank(this.state.level) >= pressureRank('refuse') ? 'cordoned' : 'active'
  }

  /** The allocatable to write given the measured one: capped while at `evict`. */
  allocatable (measuredBytes: number): number {
    return this.evictCapBytes === undefined ? measuredBytes : Math.min(measuredBytes, this.evictCapBytes)
  }

  /** The alert while not `ok`: its message is fixed at the step, so it is raised once per step. */
  describe (): string | undefined {
    if (this.state.level === 'ok') return undefined
    return describePressure(this.state.level, this.state.enteredAtAvailableBytes ?? 0, this.floorBytes, this.thresholds()) +
      (this.state.level === 'evict' ? ` to ${formatSize(this.evictCapBytes ?? 0)}` : '')
  }
}

/** What answers need to know of a node for the pressure warnings. */
export interface PressureNode {
  id: string
  heartbeat?: { pressure?: 'warn' | 'refuse' | 'evict' }
}

/**
 * Warnings for a fit or reserve answer (docs/design.md "Pressure ladder"):
 * this node's own level when not ok (every answer it gives), and every chosen
 * node whose record says it is under pressure.
 */
export function pressureWarnings (self: { id: string, line?: string }, chosen: readonly string[], nodes: ReadonlyMap<string, PressureNode>): string[] {
  const out: string[] = []
  if (self.line !== undefined) out.push(`this node (${shortId(self.id)}): ${self.line}`)
  for (const id of chosen) {
    if (id === self.id) continue
    const level = nodes.get(id)?.heartbeat?.pressure
    if (level !== undefined) out.push(`node ${shortId(id)} reports memory pressure '${level}'${level === 'warn' ? '' : ': it takes no new placements'}`)
  }
  return out
}
