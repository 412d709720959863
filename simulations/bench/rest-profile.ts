/**
 * Where an agent's CPU goes at rest in a cluster of N agent processes: starts
 * N agents as the benchmark does (every one joining node 0), runs one of them
 * under `node --cpu-prof`, lets the cluster sit idle, and prints that agent's
 * CPU share over the idle window and its hottest functions and packages.
 * With `--changes R`, the window is not idle but has R reservations a second,
 * the k-th made on node k mod N (the benchmark's "1 change/s" window at R = 1).
 *
 *   npx tsx simulations/bench/rest-profile.ts [--nodes 25] [--seconds 60] [--node 5] [--changes 1] [--node-flags=--max-semi-space-size=8] [--profile-dir DIR]
 *
 * `--node-flags` adds Node.js/V8 flags to every agent, after the ones the
 * benchmark runs them with (a later V8 flag wins): to see what a setting such
 * as the young generation's size does to the CPU. `--profile-dir` keeps the
 * profile there (for line-level reading: its nodes carry `positionTicks`).
 *
 * The agents run from tsc's dist/ (not the bundle), so that the profile
 * names the sources' functions and files.
 *
 * Only the profile's samples from the idle window are counted (the agent is
 * stopped right after it); the CPU share printed is the same window's, from
 * /proc/<pid>/stat, and so is its split by thread over every agent (the event
 * loop against V8's and libuv's helper threads, which a CPU profile does not
 * see).
 */
import { join, resolve } from 'node:path'
import { numberFlag, parseArgs, UsageError } from '../../cli/args.ts'
import { MemgossipCluster } from './clusters.ts'
import { cpuSeconds, threadCpuSeconds } from './netstat.ts'
import { Registry } from './procs.ts'
import { readProfileDir } from './profile.ts'
import { httpJson } from '../support/http.ts'
import { sleep } from '../support/wait.ts'

const USAGE = 'usage: rest-profile.ts [--nodes N ≥ 2] [--seconds S > 0] [--node K < N] [--changes R ≥ 0] [--node-flags FLAGS] [--profile-dir DIR]'
let n: number, seconds: number, profiled: number, rate: number, nodeFlags: string[], keepDir: string | undefined
try {
  const { flags } = parseArgs(process.argv.slice(2), { nodes: { type: 'string' }, seconds: { type: 'string' }, node: { type: 'string' }, changes: { type: 'string' }, 'node-flags': { type: 'string' }, 'profile-dir': { type: 'string' } })
  rate = numberFlag(flags, 'changes', { min: 0 }) ?? 0
  keepDir = typeof flags['profile-dir'] === 'string' ? resolve(flags['profile-dir']) : undefined
  nodeFlags = typeof flags['node-flags'] === 'string' ? flags['node-flags'].split(/\s+/).filter(f => f !== '') : []
  const notFlag = nodeFlags.find(f => !f.startsWith('--'))
  if (notFlag !== undefined) throw new UsageError(`--node-flags: '${notFlag}' is not a flag`)
  n = numberFlag(flags, 'nodes', { integer: true, min: 2 }) ?? 25
  seconds = numberFlag(flags, 'seconds', { min: 1 }) ?? 60
  profiled = numberFlag(flags, 'node', { integer: true, min: 0, max: n - 1 }) ?? 5
  if (profiled >= n) throw new UsageError(`--node: ${profiled} is not below --nodes ${n}`)
} catch (error) {
  if (!(error instanceof UsageError)) throw error
  console.error(`rest-profile: ${error.message}\n${USAGE}`)
  process.exit(2)
}

