/**
 * The scenario's events, one handler a kind (docs/simulations.md "Scenario
 * files"): how the event is checked before any agent starts (`plan`: its
 * selectors resolved at this node count, with the same random streams the
 * run uses, so the dry run picks the very nodes the run will) and how it is
 * applied to the running tier (`apply`). Adding an event kind is one entry
 * here plus its schema in simulations/scenario/schema.ts.
 */
import { formatSize, type Placement } from '../../crdt/index.ts'
import { initialMemory, planError, selectSome, streamFor, type NodeSpace } from '../scenario/plan.ts'
import { countOf, type EventKind, type PlacementSpec, type Scenario, type ScenarioEvent, type Selector } from '../scenario/schema.ts'
import { round, type RacePair } from './measure.ts'
import type { Marker, Recorder } from './recorder.ts'
import type { RunReport } from './report.ts'
import type { SimNode, Tier } from './types.ts'

type EventOf<K extends EventKind> = Extract<ScenarioEvent, { do: K }>

/** What the dry run of the timeline knows while it checks one event. */
interface PlanContext {
  scenario: Scenario
  /** The initial node count. */
  initial: number
  space: NodeSpace
  /** Nodes some event crashes: the virtual tier gives them a data dir to restart from. */
  crashable: Set<number>
  /** The node indices a selector of this event picks (`field` names it in errors). */
  some: (field: string, selector: Selector) => number[]
}

/** The state of a run that events read and write. */
export interface EventContext {
  scenario: Scenario
  tier: Tier
  recorder: Recorder
  seed: number
  initial: number
  writes: RunReport['writes']
  written: Array<{ id: string, creator: number }>
  races: RacePair[]
  /** Numbers race pairs across race events, so their ids never collide. */
  raceCounter: number
}

/** What one event's `apply` is given beside the run's context. */
interface ApplyTools {
  space: NodeSpace
  random: () => number
  /** The nodes a selector of this event picks. */
  select: (field: string, selector: Selector) => SimNode[]
  /** Marks the event in the recording (and the picture). */
  mark: (role: Marker['role'], label: string) => void
  /**
   * Many writes at once: concurrent on real agents (a real race), one after
   * the other on virtual ones (same virtual instant, reproducible order).
   */
  all: <T>(tasks: Array<() => Promise<T>>) => Promise<T[]>
}

interface EventHandler<K extends EventKind> {
  plan: (event: EventOf<K>, p: PlanContext) => void
  apply: (event: EventOf<K>, ctx: EventContext, on: ApplyTools) => Promise<void>
}

