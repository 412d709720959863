/**
 * The agent: the shell around the ledger core (docs/design.md "Agent"). It
 * measures this host's memory, writes heartbeats and capacity events, carries
 * the ledger between peers (gossip as the fast path, anti-entropy sync to
 * heal), keeps it on disk, tracks liveness and evicts the long dead, and
 * answers clients. Every decision is made by `crdt/`; this file moves bytes and
 * time.
 *
 * Write order (docs/design.md "Durability"): a local change is appended and
 * fsynced before it is published, served to a syncing peer, or acknowledged. A
 * restarted agent therefore reuses its Yjs client id without reusing a clock a
 * peer has seen. When a durable append fails (disk full), the agent turns
 * read-only: it keeps answering from what it holds but neither writes nor
 * shares its own stream until it is restarted, because its in-memory stream now
 * holds a write the disk does not.
 */
import { EventEmitter } from 'node:events'
import * as Y from 'yjs'
import {
  computeRent, decodeHlc, encodeHlc, entryKey, isHlc, stampInRange, finishResolution, fit, formatSize, hlcWallMs, latestWithin, LedgerWriter, ledgerMaps, MAP_CAPACITY,
  MAP_MEMBERSHIP, MAP_NODES, MAP_RELEASES, MAP_RESERVATIONS, MAX_ADDRS, readLedger, readMapRecord, releaseKey, replayLedger, shortId,
  MAX_QUEUE_TIMEOUT_MS, type Replayed, type FitAnswer, type Placement, type RentBill, type Resolution, type StreamPosition, type Verdict, type NodeView
} from '../crdt/index.ts'
import { AckTimeoutError, BadRequestError, IdExistsError, NotFoundError, UnavailableError } from './errors.ts'
import { computeAllocatable, PublishGate, resolveFloor, type FloorConfig } from './probe.ts'
import { AlertSink, computeAlerts, formatMs, type Alert } from './alerts.ts'
import { PressureLadder, pressureWarnings, type PressureConfig, type PressureLevel } from './pressure.ts'
import { UsageTracker, UsageWatchError, type OomReport, type ReservationUsage, type UsageCounters } from './usage.ts'
import { verdictSignature } from './signatures.ts'
import { ClockChannel, DIRECT_MEMBERS_MAX, emptyBeaconCounters, type BeaconCounters } from './clock.ts'
import { MembershipDuties, positionsOf } from './membership.ts'
import { timedOutQueued } from './queue.ts'
import { LedgerStore, readMeta, writeMeta } from './store.ts'
import type { Clock, MemoryProbe, MemorySample, Network, PeerIdStr, TimerHandle } from './types.ts'
import { emptyLivenessCounters, FAILURE_DETECTOR_DEFAULTS, FailureDetector, type IndirectAnswer, type Liveness, type LivenessCounters } from './liveness.ts'
import {
  decodeMessage, encodeMessage, MAX_PULL, MSG_ACK, MSG_BEACON, MSG_BEACONS, MSG_ERROR, MSG_GOSSIP, MSG_PING, MSG_PING_REQ, MSG_PONG, MSG_PULL, MSG_PUSH,
  MSG_CALL, MSG_REPLY, MSG_SUSPECT, MSG_SYNC_REPLY, MSG_SYNC_REQUEST, WireError, type WireBeacon, type WireMessage
} from './wire.ts'
import { DirectCalls } from './calls.ts'

export const VERSION = '0.1.0'

/** Defaults, each with the reason it is what it is. */
export const DEFAULTS = {
  /** Probe memory every second; publish only on change (docs/design.md "Measuring memory"). */
  sampleIntervalMs: 1000,
  /**
   * A slow beacon this often while nothing is written; 0 (the default) sends
   * none: liveness comes from the failure detector, whose cost does not grow
   * with the cluster (docs/design.md "Liveness").
   */
  heartbeatIntervalMs: 0,
  /** Probe one connected member this often (docs/design.md "Liveness"). */
  probeIntervalMs: FAILURE_DETECTOR_DEFAULTS.probeIntervalMs,
  /** A verdict waiting this long for a member's beacon pulls it from a peer (a gossip message may be lost). */
  beaconPullAfterMs: 1000,
  /**
   * Write the node record when a figure moves past the publish threshold, and
   * otherwise only this often (docs/design.md "Measuring memory"): figures
   * that drift within the threshold still show, at almost no cost.
   */
  recordRefreshMs: 10 * 60_000,
  /**
   * A restart never stamps below what this node's beacons carried: the data
   * dir holds a clock lease this far past the latest beacon, renewed (one
   * small fsync) when a beacon would pass it, and a restarted agent writes
   * nothing until its wall clock has passed it (docs/design.md "Clock channel").
   */
  clockLeaseMs: 1_000,
  /** Batch local writes this long so a burst is one gossip message (docs/design.md "Network"). */
  gossipBatchMs: 5,
  /** Anti-entropy with one random peer this often; gossip is lossy. */
  syncIntervalMs: 5000,
  /** Silent this long: write an eviction record (docs/design.md "Membership as views"). */
  evictAfterMs: 10 * 60_000,
  /** Largest Yjs update accepted from a peer in one message. */
  maxUpdateBytes: 16 * 1024 * 1024,
  /** Most structs (entries) in one update from a peer. */
  maxUpdateEntries: 200_000,
  /** Remote stamps further ahead of our wall clock than this do not drag our clock. */
  maxClockSkewMs: 60_000,
  /**
   * Clock offset tolerated (CockroachDB's default): a host whose clock is
   * behind the cluster's by more refuses writes rather than stamp them in the
   * past, and a peer ahead by more is alerted (docs/design.md "Clocks").
   */
  maxClockOffsetMs: 500,
  /** Batch delay of an on-demand beacon: a new entry is confirmed about two such round trips after it is written. */
  beaconDelayMs: 20,
  /** Compact the data file once the log holds this many bytes. */
  compactAfterBytes: 8 * 1024 * 1024,
  /** Warn clients when a placement leaves a node above this share committed. */
  warnCommittedRatio: 0.85,
  /** Alert operators when a node is committed above this share. */
  alertCommittedRatio: 0.9,
  /** Alert when a reservation uses more than this share of its limit (the kernel OOM-kills it at the limit). */
  nearLimitRatio: 0.9,
  /** Wait this long for `--ack peers:K`. */
  ackTimeoutMs: 10_000,
  /** Re-log an unchanged alert at most this often. */
  alertLogIntervalMs: 5 * 60_000,
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
} as const

/** New connections opened per sync round to reach `targetPeers`. */
const DIALS_PER_ROUND = 4

/** A peer is synced with at most this often because of news from another (epidemic pull). */
const SPREAD_COOLDOWN_MS = 500
/** At most one gap pull per peer in this long (a gap stays until the sync fills it). */
const GAP_PULL_COOLDOWN_MS = 1000
/**
 * Heartbeats carry the node's multiaddrs only when they changed and on every
 * twelfth beat (once a minute at the default interval): they are a third of a
 * heartbeat's bytes, and every member receives every heartbeat. Peers remember
 * the last addresses each member published.
 */
const ADDRS_EVERY_BEATS = 12

/** The ledger's own root types; an update that creates any other root is refused. */
/** A beacon is about 100 bytes (a node id, a stamp, a position, a line); anything much larger is not one. */
const MAX_BEACON_BYTES = 512
const LEDGER_ROOTS = new Set(['nodes', 'reservations', 'releases', 'capacity', 'membership'])
const ORIGIN_LOCAL = Symbol('memgossip-local')
const ORIGIN_REMOTE = Symbol('memgossip-remote')
const ORIGIN_RESTORE = Symbol('memgossip-restore')
/** Takes a refused (not durable) local write back out of memory; never persisted or shared. */
const ORIGIN_ROLLBACK = Symbol('memgossip-rollback')

export type { Liveness } from './liveness.ts'

export interface AgentInit {
  network: Network
  probe: MemoryProbe
  /** Cluster name; part of every topic and protocol id. */
  cluster: string
  /** Data directory (peer key, ledger, meta). Omit for an in-memory agent (simulations). */
  dataDir?: string
  /** fsync durable writes (default true; simulations turn it off). */
  fsync?: boolean
  clock?: Clock
  random?: () => number
  /** Environment for the floor rules (default `process.env`). */
  env?: Record<string, string | undefined>
  floor?: FloorConfig
  /** Operator's system reserve, kept out of allocatable. */
  systemReservedBytes?: number
  /** Operator's cap on allocatable. */
  allocatableCapBytes?: number
  labels?: Record<string, string>
  /** Bootstrap peers configured: when true the agent waits for a sponsor before joining. */
  expectsPeers?: boolean
  /** Rent price per GiB-hour when a client does not ask for another (default 0). */
  pricePerGiBHour?: number
  /** `--ack peers:K`: acknowledge reservations once K other peers hold them (default 0). */
  ackPeers?: number
  log?: (line: string) => void
  sampleIntervalMs?: number
  heartbeatIntervalMs?: number
  gossipBatchMs?: number
  syncIntervalMs?: number
  probeIntervalMs?: number
  beaconPullAfterMs?: number
  evictAfterMs?: number
  maxUpdateBytes?: number
  maxUpdateEntries?: number
  ackTimeoutMs?: number
  maxClockOffsetMs?: number
  beaconDelayMs?: number
  recordRefreshMs?: number
  clockLeaseMs?: number
  /** The pressure ladder's thresholds (agent/pressure.ts; docs/design.md "Pressure ladder"). */
  pressure?: PressureConfig
  /** Alert when a reservation uses more than this share of its limit; default {@link DEFAULTS}.nearLimitRatio. */
  nearLimitRatio?: number
  /** Where reservation cgroups may be named (agent/usage.ts); default /sys/fs/cgroup. */
  cgroupRoot?: string
  /** Look for reservation cgroups nobody named, after a restart (agent/usage.ts); on only for the host's own memory. */
  findCgroups?: boolean
}

export interface ReserveRequest {
  id: string
  bytes: number
  placement: Placement
  priority?: number
  labels?: Record<string, string>
  // --- bounds and the queue (docs/design.md "Bounds and the queue")
  /** Least it may be shrunk to on capacity loss; at most `bytes`. */
  minBytes?: number
  /** Wait in the log for room instead of being refused (never when it can never fit). */
  queue?: boolean
  /** With `queue`: give up this long after its stamp. */
  queueTimeoutMs?: number
  // ---
}

export interface NodeStatus extends NodeView {
  liveness: Liveness
  /** ms since this peer last saw the node's stream advance. */
  heartbeatAgeMs?: number
}

export type { Alert } from './alerts.ts'

export type AgentEvent =
  | { type: 'verdict', id: string, status: Verdict['status'], final: boolean, code: string, reason: string, nodes: string[] }
  | { type: 'alert', state: 'raised' | 'cleared', alert: Alert }
  | { type: 'peer', state: 'connected' | 'disconnected', peer: PeerIdStr }
  | { type: 'joined', sponsor: PeerIdStr }
  | { type: 'membership', state: 'admitted' | 'left' | 'evicted', node: PeerIdStr, by?: PeerIdStr }
  | { type: 'liveness', node: PeerIdStr, state: Liveness }
  | ({ type: 'oom', node: PeerIdStr } & OomReport)
  | { type: 'pressure', node: PeerIdStr, from: PressureLevel, level: PressureLevel, availableBytes: number, message: string }

