/**
 * The README as a test: the walkthrough's ```sh blocks run, as written, with
 * bash in a scratch directory that looks like a checkout (symlinks to the
 * repository), and their output is checked block by block. The fixed ports of
 * the walkthrough are used when they are free and replaced by free ones only
 * when something else holds them. The Quick start's `npm start` runs with its
 * defaults when ports 7646/7647 are free.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cli, freePort, killGroup, portIsFree, REPO, tempDir, waitFor } from './procs.ts'

const WALKTHROUGH_HEADING = '## A three-agent cluster on one host'
const WALKTHROUGH_PORTS = [7701, 7702, 7703, 7711, 7712, 7713]

/** The ```sh blocks of one `## ` section of README.md, in order. */
export function shellBlocks (readme: string, heading: string): string[] {
  const start = readme.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`README.md has no section '${heading}'`)
  const rest = readme.slice(start + heading.length + 2)
  const end = rest.search(/\n## /)
  const section = end < 0 ? rest : rest.slice(0, end)
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map(m => m[1])
}

const cleanups: Array<() => Promise<void>> = []
afterAll(async () => { for (const c of cleanups.reverse()) await c() })

/** A scratch directory that looks like a checkout: the README's relative paths work there. */
async function checkoutLikeDir (): Promise<string> {
  const dir = await tempDir('memgossip-readme-')
  for (const entry of ['package.json', 'node_modules', 'cli', 'agent', 'crdt', 'simulations', 'tsconfig.json']) {
    await symlink(join(REPO, entry), join(dir, entry))
  }
  await mkdir(join(dir, '.memgossip'))
  cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

function runBash (script: string, cwd: string, timeoutMs: number): Promise<{ code: number | null, stdout: string, stderr: string, proc: ChildProcess }> {
  const env: Record<string, string | undefined> = { ...process.env, MEMGOSSIP_API: undefined, MEMGOSSIP_TOKEN: undefined }
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k]
  // Own process group: the agents the script starts in the background are ours to stop.
  const proc = spawn('bash', ['-c', script], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: env as NodeJS.ProcessEnv })
  cleanups.push(async () => { killGroup(proc.pid, 'SIGKILL') })
  let stdout = ''
  let stderr = ''
  proc.stdout!.on('data', (d: Buffer) => { stdout += d.toString() })
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => killGroup(proc.pid, 'SIGKILL'), timeoutMs)
  return new Promise(resolve => proc.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, proc }) }))
}

/** Output split at the `@@block N` markers the test puts between blocks. */
function byBlock (text: string, n: number): string[] {
  const parts: string[] = Array.from({ length: n }, () => '')
  let current = -1
  for (const line of text.split('\n')) {
    const m = /^@@block (\d+)$/.exec(line)
    if (m !== null) { current = Number(m[1]); continue }
    if (current >= 0) parts[current] += line + '\n'
  }
  return parts
}

