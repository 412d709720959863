/**
 * Reading a V8 `.cpuprofile` (from `node --cpu-prof`): self time per
 * function, so a missed target comes with where the time went.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export interface HotFunction {
  name: string
  where: string
  selfMs: number
  share: number
  /** For a native function: the JavaScript functions that called it, by share of its time. */
  callers?: Array<{ name: string, where: string, share: number }>
}

export interface ProfileSummary {
  totalMs: number
  idleShare: number
  functions: HotFunction[]
  byPackage: Array<{ pkg: string, share: number }>
  /**
   * The project's own functions by total time (their callees included, each
   * sample counted once however often the function recurs in its stack):
   * which step of the protocol the busy time belongs to, when self time is
   * spread over libraries and native code.
   */
  ownTotals: Array<{ name: string, where: string, totalMs: number, share: number }>
}

/**
 * Self time per function. `lastMs` keeps only the samples of the profile's
 * last `lastMs` milliseconds (a window at the end of the process's life, such
 * as an idle period before it was stopped).
 */
export function hotFunctions (profile: CpuProfile, top = 15, lastMs?: number): ProfileSummary {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const parentOf = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id)
  const self = new Map<number, number>()
  let at = profile.startTime
  const from = lastMs === undefined ? -Infinity : profile.endTime - lastMs * 1000
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    if (at < from) continue
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  const totals = new Map<string, { name: string, where: string, us: number, callers: Map<string, number> }>()
  const describe = (node: ProfileNode): { name: string, where: string, file: string } => {
    const { functionName, url, lineNumber } = node.callFrame
    const file = url.replace(/^file:\/\//, '').replace(/^.*\/work\/main\//, '')
    return { name: functionName === '' ? '(anonymous)' : functionName, where: file === '' ? '(native)' : `${file}:${lineNumber + 1}`, file }
  }
  const packages = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of self) {
    const node = byId.get(id)
    if (node === undefined) continue
    total += us
    const { functionName, url } = node.callFrame
    if (functionName === '(idle)') idle += us
    const { name, where, file } = describe(node)
    const key = `${functionName}|${where}`
    const entry = totals.get(key) ?? { name, where, us: 0, callers: new Map() }
    entry.us += us
    if (url === '') {
      // The nearest JavaScript frame above a native one says who asked for it.
      let up = parentOf.get(id)
      while (up !== undefined && byId.get(up)?.callFrame.url === '') up = parentOf.get(up)
      const caller = up !== undefined ? byId.get(up) : undefined
      if (caller !== undefined) {
        const c = describe(caller)
        const ckey = `${c.name}  ${c.where}`
        entry.callers.set(ckey, (entry.callers.get(ckey) ?? 0) + us)
      }
    }
    totals.set(key, entry)
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1] ?? (file === '' ? functionName.startsWith('(') ? functionName : '(native)' : file.startsWith('node:') ? 'node core' : file.split('/')[0])
    packages.set(pkg, (packages.get(pkg) ?? 0) + us)
  }
  const functions = [...totals.values()].sort((a, b) => b.us - a.us).slice(0, top).map(f => ({
    name: f.name,
    where: f.where,
    selfMs: f.us / 1000,
    share: total > 0 ? f.us / total : 0,
    ...(f.callers.size > 0 ? { callers: [...f.callers].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, us]) => { const [name, where] = k.split('  '); return { name, where, share: us / f.us } }) } : {})
  }))
  const byPackage = [...packages].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([pkg, us]) => ({ pkg, share: total > 0 ? us / total : 0 }))
  const own = new Map<string, { name: string, where: string, us: number }>()
  for (const [id, us] of self) {
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const node = byId.get(at)
      if (node === undefined) break
      const { name, where, file } = describe(node)
      if (!/^(dist\/)?(agent|crdt|cli)\//.test(file)) continue
      const key = `${name}|${where}`
      if (seen.has(key)) continue
      seen.add(key)
      const entry = own.get(key) ?? { name, where, us: 0 }
      entry.us += us
      own.set(key, entry)
    }
  }
  const ownTotals = [...own.values()].sort((a, b) => b.us - a.us).slice(0, top).map(f => ({ name: f.name, where: f.where, totalMs: f.us / 1000, share: total > 0 ? f.us / total : 0 }))
  return { totalMs: total / 1000, idleShare: total > 0 ? idle / total : 0, functions, byPackage, ownTotals }
}

/**
 * The busiest `.cpuprofile` in `dir`, summarised. `node --cpu-prof` writes one
 * per thread; under tsx one of them is the module loader's hooks thread, idle
 * once the agent has started, so the main thread is the one with the most
 * non-idle time.
 */
export async function readProfileDir (dir: string, top = 15, lastMs?: number): Promise<ProfileSummary | undefined> {
  const files = (await readdir(dir).catch(() => [])).filter(f => f.endsWith('.cpuprofile'))
  let best: ProfileSummary | undefined
  for (const file of files) {
    const summary = hotFunctions(JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile, top, lastMs)
    if (best === undefined || summary.totalMs * (1 - summary.idleShare) > best.totalMs * (1 - best.idleShare)) best = summary
  }
  return best
}
