/**
 * Where a reservation lands, given the committed memory of each node at one
 * point of the log. Shared by `resolve()` (at the reservation's point in the
 * log) and `fit()` (at the end of the log), so a dry run and the real decision
 * can never disagree about the rules.
 */
import { formatSize } from './size.ts'
import type { NodeId, Placement } from './schema.ts'

/** What placement needs to know of a node. */
export interface PlacementNode {
  id: NodeId
  /** `evicted` after an eviction record; `unknown` before its join and first capacity event. */
  state: 'active' | 'cordoned' | 'draining' | 'left' | 'evicted' | 'unknown'
  allocatableBytes: number
  committedBytes: number
  /** Below what the admitted `all` reservations need (docs/design.md "Undersized nodes"). */
  undersized: boolean
}

/** Why a node cannot take a reservation, as in a Kubernetes scheduling histogram. */
export type NodeFitReason = 'Fits' | 'InsufficientMemory' | 'Cordoned' | 'Draining' | 'Left' | 'Evicted' | 'Undersized' | 'NotJoined'

export type PlacementCode = 'Fits' | 'InsufficientMemory' | 'NoNodeFits' | 'UnknownNode' | 'NodeNotActive' | 'NodeUndersized'

export type PlacementResult =
  | { ok: true, nodes: NodeId[], reason: string }
  | { ok: false, code: Exclude<PlacementCode, 'Fits'>, reason: string, /** Nodes whose memory decided the refusal. */ blocking: NodeId[] }

export function headroom (node: PlacementNode): number {
  return node.allocatableBytes - node.committedBytes
}

/** True when the node may receive new placements at all. */
export function isSchedulable (node: PlacementNode): boolean {
  return node.state === 'active' && !node.undersized
}

export function nodeFitReason (node: PlacementNode, bytes: number): NodeFitReason {
  switch (node.state) {
    case 'cordoned': return 'Cordoned'
    case 'draining': return 'Draining'
    case 'left': return 'Left'
    case 'evicted': return 'Evicted'
    case 'unknown': return 'NotJoined'
    default:
      if (node.undersized) return 'Undersized'
      return headroom(node) >= bytes ? 'Fits' : 'InsufficientMemory'
  }
}

/** `12D3KooW…x7Ab`: long ids shortened for human reasons (JSON always carries the full id). */
export function shortId (id: string): string {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id
}

