/**
 * Seeded randomness for simulations (docs/design.md "Simulation harness"):
 * every random choice of a virtual run — latencies, losses, topology — comes
 * from one of these, so the same seed gives the same run and a failing run is
 * reproduced from its seed.
 */

/**
 * A mulberry32 generator: a 32-bit state, full period 2^32, good enough
 * statistically for simulation choices and fast (a few integer ops per draw).
 * Not for cryptography.
 *
 * @param seed - any number; only its low 32 bits matter
 * @returns a function returning floats in [0, 1), like `Math.random`
 */
export function seededRandom (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `count` distinct entries of `pool` drawn with `random` (all of them when the pool is small). */
export function pickDistinct<T> (pool: T[], count: number, random: () => number): T[] {
  const a = [...pool]
  const n = Math.min(count, a.length)
  for (let k = 0; k < n; k++) {
    const j = k + Math.floor(random() * (a.length - k))
    ;[a[k], a[j]] = [a[j], a[k]]
  }
  return a.slice(0, n)
}
