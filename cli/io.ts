/**
 * What a command is given and what it returns. Its own module so that
 * commands and the entry point (cli/main.ts) both import it and neither
 * imports the other.
 */
export interface Io {
  stdout: (s: string) => void
  stderr: (s: string) => void
  /** Environment for MEMGOSSIP_API, MEMGOSSIP_TOKEN, NO_COLOR (default `process.env`). */
  env?: Record<string, string | undefined>
  /** stdout is a terminal, so colour is allowed (default `process.stdout.isTTY`). */
  isTTY?: boolean
  /** Stops long-running commands (`watch`) as Ctrl-C would (default: SIGINT/SIGTERM). */
  signal?: AbortSignal
}

/** Runs one command with its arguments (after the command name); resolves to the exit code. */
export type Command = (argv: string[], io: Io) => Promise<number>
