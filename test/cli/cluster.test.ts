/**
 * End to end: every client command against a real three-agent cluster. The
 * agents are child processes (`npx tsx cli/main.ts agent …`, real libp2p over
 * TCP on 127.0.0.1 with a cluster key, real data dirs, fake 8 GiB memory),
 * started once for the file; the third one requires an API token. The CLI runs
 * in this process through `main()` (fast), and as a real process where exit
 * codes and signals are the point.
 */
import { spawn } from 'node:child_process'
import { writeFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseSize } from '../../crdt/index.ts'
import { cli, freePort, getJson, GiB, killGroup, REPO, runCli, spawnCli, startChildAgent, stopAgents, tempDir, waitFor, type ChildAgent } from './procs.ts'

const TOKEN = 'cli-test-token-0123456789abcdef'
let dir: string
let keyFile: string
let tokenFile: string
let A: ChildAgent, B: ChildAgent, C: ChildAgent
const agents: ChildAgent[] = []

/** `--api` (and `--token` for the agent that needs one) for a command aimed at `agent`. */
const at = (agent: ChildAgent): string[] => agent === C ? ['--api', agent.api, '--token', tokenFile] : ['--api', agent.api]
const tokenOf = (agent: ChildAgent): string | undefined => agent === C ? TOKEN : undefined
const id = (agent: ChildAgent): string => agent.info.peerId

