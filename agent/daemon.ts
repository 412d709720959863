/**
 * `memgossip agent`: everything a real host runs, wired from options — the
 * system probe, the peer key and data dir, the cluster key, libp2p, the agent
 * and its HTTP API. Tests start it in-process with a fake probe; the CLI starts
 * it from flags.
 *
 * Safe defaults (docs/design.md "Network", "Interfaces"): without a cluster key
 * the agent listens on loopback only (like a protected mode) and says how to
 * add a key; with one it listens on all interfaces. The API binds loopback, and
 * refuses any other bind without a token.
 */
import './shim.ts'
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { connect, createServer, type Server } from 'node:net'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { formatSize } from '../crdt/size.ts'
import { Agent, type AgentInit } from './agent.ts'
import { DEFAULT_API, DEFAULT_CLUSTER, DEFAULT_P2P_PORT, resolveSettings, type AgentSettings, type PresetName } from './config.ts'
import { startApi, splitHostPort, type ApiServer } from './api.ts'
import { loadClusterKey } from './net/cluster-key.ts'
import { loadOrCreatePeerKey } from './net/identity.ts'
import { createLibp2pNetwork, type Libp2pNetwork } from './net/libp2p.ts'
import { createLogger, lineSink, toLogger, type Logger, type LogLine } from './log.ts'
import { createFakeProbe, createSystemProbe } from './probe.ts'
import type { MemoryProbe } from './types.ts'
import type { PressureConfig } from './pressure.ts'

export { DEFAULT_API, DEFAULT_CLUSTER, DEFAULT_P2P_PORT } from './config.ts'

/**
 * What `memgossip agent` is started with: the chosen preset's settings
 * (agent/config.ts; any field set here overrides the preset's) and what only
 * this host knows — where it keeps data and listens, its keys, its peers.
 */
export interface DaemonOptions extends Partial<AgentSettings> {
  /** Settings for where the agent runs (default `lan`, or `local` when `localCluster` is set). */
  preset?: PresetName
  dataDir?: string
  cluster?: string
  /** libp2p listen multiaddrs (default: loopback without a key, all interfaces with one, port 7646). */
  listen?: string[]
  /** API `host:port` (default 127.0.0.1:7647). */
  api?: string
  apiTokenFile?: string
  clusterKeyFile?: string
  bootstrap?: string[]
  mdns?: boolean
  transport?: 'tcp' | 'memory'
  allocatableCapBytes?: number
  systemReservedBytes?: number
  floor?: string
  ackPeers?: number
  /** Rent price per GiB-hour (`--price-per-gib-hour`). */
  pricePerGiBHour?: number
  labels?: Record<string, string>
  /** A probe to use instead of the host's (tests, demos: `--fake-memory`). */
  probe?: MemoryProbe
  /** The pressure ladder's thresholds (`--pressure-*`, agent/pressure.ts). */
  pressure?: PressureConfig
  fsync?: boolean
  /** Propose a new epoch once this many entries ended (docs/design.md "Compaction: epochs"; 0: never). */
  compactAfterEnded?: number
  /** Where the daemon and its agent log (default: pino, text lines on stderr at info). */
  log?: Logger | LogLine
}

export interface Daemon {
  agent: Agent
  api: ApiServer
  network: Libp2pNetwork
  info: AgentInfo
  stop: () => Promise<void>
}

/** What `<data-dir>/agent.json` holds, so scripts can bootstrap the next agent. */
export interface AgentInfo {
  peerId: string
  multiaddrs: string[]
  api: string
  dataDir: string
  cluster: string
  clusterKey: boolean
  pid: number
}

/** `$XDG_STATE_HOME/memgossip`, else `~/.local/state/memgossip`. */
export function defaultDataDir (env: Record<string, string | undefined> = process.env): string {
  const base = env.XDG_STATE_HOME !== undefined && env.XDG_STATE_HOME !== '' ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state')
  return join(base, 'memgossip')
}

