/**
 * CPU time by thread from /proc (simulations/bench/netstat.ts), read on this
 * very process: work on the event loop shows on the main thread, and the
 * split adds up to the process's own total.
 */
import { describe, expect, it } from 'vitest'
import { cpuSeconds, threadCpuSeconds } from '../../simulations/bench/netstat.ts'

/** Busy on the main thread until the process has used `ms` more of CPU (not wall time: a loaded machine deschedules it). */
function spin (ms: number): void {
  const start = process.cpuUsage()
  while (true) {
    const used = process.cpuUsage(start)
    if ((used.user + used.system) / 1000 >= ms) return
  }
}

describe('threadCpuSeconds', () => {
  it('charges a busy event loop to the main thread, and main + other matches the process total', async () => {
    const before = await threadCpuSeconds(process.pid)
    spin(300)
    const after = await threadCpuSeconds(process.pid)
    // /proc counts in 10 ms ticks; of 300 ms of the process's CPU spent spinning, helper threads take a few at most.
    expect(after.main - before.main).toBeGreaterThanOrEqual(0.25)
    expect(after.other).toBeGreaterThanOrEqual(before.other)
    const total = await cpuSeconds(process.pid)
    const split = await threadCpuSeconds(process.pid)
    // The process total also counts threads that have ended; never less than the live threads' sum, by more than a tick or two.
    expect(total).toBeGreaterThanOrEqual(split.main + split.other - 0.05)
    expect(split.system).toBeGreaterThanOrEqual(0)
    expect(split.system).toBeLessThanOrEqual(split.main + split.other)
  })

  it('a process that is gone reads as no threads, not an error', async () => {
    expect(await threadCpuSeconds(2 ** 22 + 12345)).toEqual({ main: 0, other: 0, system: 0 })
    expect(await cpuSeconds(2 ** 22 + 12345)).toBeNaN()
  })
})
