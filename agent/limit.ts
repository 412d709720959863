/**
 * Apply a reservation's limit in force to its running cgroup (docs/design.md
 * "Bounds and the queue"). `resolve()` decides, the same on every peer, when a
 * node's capacity loss shrinks a reservation toward its minimum
 * (`effectiveBytes`); this follower reads that figure while the command runs
 * and lowers the cgroup's hard limit to it (v2 `memory.max`, v1
 * `memory.limit_in_bytes`, through agent/cgroup.ts). It never raises a limit:
 * a shrink is not undone when the node grows back.
 */
import type { CgroupLimits } from './cgroup.ts'

/** How often the verdict is read while the command runs, by default. */
export const DEFAULT_LIMIT_POLL_MS = 1000

export interface LimitFollowerInit {
  /** The limit in force now (the verdict's `effectiveBytes`), or undefined when it cannot be read this time. */
  read: () => Promise<number | undefined>
  /** Write limits to the cgroup (`MemoryCgroup.setLimits`). */
  apply: (limits: CgroupLimits) => Promise<void>
  /** The hard limit the cgroup starts with (the reservation's size). */
  initialBytes: number
  /** The protected minimum (`--min`), kept at most the new limit. */
  minBytes?: number
  /** Poll interval; default {@link DEFAULT_LIMIT_POLL_MS}. */
  intervalMs?: number
  /** Told after a lower limit was written. */
  onShrink?: (fromBytes: number, toBytes: number) => void
  /** Told when reading or writing failed; the follower keeps going. */
  onError?: (error: Error) => void
}

/** Follows the limit in force until stopped. */
export class LimitFollower {
  private readonly init: LimitFollowerInit
  private readonly intervalMs: number
  private appliedBytes: number
  private timer?: ReturnType<typeof setTimeout>
  private running?: Promise<void>
  private stopped = false

  constructor (init: LimitFollowerInit) {
    this.init = init
    this.intervalMs = init.intervalMs ?? DEFAULT_LIMIT_POLL_MS
    this.appliedBytes = init.initialBytes
  }

  /** The hard limit last written. */
  get limitBytes (): number {
    return this.appliedBytes
  }

  start (): void {
    this.schedule()
  }

  /** Read once and apply a lower limit if there is one (what each tick does). */
  async check (): Promise<void> {
    let target: number | undefined
    try {
      target = await this.init.read()
    } catch (error) {
      this.init.onError?.(error as Error)
      return
    }
    if (target === undefined || !Number.isSafeInteger(target) || target <= 0 || target >= this.appliedBytes) return
    const from = this.appliedBytes
    try {
      const min = this.init.minBytes
      await this.init.apply({ maxBytes: target, minBytes: min !== undefined ? Math.min(min, target) : undefined })
      this.appliedBytes = target
      this.init.onShrink?.(from, target)
    } catch (error) {
      this.init.onError?.(error as Error)
    }
  }

  /** Stop polling; waits for a tick in progress. */
  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    await this.running
  }

  private schedule (): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.running = this.check().finally(() => { this.running = undefined; this.schedule() })
    }, this.intervalMs)
    this.timer.unref?.()
  }
}
