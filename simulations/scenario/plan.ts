/**
 * Turning selectors into node indices for one run. Node indices: 0…N-1 are
 * the initial nodes, N… the ones that joined, in the order they joined.
 * Fractions and ranges refer to the initial nodes, so a scenario written for
 * 6 peers means the same at 1,000.
 */
import { seededRandom } from '../support/random.ts'
import { ScenarioError } from '../support/errors.ts'
import type { Scenario, Selector } from './schema.ts'

export interface NodeSpace {
  /** Initial node count N. */
  initial: number
  /** Nodes created so far (initial and joined). */
  total: number
}

/** A stable 32-bit hash of a string, to derive per-event random streams from the run's seed. */
export function hash32 (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** The random stream of one purpose (an event, the topology) of a seeded run. */
export function streamFor (seed: number, purpose: string): () => number {
  return seededRandom((seed ^ hash32(purpose)) >>> 0)
}

/**
 * The node indices a selector picks, sorted and distinct.
 *
 * @throws {ScenarioError} when a range or group refers to nodes that do not exist at this size
 */
export function selectNodes (scenario: Scenario, selector: Selector, space: NodeSpace, random: () => number, path: string): number[] {
  const set = new Set<number>()
  const add = (i: number): void => { if (i >= 0 && i < space.total) set.add(i) }
  const walk = (s: Selector): void => {
    switch (s.kind) {
      case 'all': for (let i = 0; i < space.total; i++) set.add(i); return
      case 'initial': for (let i = 0; i < space.initial; i++) set.add(i); return
      case 'joined': for (let i = space.initial; i < space.total; i++) set.add(i); return
      case 'group': walk(scenario.groups.get(s.name)!); return
      case 'index': {
        const i = s.index < 0 ? space.initial + s.index : s.index
        if (i < 0 || i >= space.total) throw planError(scenario, path, `node #${s.index} does not exist with ${space.initial} initial nodes${space.total > space.initial ? ` and ${space.total - space.initial} joined` : ''}`)
        add(i)
        return
      }
      case 'fraction': {
        const from = Math.round(s.from * space.initial)
        const to = Math.round(s.to * space.initial)
        for (let i = from; i < to; i++) add(i)
        return
      }
      case 'range': {
        const from = s.from < 0 ? space.initial + s.from : s.from
        const to = s.to < 0 ? space.initial + s.to : s.to
        for (let i = Math.max(0, from); i < Math.min(to, space.total); i++) add(i)
        return
      }
      case 'random': {
        const pool = selectNodes(scenario, s.of, space, random, path)
        const count = s.count ?? Math.max(1, Math.round((s.share ?? 1) * pool.length))
        // Partial Fisher–Yates: `count` draws from the seeded stream.
        const a = [...pool]
        for (let k = 0; k < Math.min(count, a.length); k++) {
          const j = k + Math.floor(random() * (a.length - k))
          ;[a[k], a[j]] = [a[j], a[k]]
          add(a[k])
        }
        return
      }
      case 'union': s.of.forEach(walk)
    }
  }
  walk(selector)
  return [...set].sort((a, b) => a - b)
}

/** Like `selectNodes`, but an empty selection is an error naming the field. */
export function selectSome (scenario: Scenario, selector: Selector, space: NodeSpace, random: () => number, path: string): number[] {
  const nodes = selectNodes(scenario, selector, space, random, path)
  if (nodes.length === 0) throw planError(scenario, path, `selects no node with ${space.initial} initial nodes; use more nodes (--nodes) or a wider selector`)
  return nodes
}

export function planError (scenario: Scenario, path: string, message: string): ScenarioError {
  const line = scenario.lineOf(path)
  return new ScenarioError(`${scenario.source}${line !== undefined ? `:${line}` : ''}: ${path}: ${message}`, { path, line })
}

/** Total memory of each initial node: the `memory` list cycled over indices, then the `memoryBy` overrides in order. */
export function initialMemory (scenario: Scenario, initial: number, seed: number): number[] {
  const bytes = Array.from({ length: initial }, (_, i) => scenario.memoryBytes[i % scenario.memoryBytes.length])
  const space = { initial, total: initial }
  scenario.memoryBy.forEach((entry, i) => {
    const path = `memoryBy[${i}].nodes`
    for (const index of selectNodes(scenario, entry.nodes, space, streamFor(seed, path), path)) bytes[index] = entry.totalBytes
  })
  return bytes
}
