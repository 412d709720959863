/**
 * `memgossip simulate`: run a scenario on many agents in one process and report
 * whether they agree (docs/design.md "Simulation harness"). Registered by
 * cli/main.ts; also runnable as `npx tsx simulations/cli.ts …`.
 *
 * Exit codes: 0 the run's invariants held, 1 one failed (or the cluster never
 * formed) — the seed to reproduce it is printed — 2 usage or scenario errors.
 */
import '../agent/shim.ts'
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, type FlagSpec } from '../cli/args.ts'
import type { Io } from '../cli/io.ts'
import { HarnessError, ScenarioError, UsageError } from './support/errors.ts'
import { heapToRaise, runWithHeap } from './harness/heap.ts'
import { runScenario, type RunReport } from './harness/run.ts'
import { formatProgress, formatSummary } from './harness/summary.ts'
import { renderSvg } from './harness/svg.ts'
import { listScenarios, loadScenario } from './scenario/load.ts'
import type { TierKind } from './harness/types.ts'

export type { Io } from '../cli/io.ts'

/**
 * Where pictures go by default: the OS temp dir, so a run never leaves an
 * untracked file in the checkout (simulations/results/ holds the committed
 * ones). The summary prints the path.
 */
export const PICTURES_DIR = join(tmpdir(), 'memgossip-simulate')

export const SIMULATE_USAGE = `usage: memgossip simulate --scenario NAME|FILE [options]

Runs a scenario on many agents in this process and checks that they converge:
identical verdict digests everywhere, no over-committed node, no final verdict
changed. Prints a summary (or JSON) and writes a convergence picture (SVG).

  --scenario NAME|FILE   a shipped scenario (see --list) or a scenario .json file
  --nodes N              initial peers (default: the scenario's)
  --tier real|virtual    real: libp2p agents on 127.0.0.1 (default);
                         virtual: in-memory network on a virtual clock, seeded
  --transport tcp|memory real tier: TCP on 127.0.0.1 (default) or libp2p's
                         in-process memory transport (no file descriptors)
  --seed S               seed of every random choice (default: random; printed)
  --report FILE          write the JSON report to FILE (picture next to it)
  --json                 print the JSON report instead of the summary
  --svg FILE             where to write the picture
                         (default <tmp>/memgossip-simulate/<scenario>-<tier>-<seed>.svg,
                         or next to --report)
  --no-svg               do not write a picture
  --no-coalesce          virtual tier: deliver every gossip copy separately
  --heartbeat MS         override the scenario's agent heartbeat interval
  --sync MS              override the scenario's anti-entropy interval
  --list                 list the shipped scenarios
  -h, --help             this text

Exit status: 0 invariants held, 1 an invariant failed, 2 usage or scenario error.
`

interface Args {
  scenario?: string
  nodes?: number
  tier: TierKind
  transport?: 'tcp' | 'memory'
  seed?: number
  report?: string
  json: boolean
  svg?: string
  noSvg: boolean
  coalesce?: boolean
  heartbeatMs?: number
  syncMs?: number
  list: boolean
  help: boolean
}

const SIMULATE_FLAGS: Record<string, FlagSpec> = {
  scenario: { type: 'string' },
  nodes: { type: 'string' },
  tier: { type: 'string' },
  transport: { type: 'string' },
  seed: { type: 'string' },
  report: { type: 'string' },
  json: { type: 'boolean' },
  svg: { type: 'string' },
  'no-svg': { type: 'boolean' },
  'no-coalesce': { type: 'boolean' },
  heartbeat: { type: 'string' },
  sync: { type: 'string' },
  list: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
}

export function parseSimulateArgs (argv: string[]): Args {
  const { positionals, flags } = parseArgs(argv, SIMULATE_FLAGS)
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
  const text = (name: string): string | undefined => flags[name] as string | undefined
  const tier = text('tier') ?? 'real'
  if (tier !== 'real' && tier !== 'virtual') throw new UsageError(`--tier must be 'real' or 'virtual', got '${tier}'`)
  const transport = text('transport')
  if (transport !== undefined && transport !== 'tcp' && transport !== 'memory') throw new UsageError(`--transport must be 'tcp' or 'memory', got '${transport}'`)
  const optional = (name: string, min: number, max: number): number | undefined => text(name) !== undefined ? integer(`--${name}`, text(name)!, min, max) : undefined
  const args: Args = {
    scenario: text('scenario'),
    nodes: optional('nodes', 1, 100_000),
    tier,
    transport,
    seed: optional('seed', 0, 0xffffffff),
    report: text('report'),
    json: flags.json === true,
    svg: text('svg'),
    noSvg: flags['no-svg'] === true,
    coalesce: flags['no-coalesce'] === true ? false : undefined,
    heartbeatMs: optional('heartbeat', 10, 3_600_000),
    syncMs: optional('sync', 10, 3_600_000),
    list: flags.list === true,
    help: flags.help === true
  }
  if (args.transport !== undefined && args.tier === 'virtual') throw new UsageError('--transport applies to the real tier; the virtual tier uses the in-memory network')
  if (args.coalesce !== undefined && args.tier !== 'virtual') throw new UsageError('--no-coalesce applies to the virtual tier')
  return args
}

