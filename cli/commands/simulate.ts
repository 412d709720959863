/**
 * `memgossip simulate` and `memgossip bench`: thin entries into simulations/.
 * Both are loaded only when they run (a literal `import()`, so the compiler
 * checks the path and the export): the harness loads libp2p and the agent,
 * which no client command should pay for.
 */
import type { Command } from '../io.ts'

export const simulate: { run: Command, summary: string } = {
  run: async (argv, io) => await (await import('../../simulations/cli.ts')).runSimulate(argv, io),
  summary: 'run many real agents in one process through a scenario (see simulate --help)'
}

export const bench: { run: Command, summary: string } = {
  run: async (argv, io) => await (await import('../../simulations/bench/run.ts')).runBench(argv, io),
  summary: 'benchmarks of the agent and the ledger (see bench --help)'
}
