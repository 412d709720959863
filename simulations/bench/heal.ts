/**
 * Partition heal, with real agents in this process (real libp2p over TCP on
 * 127.0.0.1, real data dirs with fsync, default timers; only the memory probe
 * is fake): split the cluster in two halves with the connection gater
 * (`network.block` of the other half on every node), write conflicting
 * reservations on both sides (each pinned to the same node, together larger
 * than it), lift the blocks (`network.unblock` on every node, at once) and
 * time until every agent's verdict digest is identical, and until every agent
 * holds both reservations.
 */
import { join } from 'node:path'
import { startDaemon, type Daemon } from '../../agent/daemon.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import type { Registry } from './procs.ts'
import { sleep } from '../support/wait.ts'

const GiB = 1024 ** 3

export interface HealTrial {
  trial: number
  /** ms from the first unblock call until every agent's verdict digest is the same. */
  healMs: number
  /** ms until every agent holds both conflicting reservations. */
  bothSeenMs: number
  /** ms the unblock calls themselves took (dials of the other half). */
  unblockMs: number
  winner: string
  /** Verdicts after the heal: exactly one of the two admitted, on every agent. */
  consistent: boolean
  /** Per agent: ms until it held both reservations (sorted). */
  perNodeMs: number[]
}

export interface HealResult {
  nodes: number
  topology: string
  trials: HealTrial[]
  startMs: number
}

export async function startInProcessCluster (registry: Registry, n: number, cluster: string, log: (line: string) => void): Promise<Daemon[]> {
  const root = await registry.tempDir('mgh-')
  const start = async (i: number, bootstrap?: string[]): Promise<Daemon> => await startDaemon({
    dataDir: join(root, `h${i}`),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    api: '127.0.0.1:0',
    localCluster: true,
    cluster,
    bootstrap,
    probe: createFakeProbe({ totalBytes: 64 * GiB, availableBytes: 64 * GiB }),
    log: () => {}
  })
  const daemons: Daemon[] = []
  registry.onCleanup(async () => { await Promise.all(daemons.map(async d => { await d.stop().catch(() => {}) })) })
  daemons.push(await start(0))
  for (let i = 1; i < n; i += 6) {
    daemons.push(...await Promise.all(Array.from({ length: Math.min(6, n - i) }, async (_, k) => await start(i + k, daemons[0].info.multiaddrs))))
  }
  const t = performance.now()
  try {
    await waitFor(() => daemons.every(d => d.agent.state().joined && d.agent.resolution().members.length === n), 120_000, `${n} in-process agents to join`)
  } catch (error) {
    await Promise.all(daemons.map(async d => { await d.stop().catch(() => {}) }))
    throw error
  }
  log(`  ${n} in-process agents joined (${((performance.now() - t) / 1000).toFixed(1)} s after the last start)`)
  return daemons
}

