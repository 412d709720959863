/**
 * `npx tsx simulations/bench/idle-rss.ts [--minutes 26]`: the resident memory
 * of an idle agent, run three ways side by side on this host for the same
 * minutes (issue 12's target: ≤ 80 MB as `npm start` runs it):
 *
 * - `dist`: tsc's `dist/cli/main.js` with `--max-semi-space-size=2`, how
 *   `npm start` ran the agent before the bundle;
 * - `bundle`: the bundle (`dist/bundle/main.js`, tools/bundle.mjs) with the
 *   same flag;
 * - `npm start`: the bundle with what `npm start` adds now (AGENT_NODE_FLAGS:
 *   `--v8-pool-size=1` as well).
 *
 * Each agent is alone in its cluster, on loopback, with no requests: the
 * floor an operator sees on a quiet host. RSS (and its anonymous and
 * file-backed parts, from /proc/<pid>/status) is read once a minute; RSS of
 * an idle agent rises for its first quarter hour or so as V8 and the
 * allocator keep pages they once used, which is why the run is long (the
 * benchmark reads its idle agent after about 26 minutes). Writes
 * simulations/results/idle-rss-<date>.json and prints a table per minute.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { numberFlag, parseArgs, UsageError, type FlagSpec } from '../../cli/args.ts'
import { AGENT_NODE_FLAGS, buildAgent, Registry, REPO_ROOT } from './procs.ts'
import { processMemory, type ProcessMemory } from './netstat.ts'
import { startAgentProcess, type AgentProcess } from '../support/agent-process.ts'
import { sleep } from '../support/wait.ts'

const FLAGS: Record<string, FlagSpec> = {
  minutes: { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
}

const HELP = `Usage: npx tsx simulations/bench/idle-rss.ts [--minutes 26] [--out simulations/results]

Idle RSS of one agent, three ways side by side (tsc's dist/, the bundle, the bundle as npm start runs it), read once a minute.`

interface Way { name: string, from: 'dist' | 'bundle', flags: string[] }

const WAYS: Way[] = [
  { name: 'dist', from: 'dist', flags: ['--max-semi-space-size=2'] },
  { name: 'bundle', from: 'bundle', flags: ['--max-semi-space-size=2'] },
  { name: 'npm start', from: 'bundle', flags: AGENT_NODE_FLAGS }
]

interface Reading extends ProcessMemory { minute: number }

const MiB = 1024 ** 2

async function main (argv: string[]): Promise<void> {
  const { flags } = parseArgs(argv, FLAGS)
  if (flags.help === true) { process.stdout.write(HELP + '\n'); return }
  const minutes = numberFlag(flags, 'minutes', { integer: true, min: 1 }) ?? 26
  const out = typeof flags.out === 'string' ? flags.out : join(REPO_ROOT, 'simulations', 'results')
  const registry = new Registry()
  process.once('SIGINT', () => { void registry.cleanup().then(() => process.exit(130)) })
  try {
    await buildAgent()
    const agents: AgentProcess[] = []
    for (const way of WAYS) {
      agents.push(await startAgentProcess({
        dataDir: await registry.tempDir('memgossip-idle-'),
        from: way.from,
        agentNodeFlags: way.flags,
        cluster: 'idle-rss',
        heartbeatInterval: null,
        onSpawn: child => { registry.track(child) }
      }))
    }
    const readings: Reading[][] = WAYS.map(() => [])
    process.stderr.write(`idle-rss: ${WAYS.map((w, i) => `${w.name} (pid ${agents[i].pid}: ${w.flags.join(' ')})`).join(', ')}; ${minutes} min\n`)
    process.stdout.write(`| minute | ${WAYS.map(w => `${w.name} RSS (anon / file) MiB`).join(' | ')} |\n| --- |${WAYS.map(() => ' --- |').join('')}\n`)
    for (let minute = 1; minute <= minutes; minute++) {
      await sleep(60_000)
      const row: string[] = []
      for (let i = 0; i < WAYS.length; i++) {
        const r: Reading = { minute, ...await processMemory(agents[i].pid) }
        readings[i].push(r)
        row.push(`${(r.rssBytes / MiB).toFixed(1)} (${(r.rssAnonBytes / MiB).toFixed(1)} / ${(r.rssFileBytes / MiB).toFixed(1)})`)
      }
      process.stdout.write(`| ${minute} | ${row.join(' | ')} |\n`)
    }
    const result = {
      date: new Date().toISOString(),
      node: process.version,
      minutes,
      ways: WAYS.map((w, i) => ({ ...w, readings: readings[i], lastRssMB: readings[i][readings[i].length - 1].rssBytes / 1e6 }))
    }
    await mkdir(out, { recursive: true })
    const file = join(out, `idle-rss-${result.date.slice(0, 10)}.json`)
    await writeFile(file, JSON.stringify(result, null, 2) + '\n')
    process.stdout.write(`after ${minutes} min: ${result.ways.map(w => `${w.name} ${w.lastRssMB.toFixed(1)} MB`).join(', ')}\nwritten: ${file}\n`)
  } finally {
    await registry.cleanup()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`idle-rss: ${(error as Error).message}\n`)
    process.exit(error instanceof UsageError ? 2 : 1)
  })
}
