/**
 * A virtual clock for the simulator's virtual tier
 * (docs/design.md "Simulation harness"): the agent's `Clock` (agent/types.ts)
 * over simulated time, so a thousand agents run in one process, seeded and
 * reproducible, and a minute of cluster time costs only the work done in it.
 *
 * Time only moves when the harness says so (`advance`, `runUntil`,
 * `runUntilIdle`). Timers sit in a min-heap ordered by due time, ties broken by
 * the order they were scheduled in (an interval counts as scheduled again each
 * time it fires), so the same calls always fire the same timers in the same
 * order. `now()` is moved to each timer's due time before it fires, and timers
 * scheduled while firing are honoured if they fall due within the window being
 * run.
 *
 * Delays follow Node's `setTimeout`: a delay below 1 ms, above 2^31 - 1 ms or
 * not a number becomes 1 ms. Besides matching production, this guarantees that
 * time moves forward between a timer and any timer it schedules, so a
 * zero-delay interval cannot spin forever at one instant.
 *
 * ## Promise continuations (the async `advance`, `runUntil`, `runUntilIdle`)
 *
 * A timer usually settles a promise (a network delivery, a request timeout),
 * and the code awaiting it runs as a microtask, perhaps calling the network
 * again and scheduling more timers. For that code to see the virtual time at
 * which its timer fired, the async runners yield to the real event loop after
 * every timer — `flushTurns` times `await new Promise(r => setImmediate(r))` —
 * before looking for the next timer, as Node itself drains microtasks between
 * two timer callbacks. One turn is enough for any chain of promises, however
 * long, that only waits on other promises or on virtual timers: Node drains the
 * microtask and `process.nextTick` queues to empty, including what they queue
 * while draining, before it runs an immediate.
 *
 * Limits, by design rather than accident:
 * - Work that waits on the *real* world — disk or socket I/O, real `setTimeout`,
 *   `AbortSignal.timeout`, a worker thread — is not waited for: it completes
 *   whenever real time allows, at whatever virtual time that happens to be, and
 *   breaks reproducibility. Inject virtual components (memory store, this
 *   clock) instead. Code that defers itself with a real `setImmediate` needs one
 *   extra turn per deferral: raise `flushTurns`.
 * - A yield costs about 1–2 µs of wall time per timer, which dominates for
 *   millions of timers; `advanceSync`/`runUntilSync` skip it for code that is
 *   purely callback-driven.
 * - `stepMs` bounds how far time jumps between two flushes when no timer is
 *   due, for code that polls `now()` from continuations; it does not make real
 *   I/O deterministic.
 * - The runners are not re-entrant: calling one from a timer callback throws
 *   `VirtualClockError`.
 * - An exception thrown by a timer callback propagates out of the runner (the
 *   timer is consumed, an interval stays scheduled); call the runner again to
 *   go on. A simulation usually wants to stop there and print its seed.
 */
import type { Clock, TimerHandle } from '../../agent/types.ts'

/** Where virtual time starts by default: 2023-11-14T22:13:20Z, a plausible wall-clock epoch. */
export const DEFAULT_START_MS = 1_700_000_000_000
/** Event-loop turns yielded after each timer by the async runners (see the header comment). */
export const DEFAULT_FLUSH_TURNS = 1
/** Node clamps delays above this (2^31 - 1 ms) to 1 ms; so does the virtual clock. */
export const MAX_TIMER_DELAY_MS = 2_147_483_647
/**
 * Cleared timers stay in the heap until they surface (lazy deletion, O(1)
 * clear). Once more than this many and more than half of the heap are dead, the
 * heap is rebuilt, so workloads that clear most timers (request timeouts) do
 * not grow it without bound.
 */
const COMPACT_MIN_DEAD = 1024

/**
 * The virtual clock was misused: a runner called re-entrantly (from a timer
 * callback) or given an invalid argument.
 */
export class VirtualClockError extends Error {
  static readonly NAME = 'VirtualClockError'
  override readonly name = VirtualClockError.NAME
}