const HANDLERS: { [K in EventKind]: EventHandler<K> } = {
  reserve: {
    plan: (event, p) => {
      p.some('from', event.from)
      if (event.placement.kind === 'node' && event.placement.target !== 'self') p.some('placement', event.placement.target)
    },
    apply: async (event, ctx, on) => {
      const writers = writable(on.select('from', event.from))
      const count = countOf(event.count, ctx.initial)
      const tasks = Array.from({ length: count }, (_, k) => async () => {
        const writer = writers[k % writers.length]
        const id = event.id.includes('{i}') ? event.id.replaceAll('{i}', String(k)) : count > 1 ? `${event.id}-${k}` : event.id
        const placement = placementFor(event.placement, writer, ctx.tier, ctx.scenario, on.space, on.random, event.path)
        await reserve(ctx, writer, id, event.sizeBytes, placement, event.priority)
      })
      await on.all(tasks)
      on.mark('write', `reserve ${count} × ${formatSize(event.sizeBytes)} (${describePlacement(event.placement)})`)
    }
  },
  race: {
    plan: (event, p) => {
      p.some('sides[0]', event.sides[0])
      p.some('sides[1]', event.sides[1])
      if (event.target !== undefined) p.some('target', event.target)
    },
    apply: async (event, ctx, on) => {
      const ys = writable(on.select('sides[0]', event.sides[0]))
      const zs = writable(on.select('sides[1]', event.sides[1]))
      const targets = event.target !== undefined ? on.select('target', event.target) : ctx.tier.nodes.filter(x => x.state === 'running')
      const tasks: Array<() => Promise<void>> = []
      // Successive race events start on different targets, so one race does
      // not land on the memory another race left behind.
      const offset = ctx.raceCounter
      const pairs = countOf(event.pairs, ctx.initial)
      for (let p = 0; p < pairs; p++) {
        const yWriter = ys[p % ys.length]
        const zWriter = zs[p % zs.length]
        const target = targets[(offset + p) % targets.length]
        const view = yWriter.agent?.resolution().nodes.get(target.id)
        const headroom = view === undefined ? 0 : view.allocatableBytes - view.committedBytes
        const n = ctx.raceCounter++
        const pair = { y: `${event.id}-${n}-y`, z: `${event.id}-${n}-z`, yWritten: false, zWritten: false }
        ctx.races.push(pair)
        ctx.writes.races.pairs++
        if (headroom <= 0) continue
        const yBytes = Math.max(1, Math.floor(headroom * event.shares[0]))
        const zBytes = Math.max(1, Math.floor(headroom * event.shares[1]))
        const placement: Placement = { kind: 'node', node: target.id }
        tasks.push(async () => { pair.yWritten = await reserve(ctx, yWriter, pair.y, yBytes, placement, 0) })
        tasks.push(async () => { pair.zWritten = await reserve(ctx, zWriter, pair.z, zBytes, placement, 0) })
      }
      await on.all(tasks)
      on.mark('write', `race ${pairs} y/z pair${pairs === 1 ? '' : 's'}`)
    }
  },
  release: {
    plan: () => {},
    apply: async (event, ctx, on) => {
      const { tier } = ctx
      const matching = ctx.written.filter(w => (event.ids?.includes(w.id) ?? false) || (event.prefix !== undefined && w.id.startsWith(event.prefix)))
      const sorted = [...matching].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      const chosen = sorted.slice(0, Math.ceil(event.share * sorted.length))
      await on.all(chosen.map(w => async () => {
        ctx.writes.releases.attempted++
        const creator = tier.nodes[w.creator]
        const agent = creator.state === 'running' ? creator.agent : tier.nodes.find(x => x.state === 'running' && x.agent?.resolution().verdicts.has(w.id))?.agent
        if (agent === undefined) { fail(ctx, `release ${w.id}: no running peer holds it`); return }
        try {
          await agent.release(w.id)
          ctx.writes.releases.written++
        } catch (error) {
          fail(ctx, `release ${w.id}: ${(error as Error).message}`)
        }
      }))
      on.mark('write', `release ${chosen.length}`)
    }
  },
  memory: {
    plan: (event, p) => { p.some('nodes', event.nodes) },
    apply: async (event, ctx, on) => {
      const nodes = on.select('nodes', event.nodes)
      for (const node of nodes) {
        const sample = await node.probe.sample()
        const totalBytes = event.totalBytes ?? sample.totalBytes
        const availableBytes = Math.min(totalBytes, event.availableBytes ?? (event.totalBytes !== undefined ? totalBytes : sample.availableBytes))
        node.probe.set({ totalBytes, availableBytes })
      }
      on.mark('write', `memory of ${nodes.length} node${nodes.length === 1 ? '' : 's'}${event.totalBytes !== undefined ? ` → ${formatSize(event.totalBytes)} total` : ''}${event.availableBytes !== undefined ? ` (${formatSize(event.availableBytes)} available)` : ''}`)
    }
  },
  partition: {
    plan: (event, p) => { event.groups.forEach((g, i) => p.some(`groups[${i}]`, g)) },
    apply: async (event, ctx, on) => {
      const { tier } = ctx
      const at = tier.now()
      const groups = event.groups.map((g, i) => selectSome(ctx.scenario, g, on.space, on.random, `${event.path}.groups[${i}]`))
      // A node listed twice stays on the first side that lists it.
      const seen = new Set<number>()
      const sides = groups.map(g => g.filter(i => !seen.has(i) && (seen.add(i), true)))
      await tier.partition(sides)
      const rest = tier.nodes.length - seen.size
      const spans = sides.map((g, i) => ({ name: event.names[i], size: g.length }))
      if (rest > 0) spans.push({ name: 'rest', size: rest })
      ctx.recorder.startPartition(round(at), spans)
      on.mark('cut', `partition ${spans.map(s => `${s.name}:${s.size}`).join(' | ')}`)
    }
  },
  heal: {
    plan: () => {},
    apply: async (_event, ctx, on) => {
      const at = ctx.tier.now()
      await ctx.tier.heal()
      ctx.recorder.endPartition(round(at))
      on.mark('heal', 'heal')
    }
  },
  crash: {
    plan: (event, p) => { for (const i of p.some('nodes', event.nodes)) p.crashable.add(i) },
    apply: async (event, ctx, on) => {
      const nodes = on.select('nodes', event.nodes).filter(x => x.state === 'running')
      for (const node of nodes) await ctx.tier.crash(node)
      on.mark('fault', `crash ${nodes.length}`)
    }
  },
  restart: {
    plan: (event, p) => {
      const nodes = p.some('nodes', event.nodes)
      const never = nodes.filter(i => !p.crashable.has(i))
      if (never.length === nodes.length) throw planError(p.scenario, `${event.path}.nodes`, `restarts nodes that no earlier event crashes (${never.slice(0, 5).map(i => `#${i}`).join(', ')})`)
    },
    apply: async (event, ctx, on) => {
      const nodes = on.select('nodes', event.nodes).filter(x => x.state === 'crashed' && x.dataDir !== undefined)
      for (const node of nodes) await ctx.tier.restart(node)
      on.mark('write', `restart ${nodes.length}`)
    }
  },
  join: {
    plan: (event, p) => { p.space.total += joinCount(event, p.initial) },
    apply: async (event, ctx, on) => {
      const { tier, scenario } = ctx
      const count = joinCount(event, ctx.initial)
      const sizes = Array.from({ length: count }, (_, k) => event.memoryBytes ?? scenario.memoryBytes[(tier.nodes.length + k) % scenario.memoryBytes.length])
      await tier.addNodes(sizes, undefined, event.clockSkewMs)
      on.mark('write', `join ${count}${event.clockSkewMs !== undefined ? ` (clocks ${event.clockSkewMs > 0 ? '+' : ''}${event.clockSkewMs} ms off)` : ''}`)
    }
  },
  evict: {
    plan: (event, p) => {
      p.some('nodes', event.nodes)
      if (event.by !== undefined) p.some('by', event.by)
    },
    apply: async (event, ctx, on) => {
      const targets = on.select('nodes', event.nodes)
      const byPool = event.by !== undefined ? on.select('by', event.by) : ctx.tier.nodes
      for (const target of targets) {
        const by = byPool.find(x => x !== target && x.state === 'running' && x.agent?.resolution().members.includes(target.id))
        if (by === undefined) { fail(ctx, `evict ${target.id}: no running member sees it as a member`); continue }
        try {
          await by.agent!.evict(target.id)
        } catch (error) {
          fail(ctx, `evict ${target.id} by node ${by.index}: ${(error as Error).message}`)
        }
      }
      on.mark('write', `evict ${targets.length}`)
    }
  },
  drain: {
    plan: (event, p) => { p.some('nodes', event.nodes) },
    apply: async (event, ctx, on) => {
      const nodes = on.select('nodes', event.nodes)
      for (const node of nodes) {
        try {
          await node.agent?.drain()
        } catch (error) {
          fail(ctx, `drain node ${node.index}: ${(error as Error).message}`)
        }
      }
      on.mark('write', `drain ${nodes.length}`)
    }
  },
  leave: {
    plan: (event, p) => { p.some('nodes', event.nodes) },
    apply: async (event, ctx, on) => {
      const nodes = on.select('nodes', event.nodes).filter(x => x.state === 'running')
      for (const node of nodes) {
        try {
          await node.agent?.leave()
        } catch (error) {
          fail(ctx, `leave node ${node.index}: ${(error as Error).message}`)
        }
      }
      on.mark('write', `leave ${nodes.length}`)
    }
  }
}

/** The handler of `event`'s kind (one cast: TypeScript cannot pair a mapped type's entry with a union member). */
function handlerOf<K extends EventKind> (event: EventOf<K>): EventHandler<K> {
  return HANDLERS[event.do as K]
}

export interface TimelinePlan {
  /** Nodes some event crashes: the virtual tier gives them a data dir to restart from. */
  crashable: Set<number>
}

/**
 * Resolve every selector of the timeline at this node count, without running
 * anything, so an impossible scenario fails before agents start. Random
 * selectors use the same per-event streams as the run, so the dry run picks
 * the very nodes the run will.
 */
export function planTimeline (scenario: Scenario, n: number, seed: number): TimelinePlan {
  const space: NodeSpace = { initial: n, total: n }
  const crashable = new Set<number>()
  initialMemory(scenario, n, seed)
  for (const event of scenario.timeline) {
    const random = streamFor(seed, event.path)
    const some = (field: string, s: Selector): number[] => selectSome(scenario, s, space, random, `${event.path}.${field}`)
    handlerOf(event).plan(event, { scenario, initial: n, space, crashable, some })
  }
  return { crashable }
}

/** Applies one event of the timeline at the tier's current time. */
export async function applyEvent (ctx: EventContext, event: ScenarioEvent): Promise<void> {
  const { scenario, tier, recorder } = ctx
  const space: NodeSpace = { initial: ctx.initial, total: tier.nodes.length }
  const random = streamFor(ctx.seed, event.path)
  const at = tier.now()
  await handlerOf(event).apply(event, ctx, {
    space,
    random,
    select: (field, s) => selectSome(scenario, s, space, random, `${event.path}.${field}`).map(i => tier.nodes[i]),
    mark: (role, label) => { recorder.mark({ atMs: round(at), kind: event.do, role, label }) },
    all: async <T>(tasks: Array<() => Promise<T>>): Promise<T[]> => {
      if (tier.kind === 'real') return await Promise.all(tasks.map(async t => await t()))
      const out: T[] = []
      for (const t of tasks) out.push(await t())
      return out
    }
  })
}

function joinCount (event: EventOf<'join'>, initial: number): number {
  return event.count ?? Math.max(1, Math.round((event.share ?? 0) * initial))
}

/** The running nodes of a selection; all of them when none runs (the writes then fail and are counted). */
function writable (nodes: SimNode[]): SimNode[] {
  const running = nodes.filter(x => x.state === 'running')
  return running.length > 0 ? running : nodes
}

/** Write one reservation through `writer`'s agent; true when it was written. */
async function reserve (ctx: EventContext, writer: SimNode, id: string, bytes: number, placement: Placement, priority: number): Promise<boolean> {
  ctx.writes.reservations.attempted++
  const agent = writer.agent
  if (writer.state !== 'running' || agent === undefined) {
    fail(ctx, `reserve ${id}: node ${writer.index} is down`)
    return false
  }
  try {
    const result = await agent.reserve({ id, bytes, placement, priority })
    if (!result.written) {
      ctx.writes.reservations.refusedNoFit++
      return false
    }
    ctx.writes.reservations.written++
    ctx.written.push({ id, creator: writer.index })
    return true
  } catch (error) {
    fail(ctx, `reserve ${id} on node ${writer.index}: ${(error as Error).message}`)
    return false
  }
}

function fail (ctx: EventContext, message: string): void {
  if (message.startsWith('reserve')) ctx.writes.reservations.failed++
  else if (message.startsWith('release')) ctx.writes.releases.failed++
  if (ctx.writes.failures.length < 20) ctx.writes.failures.push(message)
}

function placementFor (spec: PlacementSpec, writer: SimNode, tier: Tier, scenario: Scenario, space: NodeSpace, random: () => number, path: string): Placement {
  switch (spec.kind) {
    case 'any': return { kind: 'any' }
    case 'all': return { kind: 'all' }
    case 'spread': return { kind: 'spread', count: spec.count }
    case 'node': {
      if (spec.target === 'self') return { kind: 'node', node: writer.id }
      const [first] = selectSome(scenario, spec.target, space, random, `${path}.placement`)
      return { kind: 'node', node: tier.nodes[first].id }
    }
  }
}

function describePlacement (spec: PlacementSpec): string {
  return spec.kind === 'spread' ? `spread:${spec.count}` : spec.kind === 'node' ? 'pinned' : spec.kind
}
