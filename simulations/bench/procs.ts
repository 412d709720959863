/**
 * Child processes of the benchmark: memgossip agents (`memgossip agent`, run
 * the way `npm start` runs it: the bundle in dist/bundle/ with
 * `--max-semi-space-size=2 --v8-pool-size=1`; with the gossip probe, tsc's dist/ instead), Serf
 * agents, and one registry that stops every child and removes every temp dir
 * when the run ends, fails, or is interrupted (SIGINT/SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { SerfRpc } from './serf-rpc.ts'
import { REPO_ROOT, startAgentProcess } from '../support/agent-process.ts'
import { sleep } from '../support/wait.ts'

export { AGENT_NODE_FLAGS, REPO_ROOT } from '../support/agent-process.ts'
export const CLUSTER = 'bench'
/** Each benchmark agent pretends to have this much memory (`--fake-memory`). */
export const FAKE_MEMORY = '64GiB'

// ------------------------------------------------------------ registry

/** Everything started by one run, stopped by `cleanup()` (idempotent). */
export class Registry {
  private readonly children = new Set<ChildProcess>()
  private readonly dirs = new Set<string>()
  private readonly closers = new Set<() => void | Promise<void>>()
  private cleaning?: Promise<void>

  track (child: ChildProcess): void {
    this.children.add(child)
    child.once('exit', () => { this.children.delete(child) })
  }

  async tempDir (prefix: string): Promise<string> {
    // Short paths: the agent's data-dir lock is a Unix socket (≤ 100 bytes).
    const dir = await mkdtemp(join(tmpdir(), prefix))
    this.dirs.add(dir)
    return dir
  }

  onCleanup (fn: () => void | Promise<void>): () => void {
    this.closers.add(fn)
    return () => { this.closers.delete(fn) }
  }

  get running (): number {
    return this.children.size
  }

  async stopChild (child: ChildProcess, graceMs = 3000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise<void>(resolve => { child.once('exit', () => resolve()) })
    child.kill('SIGTERM')
    const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
    await exited
    clearTimeout(timer)
  }

  async cleanup (): Promise<void> {
    this.cleaning ??= (async () => {
      for (const fn of [...this.closers]) {
        try { await fn() } catch {}
      }
      await Promise.all([...this.children].map(async c => { await this.stopChild(c) }))
      await Promise.all([...this.dirs].map(async d => { await rm(d, { recursive: true, force: true }).catch(() => {}) }))
    })()
    await this.cleaning
  }
}

/** Keep the last lines of a stream, for error messages. */
function tail (stream: NodeJS.ReadableStream, lines: string[], max = 30, onLine?: (line: string) => void): void {
  const rl = createInterface({ input: stream, crlfDelay: Infinity })
  rl.on('line', line => {
    onLine?.(line)
    lines.push(line)
    if (lines.length > max) lines.shift()
  })
}

/** A TCP port that was free a moment ago (also used for Serf's UDP, which binds the same number). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

// ------------------------------------------------------------ memgossip

export interface MemgossipProc {
  index: number
  pid: number
  peerId: string
  api: string
  apiPort: number
  multiaddrs: string[]
  dataDir: string
  child: ChildProcess
  log: string[]
}

export interface MemgossipStart {
  registry: Registry
  index: number
  dataDir: string
  bootstrap?: string[]
  /** Extra `memgossip agent` flags (the benchmark passes none beyond the ones documented in run.ts). */
  extraArgs?: string[]
  /** Preload the gossip probe (simulations/bench/gossip-probe.ts) to count gossipsub receptions. */
  probe?: boolean
  /** Run the bundle (default) or tsc's unbundled dist/ (always with the gossip probe; for CPU profiles with the sources' names). */
  from?: 'bundle' | 'dist'
  /** Preload the GC probe (simulations/reliability/gc-probe.ts): memory after a full collection, on SIGUSR2, into this file. */
  gcProbe?: string
  /** Extra node flags placed before the loader (e.g. `--cpu-prof`). */
  nodeArgs?: string[]
  timeoutMs?: number
}

const DIST = join(REPO_ROOT, 'dist')

