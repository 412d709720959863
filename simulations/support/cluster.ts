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

export async function waitFor (what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 20_000, stepMs = 50): Promise<number> {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (await predicate()) return Date.now() - start
    await new Promise(resolve => setTimeout(resolve, stepMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

export async function api (agent: TestAgent, path: string, init: { method?: string, body?: unknown, raw?: string, headers?: Record<string, string> } = {}): Promise<{ status: number, body: any }> {
  const response = await fetch(`${agent.daemon.api.url}${path}`, {
    method: init.method ?? (init.body !== undefined || init.raw !== undefined ? 'POST' : 'GET'),
    headers: { 'content-type': 'application/json', ...init.headers },
    body: init.raw ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined)
  })
  const text = await response.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  return { status: response.status, body }
}

export const digests = (agents: TestAgent[]): string[] => agents.map(a => a.daemon.agent.resolution().digest)
export const converged = (agents: TestAgent[]): boolean => new Set(digests(agents)).size === 1
