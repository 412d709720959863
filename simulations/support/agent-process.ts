/**
 * `memgossip agent` as a child process, the way an operator starts it: the one
 * launcher of the benchmark, the crash loop and the end-to-end tests.
 *
 * Three ways to run the same command: `source` runs `cli/main.ts` through tsx
 * (no build needed); `bundle` runs `dist/bundle/main.js`, what `npm start`
 * runs, with its V8 flags; `dist` runs tsc's `dist/cli/main.js` the same way,
 * one module per source file (for preloads that patch a dependency's module,
 * which the bundle has its own copy of). Both need `npm run build` first
 * (simulations/bench/procs.ts runs it). Either way the child is `node` itself — no npx or npm wrapper — so its
 * pid is the agent's pid, `kill` reaches the agent, and readiness is decided by
 * `<data-dir>/agent.json` naming that pid (a stale file from a killed run names
 * a dead one and is never taken for a fresh start).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import type { AgentInfo } from '../../agent/daemon.ts'
import { AgentStartError } from './errors.ts'
import { sleep } from './wait.ts'

export { AgentStartError } from './errors.ts'

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..')

/** What `npm start` runs (tools/bundle.mjs). */
export const BUNDLE_ENTRY = join(REPO_ROOT, 'dist', 'bundle', 'main.js')

/**
 * What `npm start` runs the agent with: a small V8 young generation, and one
 * V8 worker thread (fewer threads, fewer malloc arenas kept: about 5 MB of an
 * idle agent's RSS; docs/decisions.md "The agent runs from a bundle").
 */
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=2', '--v8-pool-size=1']

export interface AgentProcessStart {
  dataDir: string
  /** `source`: `node --import tsx cli/main.ts` (default); `bundle`: `node` with {@link AGENT_NODE_FLAGS} on `dist/bundle/main.js`; `dist`: the same with `dist/cli/main.js`. */
  from?: 'source' | 'dist' | 'bundle'
  /** With `bundle` or `dist`: the script to run instead of the built one (a bundle built elsewhere by tools/bundle.mjs). */
  entry?: string
  /** `--cluster` (default `test`). */
  cluster?: string
  /** `--fake-memory` (default `8GiB`). */
  fakeMemory?: string
  /** `--heartbeat-interval`, or `null` for the agent's own default (default `1s`). */
  heartbeatInterval?: string | null
  bootstrap?: string[]
  /** More `memgossip agent` flags, after the ones above. */
  extraArgs?: string[]
  /** With `bundle` or `dist`: the V8 flags in place of {@link AGENT_NODE_FLAGS} (to compare settings). */
  agentNodeFlags?: string[]
  /** Node flags placed before the entry point (e.g. `--cpu-prof`, `--import <preload>`). */
  nodeArgs?: string[]
  /** Added to (or overriding) this process's environment for the child. */
  env?: Record<string, string>
  /** Also wait until `GET /healthz` answers 200 (default: agent.json, written once the API listens, is enough). */
  healthy?: boolean
  /** Copy the child's stdout and stderr to this file. */
  logFile?: string
  /** How many of the last stderr lines to keep in `log` (default 2000). */
  keepLines?: number
  /** Default 45 s. */
  timeoutMs?: number
  /** Called with the child as soon as it is spawned (e.g. to register it for clean-up on an interrupt). */
  onSpawn?: (child: ChildProcess) => void
}

export interface AgentProcess {
  child: ChildProcess
  pid: number
  dataDir: string
  /** What the agent wrote to `<data-dir>/agent.json`. */
  info: AgentInfo
  api: string
  multiaddrs: string[]
  /** The last lines the agent wrote to stderr. */
  log: string[]
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Whether the child has exited. */
  readonly gone: boolean
  /** `signal` (default SIGTERM), then SIGKILL after `graceMs` (default 5 s); resolves once it exited. */
  stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<void>
}

/** The `memgossip agent` command line for `options`, without the node executable. */
export function agentCommand (options: AgentProcessStart): string[] {
  const from = options.from ?? 'source'
  const entry = from === 'source'
    ? [...(options.nodeArgs ?? []), '--import', 'tsx', join(REPO_ROOT, 'cli', 'main.ts')]
    : [...(options.agentNodeFlags ?? AGENT_NODE_FLAGS), ...(options.nodeArgs ?? []), options.entry ?? (from === 'bundle' ? BUNDLE_ENTRY : join(REPO_ROOT, 'dist', 'cli', 'main.js'))]
  const heartbeat = options.heartbeatInterval === undefined ? '1s' : options.heartbeatInterval
  return [
    ...entry, 'agent',
    '--data-dir', options.dataDir,
    '--listen', '/ip4/127.0.0.1/tcp/0',
    '--api', '127.0.0.1:0',
    '--local-cluster',
    '--cluster', options.cluster ?? 'test',
    '--fake-memory', options.fakeMemory ?? '8GiB',
    ...(heartbeat !== null ? ['--heartbeat-interval', heartbeat] : []),
    ...(options.bootstrap ?? []).flatMap(b => ['--bootstrap', b]),
    ...(options.extraArgs ?? [])
  ]
}

/** Start one agent; resolves once its agent.json names its pid (and, with `healthy`, /healthz answers 200). */
export async function startAgentProcess (options: AgentProcessStart): Promise<AgentProcess> {
  const timeoutMs = options.timeoutMs ?? 45_000
  const keep = options.keepLines ?? 2000
  // A stale agent.json from a killed run names a dead API: never read it.
  await rm(join(options.dataDir, 'agent.json'), { force: true })
  const child = spawn(process.execPath, agentCommand(options), {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...options.env }
  })
  options.onSpawn?.(child)
  const log: string[] = []
  if (options.logFile !== undefined) {
    const out = createWriteStream(options.logFile)
    child.stdout!.pipe(out)
    child.stderr!.pipe(out)
  } else {
    child.stdout!.resume()
  }
  createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', line => {
    log.push(line)
    if (log.length > keep) log.splice(0, log.length - keep)
  })
  let gone = false
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.once('exit', (code, signal) => { gone = true; resolve({ code, signal }) })
  })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> => {
    if (gone) return
    child.kill(signal)
    const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
    await exited
    clearTimeout(timer)
  }
  const lastLines = (): string => log.slice(-15).map(l => `  ${l}`).join('\n')
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (gone) {
      const { code, signal } = await exited
      throw new AgentStartError(`agent in ${options.dataDir} exited (${code ?? signal}) before it was ready:\n${lastLines()}`)
    }
    const info = await readInfo(options.dataDir)
    if (info !== undefined && info.pid === child.pid && (options.healthy !== true || await answers(`${info.api}/healthz`))) {
      return {
        child,
        pid: child.pid,
        dataDir: options.dataDir,
        info,
        api: info.api,
        multiaddrs: info.multiaddrs,
        log,
        exited,
        get gone () { return gone },
        stop
      }
    }
    await sleep(50)
  }
  await stop('SIGKILL')
  throw new AgentStartError(`agent in ${options.dataDir} was not ready within ${timeoutMs} ms:\n${lastLines()}`)
}

async function readInfo (dataDir: string): Promise<AgentInfo | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, 'agent.json'), 'utf8')) as AgentInfo
  } catch {
    // Not written yet, or caught half-written.
    return undefined
  }
}

async function answers (url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
    await response.arrayBuffer()
    return response.status === 200
  } catch {
    return false
  }
}