export function isLoopbackHost (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

export class DaemonConfigError extends Error {
  override readonly name = 'DaemonConfigError'
}

export async function startDaemon (options: DaemonOptions = {}): Promise<Daemon> {
  const presetName = options.preset ?? (options.localCluster === true ? 'local' : 'lan')
  const settings = resolveSettings(presetName, options)
  const logger = toLogger(options.log, () => createLogger())
  const log = lineSink(logger)
  const dataDir = options.dataDir ?? defaultDataDir()
  const cluster = options.cluster ?? DEFAULT_CLUSTER
  logger.debug(`settings: preset ${presetName}`, { ...settings })
  const apiAddress = options.api ?? DEFAULT_API
  const [apiHost] = splitHostPort(apiAddress)

  let token: string | undefined
  if (options.apiTokenFile !== undefined) {
    token = (await readFile(options.apiTokenFile, 'utf8')).trim()
    const mode = (await stat(options.apiTokenFile)).mode & 0o777
    if ((mode & 0o077) !== 0) logger.warn(`API token file ${options.apiTokenFile} is readable by others (mode ${mode.toString(8)}); chmod 600 it`)
    if (token.length < 16) throw new DaemonConfigError(`API token in ${options.apiTokenFile} is shorter than 16 characters`)
  }
  if (!isLoopbackHost(apiHost) && token === undefined) {
    throw new DaemonConfigError(`refusing to bind the API to ${apiAddress} without a token: pass --api-token FILE (any non-loopback bind needs one)`)
  }

  let clusterKey: Uint8Array | undefined
  if (options.clusterKeyFile !== undefined) {
    const loaded = await loadClusterKey(options.clusterKeyFile)
    clusterKey = loaded.key
    if (loaded.warning !== undefined) logger.warn(loaded.warning)
  }
  const transport = options.transport ?? 'tcp'
  const listen = options.listen ?? (transport === 'memory'
    ? undefined
    : [clusterKey !== undefined ? `/ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT}` : `/ip4/127.0.0.1/tcp/${DEFAULT_P2P_PORT}`])
  if (clusterKey === undefined) {
    const exposed = (listen ?? []).filter(a => !/\/ip4\/127\.|\/ip6\/::1\/|\/memory\//.test(a))
    if (exposed.length > 0) throw new DaemonConfigError(`refusing to listen on ${exposed.join(', ')} without a cluster key: run 'memgossip keygen > cluster.key' and pass --cluster-key cluster.key on every host`)
  }

  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  // An existing dir keeps its mode on mkdir: tighten it, it holds the peer key.
  const dirMode = (await stat(dataDir)).mode & 0o777
  if ((dirMode & 0o077) !== 0) {
    await chmod(dataDir, 0o700)
    log(`data dir ${dataDir} was mode ${dirMode.toString(8)}; set to 700`)
  }
  const lock = await lockDataDir(dataDir, log)
  const unlock = async (): Promise<void> => { await new Promise<void>(resolve => { if (lock === undefined) resolve(); else lock.close(() => resolve()) }) }
  let network: Libp2pNetwork
  try {
    const privateKey = await loadOrCreatePeerKey(dataDir)
    network = await createLibp2pNetwork({
      cluster,
      privateKey,
      listen,
      bootstrap: options.bootstrap,
      clusterKey,
      transport,
      mdns: options.mdns,
      localCluster: settings.localCluster,
      maxMessageBytes: settings.maxMessageBytes,
      requestTimeoutMs: settings.requestTimeoutMs,
      log: lineSink(logger, 'net: ')
    })
  } catch (error) {
    await unlock()
    throw error
  }

  const init: AgentInit = {
    network,
    probe: options.probe ?? createSystemProbe(),
    cluster,
    dataDir,
    fsync: options.fsync,
    floor: options.floor !== undefined ? { floor: options.floor } : undefined,
    systemReservedBytes: options.systemReservedBytes,
    allocatableCapBytes: options.allocatableCapBytes,
    labels: options.labels,
    expectsPeers: (options.bootstrap?.length ?? 0) > 0,
    ackPeers: options.ackPeers,
    pricePerGiBHour: options.pricePerGiBHour,
    sampleIntervalMs: settings.sampleIntervalMs,
    heartbeatIntervalMs: settings.heartbeatIntervalMs,
    syncIntervalMs: settings.syncIntervalMs,
    probeIntervalMs: settings.probeIntervalMs,
    failureDetector: {
      probeTimeoutMs: settings.probeTimeoutMs,
      indirectProbes: settings.indirectProbes,
      suspicionMult: settings.suspicionMult,
      suspicionMaxMult: settings.suspicionMaxMult
    },
    evictAfterMs: settings.evictAfterMs,
    maxClockOffsetMs: settings.maxClockOffsetMs,
    recordRefreshMs: settings.recordRefreshMs,
    gossipBatchMs: settings.gossipBatchMs,
    beaconDelayMs: settings.beaconDelayMs,
    beaconPullAfterMs: settings.beaconPullAfterMs,
    ackTimeoutMs: settings.ackTimeoutMs,
    maxUpdateBytes: settings.maxMessageBytes,
    nearLimitRatio: settings.nearLimitRatio,
    pressure: options.pressure,
    compactAfterEnded: options.compactAfterEnded,
    // A restarted agent finds the cgroups of what `memgossip run` still runs here; not with a fake probe.
    findCgroups: options.probe === undefined,
    log: logger
  }
  let agent: Agent
  try {
    agent = await Agent.start(init)
  } catch (error) {
    await network.stop().catch(() => {})
    await unlock()
    // A taken or foreign p2p port is an operator's config error, not a crash: say which, without libp2p's stack.
    if ((error as Error).name === 'UnsupportedListenAddressesError') {
      const message = (error as Error).message
      throw new DaemonConfigError(`cannot listen on ${(listen ?? []).join(', ')}: ${/listen (E[A-Z]+[^\n]*)/.exec(message)?.[1] ?? message.split('\n')[0]}`)
    }
    throw error
  }
  let api: ApiServer
  try {
    api = await startApi({ agent, listen: apiAddress, token, log })
  } catch (error) {
    await agent.stop()
    await unlock()
    throw new DaemonConfigError(`cannot serve the API on ${apiAddress}: ${(error as Error).message}`)
  }

  const info: AgentInfo = {
    peerId: agent.self,
    multiaddrs: network.addresses(),
    api: api.url,
    dataDir,
    cluster,
    clusterKey: clusterKey !== undefined,
    pid: process.pid
  }
  const tmp = join(dataDir, 'agent.json.tmp')
  await writeFile(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 })
  await rename(tmp, join(dataDir, 'agent.json'))

  // One event with the facts as fields (the JSON format keeps them apart; text prints them k=v).
  logger.info(`memgossip agent ${agent.self} started`, {
    p2p: info.multiaddrs,
    api: api.url + (token !== undefined ? ' (bearer token required)' : ''),
    data: dataDir,
    allocatable: `${formatSize(agent.state().allocatableBytes)} (floor ${formatSize(agent.floorBytes)}: ${agent.floorRule})`
  })
  if (clusterKey === undefined) {
    logger.info("no cluster key: listening on loopback only. To join hosts, run 'memgossip keygen > cluster.key', copy it to every host (mode 0600) and start each agent with --cluster-key cluster.key")
  }

  let stopping: Promise<void> | undefined
  return {
    agent,
    api,
    network,
    info,
    stop: async () => {
      stopping ??= (async () => {
        await api.close()
        await agent.stop()
        await unlock()
      })()
      await stopping
    }
  }
}

/** A Unix socket in the data dir, listening while an agent uses the dir. */
const LOCK_SOCKET = 'agent.sock'
/** sun_path holds 108 bytes on Linux, 104 on macOS. */
const MAX_SOCKET_PATH_BYTES = 100

/**
 * One agent per data dir: two would share one peer id and one Yjs client id,
 * write different entries under the same clocks (peers then diverge for good)
 * and interleave appends to one ledger. The lock is a listening Unix socket,
 * so the kernel releases it when the agent dies, even by kill -9: a live owner
 * accepts a connection, a crashed one's leftover socket refuses it and is
 * replaced. Skipped (with a warning) where a socket path cannot hold the dir.
 */
async function lockDataDir (dataDir: string, log: (line: string) => void): Promise<Server | undefined> {
  const path = join(dataDir, LOCK_SOCKET)
  if (process.platform === 'win32' || Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    log(`WARNING no single-instance lock on ${dataDir} (path too long for a socket): make sure no other agent uses it`)
    return undefined
  }
  const listen = async (): Promise<Server> => await new Promise((resolve, reject) => {
    const server = createServer(socket => { socket.destroy() })
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      server.unref()
      resolve(server)
    })
  })
  try {
    return await listen()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
  }
  const alive = await new Promise<boolean>(resolve => {
    const probe = connect(path)
    probe.once('connect', () => { probe.destroy(); resolve(true) })
    probe.once('error', () => { resolve(false) })
  })
  if (alive) throw new DaemonConfigError(`data dir ${dataDir} is in use by another running agent: stop it first (two agents on one data dir share one identity and corrupt the ledger)`)
  await rm(path, { force: true })
  return await listen()
}

/** `--fake-memory TOTAL[:AVAILABLE]` for demos and end-to-end tests on one host. */
export function fakeProbeFromText (total: number, available?: number): MemoryProbe {
  return createFakeProbe({ totalBytes: total, availableBytes: available ?? total })
}
