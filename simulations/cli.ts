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
import { dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { HarnessError, ScenarioError, UsageError } from './errors.ts'
import { heapToRaise, runWithHeap } from './harness/heap.ts'
import { runScenario, type RunReport } from './harness/run.ts'
import { formatProgress, formatSummary } from './harness/summary.ts'
import { renderSvg } from './harness/svg.ts'
import { listScenarios, loadScenario } from './scenario/load.ts'
import type { TierKind } from './harness/types.ts'

export interface Io {
  stdout: (s: string) => void
  stderr: (s: string) => void
}

/** Where pictures go by default: simulations/results/ of this checkout. */
export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results')

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
                         (default simulations/results/<scenario>-<tier>-<seed>.svg)
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

export function parseSimulateArgs (argv: string[]): Args {
  const args: Args = { tier: 'real', json: false, noSvg: false, list: false, help: false }
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1
    const flag = eq > 0 ? raw.slice(0, eq) : raw
    const inline = eq > 0 ? raw.slice(eq + 1) : undefined
    const value = (): string => {
      if (inline !== undefined) return inline
      const next = argv[++i]
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${flag} needs a value`)
      return next
    }
    switch (flag) {
      case '--scenario': args.scenario = value(); break
      case '--nodes': args.nodes = integer(flag, value(), 1, 100_000); break
      case '--tier': {
        const v = value()
        if (v !== 'real' && v !== 'virtual') throw new UsageError(`--tier must be 'real' or 'virtual', got '${v}'`)
        args.tier = v
        break
      }
      case '--transport': {
        const v = value()
        if (v !== 'tcp' && v !== 'memory') throw new UsageError(`--transport must be 'tcp' or 'memory', got '${v}'`)
        args.transport = v
        break
      }
      case '--seed': args.seed = integer(flag, value(), 0, 0xffffffff); break
      case '--report': args.report = value(); break
      case '--svg': args.svg = value(); break
      case '--json': args.json = true; break
      case '--no-svg': args.noSvg = true; break
      case '--no-coalesce': args.coalesce = false; break
      case '--heartbeat': args.heartbeatMs = integer(flag, value(), 10, 3_600_000); break
      case '--sync': args.syncMs = integer(flag, value(), 10, 3_600_000); break
      case '--list': args.list = true; break
      case '-h':
      case '--help': args.help = true; break
      default:
        throw new UsageError(raw.startsWith('-') ? `unknown option ${flag}` : `unexpected argument '${raw}'`)
    }
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
        : join(RESULTS_DIR, `${report.scenario}-${report.tier}-${seed}.svg`)
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
