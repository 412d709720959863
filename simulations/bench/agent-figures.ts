/**
 * The agent issue's figures, on five in-process agents over real libp2p/TCP:
 * time for a reservation made on one agent to appear on all five (median and
 * p99 of 20), protocol bytes per second per agent at rest, and this process's
 * RSS per agent. Run: `npx tsx simulations/bench/agent-figures.ts`.
 */
import '../../agent/shim.ts'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startDaemon, type Daemon } from '../../agent/daemon.ts'
import { createFakeProbe } from '../../agent/probe.ts'

const GiB = 1024 ** 3
const N = 5
const TRIALS = 20

async function main (): Promise<void> {
  const dirs: string[] = []
  const daemons: Daemon[] = []
  const start = async (bootstrap?: string[]): Promise<Daemon> => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-fig-'))
    dirs.push(dir)
    const d = await startDaemon({ dataDir: dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: '127.0.0.1:0', localCluster: true, cluster: 'figures', bootstrap, probe: createFakeProbe({ totalBytes: 256 * GiB, availableBytes: 256 * GiB }), log: () => {} })
    daemons.push(d)
    return d
  }
  const first = await start()
  for (let i = 1; i < N; i++) await start(first.info.multiaddrs)
  const until = async (pred: () => boolean, ms = 30_000): Promise<void> => {
    const t = Date.now()
    while (!pred()) {
      if (Date.now() - t > ms) throw new Error('timeout')
      await new Promise(r => setTimeout(r, 5))
    }
  }
  await until(() => daemons.every(d => d.agent.resolution().members.length === N))
  await new Promise(r => setTimeout(r, 3000))
  const times: number[] = []
  for (let trial = 0; trial < TRIALS; trial++) {
    const origin = daemons[trial % N]
    const id = `fig-${trial}`
    const arrived = new Map<number, number>()
    const listeners = daemons.map((d, i) => {
      const on = (e: { type: string, id?: string }): void => { if (e.type === 'verdict' && e.id === id && !arrived.has(i)) arrived.set(i, performance.now()) }
      d.agent.on('event', on)
      return on
    })
    const t0 = performance.now()
    const r = await fetch(`${origin.api.url}/v1/reservations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, size: '1GiB' }) })
    if (r.status !== 201) throw new Error(`reserve ${r.status}`)
    await until(() => arrived.size === N, 15_000)
    times.push(Math.max(...arrived.values()) - t0)
    daemons.forEach((d, i) => d.agent.off('event', listeners[i]))
    process.stderr.write(`\rtrial ${trial + 1}/${TRIALS}: ${times[times.length - 1].toFixed(1)} ms   `)
    await new Promise(r => setTimeout(r, 250))
  }
  process.stderr.write('\n')
  times.sort((a, b) => a - b)
  const before = daemons.map(d => ({ ...d.network.stats() }))
  const restMs = 30_000
  process.stderr.write(`measuring ${restMs / 1000} s at rest…\n`)
  await new Promise(r => setTimeout(r, restMs))
  const bytesPerSec = daemons.map((d, i) => {
    const s = d.network.stats()
    return ((s.bytesIn - before[i].bytesIn) + (s.bytesOut - before[i].bytesOut)) / (restMs / 1000)
  })
  const result = {
    agents: N,
    trials: TRIALS,
    appearOnAllMs: { p50: times[Math.floor(TRIALS / 2)], p99: times[TRIALS - 1], min: times[0] },
    restBytesPerSecondPerAgent: { median: [...bytesPerSec].sort((a, b) => a - b)[Math.floor(N / 2)], all: bytesPerSec.map(Math.round) },
    processRssMb: process.memoryUsage().rss / 1024 / 1024,
    note: 'bytes are libp2p payload bytes (gossip + sync requests/responses) counted by the network layer, not socket bytes; see docs/benchmarks.md for socket figures'
  }
  console.log(JSON.stringify(result, null, 2))
  await Promise.all(daemons.map(async d => { await d.stop() }))
  await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
}

await main()
