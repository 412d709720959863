/**
 * `memgossip`: one command for operators and deploy systems. It parses, calls
 * and prints; every decision is made in crdt/ or agent/ (DESIGN.md §8).
 *
 * Exit codes: 0 yes / success, 1 a clean no (does not fit, rejected),
 * 2 usage or input error, 3 cannot reach the agent.
 */
import '../agent/shim.ts'
import { UsageError } from './args.ts'
import { AGENT_HELP, runAgent } from './commands/agent.ts'
import { generateClusterKey } from '../agent/net/cluster-key.ts'

export interface Io { stdout: (s: string) => void, stderr: (s: string) => void }

export type Command = (argv: string[], io: Io) => Promise<number>

/** The command table; each entry lives in cli/commands/. */
export const COMMANDS: Record<string, { run: Command, summary: string }> = {
  agent: { run: runAgent, summary: 'run the agent on this host (the main job)' },
  keygen: {
    summary: 'print a new cluster key (memgossip keygen > cluster.key)',
    run: async (argv, io) => {
      if (argv.includes('--help')) { io.stdout('Usage: memgossip keygen > cluster.key\n\nPrint a new pre-shared cluster key. Copy it to every host (mode 0600).\n'); return 0 }
      io.stdout(new TextDecoder().decode(generateClusterKey()))
      return 0
    }
  }
}

export function usage (): string {
  return `Usage: memgossip <command> [flags]

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(14)}${c.summary}`).join('\n')}

Every command takes --help; client commands take --json and --api URL.
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
    throw error
  }
}

void AGENT_HELP

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/cli/main.ts')) {
  main(process.argv.slice(2), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) })
    .then(code => { process.exitCode = code })
    .catch((error: unknown) => {
      process.stderr.write(`memgossip: ${(error as Error).stack ?? String(error)}\n`)
      process.exitCode = 1
    })
}
