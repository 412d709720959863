/**
 * Every agent setting in one place (docs/configuration.md), in the manner of
 * memberlist's `DefaultLANConfig` / `DefaultLocalConfig` / `DefaultWANConfig`:
 * three presets, each value with the reason it is what it is, and a table of
 * the operator's flags from which `memgossip agent`'s flags, defaults and help
 * are generated (cli/commands/agent.ts). The daemon's options
 * (agent/daemon.ts), the agent's init (agent/agent.ts) and the scenario files'
 * agent settings (simulations/scenario/schema.ts) take their defaults from
 * here.
 *
 * - `lan` (the default): hosts on one network, round trips under a millisecond
 *   or two, a few to ~100 hosts.
 * - `local`: many agents on one host (`--local-cluster`; tests, demos): the
 *   LAN's timing with loopback-friendly libp2p settings.
 * - `wan`: hosts across data centres: round trips of 10–300 ms and lossier
 *   links, so probes wait longer, suspicion lasts longer and the periodic
 *   exchanges run less often.
 *
 * Kept free of libp2p and the agent class, so the CLI's help and the
 * simulator read it without loading either.
 */
import { FAILURE_DETECTOR_DEFAULTS } from './liveness.ts'
import { PRESSURE_DEFAULTS } from './pressure.ts'

export const PRESET_NAMES = ['lan', 'local', 'wan'] as const
export type PresetName = typeof PRESET_NAMES[number]

/** The settings a preset fixes: the protocols' timing and limits. Durations in ms, sizes in bytes. */
export interface AgentSettings {
  /** Probe this host's memory this often; publish only on change. */
  sampleIntervalMs: number
  /** A slow beacon this often while nothing is written; 0 sends none. */
  heartbeatIntervalMs: number
  /** Anti-entropy with one random peer this often. */
  syncIntervalMs: number
  /** Failure detector: probe one member this often. */
  probeIntervalMs: number
  /** Failure detector: a direct ping unanswered this long goes indirect. */
  probeTimeoutMs: number
  /** Failure detector: members asked to ping a target that did not answer. */
  indirectProbes: number
  /** Failure detector: suspicion timeout at full confirmation, in probe intervals per log10 of the view size. */
  suspicionMult: number
  /** Failure detector: the suspicion timeout with no confirmation, as a multiple of the one above. */
  suspicionMaxMult: number
  /** Propose evicting members silent this long. */
  evictAfterMs: number
  /** Refuse writes while this host's clock is behind the cluster's by more. */
  maxClockOffsetMs: number
  /** Rewrite the node record this often when no figure moved. */
  recordRefreshMs: number
  /** Batch local writes this long into one gossip message. */
  gossipBatchMs: number
  /** Batch delay of an on-demand beacon. */
  beaconDelayMs: number
  /** A verdict waiting this long for a member's beacon pulls it from a peer. */
  beaconPullAfterMs: number
  /** Wait this long for `--ack peers:K`. */
  ackTimeoutMs: number
  /** Every libp2p dial and request gives up after this long. */
  requestTimeoutMs: number
  /** Largest gossip message, request or response, sent or accepted (and the largest Yjs update accepted). */
  maxMessageBytes: number
  /** libp2p settings for many agents on one host (loopback past the per-host rate limit, no IP-colocation penalty). */
  localCluster: boolean
  /** Alert when a reservation uses more than this share of its limit. */
  nearLimitRatio: number
}

/**
 * Largest message (gossip, sync request or response) and Yjs update, one
 * limit for every transport: a sync reply carries a whole ledger on join
 * (a 10,000-reservation ledger is about 2 MiB), gossip batches stay far below.
 */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024

/**
 * Gossipsub mesh degree D (agent/net/libp2p.ts gives the measurements behind
 * 3 rather than the spec's 6); the virtual tier's default `paths` follows it.
 */
export const GOSSIP_D = 3