/** Options of `new VirtualClock()`; every field is optional. */
export interface VirtualClockInit {
  /** Initial value of `now()`, in ms since the epoch. @default DEFAULT_START_MS */
  startMs?: number
  /** Event-loop turns the async runners yield after each timer. @default DEFAULT_FLUSH_TURNS */
  flushTurns?: number
}

/** Options of the async runners. */
export interface RunOptions {
  /**
   * Longest jump of virtual time without yielding to the event loop when no
   * timer is due in between. @default unbounded: jump straight to the next timer
   */
  stepMs?: number
  /** Event-loop turns yielded after each timer and step. @default the clock's `flushTurns` */
  flushTurns?: number
}

/**
 * The handle `setTimeout`/`setInterval` return. `ref`/`unref`/`hasRef` exist so
 * code written against Node's `Timeout` runs unchanged; they do nothing, since
 * virtual timers never keep the process alive.
 */
export class VirtualTimer {
  /** Virtual time at which the timer fires next. */
  dueMs: number
  /** Scheduling order, the tie-breaker between timers due at the same instant. */
  seq: number
  /** Period of an interval; `undefined` for a one-shot timer. */
  readonly intervalMs: number | undefined
  /** @internal */
  readonly fn: () => void
  /** @internal set when fired (one-shot) or cleared; the heap entry is then dead. */
  done = false
  /** @internal the scope that owns the timer, if any. */
  readonly scope: ClockScope | undefined

  constructor (fn: () => void, dueMs: number, seq: number, intervalMs: number | undefined, scope: ClockScope | undefined) {
    this.fn = fn
    this.dueMs = dueMs
    this.seq = seq
    this.intervalMs = intervalMs
    this.scope = scope
  }

  ref (): this { return this }
  unref (): this { return this }
  hasRef (): boolean { return false }
}

/**
 * A `Clock` whose `now()` and timers are virtual. Deterministic: it reads no
 * real clock and draws no randomness.
 */
export class VirtualClock implements Clock {
  private nowMs: number
  private readonly flushTurns: number
  private readonly heap: VirtualTimer[] = []
  private nextSeq = 0
  /** Timers scheduled and neither fired (one-shot) nor cleared. */
  private live = 0
  /** Dead entries still in the heap. */
  private dead = 0
  private running = false

  constructor (init: VirtualClockInit = {}) {
    this.nowMs = init.startMs ?? DEFAULT_START_MS
    this.flushTurns = init.flushTurns ?? DEFAULT_FLUSH_TURNS
    if (!Number.isFinite(this.nowMs)) throw new VirtualClockError(`startMs must be finite, got ${this.nowMs}`)
    checkTurns(this.flushTurns)
  }

  /** Virtual milliseconds since the epoch. */
  now (): number {
    return this.nowMs
  }

  setTimeout (fn: () => void, ms: number): TimerHandle {
    return this.schedule(fn, ms, false, undefined)
  }

  setInterval (fn: () => void, ms: number): TimerHandle {
    return this.schedule(fn, ms, true, undefined)
  }

  /** Cancel a timer; unknown handles and `undefined` are ignored, as in Node. */
  clearTimeout (handle: TimerHandle): void {
    this.cancel(handle)
  }

  /** Same as `clearTimeout` (Node allows either on either kind of timer). */
  clearInterval (handle: TimerHandle): void {
    this.cancel(handle)
  }

  /** Timers waiting to fire (an interval counts once until cleared). */
  pending (): number {
    return this.live
  }

  /** Due time of the next timer, or `undefined` when none is pending. */
  nextDueMs (): number | undefined {
    return this.peekLive()?.dueMs
  }

  /**
   * A view of this clock whose timers can all be cleared at once with
   * `dispose()` — what a simulated crash needs, so a dead agent's heartbeats
   * stop firing. After `dispose()` the scope schedules nothing.
   */
  scope (): ClockScope {
    return new ClockScope(this)
  }

  /**
   * Move time forward by `ms`, firing every timer due by then in order and
   * letting promise continuations run after each (see the header comment).
   * Ends with `now()` exactly `ms` later. Resolves to the number of timers fired.
   */
  async advance (ms: number, options: RunOptions = {}): Promise<number> {
    checkDuration(ms, 'advance')
    return await this.runUntil(this.nowMs + ms, options)
  }

