/**
 * `memgossip agent`: run the agent on this host in the foreground. SIGINT and
 * SIGTERM stop it cleanly (the data file is flushed and closed).
 */
// Node 20 lacks Promise.withResolvers, which libp2p calls: load the shim before any libp2p module.
import '../../agent/shim.ts'
import { join } from 'node:path'
import { parseSize } from '../../crdt/index.ts'
import { DaemonConfigError, defaultDataDir, fakeProbeFromText, startDaemon, type DaemonOptions } from '../../agent/daemon.ts'
import { PRESSURE_DEFAULTS, resolvePressureConfig, type PressureConfig } from '../../agent/pressure.ts'
import { parseArgs, UsageError, type FlagSpec } from '../args.ts'

/** How the line printed once the agent serves its API starts. */
export const READY_LINE = 'memgossip agent ready'

export const AGENT_FLAGS: Record<string, FlagSpec> = {
  'data-dir': { type: 'string', help: `data directory (default ${defaultDataDir()})` },
  cluster: { type: 'string', help: "cluster name (default 'default')" },
  listen: { type: 'list', help: 'libp2p listen multiaddr, repeatable (default /ip4/127.0.0.1/tcp/7646; all interfaces with a cluster key)' },
  api: { type: 'string', help: 'HTTP API host:port (default 127.0.0.1:7647)' },
  'api-token': { type: 'string', help: 'file holding the bearer token; required for a non-loopback --api' },
  'cluster-key': { type: 'string', help: "pre-shared cluster key file from 'memgossip keygen'" },
  bootstrap: { type: 'list', help: 'multiaddr with /p2p/<id> of a peer to join through, repeatable' },
  mdns: { type: 'boolean', help: 'discover peers on the LAN with mDNS' },
  allocatable: { type: 'string', help: 'cap on allocatable memory, e.g. 48GiB' },
  'system-reserved': { type: 'string', help: 'memory kept for the system, out of allocatable, e.g. 2GiB' },
  floor: { type: 'string', help: 'memory that must stay free (size or N%); env MEMGOSSIP_MINMEM_* wins' },
  'evict-after': { type: 'string', help: 'propose evicting members silent this long (default 10m); a strict majority must acknowledge' },
  'max-clock-offset': { type: 'string', help: 'refuse writes while this host\'s clock is behind the cluster\'s by more (default 500ms)' },
  'heartbeat-interval': { type: 'string', help: 'also send a slow beacon this often (default off: liveness comes from the failure detector)' },
  'sync-interval': { type: 'string', help: 'anti-entropy with one random peer this often (default 5s)' },
  ack: { type: 'string', help: "'local' (default) or 'peers:K': acknowledge once K peers hold a reservation" },
  label: { type: 'list', help: 'node label k=v, repeatable' },
  'price-per-gib-hour': { type: 'string', help: 'rent price of one GiB held for one hour (default 0)' },
  transport: { type: 'string', help: "'tcp' (default) or 'memory'" },
  'local-cluster': { type: 'boolean', help: 'many agents on one host: loopback-friendly libp2p settings' },
  'fake-memory': { type: 'string', help: 'demo/test: pretend this host has TOTAL[:AVAILABLE] memory' },
  'pressure-warn': { type: 'string', help: `pressure ladder: warn clients below this × floor available (default ${PRESSURE_DEFAULTS.warnAtFloorRatio})` },
  'pressure-refuse': { type: 'string', help: `pressure ladder: refuse new placements below this × floor (default ${PRESSURE_DEFAULTS.refuseAtFloorRatio})` },
  'pressure-evict': { type: 'string', help: `pressure ladder: shrink allocatable (evict) below this × floor (default ${PRESSURE_DEFAULTS.evictAtFloorRatio})` },
  'pressure-margin': { type: 'string', help: `pressure ladder: leave a level only this × floor above its threshold (default ${PRESSURE_DEFAULTS.marginFloorRatio})` },
  'pressure-dwell': { type: 'string', help: `pressure ladder: hold a level at least this long before stepping down (default ${PRESSURE_DEFAULTS.dwellMs / 1000}s)` },
  'near-limit': { type: 'string', help: 'alert when a reservation uses more than this share of its limit (default 90%)' },
  help: { type: 'boolean' }
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

export function agentOptionsFromArgs (argv: string[]): DaemonOptions {
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
    localCluster: flags['local-cluster'] === true,
    floor: str('floor')
  }
  if (str('allocatable') !== undefined) options.allocatableCapBytes = sizeFlag(str('allocatable')!, '--allocatable')
  if (str('system-reserved') !== undefined) options.systemReservedBytes = sizeFlag(str('system-reserved')!, '--system-reserved')
  if (str('evict-after') !== undefined) options.evictAfterMs = parseDuration(str('evict-after')!, '--evict-after')
  if (str('max-clock-offset') !== undefined) options.maxClockOffsetMs = parseDuration(str('max-clock-offset')!, '--max-clock-offset')
  if (str('heartbeat-interval') !== undefined) options.heartbeatIntervalMs = parseDuration(str('heartbeat-interval')!, '--heartbeat-interval')
  if (str('sync-interval') !== undefined) options.syncIntervalMs = parseDuration(str('sync-interval')!, '--sync-interval')
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
  const price = str('price-per-gib-hour')
  if (price !== undefined) {
    const value = Number(price)
    if (price.trim() === '' || !Number.isFinite(value) || value < 0) throw new UsageError(`--price-per-gib-hour: '${price}' is not a non-negative number`)
    options.pricePerGiBHour = value
  }
  const pressure: PressureConfig = {}
  const ratio = (flag: string, field: keyof PressureConfig): void => {
    const text = str(flag)
    if (text === undefined) return
    const value = Number(text)
    if (text.trim() === '' || !Number.isFinite(value) || value < 0) throw new UsageError(`--${flag}: '${text}' is not a non-negative multiple of the floor (e.g. 1.5)`)
    pressure[field] = value
  }
  ratio('pressure-warn', 'warnAtFloorRatio')
  ratio('pressure-refuse', 'refuseAtFloorRatio')
  ratio('pressure-evict', 'evictAtFloorRatio')
  ratio('pressure-margin', 'marginFloorRatio')
  if (str('pressure-dwell') !== undefined) pressure.dwellMs = parseDuration(str('pressure-dwell')!, '--pressure-dwell')
  if (Object.keys(pressure).length > 0) {
    try {
      resolvePressureConfig(pressure)
    } catch (error) {
      throw new UsageError(`--pressure-*: ${(error as Error).message}`)
    }
    options.pressure = pressure
  }
  const nearLimit = str('near-limit')
  if (nearLimit !== undefined) {
    const m = /^(\d+(?:\.\d+)?)%?$/.exec(nearLimit.trim())
    const pct = m === null ? NaN : Number(m[1])
    if (!(pct > 0 && pct <= 100)) throw new UsageError(`--near-limit: '${nearLimit}' is not a percentage above 0 and at most 100 (e.g. 90%)`)
    options.nearLimitRatio = pct / 100
  }
  const fake = str('fake-memory')
  if (fake !== undefined) {
    const [total, available] = fake.split(':')
    options.probe = fakeProbeFromText(sizeFlag(total, '--fake-memory'), available !== undefined ? sizeFlag(available, '--fake-memory') : undefined)
  }
  return options
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
    daemon = await startDaemon(agentOptionsFromArgs(argv))
  } catch (error) {
    if (error instanceof UsageError || error instanceof DaemonConfigError || (error as Error).name === 'ConfigError' || (error as Error).name === 'ClusterKeyError') {
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