/** `lan`: the default. */
export const LAN: Readonly<AgentSettings> = Object.freeze({
  /** Once a second: reading /proc/meminfo is cheap, and a second is the probe's useful resolution (docs/design.md "Measuring memory"). */
  sampleIntervalMs: 1000,
  /** Off: liveness comes from the failure detector, whose cost does not grow with the cluster (docs/design.md "Liveness"). */
  heartbeatIntervalMs: 0,
  /** 5 s: gossip is lossy; a round finds what it lost, and rounds back off while they bring nothing (agent/sync.ts). */
  syncIntervalMs: 5000,
  /** SWIM/memberlist's LAN interval: one probe a second finds a dead member within seconds. */
  probeIntervalMs: FAILURE_DETECTOR_DEFAULTS.probeIntervalMs,
  /** A second: well above LAN round trips plus a loaded host's scheduling delay (the 2-core CI machine). */
  probeTimeoutMs: FAILURE_DETECTOR_DEFAULTS.probeTimeoutMs,
  /** memberlist's 3: one lossy path does not make a member suspect. */
  indirectProbes: FAILURE_DETECTOR_DEFAULTS.indirectProbes,
  /** memberlist's LAN 4. */
  suspicionMult: FAILURE_DETECTOR_DEFAULTS.suspicionMult,
  /** memberlist's 6 (Lifeguard). */
  suspicionMaxMult: FAILURE_DETECTOR_DEFAULTS.suspicionMaxMult,
  /** 10 min: a reboot or a network blip comes back well within it (docs/design.md "Membership as views"). */
  evictAfterMs: 10 * 60_000,
  /** CockroachDB's default: behind by more, stamps would land in the past (docs/design.md "Clocks"). */
  maxClockOffsetMs: 500,
  /** 10 min: figures that drift within the publish threshold still show, at almost no cost. */
  recordRefreshMs: 10 * 60_000,
  /** 5 ms: a burst of writes is one gossip message, and a client barely waits. */
  gossipBatchMs: 5,
  /** 20 ms: a new entry is confirmed about two such round trips after it is written. */
  beaconDelayMs: 20,
  /** A second: a lost gossip message is pulled rather than waited for. */
  beaconPullAfterMs: 1000,
  /** 10 s: K peers that are up hold a reservation well within it. */
  ackTimeoutMs: 10_000,
  /** 10 s: a dial on a LAN takes milliseconds; this is for a host that is gone. */
  requestTimeoutMs: 10_000,
  maxMessageBytes: MAX_MESSAGE_BYTES,
  /** Off: both settings it relaxes are defenses against Sybil peers on a real network. */
  localCluster: false,
  /** 90 %: the kernel OOM-kills a reservation at its limit; this leaves time to act. */
  nearLimitRatio: 0.9
})

/**
 * `local` (`--local-cluster`): many agents on one host. memberlist's
 * `DefaultLocalConfig` shortens its timeouts because loopback is fast; here
 * the agents share the host's cores, and a loaded host's scheduling delay,
 * not the network, is what a probe waits for, so the LAN's timing stays.
 */
export const LOCAL: Readonly<AgentSettings> = Object.freeze({
  ...LAN,
  /** Every peer is 127.0.0.1: without it they hit libp2p's per-host inbound limit and gossipsub's IP-colocation penalty. */
  localCluster: true
})

/** `wan`: hosts across data centres, after memberlist's `DefaultWANConfig`. */
export const WAN: Readonly<AgentSettings> = Object.freeze({
  ...LAN,
  /** 15 s: each sync crosses a WAN link; gossip still carries nearly everything at once. */
  syncIntervalMs: 15_000,
  /** memberlist's WAN 5 s: fewer probes over expensive links. */
  probeIntervalMs: 5000,
  /** memberlist's WAN 3 s: round trips of hundreds of ms, and a retransmitted packet. */
  probeTimeoutMs: 3000,
  /** memberlist's WAN 6: a lossy link suspects members that are alive more often; give them longer to refute. */
  suspicionMult: 6,
  /** 3 s: a beacon across a WAN takes longer to arrive by gossip. */
  beaconPullAfterMs: 3000,
  /** 30 s: K peers across data centres. */
  ackTimeoutMs: 30_000,
  /** memberlist's WAN TCP timeout, 30 s. */
  requestTimeoutMs: 30_000
})

