/**
 * The one launcher of `memgossip agent` as a child process
 * (simulations/support/agent-process.ts), on real processes: a stale
 * agent.json is never taken for a fresh start, and an agent that exits
 * before it is ready is reported with what it said.
 */
import { readFileSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { AgentStartError, agentCommand, REPO_ROOT, startAgentProcess, type AgentProcess } from '../../simulations/support/agent-process.ts'
import { tempDir } from '../../simulations/support/cluster.ts'
import { httpJson } from '../../simulations/support/http.ts'

const started: AgentProcess[] = []
const dirs: string[] = []

afterAll(async () => {
  await Promise.all(started.map(async a => { await a.stop('SIGKILL') }))
  await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
})

describe('agent launcher', () => {
  it('runs node itself with the test defaults', () => {
    const argv = agentCommand({ dataDir: '/d', bootstrap: ['/ip4/1.2.3.4/tcp/1'], extraArgs: ['--x'] })
    expect(argv.slice(0, 2)).toEqual(['--import', 'tsx'])
    expect(argv[2]).toMatch(/cli\/main\.ts$/)
    expect(argv.slice(3)).toEqual(['agent', '--data-dir', '/d', '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--local-cluster',
      '--cluster', 'test', '--fake-memory', '8GiB', '--heartbeat-interval', '1s', '--bootstrap', '/ip4/1.2.3.4/tcp/1', '--x'])
    const dist = agentCommand({ dataDir: '/d', from: 'dist', heartbeatInterval: null, nodeArgs: ['--cpu-prof'] })
    expect(dist.slice(0, 3)).toEqual(['--max-semi-space-size=2', '--v8-pool-size=1', '--cpu-prof'])
    expect(dist[3]).toMatch(/dist\/cli\/main\.js$/)
    expect(dist).not.toContain('--heartbeat-interval')
    // What npm start runs: the same node flags as package.json's start script, on the bundle.
    const bundle = agentCommand({ dataDir: '/d', from: 'bundle' })
    const start = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
    expect(start).toContain(`node ${bundle.slice(0, 2).join(' ')} dist/bundle/main.js agent`)
    expect(bundle[2]).toBe(join(REPO_ROOT, 'dist', 'bundle', 'main.js'))
  })

  it('a stale agent.json from a killed run is not taken for the new agent', async () => {
    const dataDir = await tempDir('memgossip-launch-')
    dirs.push(dataDir)
    await mkdir(dataDir, { recursive: true })
    await writeFile(join(dataDir, 'agent.json'), JSON.stringify({ peerId: 'stale', multiaddrs: [], api: 'http://127.0.0.1:9', dataDir, cluster: 'test', clusterKey: false, pid: process.pid }))
    const agent = await startAgentProcess({ dataDir })
    started.push(agent)
    expect(agent.info.pid).toBe(agent.child.pid)
    expect(agent.info.peerId).not.toBe('stale')
    expect((await httpJson(`${agent.api}/healthz`)).status).toBe(200)
    await agent.stop()
    expect(agent.gone).toBe(true)
    expect(await agent.exited).toEqual({ code: 0, signal: null })
  }, 60_000)

  it('an agent that exits before it is ready is reported with its last words', async () => {
    const dataDir = await tempDir('memgossip-launch-')
    dirs.push(dataDir)
    const error = await startAgentProcess({ dataDir, extraArgs: ['--no-such-flag'] }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AgentStartError)
    expect((error as Error).message).toContain(`agent in ${dataDir} exited (2) before it was ready`)
    expect((error as Error).message).toContain('--no-such-flag')
  }, 60_000)
})