describe('README.md', () => {
  it.concurrent('the three-agent walkthrough runs as written and prints what the text says', async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8')
    const blocks = shellBlocks(readme, WALKTHROUGH_HEADING)
    expect(blocks.length).toBe(9)
    const free = await Promise.all(WALKTHROUGH_PORTS.map(portIsFree))
    const ports = free.every(Boolean) ? WALKTHROUGH_PORTS : await Promise.all(WALKTHROUGH_PORTS.map(async () => await freePort()))
    if (!free.every(Boolean)) console.log(`walkthrough ports ${WALKTHROUGH_PORTS.join(',')} are in use here; running with ${ports.join(',')}`)
    const substitute = (text: string): string => WALKTHROUGH_PORTS.reduce((t, p, i) => t.replace(new RegExp(`\\b${p}\\b`, 'g'), String(ports[i])), text)
    const script = blocks.map((b, i) => `echo "@@block ${i}"; echo "@@block ${i}" >&2; echo "@@time ${i} $(date +%s%3N)" >&2\n${substitute(b)}`).join('\n')
    const cwd = await checkoutLikeDir()
    const started = Date.now()
    const { code, stdout, stderr } = await runBash(script, cwd, 120_000)
    const out = byBlock(stdout, blocks.length)
    const err = byBlock(stderr, blocks.length)
    const context = `\n--- stdout\n${stdout}\n--- stderr\n${stderr}`
    const times = [...stderr.matchAll(/^@@time (\d+) (\d+)$/gm)].map(m => Number(m[2]))
    console.log(`README walkthrough ran in ${Date.now() - started} ms; per block: ${times.map((t, i) => (times[i + 1] ?? Date.now()) - t).join(', ')} ms`)
    expect(code, context).toBe(0)
    const api = (i: number): string => `http://127.0.0.1:${ports[3 + i]}`

    // keygen
    expect(await readFile(join(cwd, '.memgossip/demo/cluster.key'), 'utf8')).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}/)
    // first agent, its bootstrap address
    expect(out[1], context).toMatch(new RegExp(`^bootstrap address: /ip4/127\\.0\\.0\\.1/tcp/${ports[0]}/p2p/12D3KooW\\w+$`, 'm'))
    // The jq line the text offers instead of `node -p` gives the same address (when jq is installed).
    const jq = spawnSync('jq', ['-r', '.multiaddrs[0]', '.memgossip/demo/a/agent.json'], { cwd, encoding: 'utf8' })
    if (jq.error === undefined) expect(`bootstrap address: ${jq.stdout.trim()}`).toBe(out[1].trim())
    // two more agents, all see three nodes
    expect(out[2]).toContain('three nodes are up')
    // fit: 3 GiB fits, 9 GiB never can (NeverFits), with the histogram and exit 1
    expect(out[3]).toContain('fits: 3.00 GiB, placement any')
    expect(out[3]).toContain('3/3 nodes fit')
    expect(out[3]).toContain('never fits: 9.00 GiB, placement any')
    expect(out[3]).toContain("never fits: needs 9.00 GiB, more than any member's allocatable memory (largest: 7.60 GiB on node ")
    expect(out[3]).toContain('0/3 nodes fit: 3 InsufficientMemory')
    expect(out[3]).toContain('exit code: 1')
    // the race: exactly one of y and z is admitted, and both peers say the same about y
    const table = out[5].split('\n')
    const y = table.find(l => /^y\s+5\.00 GiB/.test(l))
    const z = table.find(l => /^z\s+4\.00 GiB/.test(l))
    const statuses = [y, z].map(l => l === undefined ? 'not written' : l.split(/\s{2,}/)[2])
    expect(statuses.filter(s => s === 'admitted'), context).toHaveLength(1)
    expect(statuses.filter(s => s === 'not written').length).toBeLessThan(2)
    if (y === undefined) {
      // B had heard of z before y's request: it refused to write y, and neither peer knows a y.
      expect(out[4]).toContain('rejected: y was not written')
      expect(err[5]).toContain(`no reservation 'y' (as ${api(1)} sees it)`)
      expect(err[5]).toContain(`no reservation 'y' (as ${api(2)} sees it)`)
    } else {
      // The verdict block of each `where y` (its indented lines), minus finality, which is per peer.
      const where = out[5].split(/(?=^y: )/m).filter(s => s.startsWith('y: '))
        .map(s => s.split('\n').filter((l, i) => i === 0 || l.startsWith('  ')).filter(l => !l.includes('verdict: ')).join('\n'))
      expect(where, context).toHaveLength(2)
      expect(where[0]).toBe(where[1])
      const peerA = JSON.parse(await readFile(join(cwd, '.memgossip/demo/a/agent.json'), 'utf8')).peerId as string
      expect(where[0].split('\n')[0]).toBe(statuses[0] === 'admitted' ? `y: admitted on ${peerA}` : 'y: rejected, runs nowhere')
    }
    if (y !== undefined && z !== undefined) {
      // Both were written: the loser names the winner.
      const [winner, loser] = statuses[0] === 'admitted' ? ['y', z] : ['z', y]
      expect(loser).toContain(`rejected: lost to '${winner}'`)
    }
    // status after the race: three 8 GiB nodes, 7.60 GiB allocatable each, the winner's memory committed; then the rent
    const nodeRows = out[6].split('\n').filter(l => l.startsWith('12D3KooW'))
    expect(nodeRows, context).toHaveLength(3)
    for (const row of nodeRows) expect(row).toMatch(/8\.00 GiB\s+7\.60 GiB\s+.+\s+8\.00 GiB\s+active\s+(self|alive)/)
    expect(out[6]).toContain('3 member(s)')
    expect(out[6]).toMatch(/totals: total 24\.00 GiB, allocatable 22\.80 GiB, committed [45]\.00 GiB/)
    expect(out[6]).toContain('alerts: none')
    expect(out[6]).toMatch(/^TOTAL\s+\d+\s+\d+\.\d{4}\s+\d+\.\d{4}$/m)
    expect(out[6]).toContain('at 0.01 per GiB-hour')
    // a bad size: exit 2, the accepted forms
    expect(out[7]).toContain('exit code: 2')
    expect(err[7]).toContain("unknown unit 'XB' in '12XB'; accepted:")
    // stopped: exit 3 naming the URL
    expect(out[8]).toContain('exit code: 3')
    expect(err[8]).toContain(`cannot reach the memgossip agent at ${api(0)}`)
    expect(err[8]).toContain('npm start')
  }, 150_000)

  it.concurrent('Quick start: `npm start` runs an agent with the defaults, and `npx tsx cli/main.ts status` finds it', async () => {
    if (!(await portIsFree(7646)) || !(await portIsFree(7647))) {
      console.log('ports 7646/7647 are in use on this machine: the defaults cannot be exercised here')
      return
    }
    const state = await tempDir('memgossip-xdg-')
    cleanups.push(async () => { await rm(state, { recursive: true, force: true }) })
    const env: Record<string, string | undefined> = { ...process.env, XDG_STATE_HOME: state, MEMGOSSIP_API: undefined }
    delete env.MEMGOSSIP_API
    const proc = spawn('npm', ['start'], { cwd: REPO, detached: true, stdio: 'ignore', env: env as NodeJS.ProcessEnv })
    const exited = new Promise(resolve => proc.once('exit', resolve))
    cleanups.push(async () => { killGroup(proc.pid, 'SIGTERM'); await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 5000))]); killGroup(proc.pid, 'SIGKILL') })
    const info = join(state, 'memgossip', 'agent.json')
    await waitFor('agent.json under $XDG_STATE_HOME/memgossip', async () => await readFile(info).then(() => true, () => false), 45_000)
    const json = JSON.parse(await readFile(info, 'utf8'))
    expect(json.api).toBe('http://127.0.0.1:7647')
    expect(json.multiaddrs[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/7646\/p2p\//)
    const status = await new Promise<{ code: number | null, stdout: string }>(resolve => {
      const p = spawn('bash', ['-c', 'npx tsx cli/main.ts status'], { cwd: REPO, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'ignore'] })
      let stdout = ''
      p.stdout!.on('data', (d: Buffer) => { stdout += d.toString() })
      p.once('close', code => resolve({ code, stdout }))
    })
    expect(status.code).toBe(0)
    expect(status.stdout).toContain(json.peerId)
    expect(status.stdout).toContain("cluster 'default'")
    expect(status.stdout).toContain('1 member(s)')
    // `npm run memgossip -- <command>` is the same CLI.
    const viaNpm = await new Promise<{ code: number | null, stdout: string }>(resolve => {
      const p = spawn('npm', ['run', '--silent', 'memgossip', '--', 'fit', '1MiB', '--json'], { cwd: REPO, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'ignore'] })
      let stdout = ''
      p.stdout!.on('data', (d: Buffer) => { stdout += d.toString() })
      p.once('close', code => resolve({ code, stdout }))
    })
    expect(viaNpm.code).toBe(0)
    expect(JSON.parse(viaNpm.stdout)).toMatchObject({ fits: true, bytes: 1024 ** 2, nodes: [json.peerId] })
    killGroup(proc.pid, 'SIGTERM')
    await exited
  }, 90_000)

  it('every command named in the README has --help with an example', async () => {
    for (const command of ['agent', 'keygen', 'status', 'fit', 'reserve', 'release', 'reservations', 'where', 'watch', 'rent', 'evict']) {
      const r = await cli([command, '--help'])
      expect(r.code, command).toBe(0)
      expect(r.stdout, command).toMatch(/Usage: memgossip/)
      if (!['keygen'].includes(command)) expect(r.stdout, command).toMatch(/Example/)
    }
  })
})

