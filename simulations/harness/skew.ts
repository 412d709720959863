/**
 * A node whose wall clock runs off the others' (scenario `join` with
 * `clock: "-5m"`): the same timers, a shifted `now()`. Timers run on the
 * tier's clock, so only the stamps the agent writes and compares move.
 */
import type { Clock } from '../../agent/types.ts'

export function skewedClock (base: Clock, skewMs: number): Clock {
  return {
    now: () => base.now() + skewMs,
    setTimeout: (fn, ms) => base.setTimeout(fn, ms),
    clearTimeout: (handle) => { base.clearTimeout(handle) },
    setInterval: (fn, ms) => base.setInterval(fn, ms),
    clearInterval: (handle) => { base.clearInterval(handle) }
  }
}
