/**
 * End to end: agents run as child processes exactly as an operator starts
 * them (`npx tsx cli/main.ts agent …`), real libp2p over TCP on 127.0.0.1,
 * real data dirs and HTTP; only the memory is fake (`--fake-memory`).
 *
 * The kill -9 test holds docs/design.md "Durability" to its word: a reservation
 * acknowledged with a 201 was fsynced first, so SIGKILL at any moment of a
 * burst loses none of them, the restarted agent keeps its peer id, and its
 * peers end up with the same verdicts. The kill moment is drawn from a seeded
 * generator; a failure prints the seed (replay: MEMGOSSIP_E2E_SEED=<seed>).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AgentInfo } from '../../agent/daemon.ts'
import { tempDir } from '../../simulations/support/cluster.ts'

const REPO = fileURLToPath(new URL('../..', import.meta.url))
const SEED = Number(process.env.MEMGOSSIP_E2E_SEED ?? Date.now() % 2 ** 31)
const KILLS = Number(process.env.MEMGOSSIP_E2E_KILLS ?? 3)
const BURST = 200
const CONCURRENCY = 8
console.log(`e2e seed ${SEED} (replay: MEMGOSSIP_E2E_SEED=${SEED}), ${KILLS} kills of ${BURST}-reservation bursts`)

/** mulberry32: small, seeded, good enough to pick kill moments. */
function random (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface AgentProcess {
  child: ChildProcess
  dataDir: string
  info: AgentInfo
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

const processes: AgentProcess[] = []
const dataDirs: string[] = []

/** The flags every agent here runs with; `bootstrap` joins through the first agent. */
function agentArgs (dataDir: string, bootstrap?: string): string[] {
  return [
    'tsx', 'cli/main.ts', 'agent',
    '--data-dir', dataDir,
    '--listen', '/ip4/127.0.0.1/tcp/0',
    '--api', '127.0.0.1:0',
    '--local-cluster',
    '--cluster', 'e2e',
    '--fake-memory', '64GiB',
    '--heartbeat-interval', '1s',
    ...(bootstrap !== undefined ? ['--bootstrap', bootstrap] : [])
  ]
}

/** Start `memgossip agent` as a child process and wait for its `agent.json`. */
async function startProcess (dataDir: string, bootstrap?: string): Promise<AgentProcess> {
  // A stale agent.json (from a killed run) would point at a dead agent.
  await rm(`${dataDir}/agent.json`, { force: true })
  // Its own process group, so cleanup can reach npx, tsx and node at once.
  const child = spawn('npx', agentArgs(dataDir, bootstrap), { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdout!.resume()
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.on('exit', (code, signal) => { resolve({ code, signal }) })
  })
  let gone: { code: number | null } | undefined
  void exited.then(e => { gone = e })
  const deadline = Date.now() + 30_000
  while (!existsSync(`${dataDir}/agent.json`)) {
    if (gone !== undefined) throw new Error(`agent exited with ${String(gone.code)} before starting:\n${stderr}`)
    if (Date.now() > deadline) throw new Error(`agent did not write agent.json within 30 s:\n${stderr}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const info = JSON.parse(await readFile(`${dataDir}/agent.json`, 'utf8')) as AgentInfo
  const proc: AgentProcess = { child, dataDir, info, stderr: () => stderr, exited }
  processes.push(proc)
  return proc
}

/** SIGKILL a whole process group we started; quiet when it is already gone. */
function killGroup (proc: AgentProcess): void {
  try { process.kill(-proc.child.pid!, 'SIGKILL') } catch {}
}

async function get (proc: AgentProcess, path: string): Promise<{ status: number, body: any }> {
  const response = await fetch(`${proc.info.api}${path}`, { signal: AbortSignal.timeout(10_000) })
  return { status: response.status, body: await response.json() }
}

async function post (proc: AgentProcess, path: string, body: unknown): Promise<{ status: number, body: any }> {
  const response = await fetch(`${proc.info.api}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000)
  })
  return { status: response.status, body: await response.json() }
}

async function waitFor (what: string, predicate: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    try {
      if (await predicate()) return Date.now() - start
    } catch {}
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (seed ${SEED})`)
}

/** All agents report 3 members and one verdict digest. */
async function converged (agents: AgentProcess[], members = agents.length): Promise<boolean> {
  const states = await Promise.all(agents.map(async a => (await get(a, '/v1/state')).body))
  return states.every(s => s.members.length === members) && new Set(states.map(s => s.verdictsDigest)).size === 1
}

/** Map with a bounded number of requests in flight. */
async function pool<T> (items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++])
  }))
}

/** Every id answers 200 admitted on `proc`; returns the ids that do not. */
async function missing (proc: AgentProcess, ids: string[]): Promise<string[]> {
  const lost: string[] = []
  await pool(ids, 16, async id => {
    const r = await get(proc, `/v1/reservations/${encodeURIComponent(id)}`)
    if (r.status !== 200 || r.body.status !== 'admitted') lost.push(`${id} (${r.status} ${String(r.body.status ?? r.body.error)})`)
  })
  return lost
}

let agents: AgentProcess[] = []

beforeAll(async () => {
  for (let i = 0; i < 3; i++) dataDirs.push(await tempDir('memgossip-e2e-'))
  const first = await startProcess(dataDirs[0])
  const boot = first.info.multiaddrs[0]
  agents = [first, ...await Promise.all([startProcess(dataDirs[1], boot), startProcess(dataDirs[2], boot)])]
}, 60_000)

afterAll(async () => {
  for (const p of processes) killGroup(p)
  await Promise.all(processes.map(async p => await p.exited))
  await Promise.all(dataDirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
})

describe('three agents as child processes', () => {
  it('converge: three members and one verdict digest on every agent', async () => {
    const ms = await waitFor('three members and one digest', async () => await converged(agents))
    console.log(`three agents converged ${ms} ms after start`)
    const peerIds = agents.map(a => a.info.peerId)
    // A member's figures travel in its heartbeat, which may reach a peer just after its admission does.
    await waitFor('every node\'s figures on every agent', async () => {
      const bodies = await Promise.all(agents.map(async a => (await get(a, '/v1/nodes')).body))
      return bodies.every(b => b.nodes.every((n: any) => n.totalBytes > 0))
    }, 10_000)
    for (const a of agents) {
      const { body } = await get(a, '/v1/nodes')
      expect(body.nodes.map((n: any) => n.id).sort()).toEqual([...peerIds].sort())
      for (const n of body.nodes) expect(n).toMatchObject({ totalBytes: 64 * 1024 ** 3, state: 'active' })
    }
  })

  it('a second agent on a running agent\'s data dir exits 2 and leaves the first untouched', async () => {
    const child = spawn('npx', agentArgs(agents[2].dataDir, agents[0].info.multiaddrs[0]), { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const code = await new Promise<number | null>(resolve => child.on('exit', code => { resolve(code) }))
    expect(code, stderr).toBe(2)
    expect(stderr).toMatch(/in use by another running agent/)
    expect(JSON.parse(await readFile(`${agents[2].dataDir}/agent.json`, 'utf8')).pid).toBe(agents[2].info.pid)
    expect((await get(agents[2], '/healthz')).status).toBe(200)
  })

  it(`kill -9 during a burst loses no acknowledged reservation (${KILLS} kills)`, async () => {
    const rand = random(SEED)
    const boot = agents[0].info.multiaddrs[0]
    const allAcked: string[] = []
    const figures: string[] = []
    for (let round = 0; round < KILLS; round++) {
      let victim = agents[1]
      const peerId = victim.info.peerId
      // Kill once this many 201s came back: always inside the burst.
      const killAfter = 10 + Math.floor(rand() * (BURST - 60))
      const acked: string[] = []
      const statuses = new Map<number | string, number>()
      let killed = false
      let killScheduled = false
      let sentBeforeKill = 0
      const ids = Array.from({ length: BURST }, (_, i) => `r${round}-${i}`)
      await pool(ids, CONCURRENCY, async id => {
        if (killed) return
        sentBeforeKill++
        try {
          const r = await post(victim, '/v1/reservations', { id, size: '64MiB' })
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
          if (r.status === 201) {
            expect(r.body.verdict).toMatchObject({ id, status: 'admitted' })
            acked.push(id)
          }
        } catch {
          statuses.set('error', (statuses.get('error') ?? 0) + 1)
        }
        if (!killScheduled && acked.length >= killAfter) {
          killScheduled = true
          // A few ms later, so the kill lands while other requests are mid-write, not on an answer.
          const pid = victim.info.pid
          setTimeout(() => { killed = true; process.kill(pid, 'SIGKILL') }, Math.floor(rand() * 10))
        }
      })
      await waitFor('the kill', async () => killed, 5_000)
      const exit = await victim.exited
      killGroup(victim)
      // Before the kill every answer was a 201: nothing refused, nothing lost in flight.
      expect([...statuses.keys()].filter(s => s !== 201 && s !== 'error')).toEqual([])

      victim = await startProcess(victim.dataDir, boot)
      agents[1] = victim
      expect(victim.info.peerId).toBe(peerId)
      const torn = /dropped a torn tail of (\d+) bytes/.exec(victim.stderr())

      // Every acknowledged reservation is back on the restarted agent at once, from its data dir…
      expect(await missing(victim, acked), `seed ${SEED}, round ${round}`).toEqual([])
      // …and on its peers once the cluster converged again.
      const ms = await waitFor(`convergence after restart ${round}`, async () => await converged(agents))
      for (const peer of [agents[0], agents[2]]) expect(await missing(peer, acked), `seed ${SEED}, round ${round}, on ${peer.info.peerId}`).toEqual([])
      // Its stream continues after the restart: new writes are accepted.
      expect((await post(victim, '/v1/reservations', { id: `after-kill-${round}`, size: '64MiB' })).status).toBe(201)

      allAcked.push(...acked)
      figures.push(`round ${round}: ${acked.length} acknowledged (kill scheduled at ack ${killAfter}, ${sentBeforeKill} sent, exit ${exit.code ?? exit.signal}), torn tail ${torn?.[1] ?? 0} B, converged ${ms} ms after restart, lost 0`)
    }
    // Earlier rounds survive later kills too.
    expect(await missing(agents[1], allAcked), `seed ${SEED}`).toEqual([])
    await waitFor('final convergence', async () => await converged(agents))
    console.log(`kill -9 (seed ${SEED}):\n  ${figures.join('\n  ')}\n  total: ${KILLS} kills, ${allAcked.length} acknowledged reservations checked on 3 agents, lost 0`)
  }, 150_000)

  it('SIGTERM mid-burst, with an event stream open, stops every agent with exit code 0; nothing acknowledged is lost', async () => {
    const events = new AbortController()
    const stream = await fetch(`${agents[0].info.api}/v1/events`, { signal: events.signal })
    expect(stream.status).toBe(200)
    const acked: string[] = []
    let signalled = false
    const ids = Array.from({ length: 80 }, (_, i) => `term-${i}`)
    await pool(ids, CONCURRENCY, async id => {
      if (signalled) return
      try {
        const r = await post(agents[1], '/v1/reservations', { id, size: '64MiB' })
        if (r.status === 201) acked.push(id)
      } catch {}
      if (!signalled && acked.length >= 15) {
        signalled = true
        for (const a of agents) process.kill(a.info.pid, 'SIGTERM')
      }
    })
    const exits = await Promise.all(agents.map(async a => await a.exited))
    events.abort()
    for (const [i, e] of exits.entries()) {
      expect(e, agents[i].stderr()).toEqual({ code: 0, signal: null })
      expect(agents[i].stderr()).toMatch(/received SIGTERM, stopping/)
    }
    const again = await startProcess(agents[1].dataDir, agents[0].info.multiaddrs[0])
    expect(again.info.peerId).toBe(agents[1].info.peerId)
    expect(again.stderr()).not.toMatch(/torn tail|skipped an unreadable record/)
    expect(await missing(again, acked)).toEqual([])
    console.log(`SIGTERM mid-burst: ${acked.length} acknowledged, all present after restart`)
    process.kill(again.info.pid, 'SIGTERM')
    expect(await again.exited).toEqual({ code: 0, signal: null })
  })
})
