/**
 * Drives a `VirtualClock` one instant at a time so that a virtual run is
 * reproducible even when some agents write to a real data directory
 * (docs/design.md "Simulation harness": crashes and restarts need one).
 *
 * The clock's own async runners yield one event-loop turn after each timer;
 * real file I/O started by a timer completes whenever the thread pool gets to
 * it, possibly after virtual time moved on, and two agents' writes may complete
 * in either order. Both change the order in which later timers are scheduled
 * and random numbers drawn, so the same seed would not give the same run.
 *
 * The stepper instead:
 * 1. fires every timer due at the next instant with `runUntilSync`; the timers
 *    it hands out only *enqueue* their callback at that point;
 * 2. runs the enqueued callbacks in firing order; after a callback that
 *    reached an agent with a data directory (its own timer, or the network
 *    calling into it: see `touchIo`) it waits until no file-system request is
 *    in flight and every promise continuation has run, so that callback's
 *    whole consequence happens before the next one starts. Other callbacks
 *    need no wait: their continuations are promise chains only, which run in
 *    a fixed order when the instant's callbacks are done;
 * 3. calls the `afterInstant` hook (the coalescing network flushes there), and
 *    only then lets virtual time move to the next instant.
 *
 * Virtual time never moves while anything of an instant is pending, so all
 * timing comes from the virtual clock and all chance from the seeded
 * generators: the same seed replays the same run.
 */
import type { Clock, TimerHandle } from '../../agent/types.ts'
import { VirtualClock, type ClockScope } from './clock.ts'

/** A timer handed out by a `SteppedClock`. */
export class SteppedTimer {
  cancelled = false
  inner: TimerHandle
  readonly fn: () => void
  readonly repeat: boolean
  readonly owner: SteppedClock

  constructor (fn: () => void, repeat: boolean, owner: SteppedClock) {
    this.fn = fn
    this.repeat = repeat
    this.owner = owner
  }
}

/** Names of `process.getActiveResourcesInfo()` entries that are file-system work in flight. */
const FS_RESOURCE = /^(FSReq|FileHandle|CloseReq|StatWatcher)/
/** Upper bound of event-loop turns spent waiting for file I/O after one callback. */
const MAX_IO_TURNS = 100_000

export interface StepperInit {
  /** Initial virtual time. @default the VirtualClock's default */
  startMs?: number
  /** Whether any agent may do file I/O now (turns on the per-callback I/O wait). */
  mayDoIo?: () => boolean
}

export class Stepper {
  readonly clock: VirtualClock
  private readonly queue: SteppedTimer[] = []
  private readonly mayDoIo: () => boolean
  private readonly afterInstantHooks: Array<() => void> = []
  /** Set when the running callback reached an agent that does file I/O. */
  private ioTouched = false
  /** Callbacks run so far (a cost figure for reports). */
  callbacks = 0
  /** Instants stepped through. */
  instants = 0

  constructor (init: StepperInit = {}) {
    this.clock = new VirtualClock({ startMs: init.startMs })
    this.mayDoIo = init.mayDoIo ?? (() => false)
  }

  now (): number {
    return this.clock.now()
  }

  /** A clock for the harness or the network hub (timers never disposed together). */
  rootClock (): SteppedClock {
    return new SteppedClock(this, this.clock)
  }

  /**
   * A clock for one agent: `dispose()` on it clears all the agent's timers (a
   * crash). `io`: the agent writes a data directory, so its callbacks are
   * followed by a wait for file I/O.
   */
  agentClock (io = false): SteppedClock {
    return new SteppedClock(this, this.clock.scope(), io)
  }

  /** Note that the running callback reached an agent that does file I/O (called by the network wrapper of such agents). */
  touchIo (): void {
    this.ioTouched = true
  }

  /** Run `hook` after every instant's callbacks (before time moves on). */
  afterInstant (hook: () => void): void {
    this.afterInstantHooks.push(hook)
  }

  /** @internal */
  enqueue (timer: SteppedTimer): void {
    this.queue.push(timer)
  }