async function json (argv: string[]): Promise<{ code: number, body: any }> {
  const r = await cli([...argv, '--json'])
  try {
    return { code: r.code, body: JSON.parse(r.stdout) }
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\nstderr: ${r.stderr}`)
  }
}

beforeAll(async () => {
  dir = await tempDir()
  keyFile = join(dir, 'cluster.key')
  tokenFile = join(dir, 'api.token')
  const key = await cli(['keygen'])
  await writeFile(keyFile, key.stdout, { mode: 0o600 })
  await writeFile(tokenFile, TOKEN + '\n', { mode: 0o600 })
  A = await startChildAgent(['--cluster-key', keyFile])
  agents.push(A)
  const boot = ['--cluster-key', keyFile, '--bootstrap', A.info.multiaddrs[0]]
  ;[B, C] = await Promise.all([startChildAgent(boot), startChildAgent([...boot, '--api-token', tokenFile])])
  agents.push(B, C)
  await waitFor('three joined members on every agent, one digest, every node\'s record everywhere', async () => {
    const states = await Promise.all([A, B, C].map(async a => await getJson(`${a.api}/v1/state`, tokenOf(a))))
    // A member's node record is a write of its own, apart from its admission: it can arrive after.
    const nodes = await Promise.all([A, B, C].map(async a => (await getJson(`${a.api}/v1/nodes`, tokenOf(a))).nodes as Array<{ totalBytes: number }>))
    return states.every(s => s.joined === true && s.members.length === 3) && new Set(states.map(s => s.verdictsDigest)).size === 1 &&
      nodes.every(list => list.length === 3 && list.every(n => n.totalBytes > 0))
  }, 45_000)
}, 90_000)

afterAll(async () => {
  await stopAgents(agents)
  await rm(dir, { recursive: true, force: true })
})

describe('status', () => {
  it('prints one table of the cluster with totals, pending and alerts; --json passes the API through', async () => {
    const r = await cli(['status', ...at(A)])
    expect(r.code, r.stderr).toBe(0)
    const [header, ...rest] = r.stdout.split('\n')
    expect(header.split(/\s{2,}/)).toEqual(['NODE', 'TOTAL', 'ALLOCATABLE', 'COMMITTED', '%', 'USED', 'AVAILABLE', 'STATE', 'LIVENESS', 'HEARTBEAT'])
    for (const agent of [A, B, C]) {
      const row = rest.find(l => l.startsWith(id(agent)))
      expect(row, r.stdout).toBeDefined()
      expect(row).toMatch(/8\.00 GiB\s+7\.60 GiB\s+0 B\s+0\.0%\s+-\s+8\.00 GiB\s+active\s+(self|alive)\s+(-|\d+ms|\d+\.\ds)$/)
      expect(row!.includes('self')).toBe(agent === A)
    }
    expect(r.stdout).toContain(`cluster 'test' as seen by 12D3KooW…${id(A).slice(-4)}: 3 member(s), 2 peer(s) connected`)
    expect(r.stdout).toContain('totals: total 24.00 GiB, allocatable 22.80 GiB, committed 0 B (0.0%), headroom 22.80 GiB, available 24.00 GiB')
    expect(r.stdout).toContain('reservations: none; 0 pending (tentative)')
    expect(r.stdout).toContain('alerts: none')
    expect(r.stdout).not.toMatch(/\x1b\[/)

    const { code, body } = await json(['status', ...at(B)])
    expect(code).toBe(0)
    expect(Object.keys(body).sort()).toEqual(['alerts', 'capacity', 'nodes', 'state'])
    expect(body.nodes).toHaveLength(3)
    for (const n of body.nodes) expect(n).toMatchObject({ member: true, state: 'active', totalBytes: 8 * GiB, allocatableBytes: parseSize('8GiB') - 429_496_730 })
    expect(body.state.self).toBe(id(B))
    expect(body.capacity).toMatchObject({ members: 3, totalBytes: 24 * GiB, committedBytes: 0, pending: 0 })
    expect(body.alerts).toEqual([])
  })

  it('colours a terminal, and not with NO_COLOR', async () => {
    const tty = await cli(['status', ...at(A)], { isTTY: true })
    expect(tty.stdout).toMatch(/\x1b\[32mactive\x1b\[39m/)
    const noColor = await cli(['status', ...at(A)], { isTTY: true, env: { NO_COLOR: '1' } })
    expect(noColor.stdout).not.toMatch(/\x1b\[/)
  })

  it('MEMGOSSIP_API and MEMGOSSIP_TOKEN stand in for --api and --token; a token is required where set, and never printed', async () => {
    const viaEnv = await cli(['status'], { env: { MEMGOSSIP_API: C.api, MEMGOSSIP_TOKEN: TOKEN } })
    expect(viaEnv.code, viaEnv.stderr).toBe(0)
    expect(viaEnv.stdout).toContain(id(C))
    const withFile = await cli(['status', '--api', C.api, '--token', tokenFile])
    expect(withFile.code).toBe(0)
    const without = await cli(['status', '--api', C.api])
    expect(without.code).toBe(2)
    expect(without.stderr).toContain(`the agent at ${C.api} answered 401: token required/wrong (--token FILE or MEMGOSSIP_TOKEN)`)
    const wrong = await cli(['fit', '1GiB', '--api', C.api], { env: { MEMGOSSIP_TOKEN: 'not-the-token' } })
    expect(wrong.code).toBe(2)
    for (const r of [viaEnv, withFile, without, wrong]) expect(r.stdout + r.stderr).not.toContain(TOKEN)
  })
})

describe('fit', () => {
  it('gives the same answer from each of the three agents', async () => {
    const perPeer = ['warnings', 'final', 'waitsFor', 'waitingOn']
    for (const [size, placement] of [['3GiB', 'any'], ['9GiB', 'any'], ['2Gi', 'all'], ['7GiB', 'spread:2'], ['1GB', `node:${id(B)}`]]) {
      const answers = await Promise.all([A, B, C].map(async a => await json(['fit', size, '--placement', placement, ...at(a)])))
      const strip = (b: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(b).filter(([k]) => !perPeer.includes(k)))
      expect(strip(answers[1].body), `${size} ${placement}`).toEqual(strip(answers[0].body))
      expect(strip(answers[2].body), `${size} ${placement}`).toEqual(strip(answers[0].body))
      expect(new Set(answers.map(a => a.code)).size).toBe(1)
      expect(answers[0].code).toBe(answers[0].body.fits === true ? 0 : 1)
      expect(answers[0].body.bytes).toBe(parseSize(size))
    }
  })

  it('fits: exit 0, where, headroom before and after, the per-node table', async () => {
    const r = await cli(['fit', '3GiB', ...at(B)])
    expect(r.code).toBe(0)
    const { body } = await json(['fit', '3GiB', ...at(B)])
    const chosen: string = body.nodes[0]
    expect(r.stdout).toContain('fits: 3.00 GiB, placement any')
    expect(r.stdout).toContain(`on ${chosen}: headroom 7.60 GiB → 4.60 GiB`)
    expect(r.stdout).toContain('3/3 nodes fit')
    expect(r.stdout).toMatch(/^NODE\s+STATE\s+ALLOCATABLE\s+COMMITTED\s+HEADROOM\s+FIT\s+AFTER$/m)
    expect(r.stdout).toMatch(new RegExp(`^${chosen}\\s+active\\s+7\\.60 GiB\\s+0 B\\s+7\\.60 GiB\\s+Fits\\s+→ 4\\.60 GiB$`, 'm'))
    expect(r.stdout).toMatch(/^answer: (final|tentative)/m)
  })

  it('never fits: exit 1, the reason, the Kubernetes-style histogram and the numbers behind it', async () => {
    const r = await cli(['fit', '9GiB', ...at(C)])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('never fits: 9.00 GiB, placement any')
    expect(r.stdout).toContain("never fits: needs 9.00 GiB, more than any member's allocatable memory (largest: 7.60 GiB on node ")
    expect(r.stdout).toContain('0/3 nodes fit: 3 InsufficientMemory')
    for (const agent of [A, B, C]) expect(r.stdout).toMatch(new RegExp(`^${id(agent)}\\s+active\\s+7\\.60 GiB\\s+0 B\\s+7\\.60 GiB\\s+InsufficientMemory$`, 'm'))
    const { code, body } = await json(['fit', '9GiB', ...at(C)])
    expect(code).toBe(1)
    expect(body).toMatchObject({ fits: false, code: 'NeverFits', bytes: 9 * GiB, histogram: '0/3 nodes fit: 3 InsufficientMemory', histogramCounts: { InsufficientMemory: 3 } })
  })

  it.concurrent('node:<id> of a node the agent does not know exits 2 naming it, not "does not fit"', async () => {
    const r = await cli(['fit', '1GiB', '--placement', 'node:12D3KooWNoSuchNode', ...at(A)])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain("memgossip fit: no node '12D3KooWNoSuchNode' in this agent's view (known: ")
    expect(r.stderr).toContain('[UnknownNode (placement)]')
    const reserve = await cli(['reserve', 'pinned-nowhere', '1GiB', '--placement', 'node:12D3KooWNoSuchNode', ...at(A)])
    expect(reserve.code).toBe(2)
    expect(reserve.stderr).toContain("no node '12D3KooWNoSuchNode'")
  })

  it.concurrent('a bad size exits 2 with the same message as parseSize, listing the accepted forms (a real process)', async () => {
    let expected = ''
    try { parseSize('12XB') } catch (error) { expected = (error as Error).message }
    const r = await runCli(['fit', '12XB', '--api', A.api])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`memgossip fit: SIZE: ${expected}\n`)
    expect(r.stderr).toContain("accepted: bytes as an integer ('1048576' or '1048576B'), IEC 'KiB' 'MiB' 'GiB'")
  })

  it.concurrent('an unreachable agent exits 3 naming the URL and how to start one (a real process)', async () => {
    const url = `http://127.0.0.1:${await freePort()}`
    const r = await runCli(['fit', '1GiB'], { env: { MEMGOSSIP_API: url } })
    expect(r.code).toBe(3)
    expect(r.stderr).toContain(`cannot reach the memgossip agent at ${url} (ECONNREFUSED)`)
    expect(r.stderr).toContain("Start an agent with 'npm start' (in the memgossip checkout) or 'memgossip agent'")
    expect(r.stdout).toBe('')
  })

  it.concurrent('the linked binary (cli/bin.js) is the same command', async () => {
    const r = await runCli(['fit', '1GiB', '--api', B.api, '--json'], { entry: 'cli/bin.js' })
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ fits: true, bytes: GiB })
  })
})

