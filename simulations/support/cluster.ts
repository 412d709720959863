/**
 * Start real agents in this process: real libp2p over TCP on 127.0.0.1 (random
 * ports), real data dirs, real HTTP APIs; only the memory probe is fake.
 * Shared by the reliability scripts (soak) and the tests, which import it
 * from here: nothing outside test/ imports test/.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startDaemon, type Daemon, type DaemonOptions } from '../../agent/daemon.ts'
import { createFakeProbe, type FakeProbe } from '../../agent/probe.ts'

import { httpJson, type JsonAnswer, type JsonRequest } from './http.ts'

export { sleep, waitFor } from './wait.ts'

export const GiB = 1024 ** 3

export interface TestAgent { daemon: Daemon, probe: FakeProbe, dataDir: string, options: DaemonOptions }

export async function tempDir (prefix = 'memgossip-test-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix))
}

export async function startAgent (options: DaemonOptions & { totalBytes?: number } = {}): Promise<TestAgent> {
  const dataDir = options.dataDir ?? await tempDir()
  const probe = createFakeProbe({ totalBytes: options.totalBytes ?? 16 * GiB, availableBytes: options.totalBytes ?? 16 * GiB })
  const full: DaemonOptions = {
    listen: ['/ip4/127.0.0.1/tcp/0'],
    api: '127.0.0.1:0',
    localCluster: true,
    cluster: 'test',
    heartbeatIntervalMs: 1000,
    syncIntervalMs: 1000,
    log: () => {},
    ...options,
    dataDir,
    probe: options.probe ?? probe
  }
  const daemon = await startDaemon(full)
  return { daemon, probe, dataDir, options: full }
}

/** n agents; every later one bootstraps from the first. */
export async function startCluster (n: number, options: DaemonOptions & { totalBytes?: number } = {}): Promise<TestAgent[]> {
  const first = await startAgent(options)
  const rest = await Promise.all(Array.from({ length: n - 1 }, async () => await startAgent({ ...options, bootstrap: first.daemon.info.multiaddrs })))
  return [first, ...rest]
}

export async function stopAll (agents: TestAgent[], removeData = true): Promise<void> {
  await Promise.all(agents.map(async a => { await a.daemon.stop() }))
  if (removeData) await Promise.all(agents.map(async a => { await rm(a.dataDir, { recursive: true, force: true }) }))
}

/** A JSON request to one in-process agent's API (simulations/support/http.ts). */
export async function api (agent: TestAgent, path: string, init: JsonRequest = {}): Promise<JsonAnswer> {
  return await httpJson(`${agent.daemon.api.url}${path}`, init)
}

export const digests = (agents: TestAgent[]): string[] => agents.map(a => a.daemon.agent.resolution().digest)
export const converged = (agents: TestAgent[]): boolean => new Set(digests(agents)).size === 1
