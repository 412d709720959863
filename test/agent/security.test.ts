/**
 * Security defaults (docs/design.md "Network", "Interfaces"): the API refuses a
 * non-loopback bind without a bearer token and then requires it everywhere
 * but /healthz; the token and the cluster key never reach the log; libp2p
 * refuses to listen beyond loopback without a cluster key; the data dir and
 * its secrets are private; and a host without the cluster key (or with
 * another one) cannot connect, so it never receives gossip or sync.
 * Real daemons (libp2p over TCP on 127.0.0.1, HTTP, data dirs); fake probes.
 */
import { existsSync } from 'node:fs'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { DaemonConfigError, startDaemon } from '../../agent/daemon.ts'
import { UsageError } from '../../cli/args.ts'
import { agentOptionsFromArgs } from '../../cli/commands/agent.ts'
import { generateClusterKey } from '../../agent/net/cluster-key.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import { api, GiB, startAgent, stopAll, tempDir, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'

let agents: TestAgent[] = []
const dirs: string[] = []
afterEach(async () => { await stopAll(agents); agents = [] })
afterAll(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

async function scratch (): Promise<string> {
  const d = await tempDir('memgossip-sec-')
  dirs.push(d)
  return d
}

const TOKEN = 'tok-3f9a1c0e7b2d4a6f8e0c1b3d5f7a9e2c'

async function tokenFile (token = TOKEN): Promise<string> {
  const file = join(await scratch(), 'api.token')
  await writeFile(file, `${token}\n`, { mode: 0o600 })
  return file
}

async function keyFile (mode = 0o600): Promise<{ file: string, text: string }> {
  const key = generateClusterKey()
  const file = join(await scratch(), 'cluster.key')
  await writeFile(file, key, { mode })
  return { file, text: new TextDecoder().decode(key) }
}

/** A fetch against the daemon's port on 127.0.0.1, whatever it is bound to. */
async function call (agent: TestAgent, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: any, headers: Headers }> {
  const port = new URL(agent.daemon.api.url).port
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers })
  const text = await response.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  return { status: response.status, body, headers: response.headers }
}

