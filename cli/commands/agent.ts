/**
 * `memgossip agent`: run the agent on this host in the foreground. SIGINT and
 * SIGTERM stop it cleanly (the data file is flushed and closed).
 */
// Node 20 lacks Promise.withResolvers, which libp2p calls: load the shim before any libp2p module.
import '../../agent/shim.ts'
import { join } from 'node:path'
import { parseSize } from '../../crdt/index.ts'
import { DaemonConfigError, fakeProbeFromText, startDaemon, type DaemonOptions } from '../../agent/daemon.ts'
import { AGENT_FLAGS as CONFIG_FLAGS, flagDefault, preset, type AgentFlag, type AgentSettings, type PresetName } from '../../agent/config.ts'
import { createLogger, LOG_LEVELS, type LogFormat, type LogLevel } from '../../agent/log.ts'
import { resolvePressureConfig, type PressureConfig } from '../../agent/pressure.ts'
import { parseArgs, UsageError, type FlagSpec } from '../args.ts'

/** How the line printed once the agent serves its API starts. */
export const READY_LINE = 'memgossip agent ready'

/** The flags of `memgossip agent`, generated from agent/config.ts's table (one place per setting). */
export const AGENT_FLAGS: Record<string, FlagSpec> = {
  ...Object.fromEntries(Object.entries(CONFIG_FLAGS).map(([name, flag]) => {
    const spec: FlagSpec = { type: flag.kind === 'list' || flag.kind === 'boolean' ? flag.kind : 'string', help: flagHelp(flag) }
    return [name, spec]
  })),
  help: { type: 'boolean' }
}

function flagHelp (flag: AgentFlag): string {
  const value = flagDefault(flag)
  return value === undefined ? flag.help : `${flag.help} (default ${value})`
}

/** `30s`, `10m`, `2h`, `500ms`, or bare ms. */
export function parseDuration (text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) throw new UsageError(`${flag}: '${text}' is not a duration (e.g. 500ms, 30s, 10m, 2h)`)
  const n = Number(m[1])
  const unit = m[2] ?? 'ms'
  const ms = Math.round(n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000))
  // 0 is never meant: --evict-after 0 would evict every other member at once.
  if (ms <= 0) throw new UsageError(`${flag}: '${text}' must be longer than 0`)
  return ms
}

export function sizeFlag (text: string, flag: string): number {
  try {
    return parseSize(text)
  } catch (error) {
    throw new UsageError(`${flag}: ${(error as Error).message}`)
  }
}

/** How `memgossip agent` logs (`--log-level`, `--log-format`). */
export interface AgentLogging {
  level: LogLevel
  format: LogFormat
}

/** `memgossip agent`'s flags as daemon options; throws {@link UsageError} naming the flag at fault. */
export function agentOptionsFromArgs (argv: string[]): DaemonOptions {
  return parseAgentArgs(argv).options
}