  /**
   * Move virtual time to `targetMs`, running every timer due by then, one
   * instant at a time (see the header comment). `onInstant` runs after each
   * instant (and may stop the run early by returning `true`).
   */
  async runUntil (targetMs: number, onInstant?: (nowMs: number) => boolean | undefined | Promise<boolean | undefined>): Promise<void> {
    for (;;) {
      const due = this.clock.nextDueMs()
      if (due === undefined || due > targetMs) break
      this.clock.runUntilSync(due)
      this.instants++
      await this.drain()
      for (const hook of this.afterInstantHooks) hook()
      await this.settle()
      // A hook may have run agent code that enqueued nothing (timers are ≥ 1 ms
      // ahead), but its continuations may still do I/O: drained by settle().
      if (this.queue.length > 0) await this.drain()
      if (onInstant !== undefined && (await onInstant(this.clock.now())) === true) return
    }
    if (this.clock.now() < targetMs) this.clock.runUntilSync(targetMs)
  }

  /** Let every pending continuation (and file I/O, when agents may do any) finish. */
  async settle (): Promise<void> {
    await turn()
    if (!this.mayDoIo()) return
    for (let i = 0; i < MAX_IO_TURNS && ioInFlight(); i++) await turn()
  }

  private async drain (): Promise<void> {
    while (this.queue.length > 0) {
      const timer = this.queue.shift()!
      if (timer.cancelled) continue
      if (!timer.repeat) timer.owner.forget(timer)
      this.callbacks++
      this.ioTouched = timer.owner.io
      timer.fn()
      if (this.ioTouched) {
        this.ioTouched = false
        await this.settle()
      }
    }
    await this.settle()
  }
}

/**
 * The `Clock` that agents, the hub and the harness are given: timers go into
 * the virtual clock and run through the stepper's queue.
 */
export class SteppedClock implements Clock {
  /** Timers of this clock belong to an agent that does file I/O. */
  readonly io: boolean
  private readonly stepper: Stepper
  private readonly base: VirtualClock | ClockScope
  private readonly timers = new Set<SteppedTimer>()
  private disposed = false

  constructor (stepper: Stepper, base: VirtualClock | ClockScope, io = false) {
    this.stepper = stepper
    this.base = base
    this.io = io
  }

  now (): number {
    return this.base.now()
  }

  setTimeout (fn: () => void, ms: number): TimerHandle {
    return this.schedule(fn, ms, false)
  }

  setInterval (fn: () => void, ms: number): TimerHandle {
    return this.schedule(fn, ms, true)
  }

  clearTimeout (handle: TimerHandle): void {
    this.cancel(handle)
  }

  clearInterval (handle: TimerHandle): void {
    this.cancel(handle)
  }

  /** Clear every timer of this clock (a crashed agent); later timers never fire. */
  dispose (): void {
    this.disposed = true
    for (const timer of [...this.timers]) this.cancel(timer)
  }

  /** Timers of this clock still pending. */
  pending (): number {
    return this.timers.size
  }

  /** @internal */
  forget (timer: SteppedTimer): void {
    this.timers.delete(timer)
  }

  private schedule (fn: () => void, ms: number, repeat: boolean): SteppedTimer {
    const timer = new SteppedTimer(fn, repeat, this)
    if (this.disposed) {
      timer.cancelled = true
      return timer
    }
    const enqueue = (): void => { this.stepper.enqueue(timer) }
    timer.inner = repeat ? this.base.setInterval(enqueue, ms) : this.base.setTimeout(enqueue, ms)
    this.timers.add(timer)
    return timer
  }

  private cancel (handle: TimerHandle): void {
    if (!(handle instanceof SteppedTimer) || handle.owner !== this || handle.cancelled) return
    handle.cancelled = true
    this.timers.delete(handle)
    this.base.clearTimeout(handle.inner)
  }
}

async function turn (): Promise<void> {
  await new Promise<void>(resolve => { setImmediate(resolve) })
}

function ioInFlight (): boolean {
  return process.getActiveResourcesInfo().some(name => FS_RESOURCE.test(name))
}