let built: Promise<void> | undefined
/** `npm run build` (tsc, then tools/bundle.mjs), once per run, before any agent starts. */
export async function buildAgent (): Promise<void> {
  built ??= new Promise<void>((resolve, reject) => {
    const child = spawn('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.once('error', reject)
    child.once('exit', (code) => { code === 0 ? resolve() : reject(new Error(`npm run build failed (${code}):\n${out.slice(-2000)}`)) })
  })
  await built
}

/**
 * `memgossip agent --local-cluster --fake-memory 64GiB` on random loopback
 * ports, run as `node --max-semi-space-size=2 --v8-pool-size=1 dist/bundle/main.js agent …`
 * (what `npm start` runs; without npm, so the pid is the agent's), or from
 * tsc's `dist/cli/main.js` when the gossip probe is preloaded (it patches
 * gossipsub's module, which the bundle holds its own copy of), through the one
 * launcher (simulations/support/agent-process.ts). Resolves once it wrote its
 * `<data-dir>/agent.json`.
 */
export async function startMemgossip (options: MemgossipStart): Promise<MemgossipProc> {
  await buildAgent()
  const probeFile = join(options.dataDir, 'gossip-probe.json')
  const started = startAgentProcess({
    dataDir: options.dataDir,
    from: options.probe === true ? 'dist' : options.from ?? 'bundle',
    cluster: CLUSTER,
    fakeMemory: FAKE_MEMORY,
    heartbeatInterval: null,
    bootstrap: options.bootstrap,
    extraArgs: options.extraArgs,
    nodeArgs: [
      ...(options.nodeArgs ?? []),
      ...(options.probe === true ? ['--import', join(DIST, 'simulations/bench/gossip-probe.js')] : []),
      ...(options.gcProbe !== undefined ? ['--expose-gc', '--import', join(DIST, 'simulations/reliability/gc-probe.js')] : [])
    ],
    env: { MEMGOSSIP_BENCH_PROBE: options.probe === true ? probeFile : '', MEMGOSSIP_GC_PROBE: options.gcProbe ?? '' },
    keepLines: 30,
    timeoutMs: options.timeoutMs ?? 60_000,
    onSpawn: child => { options.registry.track(child) }
  })
  const agent = await started.catch((error: unknown) => {
    throw new Error(`memgossip agent ${options.index}: ${(error as Error).message}`)
  })
  return {
    index: options.index,
    pid: agent.pid,
    peerId: agent.info.peerId,
    api: agent.api,
    apiPort: Number(new URL(agent.api).port),
    multiaddrs: agent.multiaddrs,
    dataDir: options.dataDir,
    child: agent.child,
    log: agent.log
  }
}

// ------------------------------------------------------------ Serf

/** Whether `serf` is on PATH; installs it with apt-get when root and allowed. */
export async function ensureSerf (options: { install: boolean, log: (line: string) => void }): Promise<{ path?: string, version?: string, note: string }> {
  const find = (): string | undefined => (process.env.PATH ?? '').split(':').map(d => join(d, 'serf')).find(p => existsSync(p))
  let path = find()
  if (path === undefined && options.install && process.getuid?.() === 0) {
    options.log('serf not found: installing it (apt-get install -y serf)…')
    const code = await run('apt-get', ['install', '-y', 'serf'], options.log)
    if (code !== 0) {
      options.log('apt-get install failed; trying apt-get update first…')
      await run('apt-get', ['update'], options.log)
      await run('apt-get', ['install', '-y', 'serf'], options.log)
    }
    path = find()
  }
  if (path === undefined) {
    return { note: process.getuid?.() === 0 || !options.install ? 'serf is not installed (not installing it in this mode): Serf comparison skipped' : 'serf is not installed and this run is not root (cannot apt-get install serf): Serf comparison skipped' }
  }
  let version = ''
  await run(path, ['version'], line => { if (version === '') version = line.trim() })
  return { path, version, note: `serf ${version} at ${path}` }
}

async function run (command: string, args: string[], onLine: (line: string) => void): Promise<number> {
  return await new Promise(resolve => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    tail(child.stdout!, [], 1, onLine)
    tail(child.stderr!, [], 1, onLine)
    child.once('error', () => resolve(127))
    child.once('exit', code => resolve(code ?? 1))
  })
}

export interface SerfProc {
  index: number
  name: string
  pid: number
  bind: string
  rpcAddr: string
  child: ChildProcess
  rpc: SerfRpc
  statsd: StatsdSink
  log: string[]
  /** Called for every log line the agent prints, with the time it was read. */
  onLine?: (line: string, at: number) => void
}

