/**
 * The one argument parser of every command and script: `node:util`'s
 * `parseArgs` does the splitting (`--flag value`, `--flag=value`, `-h`,
 * repeatable flags, `--` ends the flags), and this wrapper makes it strict in
 * the way this CLI needs, with messages that name the flag:
 *
 * - an unknown flag is a usage error (exit 2), never silently ignored;
 * - a boolean flag takes no value, a string flag needs one;
 * - a value may start with a dash only when it is a number (`--priority -5`,
 *   `--price-per-gib-hour -1`): `--api --json` is a forgotten value, not the
 *   URL `--json`. (Node's own `strict` mode refuses every dash-led value, so
 *   the checks are made here, on its tokens.)
 */
import { parseArgs as nodeParseArgs } from 'node:util'

export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export interface FlagSpec {
  /** `string` takes a value; `boolean` does not; `list` takes a value and repeats. */
  type: 'string' | 'boolean' | 'list'
  /** One-letter alias (`h` for `-h`). */
  short?: string
  help?: string
}

export type FlagValue = string | boolean | string[] | undefined

export interface Parsed {
  positionals: string[]
  flags: Record<string, FlagValue>
}

const NUMBER = /^-\d/

/** Parse `argv` against `spec`; throws {@link UsageError} naming the flag at fault. */
export function parseArgs (argv: string[], spec: Record<string, FlagSpec>): Parsed {
  const options: Record<string, { type: 'string' | 'boolean', multiple?: boolean, short?: string }> = {}
  for (const [name, s] of Object.entries(spec)) {
    options[name] = { type: s.type === 'boolean' ? 'boolean' : 'string', ...(s.type === 'list' ? { multiple: true } : {}), ...(s.short !== undefined ? { short: s.short } : {}) }
  }
  const { values, positionals, tokens } = nodeParseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true })
  for (const token of tokens) {
    if (token.kind !== 'option') continue
    const s = spec[token.name]
    if (s === undefined) throw new UsageError(`unknown flag ${token.rawName}`)
    if (s.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`${token.rawName} takes no value`)
    } else if (token.value === undefined) {
      throw new UsageError(`${token.rawName} needs a value`)
    } else if (token.inlineValue === false && token.value.startsWith('-') && !NUMBER.test(token.value)) {
      throw new UsageError(`${token.rawName} needs a value (got the flag '${token.value}'; write ${token.rawName}=${token.value} if that is the value)`)
    }
  }
  return { positionals, flags: values as Record<string, FlagValue> }
}

/** A numeric flag's value (undefined when absent); throws {@link UsageError} naming the flag when it is not a number in range. */
export function numberFlag (flags: Parsed['flags'], name: string, check: { integer?: boolean, min?: number, max?: number } = {}): number | undefined {
  const text = flags[name]
  if (text === undefined) return undefined
  const n = typeof text === 'string' && text.trim() !== '' ? Number(text) : NaN
  const kind = check.integer === true ? 'an integer' : 'a number'
  if (!Number.isFinite(n) || (check.integer === true && !Number.isSafeInteger(n))) throw new UsageError(`--${name}: '${String(text)}' is not ${kind}`)
  if (check.min !== undefined && n < check.min) throw new UsageError(`--${name}: ${n} is below the minimum ${check.min}`)
  if (check.max !== undefined && n > check.max) throw new UsageError(`--${name}: ${n} is above the maximum ${check.max}`)
  return n
}
