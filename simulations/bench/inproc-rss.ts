/**
 * RSS per peer of the in-process real tier, measured in a process of its own
 * so the benchmark's own memory does not count:
 *
 *   node --import tsx simulations/bench/inproc-rss.ts N [SETTLE_MS]
 *
 * Loads the agent code, samples RSS (the baseline: node + libp2p + yjs loaded,
 * no agent), starts N agents in this process (real libp2p over TCP on
 * 127.0.0.1, every one bootstrapping from the first, fake 64 GiB probes), waits
 * until all joined and SETTLE_MS more, samples RSS again, prints one JSON line
 * and exits. Used when the simulation harness does not export its own figure.
 */
import '../../agent/shim.ts'
import { Registry } from './procs.ts'
import { startInProcessCluster } from './heal.ts'
import { sleep } from './stats.ts'

async function main (): Promise<void> {
  const n = Number(process.argv[2] ?? 100)
  const settleMs = Number(process.argv[3] ?? 10_000)
  const registry = new Registry()
  const stop = (): void => { void registry.cleanup().then(() => process.exit(130)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    globalThis.gc?.()
    await sleep(200)
    const baseline = process.memoryUsage()
    const t0 = performance.now()
    const daemons = await startInProcessCluster(registry, n, 'bench-rss', line => process.stderr.write(line + '\n'))
    const startMs = performance.now() - t0
    await sleep(settleMs)
    globalThis.gc?.()
    await sleep(200)
    const after = process.memoryUsage()
    const peers = daemons.map(d => d.network.peers().length)
    process.stdout.write(JSON.stringify({
      nodes: n,
      settleMs,
      startMs,
      baselineRssBytes: baseline.rss,
      rssBytes: after.rss,
      rssPerPeerBytes: (after.rss - baseline.rss) / n,
      heapUsedPerPeerBytes: (after.heapUsed - baseline.heapUsed) / n,
      heapUsedBytes: after.heapUsed,
      connectionsPerPeer: peers.reduce((a, b) => a + b, 0) / n
    }) + '\n')
  } finally {
    await registry.cleanup()
  }
  process.exit(0)
}

void main()
