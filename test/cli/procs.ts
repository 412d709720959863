/**
 * Helpers for the end-to-end CLI suites: real agents as child processes
 * (`npx tsx cli/main.ts agent …`, each in its own process group so stopping it
 * also stops the npx/tsx wrappers), the CLI in-process (fast) or as a process
 * (real exit codes, signals).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { main, type Io } from '../../cli/main.ts'

export const REPO = resolve(import.meta.dirname, '../..')
export const GiB = 1024 ** 3

export interface AgentJson { peerId: string, multiaddrs: string[], api: string, dataDir: string, cluster: string, clusterKey: boolean, pid: number }

export interface ChildAgent {
  proc: ChildProcess
  dataDir: string
  info: AgentJson
  api: string
  log: string
  exited: Promise<number | null>
  stop: (signal?: NodeJS.Signals) => Promise<void>
}

export async function tempDir (prefix = 'memgossip-cli-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix))
}

/** Kill a process group we started (detached child), ignoring one that is already gone. */
export function killGroup (pid: number | undefined, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (pid === undefined) return
  try { process.kill(-pid, signal) } catch {}
}

/**
 * Start `npx tsx cli/main.ts agent` with the test defaults and `extra` flags;
 * resolves once `<data-dir>/agent.json` appears (the API is then listening).
 * `env` adds to (or overrides) this process's environment for the child, e.g.
 * `LD_PRELOAD`/`FAKETIME` to run it under libfaketime.
 */
export async function startChildAgent (extra: string[] = [], options: { dataDir?: string, fakeMemory?: string, cluster?: string, env?: Record<string, string> } = {}): Promise<ChildAgent> {
  const dataDir = options.dataDir ?? await tempDir('memgossip-agent-')
  const log = `${dataDir}.log`
  const args = ['tsx', 'cli/main.ts', 'agent', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0',
    '--local-cluster', '--cluster', options.cluster ?? 'test', '--fake-memory', options.fakeMemory ?? '8GiB', '--heartbeat-interval', '1s', ...extra]
  const out = createWriteStream(log)
  const proc = spawn('npx', args, { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...options.env } })
  proc.stdout!.pipe(out)
  proc.stderr!.pipe(out)
  const exited = new Promise<number | null>(resolve => proc.once('exit', (code) => resolve(code)))
  let gone = false
  void exited.then(() => { gone = true })
  const deadline = Date.now() + 45_000
  let info: AgentJson | undefined
  while (info === undefined) {
    if (gone) throw new Error(`agent exited before writing agent.json; log ${log}:\n${await readFile(log, 'utf8').catch(() => '')}`)
    if (Date.now() > deadline) {
      killGroup(proc.pid, 'SIGKILL')
      throw new Error(`agent did not write agent.json within 45 s; log ${log}`)
    }
    try { info = JSON.parse(await readFile(join(dataDir, 'agent.json'), 'utf8')) as AgentJson } catch {}
    if (info === undefined) await sleep(100)
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (gone) return
    killGroup(proc.pid, signal)
    const timer = setTimeout(() => killGroup(proc.pid, 'SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
  return { proc, dataDir, info, api: info.api, log, exited, stop }
}

export async function stopAgents (agents: ChildAgent[], removeData = true): Promise<void> {
  await Promise.all(agents.map(async a => { await a.stop() }))
  if (removeData) {
    await Promise.all(agents.map(async a => {
      await rm(a.dataDir, { recursive: true, force: true })
      await rm(a.log, { force: true })
    }))
  }
}

export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export async function waitFor (what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 30_000, stepMs = 100): Promise<number> {
  const start = Date.now()
  while (Date.now() - start < timeoutMs) {
    if (await predicate()) return Date.now() - start
    await sleep(stepMs)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

export async function getJson (url: string, token?: string): Promise<any> {
  const response = await fetch(url, { headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} })
  return await response.json()
}

export interface CliResult { code: number, stdout: string, stderr: string }

/** The CLI in this process (no spawn): `main()` with captured output. */
export async function cli (argv: string[], options: { env?: Record<string, string | undefined>, isTTY?: boolean, signal?: AbortSignal, onStdout?: (s: string) => void } = {}): Promise<CliResult> {
  let stdout = ''
  let stderr = ''
  const io: Io = {
    stdout: (s) => { stdout += s; options.onStdout?.(s) },
    stderr: (s) => { stderr += s },
    env: options.env ?? {},
    isTTY: options.isTTY ?? false,
    signal: options.signal
  }
  const code = await main(argv, io)
  return { code, stdout, stderr }
}

/** The CLI as a real process (`node --import tsx cli/main.ts`, or `node cli/bin.js`): real exit codes and signals. */
export function spawnCli (argv: string[], options: { env?: Record<string, string | undefined>, entry?: string, nodeArgs?: string[] } = {}): { proc: ChildProcess, done: Promise<CliResult> } {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', MEMGOSSIP_API: undefined, MEMGOSSIP_TOKEN: undefined, ...options.env }
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k]
  const entry = options.entry ?? 'cli/main.ts'
  // cli/bin.js (what `npm link` installs) registers tsx itself.
  const nodeArgs = [...(options.nodeArgs ?? []), ...(entry.endsWith('.js') ? [entry] : ['--import', 'tsx', entry])]
  const proc = spawn(process.execPath, [...nodeArgs, ...argv], { cwd: REPO, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout!.on('data', (d: Buffer) => { stdout += d.toString() })
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const done = new Promise<CliResult>(resolve => proc.once('close', (code, signal) => resolve({ code: code ?? (signal !== null ? 128 : -1), stdout, stderr })))
  return { proc, done }
}

export async function runCli (argv: string[], options: { env?: Record<string, string | undefined>, entry?: string, nodeArgs?: string[] } = {}): Promise<CliResult> {
  return await spawnCli(argv, options).done
}

/** A TCP port nobody listens on right now (bound, then released). */
export { freePort } from '../../simulations/bench/procs.ts'

/** True when nothing listens on 127.0.0.1:port and we may bind it. */
export async function portIsFree (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}
