/**
 * Reservation → final on every peer (docs/simulations.md "What is measured"):
 * for every reservation the harness writes, the scenario time from its write
 * until each running peer first reports its verdict `final`.
 *
 * Peers are heard through the agent's own `event` stream (a `verdict` event
 * with `final: true`, emitted by the agent's refresh when a verdict changes),
 * not through the sampler, so the figure is exact to the agent's refresh and
 * not rounded up to the sample period. Agents are attached when first seen
 * (every sample attaches the ones started since); a reservation written
 * before its peer was attached is read back from that peer's resolution at
 * attach time, as final "by then".
 *
 * Writes made while a partition is in force cannot be final on the other
 * side before the heal; they are reported apart (`partitioned`), so the
 * figure for writes on a whole network is not mixed with heal times.
 */
import type { Agent, AgentEvent } from '../../agent/agent.ts'
import { quantile } from './recorder.ts'
import type { SimNode } from './types.ts'

/** Latency figures of one set of writes, in scenario ms. */
export interface FinalityFigures {
  /** Reservations in this set. */
  writes: number
  /** Per (reservation, running peer): write → that peer's first `final`. */
  peerP50Ms: number | null
  peerP99Ms: number | null
  peerMaxMs: number | null
  /** Per reservation: write → final on every peer running at the end (null unless every one of them got there). */
  allP50Ms: number | null
  allP99Ms: number | null
  allMaxMs: number | null
  /** (reservation, running peer) pairs never final on that peer by the end. */
  neverFinal: number
  /**
   * Pairs not seen final on a peer that started from a checkpoint after the
   * reservation ended (a joiner or a restarted peer after a move to a new
   * epoch): the peer never held the entry, and everything before the cut is
   * final (docs/design.md "Compaction: epochs"). Not in `neverFinal`.
   */
  compacted: number
  /** Histogram of the per-reservation "final everywhere" times: `[upper bound ms, count]`, bounds doubling from 25 ms. */
  histogram: Array<[number, number]>
}

export interface FinalityReport {
  /** Reservations written with no partition in force. */
  whole: FinalityFigures
  /** Reservations written while a partition was in force (final on the far side only after the heal). */
  partitioned: FinalityFigures
}

interface Write { id: string, atMs: number, partitioned: boolean }

export class FinalityTracker {
  private readonly now: () => number
  private readonly writes = new Map<string, Write>()
  /** id → node id → scenario ms of the first `final` there. */
  private readonly finalAt = new Map<string, Map<string, number>>()
  private readonly attached = new WeakSet<Agent>()

  constructor (now: () => number) {
    this.now = now
  }

  /** A reservation the harness wrote at scenario time `atMs`. */
  wrote (id: string, atMs: number, partitioned: boolean): void {
    if (!this.writes.has(id)) this.writes.set(id, { id, atMs, partitioned })
  }

  /** Listen to every running agent not yet listened to (call at every sample). */
  attach (nodes: SimNode[]): void {
    for (const node of nodes) {
      const agent = node.agent
      if (node.state !== 'running' || agent === undefined || this.attached.has(agent)) continue
      this.attached.add(agent)
      const nodeId = node.id
      // Anything final before this agent was heard counts as final now.
      for (const w of this.writes.values()) if (agent.verdict(w.id)?.final === true) this.record(w.id, nodeId)
      agent.on('event', (event: AgentEvent) => {
        if (event.type === 'verdict' && event.final) this.record(event.id, nodeId)
      })
    }
  }

  private record (id: string, nodeId: string): void {
    if (!this.writes.has(id)) return
    let byNode = this.finalAt.get(id)
    if (byNode === undefined) {
      byNode = new Map()
      this.finalAt.set(id, byNode)
    }
    if (!byNode.has(nodeId)) byNode.set(nodeId, this.now())
  }

  /**
   * The figures over the peers running at the end (`running`: their node
   * ids). `compacted(node, id)`: the peer is in a later epoch and does not
   * know the reservation — it ended before the checkpoint the peer holds.
   */
  report (running: string[], compacted: (node: string, id: string) => boolean = () => false): FinalityReport {
    const all = [...this.writes.values()]
    return {
      whole: figures(all.filter(w => !w.partitioned), running, this.finalAt, compacted),
      partitioned: figures(all.filter(w => w.partitioned), running, this.finalAt, compacted)
    }
  }
}

/** Upper bounds of the histogram's buckets (ms); the last bucket is everything above. */
export const HISTOGRAM_BOUNDS_MS = [25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]

/** Counts of `values` per bucket `[bound, count]`; the last entry (`Infinity` → `null` in JSON) holds the rest. */
export function histogram (values: number[], bounds = HISTOGRAM_BOUNDS_MS): Array<[number, number]> {
  const counts = new Array<number>(bounds.length + 1).fill(0)
  for (const v of values) {
    const i = bounds.findIndex(b => v <= b)
    counts[i === -1 ? bounds.length : i]++
  }
  return [...bounds, Infinity].map((b, i) => [b, counts[i]] as [number, number]).filter(([, c], i, a) => c > 0 || a.slice(i).some(([, later]) => later > 0))
}

function figures (writes: Write[], running: string[], finalAt: Map<string, Map<string, number>>, compacted: (node: string, id: string) => boolean): FinalityFigures {
  const perPeer: number[] = []
  const everywhere: number[] = []
  let never = 0
  let gone = 0
  for (const w of writes) {
    const byNode = finalAt.get(w.id)
    let last = 0
    let complete = true
    for (const node of running) {
      const at = byNode?.get(node)
      if (at === undefined) {
        if (compacted(node, w.id)) gone++
        else never++
        complete = false
        continue
      }
      const ms = Math.max(0, at - w.atMs)
      perPeer.push(ms)
      last = Math.max(last, ms)
    }
    if (complete && running.length > 0) everywhere.push(last)
  }
  perPeer.sort((a, b) => a - b)
  everywhere.sort((a, b) => a - b)
  const q = (xs: number[], p: number): number | null => { const v = quantile(xs, p); return v === undefined ? null : Math.round(v * 1000) / 1000 }
  return {
    writes: writes.length,
    peerP50Ms: q(perPeer, 0.5),
    peerP99Ms: q(perPeer, 0.99),
    peerMaxMs: q(perPeer, 1),
    allP50Ms: q(everywhere, 0.5),
    allP99Ms: q(everywhere, 0.99),
    allMaxMs: q(everywhere, 1),
    neverFinal: never,
    compacted: gone,
    histogram: histogram(everywhere)
  }
}
