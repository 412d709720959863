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
import { findSimulationApi } from './virtual.ts'

async function main (): Promise<void> {
  const [tier, n, seed] = process.argv.slice(2)
  const api = await findSimulationApi()
  const fn = tier === 'real' ? api.benchRealTier : api.benchVirtual
  if (fn === undefined) throw new Error(`the simulation harness exports no ${tier === 'real' ? 'benchRealTier' : 'benchVirtual'}`)
  const result = await fn({ nodes: Number(n), seed: seed !== undefined ? Number(seed) : 1 })
  process.stdout.write(JSON.stringify({ file: api.file, result }) + '\n')
  process.exit(0)
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
