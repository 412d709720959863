/**
 * Measuring a run: agreement and finality across the peers, the traffic and
 * agent counters over the timeline, and the process's memory and CPU.
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import type { Resolution } from '../../crdt/index.ts'
import type { Recorder, Marker } from './recorder.ts'
import type { RunReport } from './report.ts'
import type { NodeTraffic, SimNode, Tier } from './types.ts'

/** A y/z pair of a race event and whether each side was written. */
export interface RacePair { y: string, z: string, yWritten: boolean, zWritten: boolean }

export function formed (nodes: SimNode[], n: number): boolean {
  return nodes.every(x => x.state !== 'running' || x.agent === undefined || x.agent.resolution().members.length >= n)
}

export function pendingVerdicts (nodes: SimNode[]): number {
  let pending = 0
  for (const x of nodes) if (x.state === 'running' && x.agent !== undefined) pending += x.agent.resolution().pending
  return pending
}

export function referenceOf (markers: Marker[]): { atMs: number, label: string } {
  const last = markers.filter(m => m.role === 'write' || m.role === 'heal').at(-1)
  return last === undefined ? { atMs: 0, label: 'start' } : { atMs: last.atMs, label: `${last.kind} at ${last.atMs} ms` }
}

export function episodesOf (recorder: Recorder): RunReport['convergence']['episodes'] {
  const relevant = recorder.markers.filter(m => m.role === 'write' || m.role === 'heal')
  const times = [...new Set(recorder.markers.map(m => m.atMs))].sort((a, b) => a - b)
  const out: RunReport['convergence']['episodes'] = []
  for (const at of [...new Set(relevant.map(m => m.atMs))]) {
    const next = times.find(t => t > at) ?? Infinity
    const agreed = recorder.agreedAfter(at, next)
    out.push({ atMs: at, event: relevant.filter(m => m.atMs === at).map(m => m.kind).join('+'), agreeAfterMs: agreed === undefined ? null : round(agreed - at) })
  }
  return out
}

export function scoreRaces (races: RacePair[], res: Resolution | undefined, writes: RunReport['writes']): void {
  for (const race of races) {
    if (!race.yWritten || !race.zWritten || res === undefined) continue
    writes.races.bothWritten++
    const y = res.verdicts.get(race.y)
    const z = res.verdicts.get(race.z)
    const admitted = [y, z].filter(v => v?.decision === 'admitted').length
    if (admitted === 2) writes.races.bothAdmitted++
    else if (admitted === 1) {
      writes.races.oneAdmitted++
      const loser = y?.decision === 'admitted' ? z : y
      if (loser?.decisionCode === 'LostConcurrentConflict') writes.races.loserLostConcurrentConflict++
    } else writes.races.bothRejected++
  }
}

export function trafficOf (tier: Tier, atOrigin: Map<string, NodeTraffic>, running: number): RunReport['traffic'] {
  const sum: Required<NodeTraffic> = { gossipIn: 0, gossipOut: 0, requestsIn: 0, requestsOut: 0, bytesIn: 0, bytesOut: 0, duplicatesIn: 0, dropped: 0, directIn: 0, directOut: 0 }
  for (const node of tier.nodes) {
    const now = tier.traffic(node)
    const before = atOrigin.get(node.id)
    for (const key of Object.keys(sum) as Array<keyof NodeTraffic>) sum[key] += (now[key] ?? 0) - (before?.[key] ?? 0)
  }
  const peers = Math.max(1, tier.nodes.length)
  const per = (v: number): number => Number((v / peers).toFixed(2))
  const updates = sum.gossipOut
  const duplicates = tier.kind === 'virtual' ? sum.duplicatesIn : Math.max(0, sum.gossipIn - updates * Math.max(0, running - 1))
  return {
    gossipInPerPeer: per(sum.gossipIn),
    gossipOutPerPeer: per(sum.gossipOut),
    requestsOutPerPeer: per(sum.requestsOut),
    bytesInPerPeer: Math.round(sum.bytesIn / peers),
    bytesOutPerPeer: Math.round(sum.bytesOut / peers),
    updatesPublished: updates,
    deliveriesPerUpdate: updates > 0 ? Number((sum.gossipIn / updates).toFixed(3)) : 0,
    duplicateDeliveriesPerUpdate: updates > 0 ? Number((duplicates / updates).toFixed(3)) : 0,
    droppedPerPeer: per(sum.dropped)
  }
}

export function agentTotals (nodes: SimNode[], running: number, logLines: number): RunReport['agents'] {
  const t = { updatesIn: 0, updatesOut: 0, syncRounds: 0, syncFailures: 0, droppedInvalid: 0, droppedOversized: 0 }
  for (const x of nodes) {
    const m = x.agent?.metrics
    if (m === undefined) continue
    t.updatesIn += m.updatesIn
    t.updatesOut += m.updatesOut
    t.syncRounds += m.syncRounds
    t.syncFailures += m.syncFailures
    t.droppedInvalid += m.droppedInvalid
    t.droppedOversized += m.droppedOversized
  }
  const per = (v: number): number => Number((v / Math.max(1, running)).toFixed(2))
  return {
    updatesInPerPeer: per(t.updatesIn),
    updatesOutPerPeer: per(t.updatesOut),
    syncRoundsPerPeer: per(t.syncRounds),
    syncFailures: t.syncFailures,
    droppedInvalid: t.droppedInvalid,
    droppedOversized: t.droppedOversized,
    logLines
  }
}

let collectGarbage: (() => void) | undefined | null

/** RSS and heap now; with `gc`, after a full collection (V8's gc exposed at run time, once). */
export function memory (gc: boolean): { rss: number, heapUsed: number } {
  if (gc) {
    if (collectGarbage === undefined) collectGarbage = exposeGc()
    collectGarbage?.()
  }
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed }
}

function exposeGc (): (() => void) | null {
  const global = globalThis as { gc?: () => void }
  if (typeof global.gc === 'function') return global.gc
  try {
    // The flag must be set before a context is created; a fresh context then has `gc`.
    v8.setFlagsFromString('--expose-gc')
    return vm.runInNewContext('gc') as () => void
  } catch {
    return null
  }
}

export function cpuMsSince (start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start)
  return Math.round((used.user + used.system) / 1000)
}

export function round (ms: number): number {
  return Math.round(ms * 1000) / 1000
}

export function nullable (v: number | undefined): number | null {
  return v === undefined ? null : round(v)
}
