/**
 * The simulation harness's own benchmark entry points, when it exports them:
 * `benchVirtual({ nodes, seed })` (virtual-clock tier: convergence in virtual
 * time, and the memory it took) and `benchRealTier({ nodes })` (in-process
 * real tier: RSS per peer). They are looked up by name in the TypeScript files
 * under simulations/ (outside simulations/bench/), so the benchmark does not
 * depend on where that code lives; a file is imported only if its text
 * exports one of them.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { pathToFileURL } from 'node:url'
import { REPO_ROOT } from './procs.ts'

export type BenchFn = (options: { nodes: number, seed?: number }) => Promise<unknown>

export interface SimulationApi {
  file?: string
  benchVirtual?: BenchFn
  benchRealTier?: BenchFn
}

async function tsFiles (dir: string, depth = 0): Promise<string[]> {
  if (depth > 3) return []
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
  const out: string[] = []
  for (const e of entries) {
    const path = join(dir, e.name)
    if (e.isDirectory()) {
      if (e.name === 'bench' || e.name === 'results' || e.name === 'node_modules') continue
      out.push(...await tsFiles(path, depth + 1))
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

export async function findSimulationApi (): Promise<SimulationApi> {
  const root = join(REPO_ROOT, 'simulations')
  const files = await tsFiles(root)
  // Prefer the names the simulation engineer announced.
  files.sort((a, b) => rank(a) - rank(b))
  const api: SimulationApi = {}
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '')
    const exportsVirtual = /export\s+(async\s+)?function\s+benchVirtual\b|export\s+const\s+benchVirtual\b|export\s*\{[^}]*\bbenchVirtual\b/.test(text)
    const exportsReal = /export\s+(async\s+)?function\s+benchRealTier\b|export\s+const\s+benchRealTier\b|export\s*\{[^}]*\bbenchRealTier\b/.test(text)
    if (!exportsVirtual && !exportsReal) continue
    const mod = await import(pathToFileURL(file).href) as Record<string, unknown>
    if (api.benchVirtual === undefined && typeof mod.benchVirtual === 'function') { api.benchVirtual = mod.benchVirtual as BenchFn; api.file ??= relative(REPO_ROOT, file) }
    if (api.benchRealTier === undefined && typeof mod.benchRealTier === 'function') { api.benchRealTier = mod.benchRealTier as BenchFn; api.file ??= relative(REPO_ROOT, file) }
    if (api.benchVirtual !== undefined && api.benchRealTier !== undefined) break
  }
  return api
}

function rank (file: string): number {
  if (/bench-api(\/index)?\.ts$/.test(file)) return 0
  if (/bench/.test(file)) return 1
  return 2
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
