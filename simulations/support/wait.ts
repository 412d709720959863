/**
 * Waiting on real time, for the scripts and tests that drive real agents (the
 * virtual tier has its own clock: simulations/virtual/clock.ts).
 */

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/**
 * Polls `predicate` every `stepMs` until it is true; resolves with the
 * milliseconds it took, or throws naming `what` after `timeoutMs`.
 */
export async function waitFor (what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 20_000, stepMs = 50): Promise<number> {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (await predicate()) return Date.now() - start
    await sleep(stepMs)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}
