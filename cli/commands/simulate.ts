/**
 * `memgossip simulate` and `memgossip bench`: thin entries into simulations/.
 * The modules are loaded on demand through a computed specifier, so the CLI
 * (and `tsc`) work in a checkout where they are not there yet; a missing module
 * is reported plainly (exit 2) instead of a stack trace.
 */
import type { Command, Io } from '../main.ts'

type Runner = (argv: string[], io: Io) => Promise<number>

/** Load `relative` (to this file) and call its export `name`, or say why it cannot run. */
export function lazyCommand (command: string, relative: string, name: string, what: string): Command {
  return async (argv, io) => {
    const url = new URL(relative, import.meta.url)
    let mod: Record<string, unknown>
    try {
      mod = await import(url.href) as Record<string, unknown>
    } catch (error) {
      const e = error as NodeJS.ErrnoException
      const missing = e.code === 'ERR_MODULE_NOT_FOUND' && (e.message.includes(url.pathname))
      if (!missing) throw error
      io.stderr(`memgossip ${command}: ${what} is not available in this checkout (${repoPath(relative)} is missing)\n`)
      return 2
    }
    const run = mod[name] as Runner | undefined
    if (typeof run !== 'function') {
      io.stderr(`memgossip ${command}: ${repoPath(relative)} does not export ${name}()\n`)
      return 2
    }
    return await run(argv, io)
  }
}

export const simulate = {
  run: lazyCommand('simulate', '../../simulations/cli.ts', 'runSimulate', 'the simulation harness'),
  summary: 'run many real agents in one process through a scenario (see simulate --help)'
}

export const bench = {
  run: lazyCommand('bench', '../../simulations/bench/run.ts', 'runBench', 'the benchmark runner'),
  summary: 'benchmarks of the agent and the ledger (see bench --help)'
}

function repoPath (relative: string): string {
  return relative.replace(/^(\.\.\/)+/, '')
}
