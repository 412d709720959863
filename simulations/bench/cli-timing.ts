/**
 * How long one CLI command takes, end to end, as a user or a deploy script
 * sees it: `memgossip fit 1GiB` against one running agent (its own process,
 * no peers), wall time from spawn to exit, against curl sending the same
 * request (the floor: a process start plus one HTTP round trip). Three ways
 * of running the command, interleaved run by run so load on the machine hits
 * them alike:
 *
 * - `installed`: `node cli/bin.js fit 1GiB` — what `npm link`/`npx memgossip`
 *   run: the compiled JavaScript in dist/ (target ≤ 150 ms median);
 * - `tsx`: `node --import tsx cli/main.ts fit 1GiB` — the TypeScript sources
 *   through tsx, what cli/bin.js falls back to without dist/;
 * - `curl`: `curl -s -X POST …/v1/fit` with the same body.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { REPO_ROOT, startMemgossip, type Registry } from './procs.ts'
import { summarize, type Summary } from './stats.ts'

/** Target for the installed command's median wall time. */
export const CLI_TARGET_MS = 150

export interface CliTimingResult {
  command: string
  runs: number
  installed: Summary
  tsx: Summary
  /** Absent when curl is not installed. */
  curl?: Summary
  /** `node -e 0`: the cost of starting Node at all, for scale. */
  nodeStart: Summary
}

/** Wall ms from spawn to exit; rejects when the command fails (so a broken CLI is not timed as fast). */
async function timeRun (command: string, args: string[]): Promise<number> {
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } })
    let err = ''
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    child.once('error', reject)
    child.once('exit', (code) => {
      if (code === 0) resolve(performance.now() - started)
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${err.slice(-500)}`))
    })
  })
}

async function hasCurl (): Promise<boolean> {
  return await timeRun('curl', ['--version']).then(() => true, () => false)
}

export async function runCliTiming (registry: Registry, options: { runs: number, log: (line: string) => void }): Promise<CliTimingResult> {
  const dir = await registry.tempDir('mgcli-')
  const agent = await startMemgossip({ registry, index: 0, dataDir: join(dir, 'agent') })
  try {
    const api = agent.api
    const body = JSON.stringify({ size: '1GiB' })
    const ways: Record<string, [string, string[]]> = {
      installed: [process.execPath, ['cli/bin.js', 'fit', '1GiB', '--api', api]],
      tsx: [process.execPath, ['--import', 'tsx', 'cli/main.ts', 'fit', '1GiB', '--api', api]],
      nodeStart: [process.execPath, ['-e', '0']]
    }
    if (await hasCurl()) ways.curl = ['curl', ['-s', '-f', '-X', 'POST', '-H', 'content-type: application/json', '-d', body, `${api}/v1/fit`]]
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(ways).map(k => [k, []]))
    // One warm-up round (disk cache, tsx's transform cache), not counted.
    for (const [command, args] of Object.values(ways)) await timeRun(command, args)
    for (let i = 0; i < options.runs; i++) {
      for (const [name, [command, args]] of Object.entries(ways)) times[name].push(await timeRun(command, args))
    }
    const result: CliTimingResult = {
      command: 'memgossip fit 1GiB',
      runs: options.runs,
      installed: summarize(times.installed),
      tsx: summarize(times.tsx),
      nodeStart: summarize(times.nodeStart),
      ...(times.curl !== undefined ? { curl: summarize(times.curl) } : {})
    }
    options.log(`  median wall: installed ${result.installed.p50.toFixed(0)} ms, tsx ${result.tsx.p50.toFixed(0)} ms, curl ${result.curl?.p50.toFixed(0) ?? '–'} ms, node -e 0 ${result.nodeStart.p50.toFixed(0)} ms (${options.runs} runs each)`)
    return result
  } finally {
    await registry.stopChild(agent.child)
  }
}
