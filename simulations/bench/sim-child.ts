/**
 * Runs one of the simulation harness's benchmark functions in a process of
 * its own, so its memory figures are not mixed with the benchmark runner's
 * and a run that exhausts memory does not take the runner down:
 *
 *   node --expose-gc --import tsx simulations/bench/sim-child.ts virtual|real N [SEED]
 *
 * Prints the function's result as one JSON line on stdout.
 */
import '../../agent/shim.ts'
import { parseArgs, UsageError } from '../../cli/args.ts'
import { findSimulationApi } from './virtual.ts'

async function main (): Promise<void> {
  // Positionals only (the runner's fixed call); any flag is refused by the shared parser.
  const [tier, n, seed, extra] = parseArgs(process.argv.slice(2), {}).positionals
  if ((tier !== 'virtual' && tier !== 'real') || !/^\d+$/.test(n ?? '') || (seed !== undefined && !/^\d+$/.test(seed)) || extra !== undefined) {
    throw new UsageError('usage: sim-child.ts virtual|real N [SEED]')
  }
  const api = await findSimulationApi()
  const fn = tier === 'real' ? api.benchRealTier : api.benchVirtual
  if (fn === undefined) throw new Error(`the simulation harness exports no ${tier === 'real' ? 'benchRealTier' : 'benchVirtual'}`)
  const result = await fn({ nodes: Number(n), seed: seed !== undefined ? Number(seed) : 1 })
  process.stdout.write(JSON.stringify({ file: api.file, result }) + '\n')
  process.exit(0)
}

main().catch((error: unknown) => {
  process.stderr.write(error instanceof UsageError ? `sim-child: ${error.message}\n` : `${(error as Error).stack ?? String(error)}\n`)
  process.exit(error instanceof UsageError ? 2 : 1)
})