export const PRESETS: Readonly<Record<PresetName, Readonly<AgentSettings>>> = Object.freeze({ lan: LAN, local: LOCAL, wan: WAN })

export class UnknownPresetError extends Error {
  override readonly name = 'UnknownPresetError'
}

/** The preset named `name`; throws {@link UnknownPresetError} naming it. */
export function preset (name: string): Readonly<AgentSettings> {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) throw new UnknownPresetError(`unknown preset '${name}' (expected ${PRESET_NAMES.join(', ')})`)
  return PRESETS[name as PresetName]
}

/** A preset with the fields of `overrides` that are set (undefined fields keep the preset's). */
export function resolveSettings (name: PresetName, overrides: Partial<AgentSettings> = {}): AgentSettings {
  const out: AgentSettings = { ...preset(name) }
  for (const key of Object.keys(out) as Array<keyof AgentSettings>) {
    const value = overrides[key]
    if (value !== undefined) (out as unknown as Record<string, unknown>)[key] = value
  }
  return out
}

/**
 * The agent's own constants: not per environment, so not in a preset. The
 * agent reads them as `DEFAULTS` (agent/agent.ts), with the LAN preset's
 * values for what an `AgentInit` leaves unset.
 */
/** Reservations ended between epochs (docs/design.md "Compaction: epochs"): a checkpoint is a replay of the epoch's document, so not every few. */
const AGENT_DEFAULTS_COMPACT_AFTER_ENDED = 2000

export const AGENT_DEFAULTS = Object.freeze({
  sampleIntervalMs: LAN.sampleIntervalMs,
  heartbeatIntervalMs: LAN.heartbeatIntervalMs,
  probeIntervalMs: LAN.probeIntervalMs,
  beaconPullAfterMs: LAN.beaconPullAfterMs,
  recordRefreshMs: LAN.recordRefreshMs,
  /**
   * A restart never stamps below what this node's beacons carried: the data
   * dir holds a clock lease this far past the latest beacon, renewed (one
   * small fsync) when a beacon would pass it, and a restarted agent writes
   * nothing until its wall clock has passed it (docs/design.md "Clock channel").
   */
  clockLeaseMs: 1_000,
  gossipBatchMs: LAN.gossipBatchMs,
  syncIntervalMs: LAN.syncIntervalMs,
  evictAfterMs: LAN.evictAfterMs,
  /** Largest Yjs update accepted from a peer in one message: the message limit. */
  maxUpdateBytes: MAX_MESSAGE_BYTES,
  /** Most structs (entries) in one update from a peer. */
  maxUpdateEntries: 200_000,
  /** Remote stamps further ahead of our wall clock than this do not drag our clock. */
  maxClockSkewMs: 60_000,
  maxClockOffsetMs: LAN.maxClockOffsetMs,
  beaconDelayMs: LAN.beaconDelayMs,
  /** Compact the data file once the log holds this many bytes. */
  compactAfterBytes: 8 * 1024 * 1024,
  /**
   * Propose a new epoch once this many entries ended (released, rejected,
   * evicted) since the current one began (docs/design.md "Compaction:
   * epochs"): what ended before the checkpoint's cut leaves memory and disk.
   * A checkpoint is a replay of the epoch's document, so not every few entries.
   */
  compactAfterEnded: AGENT_DEFAULTS_COMPACT_AFTER_ENDED,
  /** Warn clients when a placement leaves a node above this share committed. */
  warnCommittedRatio: 0.85,
  /** Alert operators when a node is committed above this share. */
  alertCommittedRatio: 0.9,
  nearLimitRatio: LAN.nearLimitRatio,
  ackTimeoutMs: LAN.ackTimeoutMs,
  /** Re-log an unchanged alert at most this often. */
  alertLogIntervalMs: 5 * 60_000,
  /**
   * Alert (FinalityStalled) when a verdict stays tentative this long after it
   * was stamped: finality normally takes well under a second, so a minute
   * means a member's clock, confirmations or a view change are stuck.
   */
  finalityStallAlertMs: 60_000,
  /**
   * Per-peer gossip budget: a token bucket of messages and bytes. A healthy
   * peer sends one batch per burst of writes; a flooding one is cut to this rate
   * (the excess is dropped and counted) so it cannot starve the others, and
   * anything legitimate it sent still arrives by anti-entropy sync.
   */
  gossipMessagesPerSecond: 200,
  /** Connections kept to live members beyond the bootstrap peers (a gossipsub mesh of D = 3 forms over them; a few suffice for anti-entropy). */
  targetPeers: 6,
  gossipBytesPerSecond: 8 * 1024 * 1024
})