  /** `advance` to the absolute virtual time `targetMs` (no-op if already past it). */
  async runUntil (targetMs: number, options: RunOptions = {}): Promise<number> {
    return await this.runAsync(targetMs, false, options)
  }

  /**
   * Fire timers until none is pending, or until `limitMs` of virtual time have
   * passed (intervals never run out). `now()` stays at the last timer fired
   * when the clock went idle, and is `limitMs` later otherwise — check
   * `pending()` to tell which. Resolves to the number of timers fired.
   */
  async runUntilIdle (limitMs: number, options: RunOptions = {}): Promise<number> {
    checkDuration(limitMs, 'runUntilIdle')
    return await this.runAsync(this.nowMs + limitMs, true, options)
  }

  /** `advance` without yielding to the event loop: for purely callback-driven code. */
  advanceSync (ms: number): number {
    checkDuration(ms, 'advanceSync')
    return this.runUntilSync(this.nowMs + ms)
  }

  /** `runUntil` without yielding to the event loop. */
  runUntilSync (targetMs: number): number {
    this.enter()
    try {
      let fired = 0
      for (let timer = this.peekLive(); timer != null && timer.dueMs <= targetMs; timer = this.peekLive()) {
        this.fire(timer)
        fired++
      }
      this.nowMs = Math.max(this.nowMs, targetMs)
      return fired
    } finally {
      this.running = false
    }
  }

  /** @internal used by `ClockScope` */
  schedule (fn: () => void, ms: number, repeat: boolean, scope: ClockScope | undefined): VirtualTimer {
    if (typeof fn !== 'function') throw new VirtualClockError('timer callback must be a function')
    const delayMs = clampDelay(ms)
    const timer = new VirtualTimer(fn, this.nowMs + delayMs, this.nextSeq++, repeat ? delayMs : undefined, scope)
    this.push(timer)
    this.live++
    return timer
  }

  /** @internal used by `ClockScope` */
  cancel (handle: TimerHandle): void {
    if (!(handle instanceof VirtualTimer) || handle.done) return
    handle.done = true
    handle.scope?.forget(handle)
    this.live--
    this.dead++
    if (this.dead > COMPACT_MIN_DEAD && this.dead * 2 > this.heap.length) this.compact()
  }

  private async runAsync (targetMs: number, untilIdle: boolean, options: RunOptions): Promise<number> {
    if (!Number.isFinite(targetMs)) throw new VirtualClockError(`target time must be finite, got ${targetMs}`)
    const turns = options.flushTurns ?? this.flushTurns
    checkTurns(turns)
    const stepMs = options.stepMs
    if (stepMs != null && !(stepMs > 0)) throw new VirtualClockError(`stepMs must be positive, got ${stepMs}`)
    this.enter()
    try {
      let fired = 0
      // Continuations the caller left queued run at the starting instant.
      await flush(turns)
      for (;;) {
        const timer = this.peekLive()
        if (timer == null && untilIdle) return fired
        const windowEnd = stepMs == null ? targetMs : Math.min(targetMs, this.nowMs + stepMs)
        if (timer != null && timer.dueMs <= windowEnd) {
          this.fire(timer)
          fired++
          await flush(turns)
          continue
        }
        if (this.nowMs >= targetMs) break
        this.nowMs = windowEnd
        await flush(turns)
      }
      this.nowMs = Math.max(this.nowMs, targetMs)
      return fired
    } finally {
      this.running = false
    }
  }

  private enter (): void {
    if (this.running) throw new VirtualClockError('the virtual clock is already running (called from a timer callback?)')
    this.running = true
  }

  /** Pop `timer` (the live top of the heap), move time to it and run it. */
  private fire (timer: VirtualTimer): void {
    this.pop()
    this.nowMs = Math.max(this.nowMs, timer.dueMs)
    if (timer.intervalMs == null) {
      timer.done = true
      timer.scope?.forget(timer)
      this.live--
    } else {
      // Rescheduled before running, so the callback may clear it, and a
      // callback that throws leaves the interval going, as Node does.
      timer.dueMs = this.nowMs + timer.intervalMs
      timer.seq = this.nextSeq++
      this.push(timer)
    }
    timer.fn()
  }