const registry = new Registry()
const log = (line: string): void => { console.log(line) }
try {
  const profileDir = keepDir ?? join(await registry.tempDir('mgp-'), 'prof')
  const cluster = await MemgossipCluster.start(registry, n, log, { from: 'dist', nodeArgs: i => [...nodeFlags, ...(i === profiled ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])] })
  const pids = cluster.nodes.map(node => node.pid)
  const c0 = await Promise.all(pids.map(cpuSeconds))
  const t0 = await Promise.all(pids.map(threadCpuSeconds))
  const m0 = await cluster.metrics()
  log(rate === 0 ? `idle for ${seconds} s…` : `${rate} reservation(s) a second for ${seconds} s…`)
  const end = performance.now() + seconds * 1000
  const writes: Array<Promise<unknown>> = []
  for (let k = 0; rate > 0 && performance.now() < end; k++) {
    writes.push(httpJson(`${cluster.nodes[k % n].api}/v1/reservations`, { body: { id: `p${k}`, size: '1MiB', placement: 'any' } }).catch(() => undefined))
    await sleep(1000 / rate)
  }
  await sleep(Math.max(0, end - performance.now()))
  await Promise.all(writes)
  const c1 = await Promise.all(pids.map(cpuSeconds))
  const t1 = await Promise.all(pids.map(threadCpuSeconds))
  const shares = c1.map((c, i) => (c - c0[i]) / seconds)
  const sorted = [...shares].sort((a, b) => a - b)
  log(`CPU ${rate === 0 ? 'at rest' : `at ${rate} change(s)/s`}, N = ${n}: agent ${profiled} ${(shares[profiled] * 100).toFixed(2)}% of a core; median agent ${(sorted[Math.floor(n / 2)] * 100).toFixed(2)}%; all agents ${shares.reduce((a, b) => a + b, 0).toFixed(2)} cores`)
  // By thread, over every agent: the event loop against V8's and libuv's helpers.
  const main = t1.reduce((sum, t, i) => sum + t.main - t0[i].main, 0)
  const other = t1.reduce((sum, t, i) => sum + t.other - t0[i].other, 0)
  const system = t1.reduce((sum, t, i) => sum + t.system - t0[i].system, 0)
  const changes = rate * seconds
  log(`  by thread, all agents: main (event loop) ${(main / seconds).toFixed(3)} cores, other threads (GC, compiler, file I/O) ${(other / seconds).toFixed(3)} cores${changes > 0 ? `; per change per agent ${(main / changes / n * 1000).toFixed(1)} ms and ${(other / changes / n * 1000).toFixed(1)} ms (rest included: subtract a run with --changes 0)` : ''}; of all that, in the kernel (system calls) ${(system / seconds).toFixed(3)} cores`)
  // What the agents did, by counter: the messages and requests a change costs.
  const m1 = await cluster.metrics()
  const deltas = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    for (const [key, value] of m1[i]) if (key.includes('_total')) deltas.set(key, (deltas.get(key) ?? 0) + value - (m0[i].get(key) ?? 0))
  }
  const per = changes > 0 ? changes : seconds
  log(`  counters summed over all agents, per agent per ${changes > 0 ? 'change' : 'second'}:`)
  for (const [key, delta] of [...deltas].filter(([, d]) => d > 0).sort((a, b) => b[1] - a[1])) log(`    ${(delta / per / n).toFixed(2).padStart(9)}  ${key}`)
  await cluster.stop(registry)
  const summary = await readProfileDir(profileDir, 30, seconds * 1000)
  if (summary === undefined) throw new Error(`no profile written to ${profileDir}`)
  log(`profile of agent ${profiled} over the window (${(summary.totalMs / 1000).toFixed(1)} s sampled, ${(summary.idleShare * 100).toFixed(1)}% idle):`)
  for (const p of summary.byPackage) log(`  ${(p.share * 100).toFixed(1).padStart(5)}%  ${p.pkg}`)
  log('  the project\'s functions by total time (callees included):')
  for (const f of summary.ownTotals) log(`  ${(f.share * 100).toFixed(2).padStart(6)}%  ${f.name}  ${f.where}`)
  log('  functions by self time:')
  for (const f of summary.functions) {
    log(`  ${(f.share * 100).toFixed(2).padStart(6)}%  ${f.name}  ${f.where}`)
    for (const c of f.callers ?? []) log(`            ${(c.share * 100).toFixed(0).padStart(3)}% from ${c.name}  ${c.where}`)
  }
} finally {
  await registry.cleanup()
}
