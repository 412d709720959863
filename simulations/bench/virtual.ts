/**
 * The simulation harness's benchmark entry points, `benchVirtual({ nodes,
 * seed })` (virtual-clock tier: convergence in virtual time, and the memory it
 * took) and `benchRealTier({ nodes })` (in-process real tier: RSS per peer),
 * imported from simulations/bench/tiers.ts like any other module (they used to
 * be found by scanning source files with a regular expression, which neither
 * the compiler nor a reader could follow).
 */
import { benchRealTier, benchVirtual } from './tiers.ts'

export type BenchFn = (options: { nodes: number, seed?: number }) => Promise<unknown>

export interface SimulationApi {
  /** Where the functions live, for the report. */
  file?: string
  benchVirtual?: BenchFn
  benchRealTier?: BenchFn
}

export async function findSimulationApi (): Promise<SimulationApi> {
  return { file: 'simulations/bench/tiers.ts', benchVirtual, benchRealTier }
}

/** Numbers found in a result object, flattened to `a.b.c` paths (for a generic table). */
export function numericFields (value: unknown, prefix = '', out: Array<[string, number]> = [], depth = 0): Array<[string, number]> {
  if (depth > 4 || value === null || value === undefined) return out
  if (typeof value === 'number') { out.push([prefix, value]); return out }
  if (Array.isArray(value)) return out
  if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) numericFields(v, prefix === '' ? k : `${prefix}.${k}`, out, depth + 1)
  }
  return out
}

/** The first numeric field whose path matches every pattern. */
export function pick (value: unknown, ...patterns: RegExp[]): number | undefined {
  return numericFields(value).find(([path]) => patterns.every(p => p.test(path)))?.[1]
}
