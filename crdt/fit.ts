/**
 * `fit()`: the dry-run answer to "does a deploy of this size fit?"
 * (docs/design.md "Interfaces"). It runs the same placement rules as
 * `resolve()` against the end of the log, and reads like a plan: the verdict,
 * the node it would land on, headroom before and after, a Kubernetes-style
 * histogram when it does not fit, the per-node numbers behind it, warnings near
 * the limits, and whether the picture it was judged on is final yet.
 */
import { headroom, nodeFitReason, place, shortId, type NodeFitReason, type PlacementCode, type PlacementNode } from './placement.ts'
import { formatPlacement, type NodeId, type Placement } from './schema.ts'
import type { Resolution, Verdict } from './resolve.ts'

type WaitingOn = NonNullable<Verdict['waitingOn']>
import { formatSize } from './size.ts'

/** Warn when a placement leaves a node above this share committed. */
export const DEFAULT_WARN_COMMITTED_RATIO = 0.85

export interface FitRequest {
  bytes: number
  placement: Placement
}

export interface FitOptions {
  /** Committed share above which a warning is given (default 0.85). */
  warnCommittedRatio?: number
  /** Nodes not heard from lately, by this peer's own timers: answers landing there carry a warning. */
  staleNodes?: ReadonlySet<NodeId>
}

export interface FitNodeRow {
  node: NodeId
  state: PlacementNode['state'] | 'undersized'
  allocatableBytes: number
  committedBytes: number
  headroomBytes: number
  fit: NodeFitReason
  /** The placement would land here. */
  chosen: boolean
  /** Headroom left after the placement, on chosen nodes. */
  headroomAfterBytes?: number
}

export interface FitAnswer {
  fits: boolean
  code: PlacementCode
  reason: string
  bytes: number
  placement: string
  nodes: NodeId[]
  /** `3/5 nodes fit: 2 InsufficientMemory` */
  histogram: string
  histogramCounts: Partial<Record<NodeFitReason, number>>
  perNode: FitNodeRow[]
  warnings: string[]
  /** True when every verdict the answer was judged on is final. */
  final: boolean
  /** When tentative: what the latest tentative verdict waits on (members' clocks, their confirmations, an open view change). */
  waitingOn?: WaitingOn
  /** The members the latest tentative verdict waits for. */
  waitsFor: NodeId[]
}

export function fit (resolution: Resolution, request: FitRequest, options: FitOptions = {}): FitAnswer {
  const warnRatio = options.warnCommittedRatio ?? DEFAULT_WARN_COMMITTED_RATIO
  const nodes = [...resolution.nodes.values()].filter(n => n.state !== 'unknown' || n.joinedHlc !== undefined)
  const result = place(nodes, id => resolution.nodes.get(id), request.bytes, request.placement)
  const chosen = new Set(result.ok ? result.nodes : [])
  // `all` charges every chosen node; every other placement one reservation's bytes per node.
  const perNode: FitNodeRow[] = nodes.map(n => {
    const row: FitNodeRow = {
      node: n.id,
      state: n.undersized ? 'undersized' : n.state,
      allocatableBytes: n.allocatableBytes,
      committedBytes: n.committedBytes,
      headroomBytes: headroom(n),
      fit: nodeFitReason(n, request.bytes),
      chosen: chosen.has(n.id)
    }
    if (row.chosen) row.headroomAfterBytes = row.headroomBytes - request.bytes
    return row
  })

  const counts: Partial<Record<NodeFitReason, number>> = {}
  for (const row of perNode) counts[row.fit] = (counts[row.fit] ?? 0) + 1
  const fitting = counts.Fits ?? 0
  const others = Object.entries(counts).filter(([k]) => k !== 'Fits').sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
  const histogram = `${fitting}/${perNode.length} nodes fit` + (others.length > 0 ? `: ${others.map(([k, v]) => `${v} ${k}`).join(', ')}` : '')

  const warnings: string[] = []
  for (const row of perNode) {
    if (!row.chosen || row.allocatableBytes === 0) continue
    const after = (row.committedBytes + request.bytes) / row.allocatableBytes
    if (after > warnRatio) {
      warnings.push(`node ${shortId(row.node)} would be ${(after * 100).toFixed(1)}% committed (${formatSize(row.committedBytes + request.bytes)} of ${formatSize(row.allocatableBytes)}), above ${Math.round(warnRatio * 100)}%`)
    }
    if (options.staleNodes?.has(row.node) === true) warnings.push(`node ${shortId(row.node)} has not been heard from lately`)
  }
  // The answer is final when nothing before it can still change: no verdict is
  // tentative. It waits on what the latest tentative verdict waits on.
  let latestPending: { hlc: string, waitingOn?: WaitingOn, waitsFor: NodeId[] } | undefined
  for (const v of resolution.verdicts.values()) {
    if (!v.final && v.status !== 'invalid' && v.hlc !== undefined && (latestPending === undefined || v.hlc > latestPending.hlc)) latestPending = { hlc: v.hlc, waitingOn: v.waitingOn, waitsFor: v.waitsFor }
  }
  const waitsFor = latestPending?.waitsFor ?? []
  const waitingOn = latestPending?.waitingOn
  // A peer that holds no completeness line at all (a joiner with nothing yet)
  // cannot vouch for anything. A quiet cluster announces no line (beacons go
  // out only for new entries), so a line held here is enough when nothing is
  // pending (the watermark, where there is one, is at most this line).
  const final = resolution.pending === 0 && resolution.seen !== undefined
  if (!final) {
    const on = waitingOn === 'view-change' ? 'an open view change' : waitingOn === 'confirmations' ? 'confirmations from a majority' : "members' clocks"
    warnings.push(`tentative: ${resolution.pending} verdict(s) not final yet; waiting on ${on}: ${waitsFor.length} member(s)${waitsFor.length > 0 ? ` (${waitsFor.slice(0, 3).map(shortId).join(', ')}${waitsFor.length > 3 ? ', …' : ''})` : ''}`)
  }

  return {
    fits: result.ok,
    code: result.ok ? 'Fits' : result.code,
    reason: result.ok ? result.reason.replace(/^admitted/, 'fits') : result.reason.replace(/^rejected/, 'does not fit'),
    bytes: request.bytes,
    placement: formatPlacement(request.placement),
    nodes: result.ok ? result.nodes : [],
    histogram,
    histogramCounts: counts,
    perNode,
    warnings,
    final,
    waitingOn: final ? undefined : waitingOn ?? 'clocks',
    waitsFor
  }
}
