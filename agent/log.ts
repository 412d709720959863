/**
 * Levelled, structured logging (docs/configuration.md "Logging"). The agent
 * logs through a {@link Logger}; `memgossip agent` builds one on pino
 * (`--log-level`, `--log-format text|json`), while tests and simulations may
 * still pass a plain `(line) => void`, which {@link toLogger} adapts: warn and
 * error lines then read `WARNING …` / `ERROR …` as they always did.
 *
 * Secrets never reach a log: nothing logs a key or a token, and pino's
 * redaction blanks fields named like one should a caller pass them.
 */
import { pino, type DestinationStream } from 'pino'

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = typeof LOG_LEVELS[number]
export type LogFormat = 'text' | 'json'
export type LogFields = Record<string, unknown>

export interface Logger {
  debug: (message: string, fields?: LogFields) => void
  info: (message: string, fields?: LogFields) => void
  warn: (message: string, fields?: LogFields) => void
  error: (message: string, fields?: LogFields) => void
}

/** A plain line sink (tests, simulations, collaborators that take one). */
export type LogLine = (line: string) => void

/** Field names blanked wherever they appear in a log record's fields. */
const REDACTED_FIELDS = ['token', 'apiToken', 'clusterKey', 'key', 'privateKey', 'authorization']

/** The prefixes that gave a plain line its level before there were levels. */
const PREFIX_LEVELS: ReadonlyArray<[string, LogLevel, boolean]> = [
  // [prefix, level, whether the prefix is dropped from the message]
  ['WARNING ', 'warn', true],
  ['ERROR ', 'error', true],
  ['ALERT ', 'warn', false]
]

/** `log` as a {@link Logger}: a Logger as is, a line sink through {@link lineLogger}, none through `fallback`. */
export function toLogger (log: Logger | LogLine | undefined, fallback: () => Logger): Logger {
  if (log === undefined) return fallback()
  return typeof log === 'function' ? lineLogger(log) : log
}

/**
 * A Logger over a line sink: info as the bare message, warn and error with
 * `WARNING ` / `ERROR ` before it, fields as ` k=v`; debug is dropped (a line
 * sink has no level to filter by).
 */
export function lineLogger (sink: LogLine): Logger {
  const line = (prefix: string) => (message: string, fields?: LogFields): void => { sink(prefix + message + formatFields(fields)) }
  return { debug: () => {}, info: line(''), warn: line('WARNING '), error: line('ERROR ') }
}

/**
 * The other way round, for collaborators that take a line sink (the clock
 * channel, the failure detector, membership): a line starting `WARNING ` or
 * `ERROR ` is logged at that level without the prefix, `ALERT …` at warn,
 * anything else at info.
 */
export function lineSink (logger: Logger, prefix = ''): LogLine {
  return (line: string) => {
    for (const [p, level, drop] of PREFIX_LEVELS) {
      if (line.startsWith(p)) { logger[level](prefix + (drop ? line.slice(p.length) : line)); return }
    }
    logger.info(prefix + line)
  }
}

/** Messages logged under `prefix` (`net: …`), at their own levels. */
export function prefixed (logger: Logger, prefix: string): Logger {
  return {
    debug: (m, f) => { logger.debug(prefix + m, f) },
    info: (m, f) => { logger.info(prefix + m, f) },
    warn: (m, f) => { logger.warn(prefix + m, f) },
    error: (m, f) => { logger.error(prefix + m, f) }
  }
}

/** One event as {@link memoryLogger} keeps it. */
export interface LogRecord {
  level: LogLevel
  message: string
  fields?: LogFields
}

/** A Logger that keeps every event in `records` (tests and harnesses filter them by level, not by text). */
export function memoryLogger (): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = []
  const at = (level: LogLevel) => (message: string, fields?: LogFields): void => { records.push({ level, message, ...(fields !== undefined ? { fields } : {}) }) }
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** A Logger that drops everything. */
export const SILENT: Logger = Object.freeze({ debug: () => {}, info: () => {}, warn: () => {}, error: () => {} })

export interface LoggerOptions {
  level?: LogLevel
  /** `text`: one readable line per event; `json`: one JSON object per line (pino's). Default `text`. */
  format?: LogFormat
  /** Where lines go (default stderr). */
  write?: (chunk: string) => void
}

/** The agent's logger on pino. */
export function createLogger (options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((chunk: string) => { process.stderr.write(chunk) })
  const destination: DestinationStream = options.format === 'json' ? { write } : { write: (chunk: string) => { write(textLine(chunk)) } }
  const log = pino({
    level: options.level ?? 'info',
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    // "level":"warn" rather than 40: a machine filters by the name.
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: [...REDACTED_FIELDS, ...REDACTED_FIELDS.map(f => `*.${f}`)], censor: '[redacted]' }
  }, destination)
  const at = (level: LogLevel) => (message: string, fields?: LogFields): void => {
    if (fields === undefined) log[level](message)
    else log[level](fields, message)
  }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }

/** One pino JSON record as a text line: `time LEVEL message k=v …`. */
export function textLine (json: string): string {
  let record: Record<string, unknown>
  try {
    record = JSON.parse(json) as Record<string, unknown>
  } catch {
    return json
  }
  const { time, level, msg, ...fields } = record
  const name = typeof level === 'string' ? level.toUpperCase() : LEVEL_NAMES[level as number] ?? String(level)
  return `${String(time)} ${name.padEnd(5)} ${String(msg ?? '')}${formatFields(fields)}\n`
}

function formatFields (fields: LogFields | undefined): string {
  if (fields === undefined) return ''
  return Object.entries(fields).map(([k, v]) => ` ${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`).join('')
}