/**
 * A statsd receiver for one Serf agent (`statsd_addr` in its config): Serf's
 * memberlist counts the bytes of every UDP packet it sends and receives and
 * of every TCP push/pull it sends (`memberlist.udp.sent`, `.udp.received`,
 * `.tcp.sent`); go-metrics' statsd sink sends one line per increment, so the
 * number of lines is the number of packets.
 */
export class StatsdSink {
  readonly totals = new Map<string, number>()
  readonly counts = new Map<string, number>()
  private constructor (readonly socket: UdpSocket, readonly port: number) {
    socket.on('message', (msg) => {
      for (const line of msg.toString('utf8').split('\n')) {
        const m = /^([^:]+):([-\d.e+]+)\|c/.exec(line)
        if (m === null) continue
        const key = m[1].replace(/^serf-agent\./, '')
        this.totals.set(key, (this.totals.get(key) ?? 0) + Number(m[2]))
        this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
      }
    })
  }

  static async open (): Promise<StatsdSink> {
    const socket = createSocket('udp4')
    await new Promise<void>((resolve, reject) => { socket.once('error', reject); socket.bind(0, '127.0.0.1', () => resolve()) })
    return new StatsdSink(socket, socket.address().port)
  }

  snapshot (): { totals: Record<string, number>, counts: Record<string, number> } {
    return { totals: Object.fromEntries(this.totals), counts: Object.fromEntries(this.counts) }
  }

  close (): void {
    try { this.socket.close() } catch {}
  }
}

export interface SerfStart {
  registry: Registry
  serfPath: string
  index: number
  dir: string
  join?: string
  logLevel?: 'info' | 'err'
  timeoutMs?: number
}

/**
 * `serf agent` with its defaults (LAN profile, no snapshot, no encryption) on
 * loopback ports, logging at `info` so the benchmark sees when an event or a
 * member update arrives. Only what the benchmark needs is added: the node
 * name, bind and RPC addresses, `-join`, and a `statsd_addr` to read its
 * traffic counters.
 */
export async function startSerf (options: SerfStart): Promise<SerfProc> {
  // freePort() finds a port free now; with 50 agents of each kind starting,
  // another process can take it before Serf binds. Then pick again.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSerfOnce(options)
    } catch (error) {
      if (attempt >= 3 || !(error as Error).message.includes('address already in use')) throw error
    }
  }
}

async function startSerfOnce (options: SerfStart): Promise<SerfProc> {
  const bindPort = await freePort()
  const rpcPort = await freePort()
  const statsd = await StatsdSink.open()
  const name = `serf${options.index}`
  const config = join(options.dir, `${name}.json`)
  await writeFile(config, JSON.stringify({ statsd_addr: `127.0.0.1:${statsd.port}` }))
  const args = [
    'agent',
    `-node=${name}`,
    `-bind=127.0.0.1:${bindPort}`,
    `-rpc-addr=127.0.0.1:${rpcPort}`,
    `-log-level=${options.logLevel ?? 'info'}`,
    `-config-file=${config}`,
    ...(options.join !== undefined ? [`-join=${options.join}`] : [])
  ]
  const child = spawn(options.serfPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  options.registry.track(child)
  const log: string[] = []
  const proc: Partial<SerfProc> = { index: options.index, name, bind: `127.0.0.1:${bindPort}`, rpcAddr: `127.0.0.1:${rpcPort}`, child, statsd, log }
  tail(child.stderr!, log)
  const running = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`serf agent ${name} did not start:\n${log.join('\n')}`)) }, options.timeoutMs ?? 20_000)
    tail(child.stdout!, log, 30, line => {
      const at = performance.now()
      if (line.includes('Serf agent running!')) { clearTimeout(timer); resolve() }
      proc.onLine?.(line, at)
    })
    child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`serf agent ${name} exited (${code ?? signal}):\n${log.join('\n')}`)) })
  })
  options.registry.onCleanup(() => { statsd.close() })
  await running
  proc.pid = child.pid!
  // The RPC listener is up once the agent says it is running; retry briefly anyway.
  for (let attempt = 0; ; attempt++) {
    try {
      proc.rpc = await SerfRpc.connect(proc.rpcAddr!)
      break
    } catch (error) {
      if (attempt >= 20) throw error
      await sleep(100)
    }
  }
  const rpc = proc.rpc
  options.registry.onCleanup(() => { rpc.close() })
  return proc as SerfProc
}