/** Where the agent listens for peers by default (7646) and serves its API (7647, loopback). */
export const DEFAULT_P2P_PORT = 7646
export const DEFAULT_API = '127.0.0.1:7647'
/** Agents join only agents of the same cluster name (part of every topic and protocol id). */
export const DEFAULT_CLUSTER = 'default'

/** How a flag's text becomes a value. */
export type FlagKind = 'string' | 'list' | 'boolean' | 'duration' | 'size' | 'count' | 'ratio' | 'percent' | 'number'

/** One `memgossip agent` flag. */
export interface AgentFlag {
  kind: FlagKind
  /** What it does, for `--help`. */
  help: string
  /** The preset setting it overrides; its default and per-preset values are printed from the presets. */
  setting?: keyof AgentSettings
  /** The default as printed, for flags outside the presets. */
  default?: string
}

/**
 * Every flag of `memgossip agent`, in `--help` order. Flags with a `setting`
 * override that field of the chosen preset; the pressure ladder's take their
 * defaults from agent/pressure.ts, where the ladder and its reasons live.
 */
export const AGENT_FLAGS: Readonly<Record<string, AgentFlag>> = Object.freeze({
  preset: { kind: 'string', help: `settings for where the agent runs: ${PRESET_NAMES.join(', ')} (docs/configuration.md)`, default: 'lan' },
  'data-dir': { kind: 'string', help: 'data directory', default: '$XDG_STATE_HOME/memgossip or ~/.local/state/memgossip' },
  cluster: { kind: 'string', help: 'cluster name', default: DEFAULT_CLUSTER },
  listen: { kind: 'list', help: 'libp2p listen multiaddr, repeatable; all interfaces with a cluster key', default: `/ip4/127.0.0.1/tcp/${DEFAULT_P2P_PORT}` },
  api: { kind: 'string', help: 'HTTP API host:port', default: DEFAULT_API },
  'api-token': { kind: 'string', help: 'file holding the bearer token; required for a non-loopback --api' },
  'cluster-key': { kind: 'string', help: "pre-shared cluster key file from 'memgossip keygen'" },
  bootstrap: { kind: 'list', help: 'multiaddr with /p2p/<id> of a peer to join through, repeatable' },
  mdns: { kind: 'boolean', help: 'discover peers on the LAN with mDNS' },
  allocatable: { kind: 'size', help: 'cap on allocatable memory, e.g. 48GiB' },
  'system-reserved': { kind: 'size', help: 'memory kept for the system, out of allocatable, e.g. 2GiB' },
  floor: { kind: 'string', help: 'memory that must stay free (size or N%); env MEMGOSSIP_MINMEM_* wins' },
  'evict-after': { kind: 'duration', setting: 'evictAfterMs', help: 'propose evicting members silent this long; a strict majority must acknowledge' },
  'max-clock-offset': { kind: 'duration', setting: 'maxClockOffsetMs', help: "refuse writes while this host's clock is behind the cluster's by more" },
  'heartbeat-interval': { kind: 'duration', setting: 'heartbeatIntervalMs', help: 'also send a slow beacon this often; without it liveness comes from the failure detector' },
  'sync-interval': { kind: 'duration', setting: 'syncIntervalMs', help: 'anti-entropy with one random peer this often, backing off to 12× (times the push-pull scale of the view above 32 members) while rounds bring nothing' },
  'probe-interval': { kind: 'duration', setting: 'probeIntervalMs', help: 'failure detector: probe one member this often' },
  'probe-timeout': { kind: 'duration', setting: 'probeTimeoutMs', help: 'failure detector: a direct ping unanswered this long asks other members to ping' },
  'suspicion-mult': { kind: 'count', setting: 'suspicionMult', help: 'failure detector: suspicion timeout in probe intervals per log10 of the view size' },
  'request-timeout': { kind: 'duration', setting: 'requestTimeoutMs', help: 'every libp2p dial and request gives up after this long' },
  'max-message': { kind: 'size', setting: 'maxMessageBytes', help: 'largest gossip message, request or response sent or accepted' },
  ack: { kind: 'string', help: "'local' or 'peers:K': acknowledge once K peers hold a reservation", default: 'local' },
  label: { kind: 'list', help: 'node label k=v, repeatable' },
  'compact-after': { kind: 'count', help: 'move the ledger to a new epoch once this many reservations ended since the last (0: never)', default: String(AGENT_DEFAULTS_COMPACT_AFTER_ENDED) },
  'price-per-gib-hour': { kind: 'number', help: 'rent price of one GiB held for one hour', default: '0' },
  transport: { kind: 'string', help: "'tcp' or 'memory'", default: 'tcp' },
  'local-cluster': { kind: 'boolean', help: 'many agents on one host: the same as --preset local' },
  'fake-memory': { kind: 'string', help: 'demo/test: pretend this host has TOTAL[:AVAILABLE] memory' },
  'pressure-warn': { kind: 'ratio', help: 'pressure ladder: warn clients below this × floor available', default: String(PRESSURE_DEFAULTS.warnAtFloorRatio) },
  'pressure-refuse': { kind: 'ratio', help: 'pressure ladder: refuse new placements below this × floor', default: String(PRESSURE_DEFAULTS.refuseAtFloorRatio) },
  'pressure-evict': { kind: 'ratio', help: 'pressure ladder: shrink allocatable (evict) below this × floor', default: String(PRESSURE_DEFAULTS.evictAtFloorRatio) },
  'pressure-margin': { kind: 'ratio', help: 'pressure ladder: leave a level only this × floor above its threshold', default: String(PRESSURE_DEFAULTS.marginFloorRatio) },
  'pressure-dwell': { kind: 'duration', help: 'pressure ladder: hold a level at least this long before stepping down', default: formatDuration(PRESSURE_DEFAULTS.dwellMs) },
  'near-limit': { kind: 'percent', setting: 'nearLimitRatio', help: 'alert when a reservation uses more than this share of its limit' },
  'log-level': { kind: 'string', help: 'least severe log lines printed: debug, info, warn or error', default: 'info' },
  'log-format': { kind: 'string', help: "'text' (one readable line per event) or 'json' (one JSON object per line, for machines)", default: 'text' }
})

/** A setting's value as a flag would spell it (`5s`, `16MiB`, `90%`). */
export function formatSetting (flag: AgentFlag, value: number | boolean): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off'
  switch (flag.kind) {
    case 'duration': return value === 0 ? 'off' : formatDuration(value)
    case 'size': return value % (1024 * 1024) === 0 ? `${value / (1024 * 1024)}MiB` : `${value}`
    case 'percent': return `${Math.round(value * 100)}%`
    default: return String(value)
  }
}

/** `500ms`, `5s`, `10m`, `2h`: the shortest exact spelling. */
export function formatDuration (ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/** The default printed in `--help`: the `lan` value, and the other presets' where they differ. */
export function flagDefault (flag: AgentFlag): string | undefined {
  if (flag.setting === undefined) return flag.default
  const key = flag.setting
  const lan = formatSetting(flag, LAN[key])
  const others = PRESET_NAMES.filter(p => p !== 'lan' && PRESETS[p][key] !== LAN[key]).map(p => `${p} ${formatSetting(flag, PRESETS[p][key])}`)
  return others.length === 0 ? lan : `${lan}; ${others.join(', ')}`
}