function integer (flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} must be an integer, got '${text}'`)
  const n = Number(text)
  if (n < min || n > max) throw new UsageError(`${flag} must be from ${min} to ${max}, got ${n}`)
  return n
}

/** `memgossip simulate …`; resolves to the exit status. */
export async function runSimulate (argv: string[], io: Io): Promise<number> {
  let args: Args
  try {
    args = parseSimulateArgs(argv)
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`memgossip simulate: ${error.message}\n${SIMULATE_USAGE}`)
      return 2
    }
    throw error
  }
  if (args.help) {
    io.stdout(SIMULATE_USAGE)
    return 0
  }
  if (args.list) {
    for (const name of await listScenarios()) {
      const s = await loadScenario(name).catch(() => undefined)
      io.stdout(`${name.padEnd(26)} ${s === undefined ? '(invalid)' : `${s.nodes} peers · ${s.description.split('. ')[0]}`}\n`)
    }
    return 0
  }
  if (args.scenario === undefined) {
    io.stderr(`memgossip simulate: --scenario is required\n${SIMULATE_USAGE}`)
    return 2
  }

  let scenario
  try {
    scenario = await loadScenario(args.scenario)
  } catch (error) {
    if (error instanceof ScenarioError) {
      io.stderr(`memgossip simulate: ${error.message}\n`)
      return 2
    }
    throw error
  }
  const seed = args.seed ?? Math.floor(Math.random() * 0x100000000)
  const nodes = args.nodes ?? scenario.nodes
  const heap = heapToRaise(args.tier, nodes)
  if (heap !== undefined) {
    // Too big for this process's heap limit: run it in a child with a larger one (same seed).
    io.stderr(`memgossip simulate: ${nodes} ${args.tier} peers need more heap than this process may use; running with --max-old-space-size=${Math.round(heap / 1024 ** 2)}\n`)
    const childArgs = argv.filter((a, i) => a !== '--seed' && argv[i - 1] !== '--seed' && !a.startsWith('--seed='))
    return await runWithHeap(fileURLToPath(import.meta.url), [...childArgs, '--seed', String(seed)], heap, io)
  }
  const reproduce = `memgossip simulate --scenario ${args.scenario} --nodes ${nodes} --tier ${args.tier}${args.transport !== undefined ? ` --transport ${args.transport}` : ''}${args.heartbeatMs !== undefined ? ` --heartbeat ${args.heartbeatMs}` : ''}${args.syncMs !== undefined ? ` --sync ${args.syncMs}` : ''} --seed ${seed}`
  if (args.tier === 'real' && (args.transport ?? 'tcp') === 'tcp') {
    const warning = fdWarning(nodes)
    if (warning !== undefined) io.stderr(`memgossip simulate: ${warning}\n`)
  }

  const progress = process.stderr.isTTY === true && !args.json
  let lastDraw = 0
  let report: RunReport
  try {
    report = await runScenario(scenario, {
      tier: args.tier,
      seed,
      nodes,
      transport: args.transport,
      coalesce: args.coalesce,
      agent: {
        ...(args.heartbeatMs !== undefined ? { heartbeatMs: args.heartbeatMs } : {}),
        ...(args.syncMs !== undefined ? { syncMs: args.syncMs } : {})
      },
      onProgress: progress
        ? (p) => {
            const now = performance.now()
            if (now - lastDraw < 100) return
            lastDraw = now
            io.stderr(formatProgress(p, nodes, process.stderr.columns ?? 80))
          }
        : undefined
    })
  } catch (error) {
    if (progress) io.stderr(`\r${' '.repeat(Math.max(0, (process.stderr.columns ?? 80) - 1))}\r`)
    if (error instanceof ScenarioError) {
      io.stderr(`memgossip simulate: ${error.message}\n`)
      return 2
    }
    if (error instanceof HarnessError) {
      io.stderr(`memgossip simulate: FAIL (seed ${seed}): ${error.message}\n  reproduce: ${reproduce}\n`)
      return 1
    }
    throw error
  }
  if (progress) io.stderr(`\r${' '.repeat(Math.max(0, (process.stderr.columns ?? 80) - 1))}\r`)

  const files: { svg?: string, report?: string } = {}
  const json = JSON.stringify(report, null, 2) + '\n'
  if (args.report !== undefined) {
    files.report = resolvePath(args.report)
    await mkdir(dirname(files.report), { recursive: true })
    await writeFile(files.report, json)
  }
  if (!args.noSvg) {
    files.svg = args.svg !== undefined
      ? resolvePath(args.svg)
      : files.report !== undefined
        ? files.report.replace(/(\.json)?$/, '.svg')
        : join(PICTURES_DIR, `${report.scenario}-${report.tier}-${seed}.svg`)
    await mkdir(dirname(files.svg), { recursive: true })
    await writeFile(files.svg, renderSvg(report))
  }
  if (args.json) io.stdout(json)
  else io.stdout(formatSummary(report, files))

  if (!report.passed) {
    const failed = report.invariants.filter(i => !i.passed).map(i => i.name)
    io.stderr(`memgossip simulate: FAIL (seed ${seed}): ${failed.join(', ')}\n  reproduce: ${reproduce}\n`)
    return 1
  }
  return 0
}

/**
 * STACK.md: about 9 file descriptors per TCP peer in one process. Warn when
 * the soft limit is too low (checked with the shell's `ulimit -n`).
 */
function fdWarning (nodes: number): string | undefined {
  if (nodes < 50 || process.platform === 'win32') return undefined
  let limit: number
  try {
    limit = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim())
  } catch {
    return undefined
  }
  const needed = nodes * 12 + 100
  if (!Number.isFinite(limit) || limit >= needed) return undefined
  return `${nodes} TCP peers need about ${needed} file descriptors and 'ulimit -n' is ${limit}: raise it (ulimit -n ${needed}) or use --transport memory`
}

const invokedDirectly = process.argv[1] !== undefined && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)
if (invokedDirectly) {
  const code = await runSimulate(process.argv.slice(2), {
    stdout: (s) => { process.stdout.write(s) },
    stderr: (s) => { process.stderr.write(s) }
  })
  process.exitCode = code
}
