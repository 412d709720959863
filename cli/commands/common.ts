/**
 * What every client command shares: the `--api`/`--token`/`--json` flags, the
 * generated `--help`, strict positionals, and turning a {@link ClientError}
 * into its exit code. A command body only calls the API and prints.
 */
// The leaf modules, not crdt/index.ts: that one loads Yjs, which a client command never needs.
import type { Placement } from '../../crdt/schema.ts'
import { parseSize } from '../../crdt/size.ts'
import { ApiClient, ClientError, DEFAULT_API_URL, normalizeApiUrl, readTokenFile } from '../client.ts'
import { paint, useColor, type Paint } from '../format.ts'
import { parseArgs, UsageError, type FlagSpec } from '../args.ts'
import type { Command, Io } from '../io.ts'

export const CLIENT_FLAGS: Record<string, FlagSpec> = {
  api: { type: 'string', help: `agent API URL (default ${DEFAULT_API_URL}; env MEMGOSSIP_API)` },
  token: { type: 'string', help: 'file holding the API bearer token (env MEMGOSSIP_TOKEN holds the token itself); never printed' },
  json: { type: 'boolean', help: "print the agent's JSON answer (stable field names, integer …Bytes)" },
  help: { type: 'boolean', help: 'show this help' }
}

export interface ClientCommandSpec {
  name: string
  /** `ID SIZE`: the positionals, in order; `[X]` marks an optional one. */
  args: string
  summary: string
  /** What it does, what it calls, what the exit codes mean for it. */
  description: string
  examples: string[]
  flags?: Record<string, FlagSpec>
}

export interface Context {
  client: ApiClient
  io: Io
  env: Record<string, string | undefined>
  json: boolean
  color: Paint
  positionals: string[]
  flags: Record<string, string | boolean | string[] | undefined>
  /** Print to stdout. */
  out: (s: string) => void
  /** Print to stderr. */
  err: (s: string) => void
}

/** What a flag's value is, for --help (`--api URL`). */
const METAVARS: Record<string, string> = {
  api: 'URL', token: 'FILE', placement: 'PLACEMENT', priority: 'N', label: 'K=V', timeout: 'DURATION',
  node: 'NODE', status: 'STATUS', since: 'TIME', 'price-per-gib-hour': 'X'
}

export function helpText (spec: ClientCommandSpec): string {
  const flags = { ...(spec.flags ?? {}), ...CLIENT_FLAGS }
  const flagLines = Object.entries(flags).map(([k, s]) => {
    const meta = METAVARS[k] ?? 'VALUE'
    const value = s.type === 'boolean' ? '' : s.type === 'list' ? ` ${meta} (repeatable)` : ` ${meta}`
    return `  --${k}${value}\n      ${s.help ?? ''}`
  })
  return `Usage: memgossip ${spec.name}${spec.args !== '' ? ` ${spec.args}` : ''} [flags]

${spec.description.trim()}

Example${spec.examples.length > 1 ? 's' : ''}:
${spec.examples.map(e => `  ${e}`).join('\n')}

Flags:
${flagLines.join('\n')}

Exit codes: 0 yes/success, 1 a clean no, 2 usage or input error, 3 agent unreachable.
`
}

/** Wrap a command body: parse flags strictly, build the client, map errors to exit codes. */
export function clientCommand (spec: ClientCommandSpec, body: (ctx: Context) => Promise<number>): { run: Command, summary: string, help: string } {
  const help = helpText(spec)
  const required = spec.args.split(' ').filter(a => a !== '' && !a.startsWith('['))
  const optional = spec.args.split(' ').filter(a => a.startsWith('['))
  const run: Command = async (argv, io) => {
    const env = io.env ?? process.env
    const { positionals, flags } = parseArgs(argv, { ...(spec.flags ?? {}), ...CLIENT_FLAGS })
    if (flags.help === true) { io.stdout(help); return 0 }
    if (positionals.length < required.length) {
      throw new UsageError(`missing ${required.slice(positionals.length).join(' ')} (usage: memgossip ${spec.name} ${spec.args}; see --help)`)
    }
    if (positionals.length > required.length + optional.length) throw new UsageError(`unexpected argument '${positionals[required.length + optional.length]}'`)
    try {
      const api = normalizeApiUrl((flags.api as string | undefined) ?? nonEmpty(env.MEMGOSSIP_API) ?? DEFAULT_API_URL)
      const token = flags.token !== undefined ? await readTokenFile(flags.token as string) : nonEmpty(env.MEMGOSSIP_TOKEN)
      const client = new ApiClient({ api, token })
      const json = flags.json === true
      const color = paint(!json && useColor(io.isTTY ?? process.stdout.isTTY, env))
      return await body({ client, io, env, json, color, positionals, flags, out: io.stdout, err: io.stderr })
    } catch (error) {
      if (error instanceof ClientError) {
        io.stderr(`memgossip ${spec.name}: ${error.message}\n`)
        return error.exitCode
      }
      throw error
    }
  }
  return { run, summary: spec.summary, help }
}

function nonEmpty (s: string | undefined): string | undefined {
  return s !== undefined && s.trim() !== '' ? s.trim() : undefined
}

/** A size argument, checked with the same `parseSize` the agent uses, so the message is the same. */
export function sizeArg (text: string, what = 'SIZE'): number {
  try {
    return parseSize(text)
  } catch (error) {
    throw new UsageError(`${what}: ${(error as Error).message}`)
  }
}

/** `--priority N`: an integer, or undefined when not given. */
export function priorityArg (text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`--priority: '${text}' is not an integer`)
  return Number(text)
}

/** `--placement`, checked with the agent's own parser (loaded only when the flag is given: it lives beside the Yjs schema). */
export async function placementArg (text: string | undefined): Promise<Placement | undefined> {
  if (text === undefined) return undefined
  const { parsePlacement } = await import('../../crdt/schema.ts')
  try {
    return parsePlacement(text)
  } catch (error) {
    throw new UsageError(`--placement: ${(error as Error).message}`)
  }
}

export const PLACEMENT_FLAG: FlagSpec = { type: 'string', help: "any (default: best fit on one node), all (every active node), node:<id> (pinned), spread:<k> (k distinct nodes)" }

/** `500ms`, `30s`, `10m`, `2h`, `1d`. The unit is required: a bare `30` is ambiguous (ms? s?). */
export const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/

export function durationArg (text: string, flag: string): number {
  const m = DURATION_PATTERN.exec(text.trim())
  if (m === null) throw new UsageError(`${flag}: '${text}' is not a duration with a unit (e.g. 500ms, 30s, 10m, 2h, 1d)`)
  const unit = m[2]
  return Math.round(Number(m[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : unit === 'h' ? 3_600_000 : 86_400_000))
}

/** Percent-encode an id for a path segment (ids may hold `/` and `:`). */
export function idPath (id: string): string {
  return encodeURIComponent(id)
}