describe('the HTTP API', () => {
  it('refuses a non-loopback bind without a token, naming --api-token, and creates nothing', async () => {
    for (const address of ['0.0.0.0:0', '[::]:0', '10.1.2.3:0']) {
      const dataDir = join(await scratch(), 'never')
      const attempt = startDaemon({ api: address, dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], probe: createFakeProbe({ totalBytes: 16 * GiB, availableBytes: 16 * GiB }), log: () => {} })
      await expect(attempt).rejects.toThrow(DaemonConfigError)
      await expect(attempt).rejects.toThrow(/--api-token/)
      expect(existsSync(dataDir)).toBe(false)
    }
  })

  it('refuses a token shorter than 16 characters', async () => {
    const attempt = startDaemon({ api: '0.0.0.0:0', apiTokenFile: await tokenFile('short'), dataDir: join(await scratch(), 'd'), probe: createFakeProbe({ totalBytes: 16 * GiB, availableBytes: 16 * GiB }), log: () => {} })
    await expect(attempt).rejects.toThrow(DaemonConfigError)
    await expect(attempt).rejects.toThrow(/16 characters/)
  })

  it('with a token on 0.0.0.0: 401 without or with a wrong bearer, 200 with the right one, /healthz open; the token never reaches the log', async () => {
    const logs: string[] = []
    const a = await startAgent({ api: '0.0.0.0:0', apiTokenFile: await tokenFile(), log: (line) => { logs.push(line) } })
    agents.push(a)
    expect(a.daemon.api.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/)

    for (const path of ['/v1/state', '/v1/nodes', '/v1/reservations', '/metrics', '/v1/events', '/v1/rent']) {
      const none = await call(a, path)
      expect(none.status, path).toBe(401)
      expect(none.body).toMatchObject({ error: 'Unauthorized' })
      expect(none.body.detail).toMatch(/Bearer/)
      expect(none.headers.get('www-authenticate')).toBe('Bearer')
    }
    const wrong = [
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      'Bearer ',
      `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`,
      TOKEN
    ]
    for (const authorization of wrong) expect((await call(a, '/v1/state', { authorization })).status, authorization).toBe(401)

    const ok = await call(a, '/v1/state', { authorization: `Bearer ${TOKEN}` })
    expect(ok.status).toBe(200)
    expect(ok.body.self).toBe(a.daemon.agent.self)
    const made = await fetch(`http://127.0.0.1:${new URL(a.daemon.api.url).port}/v1/reservations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'authed', size: '1GiB' })
    })
    expect(made.status).toBe(201)
    // A write without the token is refused before anything is read or written.
    const unauth = await fetch(`http://127.0.0.1:${new URL(a.daemon.api.url).port}/v1/reservations`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'sneaky', size: '1GiB' })
    })
    expect(unauth.status).toBe(401)
    expect(a.daemon.agent.verdict('sneaky')).toBeUndefined()

    const health = await call(a, '/healthz')
    expect(health.status).toBe(200)
    expect(health.body.ok).toBe(true)

    await a.daemon.stop()
    agents = []
    expect(logs.join('\n')).toMatch(/bearer token required/)
    expect(logs.join('\n')).not.toContain(TOKEN)
    expect(logs.join('\n')).not.toContain(TOKEN.slice(4, 20))
    const info = await readFile(join(a.dataDir, 'agent.json'), 'utf8')
    expect(info).not.toContain(TOKEN)
  })

  it('a loopback bind with a token requires it too', async () => {
    const a = await startAgent({ apiTokenFile: await tokenFile() })
    agents.push(a)
    expect((await api(a, '/v1/nodes')).status).toBe(401)
    expect((await api(a, '/v1/nodes', { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200)
    expect((await api(a, '/healthz')).status).toBe(200)
  })
})

describe('libp2p', () => {
  it('refuses to listen beyond loopback without a cluster key', async () => {
    for (const listen of [['/ip4/0.0.0.0/tcp/0'], ['/ip4/127.0.0.1/tcp/0', '/ip4/192.168.1.10/tcp/0'], ['/ip6/::/tcp/0']]) {
      const dataDir = join(await scratch(), 'never')
      const attempt = startDaemon({ listen, dataDir, api: '127.0.0.1:0', probe: createFakeProbe({ totalBytes: 16 * GiB, availableBytes: 16 * GiB }), log: () => {} })
      await expect(attempt).rejects.toThrow(DaemonConfigError)
      await expect(attempt).rejects.toThrow(/cluster key/)
      expect(existsSync(dataDir)).toBe(false)
    }
  })

  it('listens on 0.0.0.0 with a cluster key; the key never reaches the log, a too-open key file is warned about', async () => {
    const logs: string[] = []
    const { file, text } = await keyFile(0o644)
    const a = await startAgent({ listen: ['/ip4/0.0.0.0/tcp/0'], clusterKeyFile: file, log: (line) => { logs.push(line) } })
    agents.push(a)
    expect(a.daemon.info.clusterKey).toBe(true)
    const all = logs.join('\n')
    expect(all).toMatch(/WARNING cluster key .* mode 0644.*chmod 600/)
    const hex = text.split('\n')[2]
    expect(hex).toMatch(/^[0-9a-f]{64}$/)
    expect(all).not.toContain(hex)
    expect(all).not.toContain(hex.slice(0, 16))
    expect(await readFile(join(a.dataDir, 'agent.json'), 'utf8')).not.toContain(hex)
  })
})

describe('the data dir', () => {
  it('is created 0700; peer.key, the ledger, meta.json and agent.json are 0600', async () => {
    const dataDir = join(await scratch(), 'nested', 'state', 'memgossip')
    const a = await startAgent({ dataDir })
    agents.push(a)
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700)
    for (const f of ['peer.key', 'ledger.log', 'meta.json', 'agent.json']) {
      expect((await stat(join(dataDir, f))).mode & 0o777, f).toBe(0o600)
    }
    // A peer key left readable by others is tightened at the next start.
    await a.daemon.stop()
    agents = []
    const { chmod } = await import('node:fs/promises')
    await chmod(join(dataDir, 'peer.key'), 0o644)
    const again = await startAgent({ dataDir })
    agents.push(again)
    expect(again.daemon.agent.self).toBe(a.daemon.agent.self)
    expect((await stat(join(dataDir, 'peer.key'))).mode & 0o777).toBe(0o600)
  })
})

