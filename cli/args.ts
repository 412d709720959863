/**
 * A small, strict argument parser: `--flag value`, `--flag=value`, repeatable
 * flags, booleans, and positionals. Unknown flags are usage errors (exit 2),
 * never silently ignored.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export interface FlagSpec {
  /** `string` takes a value; `boolean` does not; `list` takes a value and repeats. */
  type: 'string' | 'boolean' | 'list'
  help?: string
}

export interface Parsed {
  positionals: string[]
  flags: Record<string, string | boolean | string[] | undefined>
}

export function parseArgs (argv: string[], spec: Record<string, FlagSpec>): Parsed {
  const positionals: string[] = []
  const flags: Parsed['flags'] = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--') { positionals.push(...argv.slice(i + 1)); break }
    if (!arg.startsWith('--') || arg === '-') { positionals.push(arg); continue }
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq < 0 ? undefined : eq)
    const s = spec[name]
    if (s === undefined) throw new UsageError(`unknown flag --${name}`)
    if (s.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`)
      flags[name] = true
      continue
    }
    let value: string
    if (eq >= 0) value = arg.slice(eq + 1)
    else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`)
      value = argv[++i]
    }
    if (s.type === 'list') flags[name] = [...((flags[name] as string[] | undefined) ?? []), value]
    else flags[name] = value
  }
  return { positionals, flags }
}