describe('reserve, where, reservations, release', () => {
  it('reserve prints the verdict (exit 0); every peer then reports the same nodes', async () => {
    const r = await cli(['reserve', 'web-1', '2GiB', '--label', 'team=web', '--label', 'tier=front', '--priority', '5', ...at(A)])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^web-1: admitted on 12D3KooW\w+$/m)
    expect(r.stdout).toContain('size 2.00 GiB, placement any, priority 5, creator ' + id(A) + ', labels team=web,tier=front')
    expect(r.stdout).toMatch(/reason: admitted on node 12D3KooW…\w{4} \(best fit\): 2\.00 GiB of 7\.60 GiB headroom \[Fits\]/)
    const made = await json(['reserve', 'web-2', '1073741824', ...at(B)])
    expect(made.code).toBe(0)
    expect(made.body.verdict).toMatchObject({ id: 'web-2', status: 'admitted', bytes: GiB, size: '1.00 GiB', creator: id(B) })
    expect(made.body.answer).toMatchObject({ fits: true })
    await waitFor('web-1 and web-2 final on every peer', async () => {
      const all = await Promise.all([A, B, C].flatMap(a => ['web-1', 'web-2'].map(async rid => await json(['where', rid, ...at(a)]))))
      return all.every(w => w.code === 0 && w.body.final === true)
    })
    const where = await Promise.all([A, B, C].map(async a => await cli(['where', 'web-1', ...at(a)])))
    const firstLines = where.map(w => w.stdout.split('\n').filter(l => !l.includes('verdict:')).join('\n'))
    expect(new Set(firstLines).size).toBe(1)
    expect(where[0].stdout).toContain('verdict: final')
  })

  it('reserve refuses what never fits, queued or not (exit 1, nothing written), and an id that exists (exit 2)', async () => {
    const r = await cli(['reserve', 'huge', '9GiB', ...at(B)])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('rejected: huge was not written')
    expect(r.stdout).toContain('never fits: needs 9.00 GiB')
    expect(r.stdout).toContain('0/3 nodes fit: 3 InsufficientMemory')
    const j = await json(['reserve', 'huge', '9GiB', '--queue', ...at(B)])
    expect(j.code).toBe(1)
    // The same shape as a rejection (agent/api/contract.ts ReserveAnswer): no entry was written.
    expect(j.body).toMatchObject({ id: 'huge', written: false, status: 'rejected', code: 'NeverFits', answer: { fits: false, code: 'NeverFits', bytes: 9 * GiB } })
    expect((await cli(['where', 'huge', ...at(B)])).code).toBe(1)
    const badId = await cli(['reserve', 'no spaces', '1GiB', ...at(A)])
    expect(badId.code).toBe(2)
    expect(badId.stderr).toContain("'id' must be 1-128 characters of letters, digits and . _ : / - (starting with a letter or digit) [InvalidId (id)]")
    const dup = await cli(['reserve', 'web-1', '1GiB', ...at(A)])
    expect(dup.code).toBe(2)
    expect(dup.stderr).toContain("reservation 'web-1' already exists [IdExists]")
    // --json prints the agent's error on stdout, as where and release do.
    const dupJson = await json(['reserve', 'web-1', '1GiB', ...at(A)])
    expect(dupJson.code).toBe(2)
    expect(dupJson.body).toMatchObject({ error: 'IdExists', field: 'id', detail: "reservation 'web-1' already exists" })
  })

  it('reserve --wait-final returns once every member has passed the reservation', async () => {
    const r = await json(['reserve', 'wf-1', '512MiB', '--wait-final', '--timeout', '30s', ...at(B)])
    expect(r.code).toBe(0)
    expect(r.body.verdict).toMatchObject({ id: 'wf-1', status: 'admitted', final: true, waitsFor: [] })
    expect(r.body.timedOut).toBe(false)
    // It was written tentative (two other members had not passed it yet) and waited.
    expect(r.body.waitedMs).toBeGreaterThan(0)
    const now = await getJson(`${B.api}/v1/reservations/wf-1`)
    expect(now).toMatchObject({ final: true, waitsFor: [] })
    const human = await cli(['reserve', 'wf-2', '512MiB', '--wait-final', ...at(C)])
    expect(human.code).toBe(0)
    expect(human.stderr).toContain("waiting up to 60s for the verdict of 'wf-2' to become final")
    expect(human.stdout).toMatch(/^wf-2: admitted on /m)
    expect(human.stdout).toContain('verdict: final')
  })

  it('the y/z race on two peers: both agents, and the third, report the same winner', async () => {
    const target = id(A)
    const fit = await json(['fit', '1', '--placement', `node:${target}`, ...at(A)])
    const headroom: number = fit.body.perNode.find((n: { node: string }) => n.node === target).headroomBytes
    const y = Math.floor(headroom * 0.6)
    const z = Math.floor(headroom * 0.5)
    const [ry, rz] = await Promise.all([
      json(['reserve', 'y', String(y), '--placement', `node:${target}`, '--wait-final', ...at(B)]),
      json(['reserve', 'z', String(z), '--placement', `node:${target}`, '--wait-final', ...at(C)])
    ])
    // Each was admitted locally and then decided, or refused outright because the other was already known.
    expect([ry.code, rz.code].sort()).toEqual([0, 1])
    const views = await Promise.all([A, B, C].map(async a => await Promise.all(['y', 'z'].map(async rid => await json(['where', rid, ...at(a)])))))
    const summary = views.map(([wy, wz]) => JSON.stringify([wy.code, wy.body.status ?? wy.body.error, wy.body.runningOn, wz.code, wz.body.status ?? wz.body.error, wz.body.runningOn]))
    expect(new Set(summary).size, summary.join('\n')).toBe(1)
    const [wy, wz] = views[0]
    expect([wy.body.status, wz.body.status].filter(s => s === 'admitted')).toHaveLength(1)
    const loser = wy.body.status === 'admitted' ? wz.body : wy.body
    if (loser.status === 'rejected') {
      expect(loser.code).toBe('LostConcurrentConflict')
      expect(loser.winner).toBe(wy.body.status === 'admitted' ? 'y' : 'z')
      console.log(`true race: ${loser.id} lost to ${loser.winner}: ${loser.reason}`)
    } else {
      expect(loser.error).toBe('NotFound')
    }
  })

  it('reservations: a table of id, size, status, used, final, nodes, creator, reason; filters by status and node', async () => {
    const r = await cli(['reservations', ...at(C)])
    expect(r.code).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines[0].split(/\s{2,}/)).toEqual(['ID', 'SIZE', 'STATUS', 'USED', 'FINAL', 'NODES', 'CREATOR', 'REASON'])
    expect(lines.find(l => l.startsWith('web-1 '))).toMatch(/^web-1\s+2\.00 GiB\s+admitted\s+-\s+yes\s+12D3KooW…\w{4}\s+12D3KooW…\w{4}\s+admitted on node/)
    expect(r.stdout).toMatch(/^\d+ reservation\(s\); \d+ pending \(tentative\) in the whole ledger; verdicts digest \S+$/m)
    const all = await json(['reservations', ...at(A)])
    const admitted = await json(['reservations', '--status', 'admitted', ...at(A)])
    expect(admitted.body.reservations.length).toBeGreaterThan(0)
    expect(admitted.body.reservations.every((v: { status: string }) => v.status === 'admitted')).toBe(true)
    expect(admitted.body.reservations.length).toBe(all.body.reservations.filter((v: { status: string }) => v.status === 'admitted').length)
    const onA = await json(['reservations', '--node', id(A), ...at(A)])
    expect(onA.body.reservations.every((v: { runningOn: string[], nodes: string[] }) => v.runningOn.includes(id(A)) || v.nodes.includes(id(A)))).toBe(true)
    for (const v of all.body.reservations) expect(Number.isSafeInteger(v.bytes)).toBe(true)
    const bad = await cli(['reservations', '--status', 'bogus', ...at(A)])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('status must be admitted, rejected, evicted, released, invalid or queued [InvalidStatus (status)]')
  })

  it('release: exit 0 and the verdict; where then says it runs nowhere (exit 1); an unknown id exits 1', async () => {
    const r = await cli(['release', 'web-2', ...at(C)])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^web-2: released, runs nowhere$/m)
    expect(r.stdout).toMatch(/decided: admitted: admitted on node/)
    await waitFor('web-2 released on A', async () => (await json(['where', 'web-2', ...at(A)])).body.status === 'released')
    const w = await cli(['where', 'web-2', ...at(A)])
    expect(w.code).toBe(1)
    const released = await json(['release', 'wf-1', ...at(B)])
    expect(released.code).toBe(0)
    expect(released.body).toMatchObject({ id: 'wf-1', status: 'released', decision: 'admitted', code: 'Released', bytes: 512 * 1024 ** 2, runningOn: [] })
    const unknown = await cli(['release', 'nope', ...at(A)])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain("no reservation 'nope'")
    const nowhere = await cli(['where', 'nope', ...at(B)])
    expect(nowhere.code).toBe(1)
    expect(nowhere.stderr).toContain(`no reservation 'nope' (as ${B.api} sees it)`)
  })
})