export function parseAgentArgs (argv: string[]): { options: DaemonOptions, logging: AgentLogging } {
  const { positionals, flags } = parseArgs(argv, AGENT_FLAGS)
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
  const str = (k: string): string | undefined => flags[k] as string | undefined
  const list = (k: string): string[] | undefined => flags[k] as string[] | undefined
  const options: DaemonOptions = {
    dataDir: str('data-dir'),
    cluster: str('cluster'),
    listen: list('listen'),
    api: str('api'),
    apiTokenFile: str('api-token'),
    clusterKeyFile: str('cluster-key'),
    bootstrap: list('bootstrap'),
    mdns: flags.mdns === true,
    floor: str('floor')
  }
  const presetName = str('preset')
  if (presetName !== undefined) {
    try {
      preset(presetName)
    } catch (error) {
      throw new UsageError(`--preset: ${(error as Error).message}`)
    }
    if (flags['local-cluster'] === true && presetName !== 'local') throw new UsageError(`--local-cluster is --preset local; it cannot go with --preset ${presetName}`)
    options.preset = presetName as PresetName
  } else if (flags['local-cluster'] === true) {
    options.preset = 'local'
  }
  // Every flag that overrides a preset setting, parsed by its kind.
  const settings = options as Partial<Record<keyof AgentSettings, number | boolean>>
  for (const [name, flag] of Object.entries(CONFIG_FLAGS)) {
    const text = str(name)
    if (flag.setting === undefined || text === undefined) continue
    settings[flag.setting] = settingValue(flag, text, `--${name}`)
  }
  if (str('allocatable') !== undefined) options.allocatableCapBytes = sizeFlag(str('allocatable')!, '--allocatable')
  if (str('system-reserved') !== undefined) options.systemReservedBytes = sizeFlag(str('system-reserved')!, '--system-reserved')
  const ack = str('ack')
  if (ack !== undefined && ack !== 'local') {
    const m = /^peers:(\d+)$/.exec(ack)
    if (m === null) throw new UsageError(`--ack: '${ack}' is not 'local' or 'peers:K'`)
    options.ackPeers = Number(m[1])
  }
  const transport = str('transport')
  if (transport !== undefined) {
    if (transport !== 'tcp' && transport !== 'memory') throw new UsageError(`--transport: '${transport}' is not tcp or memory`)
    options.transport = transport
  }
  const labels: Record<string, string> = {}
  for (const l of list('label') ?? []) {
    const eq = l.indexOf('=')
    if (eq <= 0) throw new UsageError(`--label: '${l}' is not k=v`)
    labels[l.slice(0, eq)] = l.slice(eq + 1)
  }
  if (Object.keys(labels).length > 0) options.labels = labels
  const compactAfter = str('compact-after')
  if (compactAfter !== undefined) options.compactAfterEnded = compactAfter.trim() === '0' ? 0 : settingValue(CONFIG_FLAGS['compact-after']!, compactAfter, '--compact-after')
  const price = str('price-per-gib-hour')
  if (price !== undefined) options.pricePerGiBHour = settingValue(CONFIG_FLAGS['price-per-gib-hour']!, price, '--price-per-gib-hour')
  const pressure: PressureConfig = {}
  const ratio = (flag: string, field: keyof PressureConfig): void => {
    const text = str(flag)
    if (text !== undefined) pressure[field] = settingValue(CONFIG_FLAGS[flag]!, text, `--${flag}`)
  }
  ratio('pressure-warn', 'warnAtFloorRatio')
  ratio('pressure-refuse', 'refuseAtFloorRatio')
  ratio('pressure-evict', 'evictAtFloorRatio')
  ratio('pressure-margin', 'marginFloorRatio')
  ratio('pressure-dwell', 'dwellMs')
  if (Object.keys(pressure).length > 0) {
    try {
      resolvePressureConfig(pressure)
    } catch (error) {
      throw new UsageError(`--pressure-*: ${(error as Error).message}`)
    }
    options.pressure = pressure
  }
  const fake = str('fake-memory')
  if (fake !== undefined) {
    const [total, available] = fake.split(':')
    options.probe = fakeProbeFromText(sizeFlag(total, '--fake-memory'), available !== undefined ? sizeFlag(available, '--fake-memory') : undefined)
  }
  const level = str('log-level') ?? 'info'
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level: '${level}' is not one of ${LOG_LEVELS.join(', ')}`)
  const format = str('log-format') ?? 'text'
  if (format !== 'text' && format !== 'json') throw new UsageError(`--log-format: '${format}' is not text or json`)
  return { options, logging: { level: level as LogLevel, format } }
}

/** A flag's text as the value its kind says, or a {@link UsageError} naming the flag. */
function settingValue (flag: AgentFlag, text: string, name: string): number {
  switch (flag.kind) {
    case 'duration': return parseDuration(text, name)
    case 'size': return sizeFlag(text, name)
    case 'count': {
      const n = Number(text)
      if (text.trim() === '' || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name}: '${text}' is not a whole number of at least 1`)
      return n
    }
    case 'ratio': {
      const n = Number(text)
      if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${name}: '${text}' is not a non-negative multiple of the floor (e.g. 1.5)`)
      return n
    }
    case 'percent': {
      const m = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim())
      const pct = m === null ? NaN : Number(m[1])
      if (!(pct > 0 && pct <= 100)) throw new UsageError(`${name}: '${text}' is not a percentage above 0 and at most 100 (e.g. 90%)`)
      return pct / 100
    }
    case 'number': {
      const n = Number(text)
      if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${name}: '${text}' is not a non-negative number`)
      return n
    }
    default: throw new Error(`${name}: a ${flag.kind} flag has no numeric value`)
  }
}

export const AGENT_HELP = `Usage: memgossip agent [flags]

Run the memgossip agent on this host in the foreground (Ctrl-C stops it).

Example:
  memgossip agent --cluster-key cluster.key --bootstrap /ip4/10.0.0.1/tcp/7646/p2p/12D3KooW...

Flags:
${Object.entries(AGENT_FLAGS).filter(([k]) => k !== 'help').map(([k, s]) => `  --${k}${s.type === 'boolean' ? '' : ' VALUE'}\n      ${s.help ?? ''}`).join('\n')}
`

/** Runs until a signal; returns the exit code. */
export async function runAgent (argv: string[], out: { stdout: (s: string) => void, stderr: (s: string) => void }): Promise<number> {
  if (argv.includes('--help')) { out.stdout(AGENT_HELP); return 0 }
  let daemon
  try {
    const { options, logging } = parseAgentArgs(argv)
    daemon = await startDaemon({ ...options, log: createLogger({ level: logging.level, format: logging.format, write: out.stderr }) })
  } catch (error) {
    if (error instanceof UsageError || error instanceof DaemonConfigError || (error as Error).name === 'ConfigError' || (error as Error).name === 'UnknownPresetError' || (error as Error).name === 'ClusterKeyError') {
      out.stderr(`memgossip agent: ${(error as Error).message}\n`)
      return 2
    }
    throw error
  }
  // One plain line when ready; scripts read the same facts as JSON from <data-dir>/agent.json,
  // written before this line (the benchmark waits for this line, then reads the file).
  out.stdout(`${READY_LINE} (pid ${daemon.info.pid}); addresses as JSON in ${join(daemon.info.dataDir, 'agent.json')}\n`)
  await new Promise<void>(resolve => {
    const stop = (signal: string): void => {
      out.stderr(`received ${signal}, stopping\n`)
      resolve()
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  await daemon.stop()
  return 0
}