describe('config mistakes are refused with a message, not a crash', () => {
  it('a p2p port already taken → DaemonConfigError naming the address; the data dir is free again', async () => {
    const a = await startAgent()
    agents.push(a)
    const taken = a.daemon.info.multiaddrs[0].replace(/\/p2p\/.*$/, '')
    const dataDir = join(await scratch(), 'second')
    const attempt = startDaemon({ listen: [taken], dataDir, api: '127.0.0.1:0', probe: createFakeProbe({ totalBytes: 16 * GiB, availableBytes: 16 * GiB }), log: () => {} })
    await expect(attempt).rejects.toThrow(DaemonConfigError)
    await expect(attempt).rejects.toThrow(new RegExp(`cannot listen on ${taken}: EADDRINUSE`))
    const b = await startAgent({ dataDir })
    agents.push(b)
    expect(b.daemon.agent.state().joined).toBe(true)
  })

  it('--evict-after 0 and --heartbeat-interval 0 are usage errors (0 would evict every other member at once)', () => {
    expect(() => agentOptionsFromArgs(['--evict-after', '0'])).toThrow(UsageError)
    expect(() => agentOptionsFromArgs(['--evict-after', '0s'])).toThrow(/must be longer than 0/)
    expect(() => agentOptionsFromArgs(['--heartbeat-interval', '0ms'])).toThrow(UsageError)
    expect(agentOptionsFromArgs(['--evict-after', '90s']).evictAfterMs).toBe(90_000)
  })
})

describe('one agent per data dir', () => {
  it('a second agent on a data dir in use is refused (same identity, same ledger); after a stop it starts', async () => {
    const a = await startAgent()
    agents.push(a)
    const second = startAgent({ dataDir: a.dataDir })
    await expect(second).rejects.toThrow(DaemonConfigError)
    await expect(second).rejects.toThrow(/in use by another running agent/)
    // The first is untouched and still writes.
    expect((await api(a, '/v1/reservations', { body: { id: 'still-mine', size: '1GiB' } })).status).toBe(201)
    await a.daemon.stop()
    agents = []
    const again = await startAgent({ dataDir: a.dataDir })
    agents.push(again)
    expect(again.daemon.agent.self).toBe(a.daemon.agent.self)
    expect(again.daemon.agent.verdict('still-mine')?.status).toBe('admitted')
  })
})