/** Best fit: the least headroom that still fits, ties by node id. */
function bestFit (a: PlacementNode, b: PlacementNode): number {
  const d = headroom(a) - headroom(b)
  if (d !== 0) return d
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/**
 * The schedulable nodes sorted by (headroom, id), kept up to date as the replay
 * charges and frees memory: best fit becomes a binary search instead of a scan
 * of every node for every reservation (resolve() at 1,000 nodes × 10,000
 * reservations went from ~240 ms to the figure in docs/benchmarks.md).
 */
export class HeadroomIndex {
  private readonly sorted: PlacementNode[] = []
  /** Headroom each node was filed under, parallel to `sorted` (no Map lookups in the search). */
  private readonly rooms: number[] = []
  private readonly filed = new Map<NodeId, number>()

  get size (): number {
    return this.sorted.length
  }

  at (i: number): PlacementNode {
    return this.sorted[i]
  }

  /** Re-file `node` after its headroom or schedulability changed. */
  update (node: PlacementNode): void {
    const old = this.filed.get(node.id)
    const room = isSchedulable(node) ? headroom(node) : undefined
    if (old !== undefined && old === room) return
    if (old !== undefined) {
      const at = this.position(old, node.id)
      this.sorted.splice(at, 1)
      this.rooms.splice(at, 1)
      this.filed.delete(node.id)
    }
    if (room === undefined) return
    const at = this.position(room, node.id)
    this.sorted.splice(at, 0, node)
    this.rooms.splice(at, 0, room)
    this.filed.set(node.id, room)
  }

  /** Index of the first node with headroom ≥ bytes (size when none). */
  lowerBound (bytes: number): number {
    return lowerBound(this.rooms, bytes)
  }

  private position (room: number, id: NodeId): number {
    const rooms = this.rooms
    const sorted = this.sorted
    let lo = 0
    let hi = rooms.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const r = rooms[mid]
      if (r < room || (r === room && sorted[mid].id < id)) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/**
 * Decide a placement against `nodes` (any iteration order: ties are broken by
 * id). `lookup` finds a pinned node. With an up-to-date {@link HeadroomIndex}
 * of the same nodes, `any`, `spread` and `all` use it instead of scanning.
 */
export function place (
  nodes: Iterable<PlacementNode>,
  lookup: (id: NodeId) => PlacementNode | undefined,
  bytes: number,
  placement: Placement,
  index?: HeadroomIndex
): PlacementResult {
  if (index !== undefined && placement.kind !== 'node') return placeIndexed(index, bytes, placement)
  const need = formatSize(bytes)
  switch (placement.kind) {
    case 'node': {
      const node = lookup(placement.node)
      if (node === undefined || node.state === 'unknown') {
        return { ok: false, code: 'UnknownNode', reason: `rejected: node ${shortId(placement.node)} has not joined the cluster with any capacity`, blocking: [] }
      }
      if (node.state !== 'active') {
        return { ok: false, code: 'NodeNotActive', reason: `rejected: node ${shortId(node.id)} is ${node.state} and takes no new reservations`, blocking: [node.id] }
      }
      if (node.undersized) {
        return { ok: false, code: 'NodeUndersized', reason: `rejected: node ${shortId(node.id)} is below what 'all'-placed deploys need and takes no new reservations`, blocking: [node.id] }
      }
      const room = headroom(node)
      if (room < bytes) {
        return {
          ok: false,
          code: 'InsufficientMemory',
          reason: `rejected: needs ${need} on node ${shortId(node.id)}, which has ${formatSize(room)} headroom (${formatSize(node.allocatableBytes)} allocatable, ${formatSize(node.committedBytes)} committed)`,
          blocking: [node.id]
        }
      }
      return { ok: true, nodes: [node.id], reason: `admitted on node ${shortId(node.id)}: ${need} of ${formatSize(room)} headroom` }
    }
    case 'any': {
      let best: PlacementNode | undefined
      let largest: PlacementNode | undefined
      for (const node of nodes) {
        if (!isSchedulable(node)) continue
        if (largest === undefined || headroom(node) > headroom(largest) || (headroom(node) === headroom(largest) && node.id < largest.id)) largest = node
        if (headroom(node) >= bytes && (best === undefined || bestFit(node, best) < 0)) best = node
      }
      if (best !== undefined) {
        return { ok: true, nodes: [best.id], reason: `admitted on node ${shortId(best.id)} (best fit): ${need} of ${formatSize(headroom(best))} headroom` }
      }
      if (largest === undefined) return { ok: false, code: 'NoNodeFits', reason: `rejected: needs ${need}, and no active node can take reservations`, blocking: [] }
      return {
        ok: false,
        code: 'NoNodeFits',
        reason: `rejected: needs ${need}, largest headroom is ${formatSize(headroom(largest))} on node ${shortId(largest.id)}`,
        blocking: [largest.id]
      }
    }
    case 'all': {
      const targets: PlacementNode[] = []
      const short: PlacementNode[] = []
      for (const node of nodes) {
        if (!isSchedulable(node)) continue
        targets.push(node)
        if (headroom(node) < bytes) short.push(node)
      }
      if (targets.length === 0) return { ok: false, code: 'NoNodeFits', reason: `rejected: 'all' placement needs ${need} on every node, and no active node can take reservations`, blocking: [] }
      if (short.length > 0) {
        short.sort(bestFit)
        const smallest = short[0]
        return {
          ok: false,
          code: 'InsufficientMemory',
          reason: `rejected: 'all' placement needs ${need} on every node; ${short.length} of ${targets.length} nodes have less (smallest: ${formatSize(headroom(smallest))} on ${shortId(smallest.id)})`,
          blocking: short.map(n => n.id)
        }
      }
      targets.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
      return { ok: true, nodes: targets.map(n => n.id), reason: `admitted on all ${targets.length} active nodes: ${need} each` }
    }
    case 'spread': {
      const fitting: PlacementNode[] = []
      let schedulable = 0
      for (const node of nodes) {
        if (!isSchedulable(node)) continue
        schedulable++
        if (headroom(node) >= bytes) fitting.push(node)
      }
      if (fitting.length < placement.count) {
        return {
          ok: false,
          code: 'NoNodeFits',
          reason: `rejected: 'spread:${placement.count}' needs ${placement.count} nodes with ${need} headroom each; only ${fitting.length} of ${schedulable} active nodes have that`,
          blocking: []
        }
      }
      fitting.sort(bestFit)
      const chosen = fitting.slice(0, placement.count).map(n => n.id).sort()
      return { ok: true, nodes: chosen, reason: `admitted on ${placement.count} nodes (best fit): ${need} each` }
    }
  }
}

/** The same decisions as {@link place}, read off a sorted index. */
function placeIndexed (index: HeadroomIndex, bytes: number, placement: Exclude<Placement, { kind: 'node' }>): PlacementResult {
  const need = formatSize(bytes)
  const n = index.size
  const first = index.lowerBound(bytes)
  switch (placement.kind) {
    case 'any': {
      if (first < n) {
        const best = index.at(first)
        return { ok: true, nodes: [best.id], reason: `admitted on node ${shortId(best.id)} (best fit): ${need} of ${formatSize(headroom(best))} headroom` }
      }
      if (n === 0) return { ok: false, code: 'NoNodeFits', reason: `rejected: needs ${need}, and no active node can take reservations`, blocking: [] }
      // Largest headroom, ties by smaller id: the first node of the last headroom run.
      const top = headroom(index.at(n - 1))
      let i = n - 1
      while (i > 0 && headroom(index.at(i - 1)) === top) i--
      const largest = index.at(i)
      return { ok: false, code: 'NoNodeFits', reason: `rejected: needs ${need}, largest headroom is ${formatSize(top)} on node ${shortId(largest.id)}`, blocking: [largest.id] }
    }
    case 'spread': {
      const fitting = n - first
      if (fitting < placement.count) {
        return {
          ok: false,
          code: 'NoNodeFits',
          reason: `rejected: 'spread:${placement.count}' needs ${placement.count} nodes with ${need} headroom each; only ${fitting} of ${n} active nodes have that`,
          blocking: []
        }
      }
      const chosen: NodeId[] = []
      for (let i = first; i < first + placement.count; i++) chosen.push(index.at(i).id)
      return { ok: true, nodes: chosen.sort(), reason: `admitted on ${placement.count} nodes (best fit): ${need} each` }
    }
    case 'all': {
      if (n === 0) return { ok: false, code: 'NoNodeFits', reason: `rejected: 'all' placement needs ${need} on every node, and no active node can take reservations`, blocking: [] }
      if (first > 0) {
        const smallest = index.at(0)
        const blocking: NodeId[] = []
        for (let i = 0; i < first; i++) blocking.push(index.at(i).id)
        return {
          ok: false,
          code: 'InsufficientMemory',
          reason: `rejected: 'all' placement needs ${need} on every node; ${first} of ${n} nodes have less (smallest: ${formatSize(headroom(smallest))} on ${shortId(smallest.id)})`,
          blocking
        }
      }
      const all: NodeId[] = []
      for (let i = 0; i < n; i++) all.push(index.at(i).id)
      return { ok: true, nodes: all.sort(), reason: `admitted on all ${n} active nodes: ${need} each` }
    }
  }
}

/** Index of the first element of `sorted` (ascending) that is ≥ `value` (its length when none). */
export function lowerBound<T extends number | string> (sorted: readonly T[], value: T): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (sorted[mid] < value) lo = mid + 1
    else hi = mid
  }
  return lo
}
