/**
 * Answers over HTTP: `POST /v1/fit` on one agent (a child process of its own,
 * no peers, 100 reservations already in its ledger) under autocannon —
 * connections 10, pipelining 1 — with the agent's CPU use over the run, and
 * optionally a CPU profile of the agent (`--profile`).
 */
import autocannon from 'autocannon'
import { join } from 'node:path'
import { httpJson } from '../support/http.ts'
import { cpuSeconds, rssBytes } from './netstat.ts'
import { readProfileDir, type HotFunction } from './profile.ts'
import { startMemgossip, type Registry } from './procs.ts'

export interface HttpFitResult {
  durationS: number
  connections: number
  pipelining: number
  requestsPerSec: number
  latencyP50Ms: number
  latencyP99Ms: number
  latencyMaxMs: number
  requests2xx: number
  errors: number
  non2xx: number
  /** Agent CPU seconds per wall second during the run (1.0 = one core saturated). */
  agentCpuShare: number
  agentRssBytes: number
  reservationsInLedger: number
  profile?: { totalMs: number, idleShare: number, functions: HotFunction[], byPackage: Array<{ pkg: string, share: number }> }
}

export async function runHttpFit (registry: Registry, options: { durationS: number, reservations: number, profile: boolean, log: (line: string) => void }): Promise<HttpFitResult> {
  const dir = await registry.tempDir('mgf-')
  const profileDir = join(dir, 'prof')
  const agent = await startMemgossip({ registry, index: 0, dataDir: join(dir, 'fit'), nodeArgs: options.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] })
  for (let i = 0; i < options.reservations; i++) {
    const res = await httpJson(`${agent.api}/v1/reservations`, { body: { id: `fit-load-${i}`, size: `${64 + (i % 7) * 32}MiB`, placement: i % 5 === 0 ? 'spread:1' : 'any' } })
    if (res.status !== 201) throw new Error(`could not prepare reservation ${i}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`)
  }
  const check = await httpJson(`${agent.api}/v1/fit`, { body: { size: '1GiB', placement: 'any' } })
  if (check.status !== 200) throw new Error(`POST /v1/fit answered ${check.status}`)
  options.log(`  autocannon: POST ${agent.api}/v1/fit, ${options.durationS} s, 10 connections, pipelining 1 (agent pid ${agent.pid}, ${options.reservations} reservations in its ledger)…`)
  const cpu0 = await cpuSeconds(agent.pid)
  const t0 = performance.now()
  const result = await autocannon({
    url: `${agent.api}/v1/fit`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ size: '1GiB', placement: 'any' }),
    connections: 10,
    pipelining: 1,
    duration: options.durationS
  })
  const wall = (performance.now() - t0) / 1000
  const cpu1 = await cpuSeconds(agent.pid)
  const rss = await rssBytes(agent.pid)
  await registry.stopChild(agent.child, 10_000)
  const elapsed = (result.finish.getTime() - result.start.getTime()) / 1000
  return {
    durationS: elapsed,
    connections: 10,
    pipelining: 1,
    requestsPerSec: result['2xx'] / elapsed,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    latencyMaxMs: result.latency.max,
    requests2xx: result['2xx'],
    errors: result.errors,
    non2xx: result.non2xx,
    agentCpuShare: (cpu1 - cpu0) / wall,
    agentRssBytes: rss,
    reservationsInLedger: options.reservations,
    profile: options.profile ? await readProfileDir(profileDir) : undefined
  }
}
