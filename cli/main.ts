/**
 * `memgossip`: one command for operators and deploy systems. It parses, calls
 * and prints; every decision is made in crdt/ or agent/ (docs/design.md
 * "Interfaces").
 *
 * Exit codes: 0 yes / success, 1 a clean no (does not fit, rejected),
 * 2 usage or input error, 3 cannot reach the agent.
 */
import { UsageError } from './args.ts'
import { ClientError } from './client.ts'
import { fitCommand } from './commands/fit.ts'
import { rent, evict } from './commands/rent.ts'
import { release, reserve } from './commands/reserve.ts'
import { reservations, where } from './commands/reservations.ts'
import { bench, simulate } from './commands/simulate.ts'
import { status } from './commands/status.ts'
import { watch } from './commands/watch.ts'
import type { Command, Io } from './io.ts'

export type { Command, Io } from './io.ts'

/**
 * The command table; each entry lives in cli/commands/. The client commands
 * are imported here, and they import nothing of libp2p or the agent. `agent`,
 * `keygen` and `run` (agent/cgroup.ts) are loaded only when they run, as
 * `simulate` and `bench` load simulations/: libp2p and the agent cost about
 * a second to import, which every `memgossip fit` would otherwise pay.
 */
export const COMMANDS: Record<string, { run: Command, summary: string }> = {
  agent: { run: async (argv, io) => await (await import('./commands/agent.ts')).runAgent(argv, io), summary: 'run the agent on this host (the main job)' },
  keygen: {
    summary: 'print a new cluster key (memgossip keygen > cluster.key)',
    run: async (argv, io) => await (await import('./commands/keygen.ts')).keygen(argv, io)
  },
  status,
  fit: fitCommand,
  reserve,
  release,
  run: { run: async (argv, io) => await (await import('./commands/run.ts')).run.run(argv, io), summary: 'run a command under a reservation, in a memory cgroup limited to it' },
  reservations,
  where,
  watch,
  rent,
  evict,
  simulate,
  bench
}

export function usage (): string {
  return `Usage: memgossip <command> [flags]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(14)}${c.summary}`).join('\n')}

Every command takes --help; client commands take --json, --api URL (env MEMGOSSIP_API,
default http://127.0.0.1:7647) and --token FILE (env MEMGOSSIP_TOKEN).
Exit codes: 0 yes/success, 1 a clean no, 2 usage or input error, 3 agent unreachable.
`
}

export async function main (argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === 'help') {
    io.stdout(usage())
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    io.stderr(`memgossip: unknown command '${name}'\n\n${usage()}`)
    return 2
  }
  try {
    return await command.run(rest, io)
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`memgossip ${name}: ${error.message}\n`)
      return 2
    }
    if (error instanceof ClientError) {
      io.stderr(`memgossip ${name}: ${error.message}\n`)
      return error.exitCode
    }
    throw error
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli/main.ts')) {
  // `memgossip watch | head -3`: the reader went away; that is a normal end, not a crash.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => { if (error.code === 'EPIPE') process.exit(0); else throw error })
  main(process.argv.slice(2), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env, isTTY: process.stdout.isTTY })
    .then(code => { process.exitCode = code })
    .catch((error: unknown) => {
      process.stderr.write(`memgossip: ${(error as Error).stack ?? String(error)}\n`)
      process.exitCode = 1
    })
}