async function waitFor (predicate: () => boolean, timeoutMs: number, what: string, stepMs = 10): Promise<number> {
  const t0 = performance.now()
  while (performance.now() - t0 < timeoutMs) {
    if (predicate()) return performance.now() - t0
    await sleep(stepMs)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

const converged = (ds: Daemon[]): boolean => new Set(ds.map(d => d.agent.resolution().digest)).size === 1

export async function runHeal (registry: Registry, options: { nodes: number, trials: number, log: (line: string) => void }): Promise<HealResult> {
  const { log } = options
  const t = performance.now()
  const daemons = await startInProcessCluster(registry, options.nodes, 'bench-heal', log)
  const startMs = performance.now() - t
  await waitFor(() => converged(daemons), 30_000, 'initial convergence')
  const half = Math.floor(daemons.length / 2)
  const sideA = daemons.slice(0, half)
  const sideB = daemons.slice(half)
  const idsA = sideA.map(d => d.agent.self)
  const idsB = sideB.map(d => d.agent.self)
  const trials: HealTrial[] = []
  for (let trial = 0; trial < options.trials; trial++) {
    // Cut: every node blocks the other half and hangs up on it.
    await Promise.all([...sideA.map(async d => { await d.network.block(idsB) }), ...sideB.map(async d => { await d.network.block(idsA) })])
    await waitFor(() => sideA.every(d => d.network.peers().every(p => !idsB.includes(p))) && sideB.every(d => d.network.peers().every(p => !idsA.includes(p))), 15_000, 'the partition to close connections')
    // Conflict: both sides pin 40 GiB on the same node (about 60.8 GiB allocatable): one must lose.
    const target = daemons[trial % daemons.length].agent.self
    const writerA = sideA[(trial + 1) % sideA.length]
    const writerB = sideB[(trial + 1) % sideB.length]
    const idA = `heal-${trial}-a`
    const idB = `heal-${trial}-b`
    const a = await writerA.agent.reserve({ id: idA, bytes: 40 * GiB, placement: { kind: 'node', node: target } })
    await sleep(2)
    const b = await writerB.agent.reserve({ id: idB, bytes: 40 * GiB, placement: { kind: 'node', node: target } })
    if (!a.written || !b.written) throw new Error(`heal trial ${trial}: a side refused its reservation (${a.answer.reason} / ${b.answer.reason})`)
    // Let each side settle what it can reach (the halves are cut off from each other).
    await sleep(1500)
    const t0 = performance.now()
    let bothSeenAt = Number.NaN
    let healedAt = Number.NaN
    const seenAt = new Map<number, number>()
    const watcher = (async () => {
      while (performance.now() - t0 < 30_000) {
        const now = performance.now()
        daemons.forEach((d, i) => { if (!seenAt.has(i) && d.agent.verdict(idA) !== undefined && d.agent.verdict(idB) !== undefined) seenAt.set(i, now - t0) })
        if (Number.isNaN(bothSeenAt) && seenAt.size === daemons.length) bothSeenAt = now
        if (!Number.isNaN(bothSeenAt) && converged(daemons)) { healedAt = now; return }
        await sleep(5)
      }
    })()
    await Promise.all(daemons.map(async d => { await d.network.unblock() }))
    const unblockMs = performance.now() - t0
    await watcher
    const va = daemons.map(d => d.agent.verdict(idA)?.status)
    const vb = daemons.map(d => d.agent.verdict(idB)?.status)
    const consistent = new Set(va).size === 1 && new Set(vb).size === 1 && [va[0], vb[0]].filter(s => s === 'admitted').length === 1
    const winner = va[0] === 'admitted' ? idA : vb[0] === 'admitted' ? idB : 'none'
    const perNodeMs = [...seenAt.values()].sort((x, y) => x - y)
    trials.push({ trial, healMs: healedAt - t0, bothSeenMs: bothSeenAt - t0, unblockMs, winner, consistent, perNodeMs })
    log(`  heal trial ${trial + 1}/${options.trials}: identical digests ${Number.isNaN(healedAt) ? 'NOT within 30 s' : `${(healedAt - t0).toFixed(0)} ms`} after links returned (both entries everywhere at ${(bothSeenAt - t0).toFixed(0)} ms; per agent ${perNodeMs.map(x => x.toFixed(0)).join(' ')}; unblock calls ${unblockMs.toFixed(0)} ms); winner ${winner}, ${consistent ? 'consistent' : 'INCONSISTENT'}`)
    // Release the winner so the next trial's target has room, and let everything settle.
    if (winner !== 'none') {
      const owner = winner === idA ? writerA : writerB
      await owner.agent.release(winner).catch(() => {})
    }
    await waitFor(() => converged(daemons), 30_000, 'convergence after the release').catch(() => {})
    await sleep(500)
  }
  await Promise.all(daemons.map(async d => { await d.stop().catch(() => {}) }))
  return { nodes: options.nodes, topology: 'every node bootstraps from node 0; halves = nodes [0, n/2) and [n/2, n)', trials, startMs }
}