export interface AgentMetrics extends BeaconCounters, LivenessCounters, UsageCounters {
  /** Beacon pulls: asked, and suspicions dropped as forged or from a non-member. */
  beaconPulls: number
  suspicionsDropped: number
  updatesIn: number
  updatesOut: number
  bytesIn: number
  bytesOut: number
  heartbeats: number
  syncRounds: number
  syncFailures: number
  droppedOversized: number
  droppedInvalid: number
  droppedThrottled: number
  /** Peer updates that changed nothing here (already held): gossip amplification. */
  redundantUpdates: number
  /** Syncs started at once because an update arrived with a gap before it (a missed gossip message). */
  gapPulls: number
  resolutions: number
  /** Admissions this node wrote as a sponsor. */
  admissions: number
  /** Eviction proposals and acknowledgements this node wrote. */
  evictionProposals: number
  evictionAcks: number
}

/** Wall-clock time and Node's timers: the agent's clock unless a simulation passes its own. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout)
}

export class Agent extends EventEmitter {
  readonly self: PeerIdStr
  readonly doc: Y.Doc
  readonly metrics: AgentMetrics = { updatesIn: 0, updatesOut: 0, bytesIn: 0, bytesOut: 0, heartbeats: 0, syncRounds: 0, syncFailures: 0, droppedOversized: 0, droppedInvalid: 0, droppedThrottled: 0, redundantUpdates: 0, gapPulls: 0, resolutions: 0, ...emptyBeaconCounters(), ...emptyLivenessCounters(), beaconPulls: 0, suspicionsDropped: 0, admissions: 0, evictionProposals: 0, evictionAcks: 0, oomKillsLimit: 0, oomKillsHost: 0 }
  readonly network: Network
  floorBytes = 0
  floorRule = ''
  lastSample?: MemorySample
  allocatableBytes = 0

  private readonly init: AgentInit
  private readonly clock: Clock
  private readonly random: () => number
  private readonly log: (line: string) => void
  private writer!: LedgerWriter
  private store?: LedgerStore
  private readonly gate: PublishGate
  private readonly timers: TimerHandle[] = []
  private readonly intervals: TimerHandle[] = []
  private cached?: Resolution
  private replayed?: Replayed
  /** A decision map changed since the last replay (set by Yjs observers). */
  private ledgerDirty = true
  /** The heartbeat map changed since the last finish. */
  private finalityDirty = true
  /** Changes to the decision maps (not heartbeats): what epidemic pull passes on. */
  private ledgerChanges = 0
  /** Local updates not yet fsynced, and the promise of their durability. */
  private durableTail: Promise<void> = Promise.resolve()
  private pendingGossip: Uint8Array[] = []
  private gossipTimer?: TimerHandle
  private refreshTimer?: TimerHandle
  private failed?: string
  /** Set when Yjs re-assigned our client id: another process writes under this identity; this one never writes again. */
  private identityLost?: string
  private clientId = 0
  private stopped = false
  /** Membership as last reported (admitted / no longer a member), for the transitions. */
  private wasMember = false
  /** This host's clock behind the cluster's (median over live members), in ms; 0 when not behind. */
  private clockBehindMs = 0
  /** Per peer: the largest (stamp wall − our wall) seen in the last window: how far ahead its clock is, at least. */
  private readonly peerOffsets = new Map<PeerIdStr, { sampleMs: number, atMs: number }>()
  private membership!: MembershipDuties
  private beaconChannel!: ClockChannel
  private readonly calls: DirectCalls
  private detector!: FailureDetector
  private lastPullAtMs = -Infinity
  /** Wall ms up to which a restart may not stamp (persisted in the data dir's meta). */
  private leaseMs = 0
  /** The lease found at start: no write until the wall clock passes it. */
  private restartLeaseMs = 0
  private leaseTail: Promise<void> = Promise.resolve()
  private cachedClock = ''
  /** The latest stamp of each node's stream already taken as a clock sample and a proof of life. */
  private readonly lastStamps = new Map<PeerIdStr, string | undefined>()
  private readonly peerClocks = new Map<PeerIdStr, number>()
  private previousVerdicts = new Map<string, string>()
  private readonly alertSink: AlertSink
  // -- enforcement hooks (agent/pressure.ts, agent/usage.ts) --
  private readonly pressure: PressureLadder
  private readonly usage: UsageTracker
  /** The per-reservation usage the node record carries, and the pressure level it says. */
  private usageRecord?: Record<string, { usedBytes: number, peakBytes?: number, oomKills?: number }>
  private recordPressure: PressureLevel = 'ok'
  // -- end enforcement hooks --
  private syncing = new Set<PeerIdStr>()
  /** Remote transactions that changed the document (Yjs emits no update for a no-op). */
  private remoteChanges = 0

  private constructor (init: AgentInit) {
    super()
    this.setMaxListeners(1000)
    this.init = init
    this.network = init.network
    this.self = init.network.self
    this.clock = init.clock ?? systemClock
    this.random = init.random ?? Math.random
    this.log = init.log ?? ((line) => { process.stderr.write(`${line}\n`) })
    this.doc = new Y.Doc({ gc: true })
    for (const name of [MAP_RESERVATIONS, MAP_RELEASES, MAP_CAPACITY, MAP_MEMBERSHIP]) this.doc.getMap(name).observe(() => { this.ledgerDirty = true; this.ledgerChanges++ })
    this.doc.getMap(MAP_NODES).observe((event) => {
      this.finalityDirty = true
      this.rememberAddrs(event.keysChanged)
    })
    this.alertSink = new AlertSink({
      clock: this.clock,
      log: this.log,
      emit: (state, alert) => { this.emit('event', { type: 'alert', state, alert } satisfies AgentEvent) },
      logIntervalMs: DEFAULTS.alertLogIntervalMs
    })
    this.gate = new PublishGate({ heartbeatIntervalMs: init.recordRefreshMs ?? DEFAULTS.recordRefreshMs })
    this.pressure = new PressureLadder(init.pressure)
    this.usage = new UsageTracker({
      clock: this.clock,
      log: this.log,
      counters: this.metrics,
      cgroupRoot: init.cgroupRoot,
      searchUnnamed: init.findCgroups,
      onOom: (report) => { this.emit('event', { type: 'oom', node: this.self, ...report } satisfies AgentEvent) }
    })
    this.calls = new DirectCalls({ clock: this.clock, send: (peer, bytes) => this.network.send?.call(this.network, peer, bytes) ?? false })
  }

  /** Open the data dir, restore the ledger, start the network and the timers. */
  static async start (init: AgentInit): Promise<Agent> {
    const agent = new Agent(init)
    await agent.open()
    return agent
  }

  private async open (): Promise<void> {
    const { dataDir } = this.init
    let clientId: number | undefined
    if (dataDir !== undefined) {
      const opened = await LedgerStore.open(dataDir, { fsync: this.init.fsync ?? true, logger: (m) => this.log(`store: ${m}`) })
      this.store = opened.store
      const meta = await readMeta<{ clientId?: number, peerId?: string, clockLeaseMs?: number }>(dataDir)
      if (meta?.peerId !== undefined && meta.peerId !== this.self) {
        throw new UnavailableError(`data dir ${dataDir} belongs to peer ${meta.peerId}, not ${this.self}`)
      }
      clientId = meta?.clientId
      if (typeof meta?.clockLeaseMs === 'number' && Number.isSafeInteger(meta.clockLeaseMs)) this.leaseMs = meta.clockLeaseMs
      // Restore under a throwaway client id: Yjs re-rolls its own id when a
      // non-local transaction adds structs of that id, which is exactly what
      // replaying our own history would look like.
      this.doc.clientID = this.randomClientId()
      for (const update of opened.updates) {
        try {
          Y.applyUpdate(this.doc, update, ORIGIN_RESTORE)
        } catch (error) {
          this.log(`store: skipped an unreadable record (${(error as Error).message})`)
        }
      }
      if (opened.recovered.droppedTailBytes > 0) this.log(`store: dropped a torn tail of ${opened.recovered.droppedTailBytes} bytes (${opened.recovered.reason ?? 'crash during a write'})`)
      if (clientId === undefined) {
        clientId = this.randomClientId()
        await writeMeta(dataDir, { clientId, peerId: this.self })
      }
    }
    this.doc.clientID = clientId ?? this.randomClientId()
    this.clientId = this.doc.clientID
    this.writer = new LedgerWriter(this.doc, this.self, ORIGIN_LOCAL)
    // Beacons are not in the ledger: a restarted agent writes nothing (and
    // sends no beacon) until its wall clock passes the lease its last run
    // held, so no stamp lands at or below one a peer holds in a beacon. It
    // waits rather than jumping its clock ahead: a clock that jumped would
    // drag the cluster's stamps ahead of the wall clocks.
    this.restartLeaseMs = this.leaseMs
    this.beaconChannel = new ClockChannel({
      self: this.self,
      clock: this.clock,
      random: this.random,
      stamp: (wallMs, seen) => this.writer.beacon(wallMs, seen),
      lease: async (wallMs) => await this.holdLease(wallMs),
      publish: async (bytes) => { this.metrics.bytesOut += bytes.length; await this.network.publish(bytes) },
      direct: (bytes) => this.sendToMembers(bytes),
      resolution: () => this.resolution(),
      canBeacon: () => this.joined && this.writeRefusal() === undefined && this.network.peers().length > 0,
      changed: () => { this.finalityDirty = true; this.scheduleRefresh() },
      heard: (node, hlc) => this.heard(node, hlc),
      heldSeq: (node) => this.lastResolution().nodes.get(node)?.lastSeq ?? 0,
      log: this.log,
      counters: this.metrics
    }, {
      delayMs: this.init.beaconDelayMs ?? DEFAULTS.beaconDelayMs,
      intervalMs: this.init.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
      maxAheadMs: DEFAULTS.maxClockSkewMs
    })
    this.membership = new MembershipDuties({
      self: this.self,
      cluster: this.init.cluster,
      clock: this.clock,
      random: this.random,
      log: this.log,
      writer: () => this.writer,
      resolution: () => this.resolution(),
      durable: async () => { await this.durable() },
      writable: () => this.writeRefusal() === undefined,
      joined: () => this.joined,
      stopped: () => this.stopped,
      leftOnPurpose: () => this.leftOnPurpose,
      expectsPeers: this.init.expectsPeers === true,
      connected: () => this.network.peers(),
      clockSampled: (peer) => this.peerOffsets.has(peer),
      allocatableBytes: () => this.allocatableBytes,
      liveness: (node) => this.liveness(node),
      silentForMs: (node) => this.silentForMs(node),
      evictAfterMs: this.init.evictAfterMs ?? DEFAULTS.evictAfterMs,
      maxClockSkewMs: DEFAULTS.maxClockSkewMs,
      counters: this.metrics
    })
    const probeIntervalMs = this.init.probeIntervalMs ?? DEFAULTS.probeIntervalMs
    this.detector = new FailureDetector({
      self: this.self,
      clock: this.clock,
      random: this.random,
      members: () => this.resolution().members,
      neighbours: () => this.network.peers(),
      stamp: () => encodeHlc({ wallMs: this.clock.now(), counter: 0, node: this.self }),
      ping: async (peer, timeoutMs, suspicion) => await this.ping(peer, timeoutMs, suspicion),
      pingVia: async (via, target, timeoutMs) => await this.pingVia(via, target, timeoutMs),
      announce: (target, stamp) => { void this.announceSuspicion(target, stamp) },
      refute: (stamp) => { this.refute(stamp) },
      changed: (node, state) => {
        this.emit('event', { type: 'liveness', node, state } satisfies AgentEvent)
        this.scheduleRefresh()
      },
      log: this.log,
      counters: this.metrics
    }, { ...FAILURE_DETECTOR_DEFAULTS, probeIntervalMs, probeTimeoutMs: Math.min(FAILURE_DETECTOR_DEFAULTS.probeTimeoutMs, probeIntervalMs) })
    this.wasMember = this.joined
    this.doc.on('update', (update: Uint8Array, origin: unknown) => this.onDocUpdate(update, origin))

    const sample = await this.init.probe.sample()
    this.lastSample = sample
    const floor = resolveFloor(this.init.env ?? process.env, sample, this.init.floor)
    this.floorBytes = floor.floorBytes
    this.floorRule = floor.rule
    this.allocatableBytes = this.computeAllocatable(sample)

    await this.network.start({
      onGossip: (from, data) => this.onGossip(from, data),
      onMessage: (from, data) => this.onDirect(from, data),
      onRequest: async (from, data) => await this.onRequest(from, data),
      onPeerConnected: (peer) => {
        this.emit('event', { type: 'peer', state: 'connected', peer } satisfies AgentEvent)
        this.schedule(() => { void this.syncWith(peer) }, 10 + Math.floor(this.random() * 40))
      },
      onPeerDisconnected: (peer) => {
        this.detector.disconnected(peer)
        this.emit('event', { type: 'peer', state: 'disconnected', peer } satisfies AgentEvent)
      }
    })

    if (!this.joined && this.init.expectsPeers !== true && this.resolution().view.epoch === 0) await this.found()
    else if (this.joined) await this.publishCapacityIfChanged()
    await this.sampleAndPublish(true)

    this.every(() => { void this.sampleAndPublish(false) }, this.init.sampleIntervalMs ?? DEFAULTS.sampleIntervalMs)
    this.every(() => { void this.syncRandomPeer(); void this.keepConnected() }, this.init.syncIntervalMs ?? DEFAULTS.syncIntervalMs)
    this.every(() => { this.refresh(); this.beaconChannel.tick(); void this.membership.evictTheDead() }, 1000)
    this.every(() => { this.detector.tick() }, probeIntervalMs)
    this.every(() => { void this.maybeCompact() }, 30_000)
    // --- bounds and the queue: withdraw our own queued entries past their timeout (agent/queue.ts).
    this.every(() => { void this.withdrawTimedOut() }, 1000)
  }

  /** agent/queue.ts: a release of each own queued entry whose timeout is behind this clock; errors are left to the next tick. */
  private async withdrawTimedOut (): Promise<void> {
    if (this.stopped || !this.joined || this.writeRefusal() !== undefined) return
    for (const id of timedOutQueued(this.resolution(), this.self, this.clock.now())) {
      try { await this.release(id) } catch {}
    }
  }
  // ---

  /** Stop timers and the network; flush and close the data file. Does not leave the cluster. */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const t of this.timers) this.clock.clearTimeout(t)
    for (const t of this.intervals) this.clock.clearInterval(t)
    if (this.gossipTimer !== undefined) this.clock.clearTimeout(this.gossipTimer)
    if (this.refreshTimer !== undefined) this.clock.clearTimeout(this.refreshTimer)
    this.beaconChannel?.stop()
    this.calls.stop()
    await this.durableTail.catch(() => {})
    await this.network.stop().catch(() => {})
    await this.store?.flush().catch(() => {})
    await this.store?.close().catch(() => {})
    this.doc.destroy()
    this.removeAllListeners()
  }

  // ------------------------------------------------------------ reading

  /** A member of the current view, by the log. */
  private get joined (): boolean {
    return this.resolution().members.includes(this.self)
  }

  /**
   * The current resolution, recomputed lazily. Heartbeats (most updates) never
   * change a decision, so they only re-run `finishResolution()` (finality and
   * node figures); the full replay runs when a reservation, release, capacity
   * or membership entry changed.
   */
  resolution (): Resolution {
    // Finality depends on this node's own clock too (its stream is complete up to it).
    const clockNow = this.writer?.clock.peek() ?? ''
    if (this.cached !== undefined && !this.ledgerDirty && !this.finalityDirty && clockNow === this.cachedClock) return this.cached
    if (this.replayed === undefined || this.ledgerDirty) {
      this.ledgerDirty = false
      this.replayed = replayLedger(readLedger(this.doc))
      this.metrics.resolutions++
    }
    this.finalityDirty = false
    this.cachedClock = clockNow
    this.cached = finishResolution(this.replayed, readMapRecord(this.doc, MAP_NODES), { self: this.self, selfClock: clockNow === '' ? undefined : clockNow, beacons: this.beaconChannel?.beacons })
    return this.cached
  }

  /**
   * The resolution last computed, even if beacons arrived since: what the
   * input checks of the clock channel read. A beacon marks finality dirty, so
   * calling `resolution()` per beacon would recompute finality per beacon —
   * O(N) beacons × O(N) each per round. The refresh recomputes it once.
   */
  private lastResolution (): Resolution {
    return this.ledgerDirty || this.cached === undefined ? this.resolution() : this.cached
  }

  /** Liveness of a member by this peer's failure detector (never used by resolution, docs/design.md "Liveness"). */
  liveness (node: PeerIdStr): Liveness {
    return this.detector.state(node)
  }

  /** How long a member has been suspected here (0 while alive): what evictions wait on. */
  private silentForMs (node: PeerIdStr): number {
    return this.detector.silentForMs(node)
  }

  nodes (): NodeStatus[] {
    const res = this.resolution()
    this.trackLiveness(res)
    return [...res.nodes.values()].map(n => ({ ...n, liveness: this.liveness(n.id), heartbeatAgeMs: n.id === this.self ? 0 : this.clock.now() - this.detector.heardAtMs(n.id) }))
  }

  staleNodes (): Set<PeerIdStr> {
    const stale = new Set<PeerIdStr>()
    for (const id of this.resolution().members) if (this.liveness(id) === 'suspect' || this.liveness(id) === 'dead') stale.add(id)
    return stale
  }

  fit (bytes: number, placement: Placement): FitAnswer {
    const res = this.resolution()
    const answer = fit(res, { bytes, placement }, { staleNodes: this.staleNodes(), warnCommittedRatio: DEFAULTS.warnCommittedRatio })
    // docs/design.md "Pressure ladder": every answer says when this node, or a node it lands on, is under pressure.
    answer.warnings.push(...pressureWarnings({ id: this.self, line: this.pressure.describe() }, answer.nodes, res.nodes))
    if (!answer.fits && answer.code === 'NodeNotActive' && res.nodes.get(this.self)?.state === 'cordoned' && placement.kind === 'node' && placement.node === this.self) {
      answer.reason += ` (${this.pressure.describe() ?? 'memory pressure'})`
    }
    return answer
  }

  /**
   * Watch reservation `id`'s cgroup at `dir` and read it now (`memgossip run`
   * names it when its command starts and once more when it ends). The
   * reservation must be admitted and running on this node.
   */
  async watchUsage (id: string, dir: string): Promise<ReservationUsage> {
    const v = this.resolution().verdicts.get(id)
    if (v === undefined) throw new NotFoundError(`no reservation '${id}'`)
    if (v.status !== 'admitted' || !v.runningOn.includes(this.self)) throw new BadRequestError('id', `reservation '${id}' is ${v.status}${v.status === 'admitted' ? ` on ${v.runningOn.map(shortId).join(', ')}` : ''}, not running on this node (${shortId(this.self)})`)
    try {
      return await this.usage.watch(id, dir, v.bytes)
    } catch (error) {
      if (error instanceof UsageWatchError) throw new BadRequestError('cgroup', error.message)
      throw error
    }
  }

  /** What reservation `id` uses: read here when its cgroup is watched here, else as other nodes' records last said. */
  reservationUsage (id: string): Array<{ node: PeerIdStr, usedBytes: number, peakBytes?: number, oomKills?: number, live: boolean }> {
    const live = this.usage.get(id)
    const out: Array<{ node: PeerIdStr, usedBytes: number, peakBytes?: number, oomKills?: number, live: boolean }> = []
    if (live !== undefined) out.push({ node: this.self, usedBytes: live.usedBytes, peakBytes: live.peakBytes, oomKills: live.exceededLimitKills > 0 ? live.exceededLimitKills : undefined, live: true })
    for (const node of this.resolution().verdicts.get(id)?.runningOn ?? []) {
      if (node === this.self && live !== undefined) continue
      const u = this.resolution().nodes.get(node)?.heartbeat?.usage?.[id]
      if (u !== undefined) out.push({ node, ...u, live: false })
    }
    return out
  }

  /** This node's pressure level (docs/design.md "Pressure ladder"). */
  pressureLevel (): PressureLevel {
    return this.pressure.level
  }

  /** The verdict for `id`; this peer's own losing entry when it lost the id (IdTaken). */
  verdict (id: string): Verdict | undefined {
    const res = this.resolution()
    const own = res.conflicts.find(v => v.id === id && v.creator === this.self)
    return own ?? res.verdicts.get(id)
  }

  rent (options: { sinceMs?: number, pricePerGiBHour?: number } = {}): RentBill {
    return computeRent(this.resolution(), { nowMs: this.clock.now(), sinceMs: options.sinceMs, pricePerGiBHour: options.pricePerGiBHour ?? this.init.pricePerGiBHour })
  }

  state (): AgentState {
    const res = this.resolution()
    const own = res.nodes.get(this.self)
    return {
      self: this.self,
      cluster: this.init.cluster,
      joined: this.joined,
      standing: own?.standing ?? 'none',
      readOnly: this.failed ?? this.identityLost,
      writesRefused: this.writeRefusal(),
      members: res.members,
      view: { epoch: res.view.epoch, members: [...res.view.members], digest: res.view.digest, since: res.view.hlc || undefined, cause: res.view.cause },
      viewChanges: res.proposals.filter(p => p.status === 'open').map(p => ({
        proposal: p.key,
        kind: p.force ? 'forced eviction' : 'eviction',
        targets: p.targets,
        by: p.by,
        since: p.hlc,
        acknowledged: p.acked,
        waitingFor: p.waitingFor,
        majorityOf: p.viewMembers.length
      })),
      admissionRequests: res.requests.map(r => ({ node: r.node, sponsor: r.sponsor, since: r.hlc })),
      clock: { behindMs: this.clockBehindMs, maxOffsetMs: this.maxOffsetMs(), peersAheadMs: Object.fromEntries(this.peersAhead()) },
      seen: res.seen,
      peers: this.network.peers(),
      reservations: res.verdicts.size,
      pending: res.pending,
      verdictsDigest: res.digest,
      watermark: res.watermark,
      ledgerBytes: this.store?.sizeBytes() ?? 0,
      floorBytes: this.floorBytes,
      floorRule: this.floorRule,
      allocatableBytes: this.allocatableBytes
    }
  }

  alerts (): Alert[] {
    return this.alertSink.list()
  }

  // ------------------------------------------------------------ writing

  /**
   * Write a reservation after checking it fits in this peer's view. Resolves
   * once durable (and, with `ackPeers`, once that many peers hold it) with the
   * verdict and the fit answer it was judged by. Refuses with nothing written
   * when it does not fit (returns `written: false`) or the id exists.
   */
  async reserve (request: ReserveRequest): Promise<{ written: boolean, verdict?: Verdict, answer: FitAnswer, ackedPeers?: number }> {
    this.assertWritable()
    if (this.resolution().verdicts.has(request.id) || this.resolution().conflicts.some(v => v.id === request.id)) {
      throw new IdExistsError(`reservation '${request.id}' already exists`)
    }
    // --- bounds and the queue: checked before anything is judged or written.
    if (request.minBytes !== undefined && (request.minBytes < 1 || request.minBytes > request.bytes)) throw new BadRequestError('minBytes', `the minimum (${request.minBytes} bytes) must be between 1 byte and the size (${request.bytes} bytes)`)
    if (request.queueTimeoutMs !== undefined && (request.queue !== true || !Number.isSafeInteger(request.queueTimeoutMs) || request.queueTimeoutMs < 1 || request.queueTimeoutMs > MAX_QUEUE_TIMEOUT_MS)) {
      throw new BadRequestError('queueTimeoutMs', `a queue timeout needs queue: true and 1 ms to ${MAX_QUEUE_TIMEOUT_MS / 86_400_000} days`)
    }
    // ---
    const answer = this.fit(request.bytes, request.placement)
    // --- bounds and the queue: a queued request is written though it does not fit now, unless it never can.
    if (!answer.fits && (request.queue !== true || answer.code === 'NeverFits')) return { written: false, answer }
    const bounds = { minBytes: request.minBytes, queue: request.queue, queueTimeoutMs: request.queueTimeoutMs }
    // ---
    const before = Y.encodeStateVector(this.doc)
    this.writer.reserve({ id: request.id, bytes: request.bytes, placement: request.placement, priority: request.priority, labels: request.labels, ...bounds }, this.clock.now())
    await this.durableOrRollback('reservations', entryKey(request.id, this.self))
    let ackedPeers: number | undefined
    if ((this.init.ackPeers ?? 0) > 0) ackedPeers = await this.waitForPeers(this.init.ackPeers!, before)
    return { written: true, verdict: this.verdict(request.id), answer, ackedPeers }
  }

  /**
   * Release the reservation that owns `id`. A release names the exact entry it
   * ends (`<id>@<creator>`), so it can never end another creator's entry.
   */
  async release (id: string): Promise<Verdict> {
    this.assertWritable()
    const res = this.resolution()
    const existing = res.verdicts.get(id)
    if (existing === undefined) throw new NotFoundError(`no reservation '${id}'`)
    // This peer's own entry lost the id: its client means that one, not the
    // winner another client reserved; releasing would end someone else's deploy.
    const lost = res.conflicts.find(v => v.id === id && v.creator === this.self)
    if (lost !== undefined && existing.creator !== this.self) {
      throw new IdExistsError(`'${id}' reserved through this peer lost the id to ${shortId(existing.creator)} (IdTaken); it holds no memory, so there is nothing of yours to release. Release it through ${shortId(existing.creator)} to end that reservation.`)
    }
    if (this.writer.release(id, existing.creator, this.clock.now())) await this.durableOrRollback('releases', releaseKey(id, existing.creator, this.self))
    else await this.durable()
    return this.resolution().verdicts.get(id)!
  }

  /**
   * Operator eviction (`memgossip evict NODE`): a proposal like the one the
   * silence timeout writes, through the same flush — it takes effect once
   * every other member acknowledged it and they are a strict majority. With
   * `force` it takes effect at once (a cluster of two, or an even split): the
   * record says it was forced, and the operator accepts that a decision made
   * on the evicted node's unseen writes may change.
   */
  async evict (node: PeerIdStr, options: { force?: boolean } = {}): Promise<EvictionAnswer> {
    this.assertWritable()
    const res = this.resolution()
    if (!res.members.includes(this.self)) throw new UnavailableError('this agent is not a member of the current view, so it cannot propose a view change')
    if (!res.members.includes(node)) throw new NotFoundError(`no member '${node}' in the current view (members: ${res.members.map(shortId).join(', ')})`)
    if (node === this.self) throw new BadRequestError('node', 'an agent cannot evict itself; stop it and evict it from another peer')
    const force = options.force === true
    const key = this.writer.proposeEviction([node], res.view.digest, positionsOf(res, [node]), this.clock.now(), { force, manual: true })
    await this.durableOrRollback('membership', key)
    this.metrics.evictionProposals++
    const after = this.resolution()
    const proposal = after.proposals.find(p => p.key === key)
    const remaining = res.members.filter(m => m !== node)
    this.log(`${force ? 'forced eviction' : 'proposed evicting'} ${node} (operator, proposal ${key})`)
    return {
      node,
      proposal: key,
      force,
      status: proposal?.status ?? 'open',
      waitingFor: proposal?.waitingFor ?? [],
      detail: force
        ? `forced: ${shortId(node)} is evicted at once; its writes after position ${proposal?.positions[node]?.seq ?? 0} no longer count. Decisions that rested on its writes this peer had not seen may change — the operator accepted that risk.`
        : 2 * remaining.length <= res.members.length
          ? `proposed, but the ${remaining.length} other member(s) are not a strict majority of ${res.members.length}: it cannot take effect (use --force to accept the risk)`
          : `proposed: it takes effect once every other member (${remaining.length}) has acknowledged it with what it holds of ${shortId(node)}'s writes`
    }
  }

  /**
   * Leave the cluster for good (docs/design.md "Membership as views"): a
   * capacity event with state `left` in this node's own stream; its
   * reservations are evicted and its later writes do not count. It does not ask
   * to be admitted again; coming back is a new admission (restart it with a
   * bootstrap peer).
   */
  async leave (): Promise<void> {
    this.assertWritable()
    this.leftOnPurpose = true
    this.writer.capacity(0, 'left', this.clock.now())
    await this.durable()
    this.log(`left cluster '${this.init.cluster}'`)
  }

  private leftOnPurpose = false

  /** Mark this node draining (no new placements; its reservations are evicted, docs/design.md "Capacity loss"). */
  async drain (): Promise<void> {
    this.assertWritable()
    this.writer.capacity(this.allocatableBytes, 'draining', this.clock.now())
    await this.durable()
  }

  private assertWritable (): void {
    if (this.stopped) throw new UnavailableError('agent is stopping')
    const refusal = this.writeRefusal()
    if (refusal !== undefined) throw new UnavailableError(refusal)
    if (!this.joined) throw new UnavailableError('agent is not a member of the cluster (waiting for a sponsor to admit it; see memgossip status)')
  }

  /** Why this agent writes nothing now (disk, identity, clock), or undefined. */
  private writeRefusal (): string | undefined {
    if (this.failed !== undefined) return `agent is read-only: ${this.failed}`
    if (this.identityLost !== undefined) return `agent refuses to write: ${this.identityLost}`
    const lease = this.leaseWaitMs()
    if (lease > 0) return `restarted ${formatMs(lease)} before the clock lease of its last beacons ends: writes wait until this host's clock passes it, so that none is stamped below a beacon peers already hold`
    if (this.clockBehindMs > this.maxOffsetMs()) {
      return `this host's clock is ${formatMs(this.clockBehindMs)} behind the cluster's (more than the maximum offset of ${formatMs(this.maxOffsetMs())}): writes are refused so that none is stamped in the past; fix the clock (NTP), then retry`
    }
    return undefined
  }

  /** How long until the wall clock passes the lease a previous run held (0 once it has). */
  private leaseWaitMs (): number {
    return Math.max(0, this.restartLeaseMs - this.clock.now())
  }

  private maxOffsetMs (): number {
    return this.init.maxClockOffsetMs ?? DEFAULTS.maxClockOffsetMs
  }

  /** Members whose clocks run ahead of the cluster's median by more than the maximum offset. */
  private peersAhead (): Array<[PeerIdStr, number]> {
    const median = this.medianOffset()
    const out: Array<[PeerIdStr, number]> = []
    for (const [peer, o] of this.peerOffsets) if (o.sampleMs - median > this.maxOffsetMs()) out.push([peer, Math.round(o.sampleMs - median)])
    return out
  }

  private medianOffset (): number {
    const members = new Set(this.cached?.members ?? [])
    const samples = [...this.peerOffsets.entries()].filter(([peer]) => members.has(peer) && this.liveness(peer) === 'alive').map(([, o]) => o.sampleMs).sort((a, b) => a - b)
    if (samples.length === 0) return 0
    return samples[Math.floor(samples.length / 2)]
  }

  // ------------------------------------------------------------ local writes

  private onDocUpdate (update: Uint8Array, origin: unknown): void {
    if (origin === ORIGIN_LOCAL) {
      this.metrics.updatesOut++
      // Durable first, then gossip (docs/design.md "Durability"). Appends are
      // queued in order by the store.
      const append = this.store !== undefined ? this.store.append(update, { durable: true }) : Promise.resolve()
      this.durableTail = this.durableTail.then(async () => await append).then(
        () => {
          this.queueGossip(update)
          // Local writes raise events as promptly as remote ones (watch, --wait-final).
          this.scheduleRefresh()
        },
        (error: unknown) => { this.fail(`durable append failed: ${(error as Error).message}`) }
      )
    } else if (origin === ORIGIN_REMOTE) {
      this.remoteChanges++
      void this.store?.append(update, { durable: false }).catch((error: unknown) => {
        this.log(`store: could not persist a peer's update (${(error as Error).message}); sync will bring it back`)
      })
    }
  }

  /** Resolves once every local write so far is durable; rejects if the disk failed. */
  private async durable (): Promise<void> {
    await this.durableTail
    if (this.failed !== undefined) throw new UnavailableError(`write not durable: ${this.failed}`)
  }

  /**
   * `durable()` for a client's write: when it is refused (disk failure), the
   * entry is taken back out of memory as well, so reads never show a write the
   * client got a 503 for and a restart would not bring back. It was never
   * shared: a failed agent neither gossips nor serves its own stream.
   */
  private async durableOrRollback (map: 'reservations' | 'releases' | 'membership', key: string): Promise<void> {
    try {
      await this.durable()
    } catch (error) {
      if (!this.stopped) this.doc.transact(() => { ledgerMaps(this.doc)[map].delete(key) }, ORIGIN_ROLLBACK)
      throw error
    }
  }

  /**
   * Resolves once every local write is durable, including writes made while
   * waiting: awaiting `durableTail` once would return as soon as the older
   * writes are, with newer ones still in memory only. The caller must encode
   * synchronously after it.
   */
  private async settled (): Promise<void> {
    let tail: Promise<void>
    do {
      tail = this.durableTail
      await tail
    } while (tail !== this.durableTail)
  }

  private fail (reason: string): void {
    if (this.failed !== undefined) return
    this.failed = reason
    this.log(`ERROR ${reason}; this agent is now read-only until restarted (free disk space, then restart it)`)
    this.alertSink.raise({ key: `storage/${this.self}`, kind: 'StorageFailed', node: this.self, message: `data dir cannot be written: ${reason}`, setting: '--data-dir (free space or fix permissions, then restart)' })
  }

  private queueGossip (update: Uint8Array): void {
    if (this.failed !== undefined || this.stopped) return
    this.pendingGossip.push(update)
    if (this.gossipTimer !== undefined) return
    this.gossipTimer = this.clock.setTimeout(() => {
      this.gossipTimer = undefined
      const batch = this.pendingGossip.length === 1 ? this.pendingGossip[0] : Y.mergeUpdates(this.pendingGossip)
      this.pendingGossip = []
      const message = encodeMessage({ type: MSG_GOSSIP, update: batch })
      this.metrics.bytesOut += message.length
      this.network.publish(message).catch((error: unknown) => this.log(`gossip: publish failed (${(error as Error).message}); sync will carry it`))
    }, this.init.gossipBatchMs ?? DEFAULTS.gossipBatchMs)
  }

  /** The first node of a cluster (no bootstrap peers, an empty ledger) admits itself. */
  private async found (): Promise<void> {
    if (this.joined || this.writeRefusal() !== undefined) return
    this.writer.admit(this.self, this.allocatableBytes, this.clock.now())
    try {
      await this.durable()
    } catch {
      return
    }
    this.wasMember = true
    this.log(`founded cluster '${this.init.cluster}' as its first member`)
    this.emit('event', { type: 'joined', sponsor: this.self } satisfies AgentEvent)
  }

  private computeAllocatable (sample: MemorySample): number {
    return computeAllocatable({ totalBytes: sample.totalBytes, floorBytes: this.floorBytes, systemReservedBytes: this.init.systemReservedBytes ?? 0, capBytes: this.init.allocatableCapBytes })
  }

  /** A capacity event when allocatable moved (rare: config, cgroup limit). */
  private async publishCapacityIfChanged (): Promise<void> {
    if (!this.joined || this.writeRefusal() !== undefined) return
    const view = this.resolution().nodes.get(this.self)
    // The pressure ladder cordons the node at refuse and caps its allocatable at evict (agent/pressure.ts).
    const allocatable = this.pressure.allocatable(this.allocatableBytes)
    const state = view?.state === 'draining' ? 'draining' : this.pressure.nodeState()
    if (view !== undefined && view.state !== 'unknown' && view.allocatableBytes === allocatable && view.state === state) return
    if (view?.state === 'evicted') return
    this.writer.capacity(allocatable, state, this.clock.now())
    await this.durable().catch(() => {})
  }

  /** One step of the pressure ladder (agent/pressure.ts); true when its level changed. */
  private stepEnforcement (sample: MemorySample, allocatable: number): boolean {
    const step = this.pressure.observe({ availableBytes: sample.availableBytes, floorBytes: this.floorBytes, nowMs: this.clock.now(), committedBytes: () => this.resolution().nodes.get(this.self)?.committedBytes ?? 0, allocatableBytes: allocatable })
    if (step === undefined) return false
    this.log(`pressure ${step.from} → ${step.to}: ${step.message}`)
    this.emit('event', { type: 'pressure', node: this.self, from: step.from, level: step.to, availableBytes: step.availableBytes, message: step.message } satisfies AgentEvent)
    return true
  }

  /** Reservations running on this node and what the ledger charges them here. */
  private runningHere (): Map<string, number> {
    const res = this.resolution()
    const out = new Map<string, number>()
    for (const id of res.nodes.get(this.self)?.reservations ?? []) {
      const v = res.verdicts.get(id)
      if (v !== undefined) out.set(id, v.bytes)
    }
    return out
  }

  private async sampleAndPublish (force: boolean): Promise<void> {
    if (this.stopped || this.failed !== undefined || this.identityLost !== undefined) return
    let sample: MemorySample
    try {
      sample = await this.init.probe.sample()
    } catch (error) {
      this.log(`probe: ${(error as Error).message}`)
      return
    }
    if (this.stopped) return
    this.lastSample = sample
    const allocatable = this.computeAllocatable(sample)
    const stepped = this.stepEnforcement(sample, allocatable)
    if (this.usage.active) await this.usage.tick(() => this.runningHere())
    if (allocatable !== this.allocatableBytes || stepped) {
      this.allocatableBytes = allocatable
      await this.publishCapacityIfChanged()
    }
    const figures = { totalBytes: sample.totalBytes, availableBytes: sample.availableBytes, allocatableBytes: allocatable }
    const now = this.clock.now()
    if (this.leaseWaitMs() > 0) return
    // Usage per reservation rides on the record only when it moved past the threshold; nothing is written at rest.
    const usage = this.usage.recordIfMoved(this.gate.thresholdFor(sample.totalBytes))
    // Addresses that moved (or that the first record went out without) go out
    // at once: members dial each other by them ("Network": connections).
    const addrsMoved = this.addressesKey() !== this.publishedAddrs
    if (!force && !addrsMoved && usage === undefined && this.recordPressure === this.pressure.level && !this.gate.shouldPublish(figures, now)) return
    if (usage !== undefined) {
      this.usage.published(usage)
      this.usageRecord = Object.keys(usage).length > 0 ? usage : undefined
    }
    this.recordPressure = this.pressure.level
    this.gate.published(figures, now)
    this.writeHeartbeat(sample, allocatable)
    await this.durable().catch(() => {})
  }

  /** The node record: its figures, written when one moves (finality and liveness travel on the clock channel). */
  private writeHeartbeat (sample: MemorySample, allocatable: number): void {
    if (this.identityLost !== undefined || this.failed !== undefined || this.leaseWaitMs() > 0) return
    this.writer.heartbeat({
      totalBytes: sample.totalBytes,
      floorBytes: this.floorBytes,
      allocatableBytes: allocatable,
      availableBytes: sample.availableBytes,
      usedBytes: Math.max(0, sample.totalBytes - sample.availableBytes),
      labels: this.init.labels,
      version: VERSION,
      addrs: this.addrsForHeartbeat(),
      pressure: this.pressure.level === 'ok' ? undefined : this.pressure.level,
      usage: this.usageRecord
    }, this.clock.now())
    this.metrics.heartbeats++
  }

  // ------------------------------------------------------------ remote input

  /**
   * A direct message: the clock channel's beacons, sent straight to every
   * member while this peer is connected to all of them (docs/design.md
   * "Clock channel"), with the same checks as a published beacon; and the
   * failure detector's probes as calls and replies (agent/calls.ts).
   */
  private onDirect (from: PeerIdStr, data: Uint8Array): void {
    this.metrics.bytesIn += data.length
    const message = this.admitMessage(from, data, MAX_BEACON_BYTES, 'direct message')
    if (message === undefined) return
    if (message.type === MSG_BEACON) {
      this.onBeacon(from, message.beacon)
      return
    }
    if (message.type === MSG_REPLY) {
      // A reply after its call timed out is simply late.
      this.calls.replied(from, message.id, message.body)
      return
    }
    if (message.type !== MSG_CALL) {
      this.drop(from, 'invalid', `unexpected message type 0x${message.type.toString(16)} on a direct stream`)
      return
    }
    let call
    try {
      call = decodeMessage(message.body)
    } catch (error) {
      this.drop(from, 'invalid', `call: ${(error as Error).message}`)
      return
    }
    if (call.type !== MSG_PING && call.type !== MSG_PING_REQ) {
      this.drop(from, 'invalid', `unexpected call of type 0x${call.type.toString(16)} on a direct stream`)
      return
    }
    this.detector.heard(from)
    const id = message.id
    void this.answerProbe(from, call).then((reply) => {
      if (this.stopped) return
      this.metrics.bytesOut += reply.length
      this.calls.reply(from, id, reply)
    })
  }

  /**
   * Send `bytes` straight to every connected peer when this peer is
   * connected to every other member of the view (at most
   * {@link DIRECT_MEMBERS_MAX} of them): one copy per peer instead of a
   * signed flood with its relays' copies. False when it did not reach every
   * member (the caller publishes instead; a member that got both copies drops
   * the second as a replay).
   */
  private sendToMembers (bytes: Uint8Array): boolean {
    const send = this.network.send
    if (send === undefined) return false
    const others = this.lastResolution().view.members.filter(id => id !== this.self)
    if (others.length === 0 || others.length > DIRECT_MEMBERS_MAX) return false
    const peers = this.network.peers()
    const connected = new Set(peers)
    if (others.some(id => !connected.has(id))) return false
    // Every connected peer, members or not: a joiner not yet in this node's
    // view counts beacons too (its own answers are final by them).
    let all = true
    for (const id of peers) {
      if (send.call(this.network, id, bytes)) this.metrics.bytesOut += bytes.length
      else all = false
    }
    return all
  }

  /** A peer's message within its budget and size, decoded; undefined when dropped (counted, logged once). */
  private admitMessage (from: PeerIdStr, data: Uint8Array, maxBytes: number, what: string): WireMessage | undefined {
    if (!this.admitGossip(from, data.length)) {
      this.metrics.droppedThrottled++
      this.drop(from, 'throttled', `peer exceeds ${DEFAULTS.gossipMessagesPerSecond} messages or ${formatSize(DEFAULTS.gossipBytesPerSecond)} per second`)
      return undefined
    }
    if (data.length > maxBytes) {
      this.drop(from, 'oversized', `${what} of ${data.length} bytes exceeds ${maxBytes}`)
      return undefined
    }
    try {
      return decodeMessage(data)
    } catch (error) {
      this.drop(from, 'invalid', (error as Error).message)
      return undefined
    }
  }

  private onBeacon (from: PeerIdStr, beacon: WireBeacon): void {
    const view = this.lastResolution().view
    this.beaconChannel.receive(from, beacon, (node) => view.has(node))
  }

  private onGossip (from: PeerIdStr, data: Uint8Array): void {
    this.metrics.bytesIn += data.length
    const maxBytes = this.init.maxUpdateBytes ?? DEFAULTS.maxUpdateBytes
    // Size first: an oversized message is the peer's fault whatever its budget.
    if (data.length > maxBytes + 16) {
      this.drop(from, 'oversized', `gossip message of ${data.length} bytes exceeds ${maxBytes}`)
      return
    }
    const beacon = data[0] === MSG_BEACON
    const message = this.admitMessage(from, data, beacon ? MAX_BEACON_BYTES : Infinity, beacon ? 'beacon' : 'gossip message')
    if (message === undefined) return
    if (message.type === MSG_BEACON) {
      this.onBeacon(from, message.beacon)
      return
    }
    if (message.type === MSG_SUSPECT) {
      this.onSuspicion(from, message)
      return
    }
    if (message.type !== MSG_GOSSIP) {
      this.drop(from, 'invalid', `unexpected message type 0x${message.type.toString(16)} on the gossip topic`)
      return
    }
    this.applyRemote(from, message.update)
  }

  /**
   * Apply a peer's update whole or not at all: size and entry limits, a full
   * decode, and only ledger root types, before anything touches the document.
   */
  private applyRemote (from: PeerIdStr, update: Uint8Array): boolean {
    if (this.stopped) return false
    const maxBytes = this.init.maxUpdateBytes ?? DEFAULTS.maxUpdateBytes
    if (update.length > maxBytes) {
      this.drop(from, 'oversized', `update of ${update.length} bytes exceeds ${maxBytes}`)
      return false
    }
    let decoded
    try {
      decoded = Y.decodeUpdate(update)
    } catch (error) {
      this.drop(from, 'invalid', `undecodable Yjs update (${(error as Error).message})`)
      return false
    }
    const maxEntries = this.init.maxUpdateEntries ?? DEFAULTS.maxUpdateEntries
    if (decoded.structs.length > maxEntries) {
      this.drop(from, 'oversized', `update with ${decoded.structs.length} entries exceeds ${maxEntries}`)
      return false
    }
    for (const struct of decoded.structs) {
      const parent = (struct as { parent?: unknown }).parent
      if (typeof parent === 'string' && !LEDGER_ROOTS.has(parent)) {
        this.drop(from, 'invalid', `update writes to unknown root '${parent.slice(0, 40)}'`)
        return false
      }
    }
    const changesBefore = this.remoteChanges
    const store = this.doc.store
    const pendingBefore = { structs: store.pendingStructs?.update, dsBytes: store.pendingDs?.length ?? 0 }
    try {
      Y.applyUpdate(this.doc, update, ORIGIN_REMOTE)
      if (this.remoteChanges === changesBefore) this.metrics.redundantUpdates++
    } catch (error) {
      this.drop(from, 'invalid', `update failed to apply (${(error as Error).message})`)
      return false
    }
    // Yjs silently takes a new client id when an update carries structs of
    // ours: another process writes under this node's identity (a data dir
    // cloned to a second host, or restored from a backup). Writing on under a
    // second id would split this node's stream; refuse to write at all.
    if (this.doc.clientID !== this.clientId && this.identityLost === undefined) {
      this.identityLost = `a peer (${shortId(from)}) sent writes under this node's own Yjs client id ${this.clientId}: another process is writing as ${shortId(this.self)} (a copied or restored data dir). This agent no longer writes; give the other host its own data dir`
      this.log(`ERROR ${this.identityLost}`)
      this.alertSink.raise({ key: `identity/${this.self}`, kind: 'IdentityConflict', node: this.self, message: this.identityLost, setting: '--data-dir' })
    }
    this.metrics.updatesIn++
    this.scheduleRefresh()
    // Yjs holds back what it cannot integrate yet: an update that came after one
    // this peer never got (gossip is lossy). Pull the gap now rather than at the
    // next periodic sync — when this update added to what is held back, so a
    // gap nobody can fill does not turn every later update into a sync.
    const structsHeld = store.pendingStructs !== null && store.pendingStructs.update !== pendingBefore.structs
    const deletesHeld = (store.pendingDs?.length ?? 0) > pendingBefore.dsBytes
    if (structsHeld || deletesHeld) this.pullGap(from)
    return true
  }

  /**
   * Sync at once with the peer that sent an update we could not fully apply:
   * its author when connected (it holds its whole stream), else a connected
   * peer at random. Once per peer per second, and not while another sync is
   * running (after a heal or a restart those syncs bring the gap anyway; the
   * writer's next update shows it again if not); the periodic sync stays the
   * backstop.
   */
  private pullGap (from: PeerIdStr): void {
    if (this.stopped || this.syncing.size > 0) return
    const peers = this.network.peers()
    if (peers.length === 0) return
    const peer = peers.includes(from) ? from : peers[Math.floor(this.random() * peers.length)]
    const now = this.clock.now()
    if (now - (this.lastGapPullAt.get(peer) ?? -Infinity) < GAP_PULL_COOLDOWN_MS) return
    this.lastGapPullAt.set(peer, now)
    this.metrics.gapPulls++
    this.schedule(() => { void this.syncWith(peer) }, 0)
  }

  private readonly lastGapPullAt = new Map<PeerIdStr, number>()

  private readonly buckets = new Map<PeerIdStr, { messages: number, bytes: number, atMs: number }>()
  /** Token bucket per peer (one second of burst), refilled by elapsed time. */
  private admitGossip (from: PeerIdStr, size: number): boolean {
    const now = this.clock.now()
    const rate = DEFAULTS.gossipMessagesPerSecond
    // The burst must hold the largest legal update, or it could never arrive by gossip.
    const byteRate = Math.max(DEFAULTS.gossipBytesPerSecond, (this.init.maxUpdateBytes ?? DEFAULTS.maxUpdateBytes) + 16)
    let bucket = this.buckets.get(from)
    if (bucket === undefined) {
      if (this.buckets.size > 10_000) this.buckets.clear()
      bucket = { messages: rate, bytes: byteRate, atMs: now }
      this.buckets.set(from, bucket)
    }
    const elapsed = Math.max(0, now - bucket.atMs) / 1000
    bucket.messages = Math.min(rate, bucket.messages + elapsed * rate)
    bucket.bytes = Math.min(byteRate, bucket.bytes + elapsed * byteRate)
    bucket.atMs = now
    if (bucket.messages < 1 || bucket.bytes < size) return false
    bucket.messages -= 1
    bucket.bytes -= size
    return true
  }

  private readonly droppedLogged = new Set<string>()
  private drop (from: PeerIdStr, kind: 'invalid' | 'oversized' | 'throttled', reason: string): void {
    if (kind === 'oversized') this.metrics.droppedOversized++
    else if (kind === 'invalid') this.metrics.droppedInvalid++
    // Logged once per peer and kind: a flooding peer must not flood the log.
    const key = `${from}/${kind}`
    if (!this.droppedLogged.has(key) && this.droppedLogged.size < 10_000) {
      this.droppedLogged.add(key)
      this.log(`dropped ${kind} input from ${shortId(from)}: ${reason} (counted in /metrics; logged once per peer)`)
    }
  }

  private async onRequest (from: PeerIdStr, data: Uint8Array): Promise<Uint8Array> {
    this.metrics.bytesIn += data.length
    let message
    try {
      message = decodeMessage(data)
    } catch (error) {
      this.drop(from, 'invalid', (error as Error).message)
      return encodeMessage({ type: MSG_ERROR, reason: 'malformed request' })
    }
    this.detector.heard(from)
    switch (message.type) {
      case MSG_PING:
      case MSG_PING_REQ:
        return await this.answerProbe(from, message)
      case MSG_PULL: {
        const reply = encodeMessage({ type: MSG_BEACONS, beacons: await this.beaconChannel.answerPull(message.nodes) })
        this.metrics.bytesOut += reply.length
        return reply
      }
    }
    // Never serve our own stream beyond what is durable (docs/design.md "Durability").
    await this.settled()
    if (this.failed !== undefined) return encodeMessage({ type: MSG_ERROR, reason: 'peer is read-only' })
    switch (message.type) {
      case MSG_SYNC_REQUEST: {
        let update: Uint8Array
        try {
          // Nothing to send when the peer holds every entry we hold (most
          // periodic syncs): an update would carry the whole delete set anyway.
          const theirs = Y.decodeStateVector(message.stateVector)
          update = lacksEntries(this.doc, theirs) ? Y.encodeStateAsUpdate(this.doc, message.stateVector) : EMPTY_UPDATE
          this.notePeerClock(from, theirs)
        } catch {
          this.drop(from, 'invalid', 'malformed state vector')
          return encodeMessage({ type: MSG_ERROR, reason: 'malformed state vector' })
        }
        const reply = encodeMessage({ type: MSG_SYNC_REPLY, update, stateVector: Y.encodeStateVector(this.doc) })
        this.metrics.bytesOut += reply.length
        return reply
      }
      case MSG_PUSH: {
        const changesBefore = this.ledgerChanges
        if (this.applyRemote(from, message.update) && this.ledgerChanges !== changesBefore) this.spreadNews(from)
        return encodeMessage({ type: MSG_ACK })
      }
      default:
        this.drop(from, 'invalid', `unexpected request type 0x${message.type.toString(16)}`)
        return encodeMessage({ type: MSG_ERROR, reason: 'unexpected request type' })
    }
  }

  // ------------------------------------------------------------ liveness and the clock channel

  /** One probe of the failure detector: ping → pong; the pong's wall time is a clock sample. */
  private async ping (peer: PeerIdStr, timeoutMs: number, suspicion?: string): Promise<boolean> {
    const reply = await this.probeRequest(peer, encodeMessage(suspicion === undefined ? { type: MSG_PING } : { type: MSG_PING, suspicion }), timeoutMs, { direct: true })
    if (reply?.type !== MSG_PONG) return false
    this.detector.heard(peer)
    // Half the round trip is the most the answer can be late; a sample may only show a peer behind, never hide one ahead.
    this.sampleOffset(peer, reply.wallMs - this.clock.now())
    return true
  }

  /** Ask `via` to ping `target` for this node (SWIM's ping-req). */
  private async pingVia (via: PeerIdStr, target: PeerIdStr, timeoutMs: number): Promise<IndirectAnswer> {
    const reply = await this.probeRequest(via, encodeMessage({ type: MSG_PING_REQ, target }), 2 * timeoutMs + FAILURE_DETECTOR_DEFAULTS.probeTimeoutMs, { direct: true })
    if (reply === undefined) return 'none'
    return reply.type === MSG_PONG ? 'ack' : 'nack'
  }

  /** The failure detector's probes, asked by a stream request or a direct call. */
  private async answerProbe (from: PeerIdStr, message: Extract<WireMessage, { type: typeof MSG_PING | typeof MSG_PING_REQ }>): Promise<Uint8Array> {
    if (message.type === MSG_PING) {
      // A ping that says this node is suspected: refute it (the ping's sender is the suspector's buddy).
      if (message.suspicion !== undefined && isHlc(message.suspicion)) this.detector.suspected(from, this.self, message.suspicion)
      return encodeMessage({ type: MSG_PONG, wallMs: Math.max(0, Math.round(this.clock.now())) })
    }
    const acked = message.target !== this.self && await this.ping(message.target, FAILURE_DETECTOR_DEFAULTS.probeTimeoutMs)
    return acked ? encodeMessage({ type: MSG_PONG, wallMs: Math.max(0, Math.round(this.clock.now())) }) : encodeMessage({ type: MSG_ERROR, reason: 'no answer' })
  }

  /**
   * A small exchange: a direct call for the failure detector's probes when
   * the peer has a direct stream, else (and for beacon pulls, whose answers
   * may be large) a request stream.
   */
  private async probeRequest (peer: PeerIdStr, request: Uint8Array, timeoutMs: number, options: { direct?: boolean } = {}): Promise<ReturnType<typeof decodeMessage> | undefined> {
    if (this.stopped) return undefined
    const direct = options.direct === true && request.length <= MAX_BEACON_BYTES ? this.calls.call(peer, request, timeoutMs) : undefined
    if (direct !== undefined) {
      this.metrics.bytesOut += request.length
      const reply = await direct
      if (reply === undefined) return undefined
      this.metrics.bytesIn += reply.length
      try {
        return decodeMessage(reply)
      } catch {
        return undefined
      }
    }
    const controller = new AbortController()
    const timer = this.clock.setTimeout(() => { controller.abort(new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
    try {
      this.metrics.bytesOut += request.length
      const reply = await this.network.request(peer, request, { signal: controller.signal })
      this.metrics.bytesIn += reply.length
      return decodeMessage(reply)
    } catch {
      return undefined
    } finally {
      this.clock.clearTimeout(timer)
    }
  }

  /** Publish this node's suspicion of `target` to every member. */
  private async announceSuspicion (target: PeerIdStr, stamp: string): Promise<void> {
    const { wallMs, counter } = decodeHlc(stamp)
    const bytes = encodeMessage({ type: MSG_SUSPECT, suspector: this.self, target, wallMs, counter })
    this.metrics.bytesOut += bytes.length
    await this.network.publish(bytes).catch(() => {})
  }

  private onSuspicion (from: PeerIdStr, message: { suspector: string, target: string, wallMs: number, counter: number }): void {
    const members = this.lastResolution().view
    if (message.suspector !== from || !members.has(from) || !members.has(message.target) || !stampInRange(message.wallMs, message.counter)) {
      this.metrics.suspicionsDropped++
      this.drop(from, 'invalid', message.suspector !== from ? `suspicion names ${shortId(message.suspector)} but was published by ${shortId(from)}` : 'suspicion from or of a non-member')
      return
    }
    this.detector.suspected(from, message.target, encodeHlc({ wallMs: message.wallMs, counter: message.counter, node: from }))
  }

  /** Someone suspects this node: a beacon stamped after the suspicion proves it alive. */
  private refute (stamp: string): void {
    const now = this.clock.now()
    if (hlcWallMs(stamp) <= now + DEFAULTS.maxClockSkewMs) this.writer.observe(stamp, now)
    this.beaconChannel.sendNow()
  }

  /**
   * A verdict has waited `beaconPullAfterMs` for members' beacons (a gossip
   * message can be lost, and beacons are not in the ledger, so anti-entropy
   * does not bring them): ask one peer — one of those members when connected
   * — for the latest beacon it holds of each. At most once a second.
   */
  private waitingSince = new Map<string, number>()

  private maybePullBeacons (res: Resolution): void {
    const now = this.clock.now()
    if (res.pending === 0 || now - this.lastPullAtMs < 1000 || this.stopped) return
    const after = this.init.beaconPullAfterMs ?? DEFAULTS.beaconPullAfterMs
    const wanted = new Set<PeerIdStr>()
    // How long a verdict waited is measured on this host's clock from when
    // this peer first saw it waiting, not from its stamp: a host whose clock
    // is behind the writer's would otherwise never pull.
    const waiting = new Map<string, number>()
    for (const v of [...res.verdicts.values(), ...res.conflicts]) {
      if (v.final || v.hlc === undefined || (v.waitingOn !== 'clocks' && v.waitingOn !== 'confirmations')) continue
      const key = `${v.id}@${v.hlc}`
      const since = this.waitingSince.get(key) ?? Math.min(now, hlcWallMs(v.hlc))
      waiting.set(key, since)
      if (now - since < after || wanted.size >= MAX_PULL) continue
      for (const node of v.waitsFor) if (node !== this.self) wanted.add(node)
    }
    this.waitingSince = waiting
    if (wanted.size === 0) return
    const peers = this.network.peers()
    if (peers.length === 0) return
    this.lastPullAtMs = now
    const direct = peers.filter(p => wanted.has(p))
    const from = direct.length > 0 ? direct[Math.floor(this.random() * direct.length)] : peers[Math.floor(this.random() * peers.length)]
    this.metrics.beaconPulls++
    void (async () => {
      const reply = await this.probeRequest(from, encodeMessage({ type: MSG_PULL, nodes: [...wanted].slice(0, MAX_PULL) }), 2000)
      if (reply?.type !== MSG_BEACONS || this.stopped) return
      const view = this.lastResolution().view
      for (const beacon of reply.beacons) this.beaconChannel.receive(from, beacon, (node) => view.has(node), { pulled: true })
    })()
  }

  /** Remember how much of our own stream a peer holds (for `--ack peers:K`). */
  private notePeerClock (peer: PeerIdStr, stateVector: Map<number, number>): void {
    const clock = stateVector.get(this.doc.clientID) ?? 0
    this.peerClocks.set(peer, Math.max(clock, this.peerClocks.get(peer) ?? 0))
  }

  /** One anti-entropy exchange with `peer`: pull what we lack, push what it lacks. */
  async syncWith (peer: PeerIdStr): Promise<boolean> {
    if (this.stopped || this.syncing.has(peer)) return false
    this.syncing.add(peer)
    try {
      await this.durableTail
      const request = encodeMessage({ type: MSG_SYNC_REQUEST, stateVector: Y.encodeStateVector(this.doc) })
      this.metrics.bytesOut += request.length
      const replyBytes = await this.network.request(peer, request)
      this.metrics.bytesIn += replyBytes.length
      const reply = decodeMessage(replyBytes)
      if (reply.type === MSG_ERROR) throw new WireError(`peer refused sync: ${reply.reason}`)
      if (reply.type !== MSG_SYNC_REPLY) throw new WireError(`unexpected reply type 0x${reply.type.toString(16)}`)
      // Only decision-map news is passed on: heartbeats supersede themselves and
      // arrive by gossip every few seconds; relaying them made every periodic
      // sync at rest start a wave (35 KiB/s per node at 25 agents in the bench).
      const changesBefore = this.ledgerChanges
      if (reply.update.length > EMPTY_UPDATE.length && !this.applyRemote(peer, reply.update)) return false
      if (this.ledgerChanges !== changesBefore) this.spreadNews(peer)
      const theirs = Y.decodeStateVector(reply.stateVector)
      this.notePeerClock(peer, theirs)
      if (this.failed === undefined) {
        await this.settled()
        if (lacksEntries(this.doc, theirs)) {
          const push = encodeMessage({ type: MSG_PUSH, update: Y.encodeStateAsUpdate(this.doc, reply.stateVector) })
          this.metrics.bytesOut += push.length
          const ack = decodeMessage(await this.network.request(peer, push))
          if (ack.type === MSG_ACK) this.peerClocks.set(peer, this.doc.store.clients.has(this.doc.clientID) ? Y.getState(this.doc.store, this.doc.clientID) : 0)
        }
      }
      this.metrics.syncRounds++
      if (!this.joined) this.membership.requestAdmission(this.resolution())
      return true
    } catch (error) {
      this.metrics.syncFailures++
      if (!this.stopped) this.log(`sync with ${shortId(peer)} failed: ${(error as Error).message}`)
      return false
    } finally {
      this.syncing.delete(peer)
    }
  }

  /**
   * Epidemic pull after a heal: a sync that brought news (a partition's worth of
   * writes, which gossip never carried across the cut) is passed on at once by
   * syncing with every other connected peer, instead of waiting for the
   * periodic round. Each peer that learns something does the same; a sync that
   * brings nothing triggers nothing, so the wave stops by itself. Per-peer
   * cooldown keeps a busy cluster from syncing in circles.
   */
  private spreadNews (from: PeerIdStr): void {
    if (this.stopped) return
    const now = this.clock.now()
    for (const peer of this.network.peers()) {
      if (peer === from || this.syncing.has(peer)) continue
      const last = this.lastSpreadAt.get(peer) ?? 0
      if (now - last < SPREAD_COOLDOWN_MS) continue
      this.lastSpreadAt.set(peer, now)
      this.schedule(() => { void this.syncWith(peer) }, Math.floor(this.random() * 20))
    }
  }

  private readonly lastSpreadAt = new Map<PeerIdStr, number>()
  /** The last multiaddrs each member published (heartbeats carry them only now and then). */
  private readonly memberAddrs = new Map<PeerIdStr, string[]>()
  /** What our last heartbeat with addresses carried, and the beats since. */
  private publishedAddrs = ''
  private beatsSinceAddrs = 0

  private rememberAddrs (keys: Set<string>): void {
    const nodes = this.doc.getMap(MAP_NODES)
    for (const key of keys) {
      if (key === this.self) continue
      const value = nodes.get(key) as { addrs?: unknown } | undefined
      const addrs = value?.addrs
      if (Array.isArray(addrs) && addrs.length > 0 && addrs.length <= MAX_ADDRS && addrs.every(a => typeof a === 'string')) {
        this.memberAddrs.set(key, addrs as string[])
      }
    }
  }

  /** This heartbeat's addrs field: the addresses when they changed or are due, else nothing. */
  private addressesKey (): string {
    return this.network.addresses().slice(0, MAX_ADDRS).join(' ')
  }

  private addrsForHeartbeat (): string[] | undefined {
    const addrs = this.network.addresses().slice(0, MAX_ADDRS)
    const key = addrs.join(' ')
    if (key === this.publishedAddrs && ++this.beatsSinceAddrs < ADDRS_EVERY_BEATS) return undefined
    this.publishedAddrs = key
    this.beatsSinceAddrs = 0
    return addrs.length > 0 ? addrs : undefined
  }

  /**
   * Keep `targetPeers` connections to live members, dialled by the addresses
   * they publish in their heartbeats. Without it every agent stays connected
   * only to its bootstrap peers: a star that one node's death, or a partition
   * through it, cuts apart although every agent knows every member.
   */
  private readonly dialFailuresLogged = new Set<PeerIdStr>()

  private async keepConnected (): Promise<void> {
    const dial = this.network.dial
    if (dial === undefined || this.stopped) return
    const connected = new Set(this.network.peers())
    const res = this.resolution()
    // Every member while the view is small enough for direct beacons.
    const wanted = res.view.size - 1 <= DIRECT_MEMBERS_MAX ? Math.max(DEFAULTS.targetPeers, res.view.size - 1) : DEFAULTS.targetPeers
    const missing = wanted - connected.size
    if (missing <= 0) return
    const candidates = res.members.filter(id => id !== this.self && !connected.has(id) && this.liveness(id) !== 'dead' && this.memberAddrs.has(id))
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [candidates[i], candidates[j]] = [candidates[j], candidates[i]]
    }
    for (const id of candidates.slice(0, Math.min(missing, DIALS_PER_ROUND))) {
      for (const address of this.memberAddrs.get(id)!) {
        try {
          await dial.call(this.network, address)
          this.dialFailuresLogged.delete(id)
          break
        } catch (error) {
          // Another of its addresses may work (a host has several interfaces).
          // Said once per member until a dial to it works: a member this node
          // cannot reach gets no direct beacons from it.
          if (!this.dialFailuresLogged.has(id) && this.dialFailuresLogged.size < 1000) {
            this.dialFailuresLogged.add(id)
            this.log(`cannot connect to member ${shortId(id)} at ${address}: ${(error as Error).message} (retried every sync round)`)
          }
        }
      }
    }
  }

  private async syncRandomPeer (): Promise<void> {
    const peers = this.network.peers()
    if (peers.length === 0) return
    await this.syncWith(peers[Math.floor(this.random() * peers.length)])
  }

  /** `--ack peers:K`: sync with peers until K of them hold everything we wrote. */
  private async waitForPeers (k: number, _before: Uint8Array): Promise<number> {
    const needed = Y.getState(this.doc.store, this.doc.clientID)
    const deadline = this.clock.now() + (this.init.ackTimeoutMs ?? DEFAULTS.ackTimeoutMs)
    const count = (): number => [...this.peerClocks.values()].filter(c => c >= needed).length
    while (count() < k && this.clock.now() < deadline && !this.stopped) {
      await Promise.all(this.network.peers().map(async p => await this.syncWith(p)))
      if (count() >= k) break
      await new Promise<void>(resolve => { this.schedule(resolve, 100) })
    }
    const acked = count()
    if (acked < k) throw new AckTimeoutError(acked, k)
    return acked
  }

  // ------------------------------------------------------------ upkeep

  private scheduleRefresh (): void {
    if (this.refreshTimer !== undefined || this.stopped) return
    this.refreshTimer = this.clock.setTimeout(() => {
      this.refreshTimer = undefined
      this.refresh()
    }, 20)
  }

  /** Recompute, observe remote clocks, track liveness, and emit what changed. */
  refresh (): void {
    if (this.stopped) return
    const now = this.clock.now()
    // Merge the latest stamp held into our clock — but not one far ahead (a
    // fast clock must not drag this node into its future; it is alerted).
    const latest = latestWithin(this.resolution(), now + DEFAULTS.maxClockSkewMs)
    if (latest !== undefined) this.writer.observe(latest, now)
    const res = this.resolution()
    this.trackLiveness(res)
    this.trackMembership(res)
    this.membership.admitRequests(res)
    this.membership.acknowledgeProposals(res)
    this.beaconChannel.prune((node) => res.nodes.get(node)?.standing !== undefined && res.nodes.get(node)?.standing !== 'none')
    this.beaconChannel.maybeBeacon(res)
    this.detector.prune()
    this.maybePullBeacons(res)
    const next = new Map<string, string>()
    for (const v of [...res.verdicts.values(), ...res.conflicts]) {
      const sig = verdictSignature(v.status, v.final, v.code) // interned (agent/signatures.ts)
      next.set(v.key, sig)
      if (this.previousVerdicts.get(v.key) !== sig) {
        this.emit('event', { type: 'verdict', id: v.id, status: v.status, final: v.final, code: v.code, reason: v.reason, nodes: v.runningOn.length > 0 ? v.runningOn : v.nodes } satisfies AgentEvent)
      }
    }
    this.previousVerdicts = next
    this.updateAlerts(res)
    this.membership.requestAdmission(res)
  }

  /** Follow this node's own membership by the log: admitted, or no longer a member (evicted, left). */
  private trackMembership (res: Resolution): void {
    const member = res.members.includes(this.self)
    if (member === this.wasMember) return
    this.wasMember = member
    const own = res.nodes.get(this.self)
    if (member) {
      this.log(`admitted into cluster '${this.init.cluster}' by ${own?.sponsor ?? '?'} (view ${res.view.epoch}: ${res.members.length} members)`)
      this.emit('event', { type: 'joined', sponsor: own?.sponsor ?? this.self } satisfies AgentEvent)
      this.emit('event', { type: 'membership', state: 'admitted', node: this.self, by: own?.sponsor } satisfies AgentEvent)
      void this.publishCapacityIfChanged()
      // Its figures reach every member with the news of its admission, not at the next heartbeat.
      void this.sampleAndPublish(true)
    } else {
      const standing = own?.standing === 'evicted' ? 'evicted' : 'left'
      this.log(`no longer a member of cluster '${this.init.cluster}': ${standing}${own?.cutSeq !== undefined ? ` (writes after position ${own.cutSeq} do not count)` : ''}${this.leftOnPurpose ? '' : '; asking to be admitted again'}`)
      this.emit('event', { type: 'membership', state: standing, node: this.self } satisfies AgentEvent)
      this.membership.askAgainNow()
    }
  }

  private trackLiveness (res: Resolution): void {
    const now = this.clock.now()
    for (const node of res.nodes.values()) {
      const known = this.lastStamps.has(node.id)
      if (!known) {
        this.lastStamps.set(node.id, node.lastHlc)
        // A first stamp may be old (history brought by a sync): it can only show a peer behind, never hide one ahead.
        if (node.id !== this.self && node.lastHlc !== undefined) this.sampleOffset(node.id, hlcWallMs(node.lastHlc) - now)
      } else if (node.lastHlc !== undefined && node.lastHlc !== this.lastStamps.get(node.id)) {
        this.lastStamps.set(node.id, node.lastHlc)
        if (node.id !== this.self) {
          this.sampleOffset(node.id, hlcWallMs(node.lastHlc) - now)
          this.detector.heard(node.id, node.lastHlc)
        }
      }
    }
    this.clockBehindMs = Math.max(0, this.medianOffset())
  }

  /** A member's beacon arrived now: it is alive, and its stamp is a fresh clock sample. */
  private heard (node: PeerIdStr, hlc: string): void {
    this.sampleOffset(node, hlcWallMs(hlc) - this.clock.now())
    this.detector.heard(node, hlc)
  }

  /**
   * Hold a clock lease past `wallMs` before a beacon stamped there leaves this
   * node: the data dir records a wall time a restarted clock starts beyond, so
   * no stamp a peer saw in a beacon is reused. Renewed a lease period ahead,
   * so at most one small fsync per period.
   */
  private async holdLease (wallMs: number): Promise<void> {
    const dataDir = this.init.dataDir
    if (dataDir === undefined || wallMs < this.leaseMs) return
    this.leaseTail = this.leaseTail.catch(() => {}).then(async () => {
      if (wallMs < this.leaseMs) return
      const leaseMs = wallMs + (this.init.clockLeaseMs ?? DEFAULTS.clockLeaseMs)
      await writeMeta(dataDir, { clientId: this.clientId, peerId: this.self, clockLeaseMs: leaseMs })
      this.leaseMs = leaseMs
    })
    await this.leaseTail
  }

  /**
   * A fresh stamp from `peer` at our wall time: its clock is at least this far
   * ahead of ours (delivery delay only makes the sample smaller). The largest
   * sample of the last 30 s is kept, so an old stamp arriving by sync does
   * not hide a skew.
   */
  private sampleOffset (peer: PeerIdStr, sampleMs: number): void {
    const now = this.clock.now()
    const previous = this.peerOffsets.get(peer)
    if (previous === undefined || sampleMs > previous.sampleMs || now - previous.atMs > 30_000) this.peerOffsets.set(peer, { sampleMs, atMs: now })
  }

  private updateAlerts (res: Resolution): void {
    this.alertSink.update(computeAlerts({
      self: this.self,
      res,
      sample: this.lastSample,
      floorBytes: this.floorBytes,
      floorRule: this.floorRule,
      systemReservedBytes: this.init.systemReservedBytes ?? 0,
      committedRatio: DEFAULTS.alertCommittedRatio,
      failed: this.failed,
      identityLost: this.identityLost,
      clockBehindMs: this.clockBehindMs,
      maxOffsetMs: this.maxOffsetMs(),
      peersAhead: this.peersAhead(),
      joined: this.joined,
      evictionBlocked: this.membership.blocked,
      pressure: this.pressure.level === 'ok' ? undefined : { level: this.pressure.level, message: this.pressure.describe() ?? '' },
      usage: this.usage.list(),
      nearLimitRatio: this.init.nearLimitRatio ?? DEFAULTS.nearLimitRatio
    }))
  }

  private async maybeCompact (): Promise<void> {
    const store = this.store
    if (store === undefined || this.failed !== undefined || this.stopped) return
    if (store.sizeBytes() < DEFAULTS.compactAfterBytes) return
    const state = Y.encodeStateAsUpdate(this.doc)
    if (store.sizeBytes() < 2 * state.length) return
    try {
      await this.durableTail
      await store.compact(Y.encodeStateAsUpdate(this.doc))
    } catch (error) {
      this.log(`store: compaction failed (${(error as Error).message}); will retry`)
    }
  }

  private schedule (fn: () => void, ms: number): void {
    const handle = this.clock.setTimeout(() => {
      const i = this.timers.indexOf(handle)
      if (i >= 0) this.timers.splice(i, 1)
      if (!this.stopped) fn()
    }, ms)
    this.timers.push(handle)
  }

  private every (fn: () => void, ms: number): void {
    this.intervals.push(this.clock.setInterval(() => { if (!this.stopped) fn() }, ms))
  }

  private randomClientId (): number {
    // Yjs client ids are uint32; 0 is avoided only for readability in dumps.
    return 1 + Math.floor(this.random() * 0xfffffffe)
  }
}

/** A Yjs update with no entries and an empty delete set. */
const EMPTY_UPDATE = new Uint8Array([0, 0])

/**
 * Whether a peer whose state vector is `theirs` lacks any entry of `doc`.
 * Deletes need no check of their own: in the ledger every delete is made by
 * the transaction that sets a new value on the same key (a heartbeat replacing
 * the last one), and an update carries a transaction's entries and deletes
 * together; so a peer holding every entry holds every delete. (The one other
 * delete, the rollback of a write that could not be made durable, leaves the
 * agent read-only: it serves and pushes nothing after that.)
 */
function lacksEntries (doc: Y.Doc, theirs: Map<number, number>): boolean {
  for (const client of doc.store.clients.keys()) {
    if (Y.getState(doc.store, client) > (theirs.get(client) ?? 0)) return true
  }
  return false
}

export interface EvictionAnswer {
  node: PeerIdStr
  proposal: string
  force: boolean
  status: 'open' | 'done' | 'void' | 'refused'
  waitingFor: PeerIdStr[]
  detail: string
}

/** `GET /v1/state`: this agent, its view and what is changing in it. */
export interface AgentState {
  self: PeerIdStr
  cluster: string
  /** A member of the current view. */
  joined: boolean
  standing: NodeView['standing']
  readOnly?: string
  /** Why writes are refused now (disk, identity, clock), if they are. */
  writesRefused?: string
  members: string[]
  view: { epoch: number, members: string[], digest: string, since?: string, cause: string }
  /** Open view changes and what each waits for. */
  viewChanges: Array<{ proposal: string, kind: string, targets: string[], by: string, since: string, acknowledged: string[], waitingFor: string[], majorityOf: number }>
  admissionRequests: Array<{ node: string, sponsor: string, since: string }>
  clock: { behindMs: number, maxOffsetMs: number, peersAheadMs: Record<string, number> }
  /** This peer's completeness line. */
  seen?: string
  peers: string[]
  reservations: number
  pending: number
  verdictsDigest: string
  watermark?: string
  ledgerBytes: number
  floorBytes: number
  floorRule: string
  allocatableBytes: number
}
