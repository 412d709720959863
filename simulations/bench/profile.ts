/**
 * Reading a V8 `.cpuprofile` (from `node --cpu-prof`): self time per
 * function, so a missed target comes with where the time went.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export interface HotFunction { name: string, where: string, selfMs: number, share: number }

export function hotFunctions (profile: CpuProfile, top = 15): { totalMs: number, idleShare: number, functions: HotFunction[], byPackage: Array<{ pkg: string, share: number }> } {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const self = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0))
  const totals = new Map<string, { name: string, where: string, us: number }>()
  const packages = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of self) {
    const node = byId.get(id)
    if (node === undefined) continue
    total += us
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)') idle += us
    const file = url.replace(/^file:\/\//, '').replace(/^.*\/work\/main\//, '')
    const where = file === '' ? '(native)' : `${file}:${lineNumber + 1}`
    const key = `${functionName}|${where}`
    const entry = totals.get(key) ?? { name: functionName === '' ? '(anonymous)' : functionName, where, us: 0 }
    entry.us += us
    totals.set(key, entry)
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1] ?? (file === '' ? functionName.startsWith('(') ? functionName : '(native)' : file.startsWith('node:') ? 'node core' : file.split('/')[0])
    packages.set(pkg, (packages.get(pkg) ?? 0) + us)
  }
  const functions = [...totals.values()].sort((a, b) => b.us - a.us).slice(0, top).map(f => ({ name: f.name, where: f.where, selfMs: f.us / 1000, share: total > 0 ? f.us / total : 0 }))
  const byPackage = [...packages].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([pkg, us]) => ({ pkg, share: total > 0 ? us / total : 0 }))
  return { totalMs: total / 1000, idleShare: total > 0 ? idle / total : 0, functions, byPackage }
}

/**
 * The busiest `.cpuprofile` in `dir`, summarised. `node --cpu-prof` writes one
 * per thread; under tsx one of them is the module loader's hooks thread, idle
 * once the agent has started, so the main thread is the one with the most
 * non-idle time.
 */
export async function readProfileDir (dir: string, top = 15): Promise<ReturnType<typeof hotFunctions> | undefined> {
  const files = (await readdir(dir).catch(() => [])).filter(f => f.endsWith('.cpuprofile'))
  let best: ReturnType<typeof hotFunctions> | undefined
  for (const file of files) {
    const summary = hotFunctions(JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile, top)
    if (best === undefined || summary.totalMs * (1 - summary.idleShare) > best.totalMs * (1 - best.idleShare)) best = summary
  }
  return best
}
