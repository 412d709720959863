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
import type { NodeView, Resolution, Verdict } from './resolve.ts'

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
  /** `NeverFits`: larger than any member could ever hold as it stands (docs/design.md "Bounds and the queue"). */
  code: PlacementCode | 'NeverFits'
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
  const waitsFor = resolution.latestPending?.waitsFor ?? []
  const waitingOn = resolution.latestPending?.waitingOn
  // A peer that holds no completeness line at all (a joiner with nothing yet)
  // cannot vouch for anything. A quiet cluster announces no line (beacons go
  // out only for new entries), so a line held here is enough when nothing is
  // pending (the watermark, where there is one, is at most this line).
  const final = resolution.pending === 0 && resolution.seen !== undefined
  if (!final) {
    const on = waitingOn === 'view-change' ? 'an open view change' : waitingOn === 'confirmations' ? 'confirmations from a majority' : "members' clocks"
    warnings.push(`tentative: ${resolution.pending} verdict(s) not final yet; waiting on ${on}: ${waitsFor.length} member(s)${waitsFor.length > 0 ? ` (${waitsFor.slice(0, 3).map(shortId).join(', ')}${waitsFor.length > 3 ? ', …' : ''})` : ''}`)
  }

  const never = result.ok ? undefined : neverFits(nodes, request)
  return {
    fits: result.ok,
    code: result.ok ? 'Fits' : never !== undefined ? 'NeverFits' : result.code,
    reason: result.ok ? result.reason.replace(/^admitted/, 'fits') : never ?? result.reason.replace(/^rejected/, 'does not fit'),
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

/**
 * Why a request can never fit the members as they stand, or undefined: it is
 * larger than the allocatable memory of every member (`any`, `node`), of all
 * but fewer than k members (`spread:k`), or of the smallest member that takes
 * placements (`all`). Waiting cannot help it; only a member growing or a new
 * one joining can, and then it is asked again (docs/design.md "Bounds and the
 * queue"). No members at all: not judged here (nothing is known yet).
 */
export function neverFits (nodes: readonly NodeView[], request: FitRequest): string | undefined {
  const members = nodes.filter(n => n.member)
  if (members.length === 0) return undefined
  const need = formatSize(request.bytes)
  const largest = members.reduce((a, b) => (b.allocatableBytes > a.allocatableBytes || (b.allocatableBytes === a.allocatableBytes && b.id < a.id) ? b : a))
  switch (request.placement.kind) {
    case 'any':
      if (request.bytes <= largest.allocatableBytes) return undefined
      return `never fits: needs ${need}, more than any member's allocatable memory (largest: ${formatSize(largest.allocatableBytes)} on node ${shortId(largest.id)}, ${members.length} member(s))`
    case 'node': {
      const id = request.placement.node
      const node = members.find(n => n.id === id)
      if (node === undefined || request.bytes <= node.allocatableBytes) return undefined
      return `never fits: needs ${need} on node ${shortId(id)}, whose allocatable memory is ${formatSize(node.allocatableBytes)}`
    }
    case 'spread': {
      const big = members.filter(n => n.allocatableBytes >= request.bytes).length
      if (big >= request.placement.count) return undefined
      return `never fits: 'spread:${request.placement.count}' needs ${need} on ${request.placement.count} nodes; only ${big} of ${members.length} member(s) have that much allocatable memory`
    }
    case 'all': {
      const carrying = members.filter(n => n.state === 'active' && !n.undersized)
      if (carrying.length === 0) return undefined
      const smallest = carrying.reduce((a, b) => (b.allocatableBytes < a.allocatableBytes || (b.allocatableBytes === a.allocatableBytes && b.id < a.id) ? b : a))
      if (request.bytes <= smallest.allocatableBytes) return undefined
      return `never fits: 'all' placement needs ${need} on every node, and the smallest member has ${formatSize(smallest.allocatableBytes)} allocatable (node ${shortId(smallest.id)})`
    }
  }
}
