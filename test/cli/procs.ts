/**
 * Helpers for the end-to-end CLI suites: real agents as child processes
 * (`node --import tsx cli/main.ts agent …`, through the shared launcher), the
 * CLI in-process (fast) or as a process (real exit codes, signals).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { main, type Io } from '../../cli/main.ts'
import { startAgentProcess } from '../../simulations/support/agent-process.ts'
import { httpJson } from '../../simulations/support/http.ts'
import { sleep, waitFor as waitForShared } from '../../simulations/support/wait.ts'
import type { AgentInfo } from '../../agent/daemon.ts'

export const REPO = resolve(import.meta.dirname, '../..')
export const GiB = 1024 ** 3

export type AgentJson = AgentInfo

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
 * Start `memgossip agent` from the sources (the shared launcher,
 * simulations/support/agent-process.ts) with the test defaults and `extra`
 * flags; resolves once `<data-dir>/agent.json` names its pid (the API is then
 * listening). Its stdout and stderr go to `<data-dir>.log`. `env` adds to (or
 * overrides) this process's environment for the child, e.g.
 * `LD_PRELOAD`/`FAKETIME` to run it under libfaketime.
 */
export async function startChildAgent (extra: string[] = [], options: { dataDir?: string, fakeMemory?: string, cluster?: string, env?: Record<string, string> } = {}): Promise<ChildAgent> {
  const dataDir = options.dataDir ?? await tempDir('memgossip-agent-')
  const log = `${dataDir}.log`
  const agent = await startAgentProcess({ dataDir, cluster: options.cluster, fakeMemory: options.fakeMemory, extraArgs: extra, env: options.env, logFile: log })
    .catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message}\nlog ${log}:\n${await readFile(log, 'utf8').catch(() => '')}`)
    })
  const exited = agent.exited.then(e => e.code)
  return { proc: agent.child, dataDir, info: agent.info, api: agent.api, log, exited, stop: async (signal) => { await agent.stop(signal) } }
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

export { sleep }

/** `waitFor` of simulations/support/wait.ts with this suite's defaults (agents as processes are slower). */
export async function waitFor (what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 30_000, stepMs = 100): Promise<number> {
  return await waitForShared(what, predicate, timeoutMs, stepMs)
}

/** `GET url` (with the bearer `token`), its JSON body. */
export async function getJson (url: string, token?: string): Promise<any> {
  return (await httpJson(url, { headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} })).body
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

/**
 * Run the CLI with a loader hook that records every module it loads
 * (test/cli/fixtures/record-imports.mjs): its exit code and the modules' URLs.
 */
export async function modulesLoaded (argv: string[], options: { entry?: string } = {}): Promise<{ code: number, urls: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'memgossip-imports-'))
  const log = join(dir, 'imports.log')
  try {
    const r = await runCli(argv, { entry: options.entry, env: { MEMGOSSIP_IMPORT_LOG: log }, nodeArgs: ['--import', './test/cli/fixtures/record-imports.mjs'] })
    return { code: r.code, urls: (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(u => u !== '') }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
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