describe('watch', () => {
  it('prints live lines for verdicts and alerts raised and cleared; Ctrl-C (abort) exits 0', async () => {
    // A node that can take 7 GiB (over 90% of 7.60 GiB: the NodeCommittedHigh alert).
    const answers = await Promise.all([A, B, C].map(async a => await json(['fit', '7GiB', '--placement', `node:${id(a)}`, ...at(A)])))
    const hot = [A, B, C][answers.findIndex(a => a.body.fits === true)]
    expect(hot).toBeDefined()
    let human = ''
    let lines = ''
    const stopHuman = new AbortController()
    const stopJson = new AbortController()
    const watching = cli(['watch', ...at(A)], { signal: stopHuman.signal, onStdout: s => { human += s } })
    const watchingJson = cli(['watch', '--json', ...at(A)], { signal: stopJson.signal, onStdout: s => { lines += s } })
    await waitFor('hello', () => human.includes('hello') && lines.includes('"hello"'))
    expect(human).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d  hello    agent ${id(A)}, 0 active alert\\(s\\), verdicts digest \\S+$`, 'm'))

    expect((await cli(['reserve', 'hot', '7GiB', '--placement', `node:${id(hot)}`, ...at(B)])).code).toBe(0)
    await waitFor('verdict and alert lines', () => /verdict  hot admitted (final|tentative)/.test(human) && /alert    raised NodeCommittedHigh: node 12D3KooW…\w{4} is 9\d\.\d% committed/.test(human))
    const status = await cli(['status', ...at(A)])
    expect(status.stdout).toContain('alerts (1):')
    expect(status.stdout).toMatch(/NodeCommittedHigh node 12D3KooW…\w{4} is 9\d\.\d% committed/)
    expect((await cli(['release', 'hot', ...at(B)])).code).toBe(0)
    await waitFor('cleared', () => human.includes('alert    cleared NodeCommittedHigh'))

    stopHuman.abort()
    stopJson.abort()
    expect((await watching).code).toBe(0)
    expect((await watchingJson).code).toBe(0)
    const objects = lines.trim().split('\n').map(l => JSON.parse(l))
    expect(objects[0]).toMatchObject({ type: 'hello', self: id(A) })
    expect(objects).toContainEqual(expect.objectContaining({ type: 'verdict', id: 'hot', status: 'admitted' }))
    expect(objects).toContainEqual(expect.objectContaining({ type: 'alert', state: 'raised', alert: expect.objectContaining({ kind: 'NodeCommittedHigh', node: id(hot) }) }))
    expect(objects).toContainEqual(expect.objectContaining({ type: 'verdict', id: 'hot', status: 'released' }))
  })

  it('a real process stops on SIGINT (Ctrl-C) with exit 0', async () => {
    const { proc, done } = spawnCli(['watch', '--api', A.api])
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor('hello line', () => out.includes('hello'), 20_000)
    proc.kill('SIGINT')
    const r = await done
    expect(r.code).toBe(0)
  })

  it('through npx, Ctrl-C (SIGINT to the process group, which npm forwards a second time) exits 0', async () => {
    const proc = spawn('npx', ['memgossip', 'watch', '--api', A.api], { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } })
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    proc.stderr!.on('data', (d: Buffer) => { out += d.toString() })
    const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => proc.once('exit', (code, signal) => resolve({ code, signal })))
    try {
      await waitFor('hello line', () => out.includes('hello'), 30_000)
      killGroup(proc.pid, 'SIGINT')
      expect(await exited, out).toEqual({ code: 0, signal: null })
    } finally {
      killGroup(proc.pid, 'SIGKILL')
    }
  })
})

describe('rent', () => {
  it('prints byte-seconds, GiB-hours and cost per reservation and totals; --json passes the bill through', async () => {
    const r = await cli(['rent', '--price-per-gib-hour', '2', ...at(C)])
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines[0].split(/\s{2,}/)).toEqual(['ID', 'STATUS', 'SIZE', 'NODES', 'CREATOR', 'START', 'END', 'BYTE-SECONDS', 'GIB-HOURS', 'COST'])
    expect(lines.find(l => l.startsWith('web-1 '))).toMatch(/^web-1\s+admitted\s+2\.00 GiB\s+1\s+12D3KooW…\w{4}\s+\S+Z\s+\S+Z\s+\d+\s+\d+\.\d{4}\s+\d+\.\d{4}$/)
    expect(lines.find(l => l.startsWith('web-2 '))).toMatch(/^web-2\s+released\s+1\.00 GiB/)
    expect(r.stdout).toMatch(/^TOTAL\s+\d+\s+\d+\.\d{4}\s+\d+\.\d{4}$/m)
    expect(r.stdout).toMatch(/reservation\(s\) billed from the beginning to \S+ at 2 per GiB-hour$/m)
    const bill = await json(['rent', '--price-per-gib-hour', '2', ...at(A)])
    expect(bill.code).toBe(0)
    expect(bill.body.pricePerGiBHour).toBe(2)
    expect(bill.body.totalCost).toBeGreaterThan(0)
    const web1 = bill.body.lines.find((l: { id: string }) => l.id === 'web-1')
    expect(web1).toMatchObject({ bytes: 2 * GiB, nodeCount: 1, status: 'admitted' })
    expect(Number.isSafeInteger(web1.byteSeconds)).toBe(true)
    const recent = await json(['rent', '--since', '1h', ...at(A)])
    expect(recent.body.sinceMs).toBeGreaterThan(Date.now() - 3_700_000)
    const iso = await json(['rent', '--since', '2020-01-01T00:00:00Z', ...at(A)])
    expect(iso.body.sinceMs).toBe(Date.parse('2020-01-01T00:00:00Z'))
    const bad = await cli(['rent', '--since', 'yesterday', ...at(A)])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("--since: 'yesterday' is not a duration back from now (1h, 30m, 7d), an ISO date (2026-01-31T00:00:00Z) or ms since the epoch")
    // The agent refuses it as well, for clients other than this CLI.
    const raw = await fetch(`${A.api}/v1/rent?since=yesterday`)
    expect(raw.status).toBe(400)
    expect(await raw.json()).toMatchObject({ error: 'InvalidSince', detail: "'since' must be ms since the epoch or an ISO date" })
  })
})

describe('evict', () => {
  it('a member that is gone holds finality back until it is evicted; evict releases it', async () => {
    const D = await startChildAgent(['--cluster-key', keyFile, '--bootstrap', A.info.multiaddrs[0]])
    agents.push(D)
    await waitFor('four members on A, B and C', async () => {
      const states = await Promise.all([A, B, C].map(async a => await getJson(`${a.api}/v1/state`, tokenOf(a))))
      return states.every(s => s.members.length === 4)
    }, 30_000)
    await D.stop('SIGKILL')

    const stuck = await cli(['reserve', 'after-d', '256MiB', '--wait-final', '--timeout', '2s', ...at(A)])
    expect(stuck.code).toBe(1)
    expect(stuck.stdout).toContain('timed out after 2s: not final yet, still waits for')
    expect(stuck.stdout).toContain(id(D))

    const self = await cli(['evict', id(A), ...at(A)])
    expect(self.code).toBe(2)
    expect(self.stderr).toContain('an agent cannot evict itself')
    const unknown = await cli(['evict', '12D3KooWnotamember', ...at(A)])
    expect(unknown.code).toBe(2)

    const r = await cli(['evict', id(D), ...at(B)])
    expect(r.code, r.stderr).toBe(0)
    // Through the same flush as the silence timeout: A and C acknowledge it, three of four remain.
    expect(r.stdout).toMatch(/^proposed: it takes effect once every other member \(3\) has acknowledged it/m)
    expect(r.stdout).toMatch(/^proposal propose\/\S+: (open|done); follow it with: memgossip status$/m)
    await waitFor('after-d final without D', async () => (await json(['where', 'after-d', ...at(A)])).body.final === true, 20_000)
    const status = await json(['status', ...at(A)])
    expect(status.body.nodes.find((n: { id: string }) => n.id === id(D))).toMatchObject({ member: false })
    expect(status.body.capacity.members).toBe(3)
    const table = await cli(['status', ...at(A)])
    expect(table.stdout).toMatch(new RegExp(`^${id(D)}\\s.*evicted \\(not a member\\)`, 'm'))
  })
})

describe('the queue (docs/design.md "Bounds and the queue")', () => {
  it('a queued reservation waits with its position, and is admitted on every peer at the same point when another is released', async () => {
    // Fill node A's headroom, then queue a reservation pinned there.
    const nodes = (await getJson(`${A.api}/v1/nodes`)).nodes as Array<{ id: string, headroomBytes: number }>
    const room = nodes.find(n => n.id === id(A))!.headroomBytes
    expect((await cli(['reserve', 'q-hold', String(room), '--placement', `node:${id(A)}`, '--wait-final', ...at(A)])).code).toBe(0)
    const waiting = await cli(['reserve', 'q-wait', '1GiB', '--placement', `node:${id(A)}`, '--queue', '--queue-timeout', '10m', ...at(B)])
    expect(waiting.code, waiting.stderr).toBe(1)
    expect(waiting.stdout).toContain('q-wait: queued, runs nowhere')
    expect(waiting.stdout).toMatch(/queue: position 1 of 1, times out at \S+; waits for a release, a node growing or joining/)
    for (const agent of [A, B, C]) {
      await waitFor('q-wait queued everywhere', async () => (await json(['reservations', '--status', 'queued', ...at(agent)])).body.reservations.map((v: { id: string }) => v.id).join() === 'q-wait', 20_000)
    }
    const listed = await cli(['reservations', '--status', 'queued', ...at(C)])
    expect(listed.stdout).toMatch(/^q-wait\s+1\.00 GiB\s+queued\s+-\s+no\s+-\s+\S+\s+#1 of 1: queued: needs 1\.00 GiB on node /m)

    expect((await cli(['release', 'q-hold', ...at(A)])).code).toBe(0)
    const verdicts = await Promise.all([A, B, C].map(async agent => {
      await waitFor('q-wait admitted and final', async () => {
        const v = (await json(['where', 'q-wait', ...at(agent)])).body
        return v.status === 'admitted' && v.final === true
      }, 30_000)
      return (await json(['where', 'q-wait', ...at(agent)])).body
    }))
    const hold = (await json(['where', 'q-hold', ...at(A)])).body
    for (const v of verdicts) {
      expect(v).toMatchObject({ status: 'admitted', nodes: [id(A)], admittedHlc: hold.endedHlc, decidedHlc: hold.endedHlc })
    }
    expect((await cli(['release', 'q-wait', ...at(B)])).code).toBe(0)
  }, 90_000)
})