describe('the cluster key', () => {
  it('agents with the same key connect; without it or with another key they cannot, and never receive gossip or sync', async () => {
    const { file } = await keyFile()
    const { file: otherFile } = await keyFile()
    const a = await startAgent({ cluster: 'sec', clusterKeyFile: file })
    agents.push(a)
    const boot = a.daemon.info.multiaddrs
    const [b, keyless, foreign] = await Promise.all([
      startAgent({ cluster: 'sec', clusterKeyFile: file, bootstrap: boot }),
      startAgent({ cluster: 'sec', bootstrap: boot }),
      startAgent({ cluster: 'sec', clusterKeyFile: otherFile, bootstrap: boot })
    ])
    agents.push(b, keyless, foreign)
    const ids = { a: a.daemon.agent.self, b: b.daemon.agent.self, keyless: keyless.daemon.agent.self, foreign: foreign.daemon.agent.self }

    await waitFor('a and b joined each other', () => [a, b].every(x => x.daemon.agent.resolution().members.length === 2))
    expect(a.daemon.network.peers()).toContain(ids.b)
    expect((await api(b, '/v1/reservations', { body: { id: 'inside', size: '1GiB' } })).status).toBe(201)
    await waitFor('inside reaches a', () => a.daemon.agent.verdict('inside')?.status === 'admitted')
    // Give the outsiders several dial and sync rounds (sync every 1 s here).
    await new Promise(resolve => setTimeout(resolve, 3000))

    for (const outsider of [keyless, foreign]) {
      const agent = outsider.daemon.agent
      expect(outsider.daemon.network.peers()).toEqual([])
      expect(agent.state().joined).toBe(false)
      expect([...agent.resolution().nodes.keys()]).toEqual([agent.self])
      expect(agent.resolution().members).toEqual([])
      expect(agent.verdict('inside')).toBeUndefined()
      expect(agent.metrics.updatesIn).toBe(0)
      expect(agent.metrics.syncRounds).toBe(0)
      // Its own writes are refused until it joins, which it never can.
      expect((await api(outsider, '/v1/reservations', { body: { id: 'outside', size: '1GiB' } })).status).toBe(503)
    }
    for (const inside of [a, b]) {
      const peers = inside.daemon.network.peers()
      expect(peers).not.toContain(ids.keyless)
      expect(peers).not.toContain(ids.foreign)
      const nodes = [...inside.daemon.agent.resolution().nodes.keys()]
      expect(nodes).not.toContain(ids.keyless)
      expect(nodes).not.toContain(ids.foreign)
      expect(inside.daemon.agent.resolution().members.sort()).toEqual([ids.a, ids.b].sort())
    }
  })
})

describe('browser attacks on a loopback API', () => {
  it('refuses DNS rebinding (foreign Host), cross-site origins and non-JSON writes', async () => {
    const { startAgent, stopAll } = await import('../../simulations/support/cluster.ts')
    const a = await startAgent()
    try {
      const url = a.daemon.api.url
      const { request } = await import('node:http')
      const raw = async (headers: Record<string, string>, body?: string, method = 'POST', path = '/v1/reservations'): Promise<{ status: number, body: any }> => await new Promise((resolve, reject) => {
        const u = new URL(url)
        const req = request({ host: u.hostname, port: u.port, method, path, headers }, res => {
          let text = ''
          res.on('data', (d: Buffer) => { text += d.toString() })
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) })
        })
        req.on('error', reject)
        req.end(body)
      })
      const body = JSON.stringify({ id: 'csrf', size: '1GiB' })
      expect(await raw({ host: 'evil.example:7647', 'content-type': 'application/json' }, body)).toMatchObject({ status: 403, body: { error: 'ForbiddenHost' } })
      expect(await raw({ host: 'evil.example', 'content-type': 'application/json' }, undefined, 'GET', '/v1/state')).toMatchObject({ status: 403 })
      expect(await raw({ origin: 'https://evil.example', 'content-type': 'application/json' }, body)).toMatchObject({ status: 403, body: { error: 'ForbiddenOrigin' } })
      expect(await raw({ 'content-type': 'text/plain' }, body)).toMatchObject({ status: 415, body: { error: 'UnsupportedMediaType' } })
      expect(a.daemon.agent.verdict('csrf')).toBeUndefined()
      // The local CLI's requests (loopback Host, no Origin, JSON) still work.
      expect((await raw({ 'content-type': 'application/json' }, body)).status).toBe(201)
      expect((await raw({ origin: url, 'content-type': 'application/json' }, JSON.stringify({ size: '1GiB' }), 'POST', '/v1/fit')).status).toBe(200)
    } finally {
      await stopAll([a])
    }
  })
})