  /** Top of the heap after discarding dead entries. */
  private peekLive (): VirtualTimer | undefined {
    while (this.heap.length > 0 && this.heap[0].done) {
      this.pop()
      this.dead--
    }
    return this.heap[0]
  }

  private compact (): void {
    const alive = this.heap.filter(timer => !timer.done)
    this.heap.length = 0
    this.dead = 0
    for (const timer of alive) this.push(timer)
  }

  private push (timer: VirtualTimer): void {
    const heap = this.heap
    heap.push(timer)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i], heap[parent])) break
      swap(heap, i, parent)
      i = parent
    }
  }

  private pop (): VirtualTimer | undefined {
    const heap = this.heap
    const top = heap[0]
    const last = heap.pop()
    if (heap.length > 0 && last != null) {
      heap[0] = last
      let i = 0
      for (;;) {
        const left = 2 * i + 1
        const right = left + 1
        let smallest = i
        if (left < heap.length && before(heap[left], heap[smallest])) smallest = left
        if (right < heap.length && before(heap[right], heap[smallest])) smallest = right
        if (smallest === i) break
        swap(heap, i, smallest)
        i = smallest
      }
    }
    return top
  }
}

/**
 * A `Clock` that schedules on a `VirtualClock` and remembers its own timers,
 * so they can all be cleared together (one scope per simulated agent).
 */
export class ClockScope implements Clock {
  private readonly clock: VirtualClock
  private readonly timers = new Set<VirtualTimer>()
  private disposed = false

  constructor (clock: VirtualClock) {
    this.clock = clock
  }

  now (): number {
    return this.clock.now()
  }

  setTimeout (fn: () => void, ms: number): TimerHandle {
    return this.track(fn, ms, false)
  }

  setInterval (fn: () => void, ms: number): TimerHandle {
    return this.track(fn, ms, true)
  }

  clearTimeout (handle: TimerHandle): void {
    this.clock.cancel(handle)
  }

  clearInterval (handle: TimerHandle): void {
    this.clock.cancel(handle)
  }

  /** Timers of this scope waiting to fire. */
  pending (): number {
    return this.timers.size
  }

  /** Clear every timer of this scope; later calls to set* schedule nothing. */
  dispose (): void {
    this.disposed = true
    for (const timer of [...this.timers]) this.clock.cancel(timer)
  }

  /** @internal called by the clock when a timer of this scope fires (one-shot) or is cleared. */
  forget (timer: VirtualTimer): void {
    this.timers.delete(timer)
  }

  private track (fn: () => void, ms: number, repeat: boolean): VirtualTimer {
    const timer = this.clock.schedule(fn, ms, repeat, this)
    // A dead agent's code may still run from a settled promise; it must not
    // bring its timers back to life.
    if (this.disposed) this.clock.cancel(timer)
    else this.timers.add(timer)
    return timer
  }
}

/** Node's rule: not a number, below 1 or above 2^31 - 1 becomes 1 ms. */
function clampDelay (ms: number): number {
  const delayMs = Number(ms)
  return delayMs >= 1 && delayMs <= MAX_TIMER_DELAY_MS ? delayMs : 1
}

function before (a: VirtualTimer, b: VirtualTimer): boolean {
  return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.seq < b.seq)
}

function swap (heap: VirtualTimer[], i: number, j: number): void {
  const t = heap[i]
  heap[i] = heap[j]
  heap[j] = t
}

async function flush (turns: number): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>(resolve => { setImmediate(resolve) })
}

function checkDuration (ms: number, what: string): void {
  if (!(ms >= 0) || !Number.isFinite(ms)) throw new VirtualClockError(`${what} needs a finite duration >= 0, got ${ms}`)
}

function checkTurns (turns: number): void {
  if (!Number.isInteger(turns) || turns < 0) throw new VirtualClockError(`flushTurns must be an integer >= 0, got ${turns}`)
}
