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
  computeRent, encodeHlc, entryKey, finishResolution, fit, hlcWallMs, latestWithin, LedgerWriter, ledgerMaps, MAP_CAPACITY,
  MAP_EPOCHS, MAP_MEMBERSHIP, MAP_NODES, MAP_RELEASES, MAP_RESERVATIONS, plainValue, readLedger, readMapRecord, releaseKey, replayFrom, replayLedger, shortId,
  MAX_QUEUE_TIMEOUT_MS, type Replayed, type FitAnswer, type Placement, type RentBill, type Resolution, type Verdict, type NodeView
} from '../crdt/index.ts'
import { AckTimeoutError, BadRequestError, IdExistsError, NotFoundError, UnavailableError } from './errors.ts'
import { computeAllocatable, PublishGate, resolveFloor, type FloorConfig } from './probe.ts'
import { AlertSink, computeAlerts, formatMs, type Alert } from './alerts.ts'
import { PressureLadder, pressureWarnings, type PressureConfig, type PressureLevel } from './pressure.ts'
import { UsageTracker, UsageWatchError, type OomReport, type ReservationUsage, type UsageCounters } from './usage.ts'
import { verdictSignature } from './signatures.ts'
import { ClockChannel, DIRECT_MEMBERS_MAX, emptyBeaconCounters, type BeaconCounters } from './clock.ts'
import { BeaconRelays } from './relay.ts'
import { ClockRepair } from './repair.ts'
import { MembershipDuties, positionsOf } from './membership.ts'
import { timedOutQueued } from './queue.ts'
import { LedgerStore } from './store.ts'
import { ClockLease } from './lease.ts'
import { ClockOffsets } from './offsets.ts'
import { MAX_DIRECT_BYTES, type Clock, type MemoryProbe, type MemorySample, type Network, type PeerIdStr, type TimerHandle } from './types.ts'
import { emptyLivenessCounters, FAILURE_DETECTOR_DEFAULTS, FailureDetector, type FailureDetectorSettings, type Liveness, type LivenessCounters } from './liveness.ts'
import {
  decodeMessage, encodeMessage, MSG_BEACON, MSG_BEACON_RELAY, MSG_BEACONS, MSG_RELAYED, MSG_ERROR, MSG_GOSSIP, MSG_PING, MSG_PING_REQ, MSG_PULL, MSG_PUSH,
  MSG_CALL, MSG_REPLY, MSG_SUSPECT, MSG_SYNC_REQUEST, type WireBeacon
} from './wire.ts'
import { DirectCalls } from './calls.ts'
import { Probes } from './probes.ts'
import { AGENT_DEFAULTS, type AgentSettings } from './config.ts'
import { lineLogger, lineSink, toLogger, type Logger, type LogLine } from './log.ts'
import { InputGuard } from './input.ts'
import { ledgerReader, type LedgerReader } from './ledger-reader.ts'
import { Mesh } from './mesh.ts'
import { pushPullScale, SyncExchange } from './sync.ts'
import { Epochs, type EpochDecision } from './epochs.ts'

export const VERSION = '0.1.0'

/** Defaults: the agent's constants and the `lan` preset's values (agent/config.ts, where each has its reason). */
export const DEFAULTS = AGENT_DEFAULTS

/** A beacon is about 100 bytes (a node id, a stamp, a position, a line); anything much larger is not one. */
const MAX_BEACON_BYTES = 512
const ORIGIN_LOCAL = Symbol('memgossip-local')
const ORIGIN_REMOTE = Symbol('memgossip-remote')
const ORIGIN_RESTORE = Symbol('memgossip-restore')
/** Takes a refused (not durable) local write back out of memory; never persisted or shared. */
const ORIGIN_ROLLBACK = Symbol('memgossip-rollback')

export type { Liveness } from './liveness.ts'

/** The preset settings the agent reads (agent/config.ts: each with its reason); unset, the `lan` preset's. */
export type AgentTimingSettings = Pick<AgentSettings, 'sampleIntervalMs' | 'heartbeatIntervalMs' | 'gossipBatchMs' | 'syncIntervalMs' | 'probeIntervalMs' |
'beaconPullAfterMs' | 'evictAfterMs' | 'ackTimeoutMs' | 'maxClockOffsetMs' | 'beaconDelayMs' | 'recordRefreshMs' | 'nearLimitRatio'>

export interface AgentInit extends Partial<AgentTimingSettings> {
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
  /** Where the agent logs: a levelled {@link Logger}, or a line sink (warn and error lines then start `WARNING ` / `ERROR `). */
  log?: Logger | LogLine
  /** Failure detector settings beyond the interval (agent/config.ts presets; default the `lan` preset's). */
  failureDetector?: Partial<Pick<FailureDetectorSettings, 'probeTimeoutMs' | 'indirectProbes' | 'suspicionMult' | 'suspicionMaxMult'>>
  /** Largest Yjs update accepted from a peer (the preset's `maxMessageBytes`). */
  maxUpdateBytes?: number
  maxUpdateEntries?: number
  clockLeaseMs?: number
  /** The pressure ladder's thresholds (agent/pressure.ts; docs/design.md "Pressure ladder"). */
  pressure?: PressureConfig
  /** Where reservation cgroups may be named (agent/usage.ts); default /sys/fs/cgroup. */
  cgroupRoot?: string
  /** Look for reservation cgroups nobody named, after a restart (agent/usage.ts); on only for the host's own memory. */
  findCgroups?: boolean
  /** Propose a new epoch once this many entries ended since the current one began (docs/design.md "Compaction: epochs"); 0 turns compaction by epochs off. */
  compactAfterEnded?: number
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
  /** Local update batches sent straight to every member instead of published on the gossip topic. */
  updatesDirect: number
  /** The epoch the ledger is in (docs/design.md "Compaction: epochs"), moves to a new one, and settled proposals refused for a different checkpoint. */
  epoch: number
  epochMoves: number
  epochMismatches: number
  /** Updates of another epoch's document dropped (a peer not yet moved, or ahead). */
  epochForeign: number
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

/** A peer in a later epoch is asked for it at most this often (docs/design.md "Compaction: epochs"). */
const EPOCH_FETCH_COOLDOWN_MS = 2000
/** At most this often, a record written again because a stale copy of it won (reassertRecord). */
const RECORD_REASSERT_EVERY_MS = 1000

export class Agent extends EventEmitter {
  readonly self: PeerIdStr
  /** Read-only copies of the replicated ledger (for tools and tests); the document itself stays private. */
  readonly ledger: LedgerReader
  readonly metrics: AgentMetrics = { updatesIn: 0, updatesOut: 0, bytesIn: 0, bytesOut: 0, heartbeats: 0, syncRounds: 0, syncFailures: 0, droppedOversized: 0, droppedInvalid: 0, droppedThrottled: 0, redundantUpdates: 0, gapPulls: 0, updatesDirect: 0, epoch: 0, epochMoves: 0, epochMismatches: 0, epochForeign: 0, resolutions: 0, ...emptyBeaconCounters(), ...emptyLivenessCounters(), beaconPulls: 0, suspicionsDropped: 0, admissions: 0, evictionProposals: 0, evictionAcks: 0, oomKillsLimit: 0, oomKillsHost: 0 }
  readonly network: Network
  floorBytes = 0
  floorRule = ''
  lastSample?: MemorySample
  allocatableBytes = 0

  /** The current epoch's document (replaced when the ledger moves to a new epoch: docs/design.md "Compaction: epochs"). */
  private doc: Y.Doc
  private readonly epochs: Epochs
  /** A later epoch is being fetched from a peer, and when the last fetch began. */
  private fetchingEpoch = false
  private lastEpochFetchMs = -Infinity
  private readonly init: AgentInit
  private readonly clock: Clock
  private readonly random: () => number
  private readonly log: Logger
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
  /** When this node last wrote its record again because a stale copy had won (reassertRecord). */
  private recordReassertedAtMs = -Infinity
  /** Position of the last node record this node wrote (this run). */
  private lastRecordSeq?: number
  private failed?: string
  /** Set when Yjs re-assigned our client id: another process writes under this identity; this one never writes again. */
  private identityLost?: string
  /** The document's Yjs client id: this node's stream in the current epoch. */
  private clientId = 0
  /** The data dir's meta.json: the clock lease, and the client id the files hold (agent/lease.ts). */
  private readonly lease: ClockLease
  private stopped = false
  /** Membership as last reported (admitted / no longer a member), for the transitions. */
  private wasMember = false
  /** How far this host's clock is from its peers' (agent/offsets.ts). */
  private readonly offsets: ClockOffsets
  private membership!: MembershipDuties
  private beaconChannel!: ClockChannel
  /** Relays of the clock channel (agent/relay.ts). */
  private relays!: BeaconRelays
  private readonly calls: DirectCalls
  private readonly probes: Probes
  private detector!: FailureDetector
  private repair!: ClockRepair
  private cachedClock = ''
  /**
   * Every node's record as this peer shows it, kept by the node map's
   * observer (`observe()`), with the last record standing in for one the
   * document holds back. A node replaces its record; a peer that receives the
   * replacement while an earlier update of that node is still missing applies
   * the old record's deletion at once and holds the new record back until the
   * gap is pulled (Yjs applies a writer's items in order, deletions at once),
   * so the node would show 0 B until then. Records are never deleted
   * otherwise (an epoch carries them over), so a deletion leaves the record
   * here until that node's next one arrives. Verdicts do not read node
   * records; the figures and addresses shown do. Null prototype, like
   * `readMapRecord`'s: a key is a peer's input.
   */
  private readonly nodeRecords: Record<string, unknown> = Object.create(null)
  /** The latest stamp of each node's stream already taken as a clock sample and a proof of life. */
  private readonly lastStamps = new Map<PeerIdStr, string | undefined>()
  /** Each verdict's signature when last seen (agent/signatures.ts), and the resolution it was seen in. */
  private readonly verdictSignatures = new Map<string, number>()
  private verdictsSeenIn?: Resolution
  private readonly alertSink: AlertSink
  // -- enforcement hooks (agent/pressure.ts, agent/usage.ts) --
  private readonly pressure: PressureLadder
  private readonly usage: UsageTracker
  /** The per-reservation usage the node record carries, and the pressure level it says. */
  private usageRecord?: Record<string, { usedBytes: number, peakBytes?: number, oomKills?: number }>
  private recordPressure: PressureLevel = 'ok'
  // -- end enforcement hooks --
  private readonly input: InputGuard
  private readonly sync: SyncExchange
  private readonly mesh: Mesh
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
    this.offsets = new ClockOffsets(this.clock, init.maxClockOffsetMs ?? DEFAULTS.maxClockOffsetMs)
    this.lease = new ClockLease({ dataDir: init.dataDir, self: this.self, clock: this.clock, periodMs: init.clockLeaseMs ?? DEFAULTS.clockLeaseMs })
    this.log = toLogger(init.log, () => lineLogger((line) => { process.stderr.write(`${line}\n`) }))
    this.doc = new Y.Doc({ gc: true })
    this.ledger = ledgerReader(() => this.doc)
    this.epochs = new Epochs({
      self: this.self,
      clock: this.clock,
      clientId: () => this.randomClientId(),
      log: (line) => { this.log.warn(line) },
      mismatch: () => { this.metrics.epochMismatches++ }
    }, { compactAfterEnded: init.compactAfterEnded ?? DEFAULTS.compactAfterEnded, checkEveryMs: 5000 })
    this.input = new InputGuard({
      clock: this.clock,
      // Its one line: a peer's input dropped (once per peer and kind).
      log: (line) => { this.log.warn(line) },
      counters: this.metrics,
      limits: {
        maxUpdateBytes: init.maxUpdateBytes ?? DEFAULTS.maxUpdateBytes,
        maxUpdateEntries: init.maxUpdateEntries ?? DEFAULTS.maxUpdateEntries,
        messagesPerSecond: DEFAULTS.gossipMessagesPerSecond,
        bytesPerSecond: DEFAULTS.gossipBytesPerSecond
      }
    })
    this.sync = new SyncExchange({
      doc: () => this.doc,
      epoch: () => this.epochs.epoch,
      later: (peer, epoch) => { void this.fetchEpoch(peer, epoch) },
      network: this.network,
      clock: this.clock,
      random: this.random,
      log: lineSink(this.log),
      counters: this.metrics,
      apply: (from, update) => this.applyRemote(from, update),
      ledgerChanges: () => this.ledgerChanges,
      durable: async () => { await this.durableTail },
      settled: async () => { await this.settled() },
      readOnly: () => this.failed !== undefined,
      stopped: () => this.stopped,
      afterRound: () => { if (!this.joined) this.membership.requestAdmission(this.resolution()) },
      schedule: (fn, ms) => { this.schedule(fn, ms) }
    })
    this.mesh = new Mesh({
      self: this.self,
      network: this.network,
      random: this.random,
      // Its one line: a member it cannot connect to.
      log: (line) => { this.log.warn(line) },
      liveness: (node) => this.liveness(node),
      targetPeers: DEFAULTS.targetPeers,
      stopped: () => this.stopped
    })
    this.observe(this.doc)
    this.alertSink = new AlertSink({
      clock: this.clock,
      log: lineSink(this.log),
      emit: (state, alert) => { this.emit('event', { type: 'alert', state, alert } satisfies AgentEvent) },
      logIntervalMs: DEFAULTS.alertLogIntervalMs
    })
    this.gate = new PublishGate({ heartbeatIntervalMs: init.recordRefreshMs ?? DEFAULTS.recordRefreshMs })
    this.pressure = new PressureLadder(init.pressure)
    this.usage = new UsageTracker({
      clock: this.clock,
      log: lineSink(this.log),
      counters: this.metrics,
      cgroupRoot: init.cgroupRoot,
      searchUnnamed: init.findCgroups,
      onOom: (report) => { this.emit('event', { type: 'oom', node: this.self, ...report } satisfies AgentEvent) }
    })
    this.calls = new DirectCalls({ clock: this.clock, send: (peer, bytes) => this.network.send?.call(this.network, peer, bytes) ?? false })
    this.probes = new Probes({
      self: this.self,
      clock: this.clock,
      network: this.network,
      calls: this.calls,
      detector: () => this.detector,
      isMember: (node) => this.lastResolution().view.has(node),
      probeTimeoutMs: () => this.probeTimeoutMs,
      maxCallBytes: MAX_BEACON_BYTES,
      stopped: () => this.stopped,
      offsetSample: (peer, wallMs) => { this.offsets.sample(peer, wallMs) },
      drop: (from, kind, reason) => { this.input.drop(from, kind, reason) },
      counters: this.metrics
    })
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
      const opened = await LedgerStore.open(dataDir, { fsync: this.init.fsync ?? true, logger: (m) => { this.log.info(`store: ${m}`) } })
      this.store = opened.store
      const metaClientId = await this.lease.open()
      // The snapshot names its document's client id when it was written with
      // it; meta.json is only the fallback (no snapshot yet, or an older one).
      clientId = opened.clientId ?? metaClientId
      // Restore under a throwaway client id: Yjs re-rolls its own id when a
      // non-local transaction adds structs of that id, which is exactly what
      // replaying our own history would look like.
      this.doc.clientID = this.randomClientId()
      for (const update of opened.updates) {
        try {
          Y.applyUpdate(this.doc, update, ORIGIN_RESTORE)
        } catch (error) {
          this.log.warn(`store: skipped an unreadable record (${(error as Error).message})`)
        }
      }
      try {
        this.epochs.restore(this.doc)
        this.metrics.epoch = this.epochs.epoch
      } catch (error) {
        throw new UnavailableError(`data dir ${dataDir}: ${(error as Error).message}; move the data dir aside to rejoin from peers`)
      }
      if (this.epochs.epoch !== opened.epoch) this.log.warn(`store: the ledger files are of epoch ${opened.epoch}, the document they hold of epoch ${this.epochs.epoch}`)
      if (opened.recovered.droppedTailBytes > 0) this.log.warn(`store: dropped a torn tail of ${opened.recovered.droppedTailBytes} bytes (${opened.recovered.reason ?? 'crash during a write'})`)
    }
    this.doc.clientID = clientId ?? this.randomClientId()
    this.clientId = this.doc.clientID
    await this.lease.filesHold(this.clientId, { write: clientId === undefined })
    this.writer = new LedgerWriter(this.doc, this.self, ORIGIN_LOCAL)
    // In a later epoch the document holds only what the checkpoint did not
    // summarise: how far this node's stream reached is in the checkpoint.
    const own = this.epochs.checkpoint?.streams.find(([node]) => node === this.self)?.[1]
    if (own !== undefined) this.writer.resume(own, this.clock.now())
    // --- clock channel relays (agent/relay.ts): the member side tries a relay
    // first; the relay side passes beacons on in batches.
    this.relays = new BeaconRelays({
      self: this.self,
      clock: this.clock,
      view: () => this.lastResolution().view,
      liveness: (node) => this.liveness(node),
      peers: () => this.network.peers(),
      send: this.network.send === undefined
        ? undefined
        : (peer, bytes) => {
            const sent = this.network.send?.call(this.network, peer, bytes) === true
            if (sent) this.metrics.bytesOut += bytes.length
            return sent
          },
      publish: async (bytes) => { await this.publishCounted(bytes) },
      receive: (from, beacon, options) => this.onBeacon(from, beacon, options),
      drop: (from, why, reason) => { this.beaconChannel.drop(from, why, reason) },
      fallback: (bytes) => { this.beaconChannel.sendUnrelayed(bytes).catch((error: Error) => { this.log.warn(`beacon not sent: ${error.message}`) }) },
      log: lineSink(this.log),
      counters: this.metrics
    })
    // --- end relays
    this.beaconChannel = new ClockChannel({
      self: this.self,
      clock: this.clock,
      random: this.random,
      stamp: (wallMs, seen) => this.writer.beacon(wallMs, seen),
      lease: async (wallMs) => await this.lease.hold(wallMs),
      publish: async (bytes) => { await this.publishCounted(bytes) },
      direct: (bytes) => this.sendToMembers(bytes),
      relay: this.relays,
      resolution: () => this.resolution(),
      canBeacon: () => this.joined && this.writeRefusal() === undefined && this.network.peers().length > 0,
      changed: () => { this.finalityDirty = true; this.scheduleRefresh() },
      heard: (node, hlc) => this.heard(node, hlc),
      heldSeq: (node) => this.lastResolution().nodes.get(node)?.lastSeq ?? 0,
      log: lineSink(this.log),
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
      log: lineSink(this.log),
      writer: () => this.writer,
      resolution: () => this.resolution(),
      durable: async () => { await this.durable() },
      writable: () => this.writeRefusal() === undefined,
      joined: () => this.joined,
      stopped: () => this.stopped,
      leftOnPurpose: () => this.leftOnPurpose,
      expectsPeers: this.init.expectsPeers === true,
      connected: () => this.network.peers(),
      clockSampled: (peer) => this.offsets.has(peer),
      allocatableBytes: () => this.allocatableBytes,
      liveness: (node) => this.liveness(node),
      silentForMs: (node) => this.silentForMs(node),
      evictAfterMs: this.init.evictAfterMs ?? DEFAULTS.evictAfterMs,
      maxClockSkewMs: DEFAULTS.maxClockSkewMs,
      counters: this.metrics
    })
    const probeIntervalMs = this.init.probeIntervalMs ?? DEFAULTS.probeIntervalMs
    this.repair = new ClockRepair({
      clock: this.clock,
      random: this.random,
      self: this.self,
      peers: () => this.network.peers(),
      request: async (peer, bytes, timeoutMs) => await this.probes.request(peer, bytes, timeoutMs),
      receive: (from, beacons) => {
        const view = this.lastResolution().view
        const counted = new Set<PeerIdStr>()
        for (const beacon of beacons) if (this.beaconChannel.receive(from, beacon, (node) => view.has(node), { pulled: true })) counted.add(beacon.node)
        return counted
      },
      streamsBehind: () => this.beaconChannel.streamsBehind(),
      pullGap: (peer) => { this.sync.wake(); this.sync.pullGap(peer) },
      health: () => this.detector.localHealth,
      stopped: () => this.stopped,
      counters: this.metrics
    }, this.init.beaconPullAfterMs ?? DEFAULTS.beaconPullAfterMs)
    this.detector = new FailureDetector({
      self: this.self,
      clock: this.clock,
      random: this.random,
      members: () => this.resolution().members,
      neighbours: () => this.network.peers(),
      stamp: () => encodeHlc({ wallMs: this.clock.now(), counter: 0, node: this.self }),
      ping: async (peer, timeoutMs, suspicion) => await this.probes.ping(peer, timeoutMs, suspicion),
      pingVia: async (via, target, timeoutMs) => await this.probes.pingVia(via, target, timeoutMs),
      announce: (target, stamp) => { void this.probes.announce(target, stamp) },
      refute: (stamp) => { this.refute(stamp) },
      changed: (node, state) => {
        this.emit('event', { type: 'liveness', node, state } satisfies AgentEvent)
        this.scheduleRefresh()
      },
      log: lineSink(this.log),
      counters: this.metrics
    }, { ...FAILURE_DETECTOR_DEFAULTS, ...this.init.failureDetector, probeIntervalMs, probeTimeoutMs: Math.min(this.probeTimeoutMs, probeIntervalMs) })
    this.wasMember = this.joined

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
        this.sync.wake()
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
    const syncIntervalMs = this.init.syncIntervalMs ?? DEFAULTS.syncIntervalMs
    this.every(() => {
      const res = this.resolution()
      void this.sync.periodic(syncIntervalMs, pushPullScale(res.members.length))
      void this.mesh.keepConnected(res)
    }, syncIntervalMs)
    this.every(() => { this.refresh(); this.beaconChannel.tick(); this.repair.tick(); void this.membership.evictTheDead() }, 1000)
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
    this.relays?.stop()
    this.calls.stop()
    await this.durableTail.catch(() => {})
    await this.network.stop().catch(() => {})
    await this.store?.flush().catch(() => {})
    await this.store?.close().catch(() => {})
    this.doc.destroy()
    this.removeAllListeners()
  }

  // ------------------------------------------------------------ reading

  /** How long a direct ping waits (the preset's failure-detector timeout). */
  private get probeTimeoutMs (): number {
    return this.init.failureDetector?.probeTimeoutMs ?? FAILURE_DETECTOR_DEFAULTS.probeTimeoutMs
  }

  /** Membership follows the ledger alone: beacons that arrived since do not change it. */
  private get joined (): boolean {
    return this.lastResolution().members.includes(this.self)
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
      const checkpoint = this.epochs.checkpoint
      this.replayed = checkpoint !== undefined ? replayFrom(checkpoint, readLedger(this.doc)) : replayLedger(readLedger(this.doc))
      this.metrics.resolutions++
    }
    this.finalityDirty = false
    this.cachedClock = clockNow
    this.cached = finishResolution(this.replayed, this.nodeRecords, { self: this.self, selfClock: clockNow === '' ? undefined : clockNow, beacons: this.beaconChannel?.beacons })
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
    return computeRent(this.resolution(), { nowMs: this.clock.now(), sinceMs: options.sinceMs, pricePerGiBHour: options.pricePerGiBHour ?? this.init.pricePerGiBHour, ended: this.epochs.checkpoint?.ended })
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
      clock: { behindMs: this.offsets.behindMs, maxOffsetMs: this.offsets.maxOffsetMs, peersAheadMs: Object.fromEntries(this.offsets.ahead()) },
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
    await this.assertWritable()
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
    this.writer.reserve({ id: request.id, bytes: request.bytes, placement: request.placement, priority: request.priority, labels: request.labels, ...bounds }, this.clock.now())
    await this.durableOrRollback('reservations', entryKey(request.id, this.self))
    let ackedPeers: number | undefined
    if ((this.init.ackPeers ?? 0) > 0) ackedPeers = await this.waitForPeers(this.init.ackPeers!)
    return { written: true, verdict: this.verdict(request.id), answer, ackedPeers }
  }

  /**
   * Release the reservation that owns `id`. A release names the exact entry it
   * ends (`<id>@<creator>`), so it can never end another creator's entry.
   */
  async release (id: string): Promise<Verdict> {
    await this.assertWritable()
    const res = this.resolution()
    const existing = res.verdicts.get(id)
    if (existing === undefined) throw new NotFoundError(`no reservation '${id}'`)
    // This peer's own entry lost the id: its client means that one, not the
    // winner another client reserved; releasing would end someone else's deploy.
    const lost = res.conflicts.find(v => v.id === id && v.creator === this.self)
    if (lost !== undefined && existing.creator !== this.self) {
      throw new IdExistsError(`'${id}' reserved through this peer lost the id to ${shortId(existing.creator)} (IdTaken); it holds no memory, so there is nothing of yours to release. Release it through ${shortId(existing.creator)} to end that reservation.`)
    }
    if (this.writer.release(id, existing.creator, this.clock.now())) {
      await this.durableOrRollback('releases', releaseKey(id, existing.creator, this.self))
    } else if (existing.status === 'admitted' || existing.status === 'queued') {
      // This peer's release of an earlier entry under the same key (one that
      // ended before a compaction, carried over) holds the key, and names that
      // entry's stamp: it ends nothing of this one, and cannot be written again.
      throw new IdExistsError(`this peer released an earlier reservation '${id}' of ${shortId(existing.creator)} (it ended before the last compaction) and a peer releases each entry key once; release this one through ${shortId(existing.creator)} or another peer`)
    } else {
      await this.durable()
    }
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
    await this.assertWritable()
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
    this.log.info(`${force ? 'forced eviction' : 'proposed evicting'} ${node} (operator, proposal ${key})`)
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
    await this.assertWritable()
    this.leftOnPurpose = true
    this.writer.capacity(0, 'left', this.clock.now())
    await this.durable()
    this.log.info(`left cluster '${this.init.cluster}'`)
  }

  private leftOnPurpose = false

  /** Mark this node draining (no new placements; its reservations are evicted, docs/design.md "Capacity loss"). */
  async drain (): Promise<void> {
    await this.assertWritable()
    this.writer.capacity(this.allocatableBytes, 'draining', this.clock.now())
    await this.durable()
  }

  /**
   * A write that arrives while the restart's clock lease runs out (at most
   * about a lease period after a restart) waits for it rather than being
   * refused: the wait is short and known, and a deploy system retrying a 503
   * would only wait longer.
   */
  private async assertWritable (): Promise<void> {
    const lease = this.lease.waitMs()
    if (lease > 0 && lease <= this.lease.periodMs * 2 && this.failed === undefined && this.identityLost === undefined && !this.stopped) {
      // Not this.schedule: a stop must still settle the wait (it then refuses, below).
      await new Promise<void>(resolve => { this.clock.setTimeout(resolve, lease + 1) })
    }
    if (this.stopped) throw new UnavailableError('agent is stopping')
    const refusal = this.writeRefusal()
    if (refusal !== undefined) throw new UnavailableError(refusal)
    if (!this.joined) throw new UnavailableError('agent is not a member of the cluster (waiting for a sponsor to admit it; see memgossip status)')
  }

  /** Why this agent writes nothing now (disk, identity, clock), or undefined. */
  private writeRefusal (): string | undefined {
    if (this.failed !== undefined) return `agent is read-only: ${this.failed}`
    if (this.identityLost !== undefined) return `agent refuses to write: ${this.identityLost}`
    const lease = this.lease.waitMs()
    if (lease > 0) return `restarted ${formatMs(lease)} before the clock lease of its last beacons ends: writes wait until this host's clock passes it, so that none is stamped below a beacon peers already hold`
    const { behindMs, maxOffsetMs } = this.offsets
    if (behindMs > maxOffsetMs) {
      return `this host's clock is ${formatMs(behindMs)} behind the cluster's (more than the maximum offset of ${formatMs(maxOffsetMs)}): writes are refused so that none is stamped in the past; fix the clock (NTP), then retry`
    }
    return undefined
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
        this.log.warn(`store: could not persist a peer's update (${(error as Error).message}); sync will bring it back`)
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
    this.log.error(`${reason}; this agent is now read-only until restarted (free disk space, then restart it)`)
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
      const message = encodeMessage({ type: MSG_GOSSIP, update: batch, epoch: this.epochs.epoch })
      // Straight to every member when connected to each (a view of up to 64):
      // one copy per member instead of a signed flood and its relays' copies.
      if (message.length <= MAX_DIRECT_BYTES && this.sendToMembers(message)) {
        this.metrics.updatesDirect++
        return
      }
      this.publishCounted(message).catch((error: unknown) => this.log.warn(`gossip: publish failed (${(error as Error).message}); sync will carry it`))
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
    this.log.info(`founded cluster '${this.init.cluster}' as its first member`)
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
    this.log.info(`pressure ${step.from} → ${step.to}: ${step.message}`)
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
      this.log.warn(`probe: ${(error as Error).message}`)
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
    if (this.lease.waitMs() > 0) return
    // Usage per reservation rides on the record only when it moved past the threshold; nothing is written at rest.
    const usage = this.usage.recordIfMoved(this.gate.thresholdFor(sample.totalBytes))
    // Addresses that moved (or that the first record went out without) go out
    // at once: members dial each other by them ("Network": connections).
    const addrsMoved = this.mesh.addressesMoved()
    if (!force && !addrsMoved && usage === undefined && this.recordPressure === this.pressure.level && !this.gate.shouldPublish(figures, now, pushPullScale(this.lastResolution().members.length))) return
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
    if (this.identityLost !== undefined || this.failed !== undefined || this.lease.waitMs() > 0) return
    this.lastRecordSeq = this.writer.heartbeat({
      totalBytes: sample.totalBytes,
      floorBytes: this.floorBytes,
      allocatableBytes: allocatable,
      availableBytes: sample.availableBytes,
      usedBytes: Math.max(0, sample.totalBytes - sample.availableBytes),
      labels: this.init.labels,
      version: VERSION,
      addrs: this.mesh.forRecord(),
      pressure: this.pressure.level === 'ok' ? undefined : this.pressure.level,
      usage: this.usageRecord
    }, this.clock.now()).seq
    this.metrics.heartbeats++
  }

  // ------------------------------------------------------------ remote input

  /**
   * A direct message: the clock channel's beacons, sent straight to every
   * member while this peer is connected to all of them (docs/design.md
   * "Clock channel"), with the same checks as a published beacon; ledger
   * updates sent the same way, with the same checks as gossip; and the
   * failure detector's probes as calls and replies (agent/calls.ts).
   */
  private onDirect (from: PeerIdStr, data: Uint8Array): void {
    this.metrics.bytesIn += data.length
    const beacon = data[0] === MSG_BEACON || data[0] === MSG_BEACON_RELAY
    const message = this.input.admit(from, data, beacon ? MAX_BEACON_BYTES : MAX_DIRECT_BYTES, beacon ? 'beacon' : 'direct message')
    if (message === undefined) return
    if (message.type === MSG_BEACON) {
      this.onBeacon(from, message.beacon)
      return
    }
    if (message.type === MSG_BEACON_RELAY || message.type === MSG_RELAYED) {
      this.relays.onMessage(from, message)
      return
    }
    if (message.type === MSG_GOSSIP) {
      // A member's ledger update sent straight to this peer (queueGossip).
      if (this.sameEpoch(from, message.epoch)) this.applyRemote(from, message.update)
      return
    }
    if (message.type === MSG_REPLY) {
      // A reply after its call timed out is simply late.
      this.calls.replied(from, message.id, message.body)
      return
    }
    if (message.type !== MSG_CALL) {
      this.input.drop(from, 'invalid', `unexpected message type 0x${message.type.toString(16)} on a direct stream`)
      return
    }
    let call
    try {
      call = decodeMessage(message.body)
    } catch (error) {
      this.input.drop(from, 'invalid', `call: ${(error as Error).message}`)
      return
    }
    if (call.type !== MSG_PING && call.type !== MSG_PING_REQ) {
      this.input.drop(from, 'invalid', `unexpected call of type 0x${call.type.toString(16)} on a direct stream`)
      return
    }
    this.detector.heard(from)
    const id = message.id
    void this.probes.answer(from, call).then((reply) => {
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

  /** Publish on the gossip topic, counted in the bytes sent. */
  private async publishCounted (bytes: Uint8Array): Promise<void> {
    this.metrics.bytesOut += bytes.length
    await this.network.publish(bytes)
  }

  private onBeacon (from: PeerIdStr, beacon: WireBeacon, options: { relayed?: boolean } = {}): boolean {
    const view = this.lastResolution().view
    return this.beaconChannel.receive(from, beacon, (node) => view.has(node), options)
  }

  private onGossip (from: PeerIdStr, data: Uint8Array): void {
    this.metrics.bytesIn += data.length
    const maxBytes = this.input.limits.maxUpdateBytes
    // Size first: an oversized message is the peer's fault whatever its budget.
    if (data.length > maxBytes + 16) {
      this.input.drop(from, 'oversized', `gossip message of ${data.length} bytes exceeds ${maxBytes}`)
      return
    }
    const beacon = data[0] === MSG_BEACON
    const message = this.input.admit(from, data, beacon ? MAX_BEACON_BYTES : Infinity, beacon ? 'beacon' : 'gossip message')
    if (message === undefined) return
    if (message.type === MSG_BEACON) {
      this.onBeacon(from, message.beacon)
      return
    }
    if (message.type === MSG_RELAYED) {
      // A relay not connected to every member publishes its batch (agent/relay.ts).
      this.relays.onMessage(from, message)
      return
    }
    if (message.type === MSG_SUSPECT) {
      this.probes.onSuspicion(from, message)
      return
    }
    if (message.type !== MSG_GOSSIP) {
      this.input.drop(from, 'invalid', `unexpected message type 0x${message.type.toString(16)} on the gossip topic`)
      return
    }
    if (this.sameEpoch(from, message.epoch)) this.applyRemote(from, message.update)
  }

  /**
   * An update of another epoch's document means nothing in this one
   * (docs/design.md "Compaction: epochs"): dropped and counted; a later
   * epoch is fetched from its sender.
   */
  private sameEpoch (from: PeerIdStr, epoch: number | undefined): boolean {
    if ((epoch ?? 0) === this.epochs.epoch) return true
    this.metrics.epochForeign++
    if ((epoch ?? 0) > this.epochs.epoch) void this.fetchEpoch(from, epoch!)
    return false
  }

  /**
   * Apply a peer's update whole or not at all: size and entry limits, a full
   * decode, and only ledger root types, before anything touches the document.
   */
  private applyRemote (from: PeerIdStr, update: Uint8Array): boolean {
    if (this.stopped || !this.input.acceptsUpdate(from, update)) return false
    const changesBefore = this.remoteChanges
    const store = this.doc.store
    const pendingBefore = { structs: store.pendingStructs?.update, dsBytes: store.pendingDs?.length ?? 0 }
    try {
      Y.applyUpdate(this.doc, update, ORIGIN_REMOTE)
      if (this.remoteChanges === changesBefore) this.metrics.redundantUpdates++
    } catch (error) {
      this.input.drop(from, 'invalid', `update failed to apply (${(error as Error).message})`)
      return false
    }
    // Yjs silently takes a new client id when an update carries structs of
    // ours: another process writes under this node's identity (a data dir
    // cloned to a second host, or restored from a backup). Writing on under a
    // second id would split this node's stream; refuse to write at all.
    if (this.doc.clientID !== this.clientId && this.identityLost === undefined) {
      this.identityLost = `a peer (${shortId(from)}) sent writes under this node's own Yjs client id ${this.clientId}: another process is writing as ${shortId(this.self)} (a copied or restored data dir). This agent no longer writes; give the other host its own data dir`
      this.log.error(`${this.identityLost}`)
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
    if (structsHeld || deletesHeld) this.sync.pullGap(from)
    return true
  }

  private async onRequest (from: PeerIdStr, data: Uint8Array): Promise<Uint8Array> {
    this.metrics.bytesIn += data.length
    const message = this.input.decode(from, data)
    if (message === undefined) return encodeMessage({ type: MSG_ERROR, reason: 'malformed request' })
    this.detector.heard(from)
    switch (message.type) {
      case MSG_PING:
      case MSG_PING_REQ:
        return await this.probes.answer(from, message)
      case MSG_PULL: {
        const reply = encodeMessage({ type: MSG_BEACONS, beacons: await this.beaconChannel.answerPull(message.nodes) })
        this.metrics.bytesOut += reply.length
        return reply
      }
    }
    switch (message.type) {
      case MSG_SYNC_REQUEST:
      case MSG_PUSH:
        try {
          return await this.sync.answer(from, message)
        } catch (error) {
          this.input.drop(from, 'invalid', (error as Error).message)
          return encodeMessage({ type: MSG_ERROR, reason: (error as Error).message })
        }
      default:
        this.input.drop(from, 'invalid', `unexpected request type 0x${message.type.toString(16)}`)
        return encodeMessage({ type: MSG_ERROR, reason: 'unexpected request type' })
    }
  }

  // ------------------------------------------------------------ liveness and the clock channel

  /** Someone suspects this node: a beacon stamped after the suspicion proves it alive. */
  private refute (stamp: string): void {
    const now = this.clock.now()
    if (hlcWallMs(stamp) <= now + DEFAULTS.maxClockSkewMs) this.writer.observe(stamp, now)
    this.beaconChannel.sendNow()
  }

  /** One anti-entropy exchange with `peer` (agent/sync.ts). */
  async syncWith (peer: PeerIdStr): Promise<boolean> {
    return await this.sync.syncWith(peer)
  }

  /** `--ack peers:K`: sync with peers until K of them hold everything we wrote. */
  private async waitForPeers (k: number): Promise<number> {
    const needed = Y.getState(this.doc.store, this.doc.clientID)
    const deadline = this.clock.now() + (this.init.ackTimeoutMs ?? DEFAULTS.ackTimeoutMs)
    const count = (): number => this.sync.peersHolding(needed)
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
    this.repair.afterResolution(res)
    this.emitVerdictChanges(res)
    this.stepEpochs(res)
    this.updateAlerts(res)
    this.membership.requestAdmission(res)
    this.reassertRecord(res)
  }

  /**
   * An event for every verdict whose status, finality or reason changed since
   * the last resolution seen here. A resolution is a new object whenever it
   * was recomputed, and verdicts change only then: a refresh that found the
   * cached one (most of those at rest) walks nothing. Signatures are updated
   * in place; verdicts that are gone (folded into a checkpoint) are dropped
   * once the count shows some are.
   */
  private emitVerdictChanges (res: Resolution): void {
    if (res === this.verdictsSeenIn) return
    this.verdictsSeenIn = res
    const signatures = this.verdictSignatures
    for (const v of res.all) {
      const sig = verdictSignature(v.status, v.final, v.code)
      if (signatures.get(v.key) === sig) continue
      signatures.set(v.key, sig)
      this.emit('event', { type: 'verdict', id: v.id, status: v.status, final: v.final, code: v.code, reason: v.reason, nodes: v.runningOn.length > 0 ? v.runningOn : v.nodes } satisfies AgentEvent)
    }
    if (signatures.size > res.all.length) {
      const live = new Set(res.all.map(v => v.key))
      for (const key of signatures.keys()) if (!live.has(key)) signatures.delete(key)
    }
  }

  /**
   * A copy of this node's record carried over at a move to a new epoch
   * (crdt/epoch.ts `carryOver`) by a peer whose copies spread late — killed
   * right after its move, or cut off — is a set of the same key concurrent
   * with this node's newer record, and Yjs may let it win. Every peer then
   * holds this node's stream short of the position its beacons name, counts
   * none of them, and finality stops everywhere until this node writes again
   * (docs/decisions.md "Finality stalled after a kill right after a move"),
   * and its figures are old ones. So whenever the ledger's record of this
   * node is not the last one it wrote, it writes it again: that comes after
   * everything held here and wins.
   */
  private reassertRecord (res: Resolution): void {
    const own = res.nodes.get(this.self)
    if (own === undefined || !own.member || this.lastRecordSeq === undefined || (own.heartbeat?.seq ?? 0) >= this.lastRecordSeq) return
    // A node that no longer writes (sampleAndPublish would not) says so in its alerts already.
    if (this.failed !== undefined || this.identityLost !== undefined) return
    const now = this.clock.now()
    if (now - this.recordReassertedAtMs < RECORD_REASSERT_EVERY_MS) return
    this.recordReassertedAtMs = now
    this.log.info(`this node's record in the ledger is older than the one it last wrote (position ${own.heartbeat?.seq ?? 0} of ${this.lastRecordSeq}: a copy a peer carried over won): writing it again`)
    void this.sampleAndPublish(true)
  }

  /** Follow this node's own membership by the log: admitted, or no longer a member (evicted, left). */
  private trackMembership (res: Resolution): void {
    const member = res.members.includes(this.self)
    if (member === this.wasMember) return
    this.wasMember = member
    const own = res.nodes.get(this.self)
    if (member) {
      this.log.info(`admitted into cluster '${this.init.cluster}' by ${own?.sponsor ?? '?'} (view ${res.view.epoch}: ${res.members.length} members)`)
      this.emit('event', { type: 'joined', sponsor: own?.sponsor ?? this.self } satisfies AgentEvent)
      this.emit('event', { type: 'membership', state: 'admitted', node: this.self, by: own?.sponsor } satisfies AgentEvent)
      void this.publishCapacityIfChanged()
      // Its figures reach every member with the news of its admission, not at the next heartbeat.
      void this.sampleAndPublish(true)
    } else {
      const standing = own?.standing === 'evicted' ? 'evicted' : 'left'
      this.log.info(`no longer a member of cluster '${this.init.cluster}': ${standing}${own?.cutSeq !== undefined ? ` (writes after position ${own.cutSeq} do not count)` : ''}${this.leftOnPurpose ? '' : '; asking to be admitted again'}`)
      this.emit('event', { type: 'membership', state: standing, node: this.self } satisfies AgentEvent)
      this.membership.askAgainNow()
    }
  }

  private trackLiveness (res: Resolution): void {
    for (const node of res.nodes.values()) {
      const known = this.lastStamps.has(node.id)
      if (!known) {
        this.lastStamps.set(node.id, node.lastHlc)
        // A first stamp may be old (history brought by a sync): it can only show a peer behind, never hide one ahead.
        if (node.id !== this.self && node.lastHlc !== undefined) this.offsets.sample(node.id, hlcWallMs(node.lastHlc))
      } else if (node.lastHlc !== undefined && node.lastHlc !== this.lastStamps.get(node.id)) {
        this.lastStamps.set(node.id, node.lastHlc)
        if (node.id !== this.self) {
          this.offsets.sample(node.id, hlcWallMs(node.lastHlc))
          this.detector.heard(node.id, node.lastHlc)
        }
      }
    }
    const nodes = res.nodes
    this.offsets.update((peer) => nodes.get(peer)?.member === true && this.liveness(peer) === 'alive')
  }

  /** A member's beacon arrived now: it is alive, and its stamp is a fresh clock sample. */
  private heard (node: PeerIdStr, hlc: string): void {
    this.offsets.sample(node, hlcWallMs(hlc))
    this.detector.heard(node, hlc)
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
      checkpointMismatch: this.epochs.mismatch,
      clockBehindMs: this.offsets.behindMs,
      maxOffsetMs: this.offsets.maxOffsetMs,
      peersAhead: this.offsets.ahead(),
      joined: this.joined,
      evictionBlocked: this.membership.blocked,
      pressure: this.pressure.level === 'ok' ? undefined : { level: this.pressure.level, message: this.pressure.describe() ?? '' },
      usage: this.usage.list(),
      nearLimitRatio: this.init.nearLimitRatio ?? DEFAULTS.nearLimitRatio,
      nowMs: this.clock.now(),
      finalityStallMs: DEFAULTS.finalityStallAlertMs
    }))
  }

  /** Follow a document: its decision maps mark the replay stale, its node records feed the mesh, its updates are persisted and sent. */
  private observe (doc: Y.Doc): void {
    for (const name of [MAP_RESERVATIONS, MAP_RELEASES, MAP_CAPACITY, MAP_MEMBERSHIP, MAP_EPOCHS]) doc.getMap(name).observe(() => { this.ledgerDirty = true; this.ledgerChanges++ })
    const nodes = doc.getMap(MAP_NODES)
    // An epoch's document arrives holding its records; the agent's first starts empty.
    Object.assign(this.nodeRecords, readMapRecord(doc, MAP_NODES))
    nodes.observe((event) => {
      this.finalityDirty = true
      for (const [key, change] of event.changes.keys) {
        if (change.action !== 'delete' && doc === this.doc) this.nodeRecords[key] = plainValue(nodes.get(key))
        this.mesh.remember(key, nodes.get(key) as { addrs?: unknown } | undefined)
      }
    })
    doc.on('update', (update: Uint8Array, origin: unknown) => { if (doc === this.doc) this.onDocUpdate(update, origin) })
  }

  /**
   * Epochs (agent/epochs.ts): propose the next one when this node is the
   * view's proposer and enough has ended; move to it once its proposal has
   * settled and this peer's checkpoint at its cut agrees.
   */
  private stepEpochs (res: Resolution): void {
    if (this.init.compactAfterEnded === 0 || this.replayed === undefined || this.stopped || this.failed !== undefined) return
    const decision = this.epochs.next(this.doc, res, this.replayed)
    if (decision !== undefined) {
      void this.enterEpoch(decision)
      return
    }
    if (!this.joined || this.writeRefusal() !== undefined) return
    const proposal = this.epochs.toPropose(this.doc, res, this.replayed)
    if (proposal === undefined) return
    this.writer.proposeEpoch(proposal.epoch, proposal.cut, proposal.digest, this.clock.now())
    this.log.info(`epoch: proposed epoch ${proposal.epoch} at cut ${proposal.cut} (checkpoint ${proposal.digest.slice(0, 12)})`)
  }

  /** A peer is in a later epoch: fetch its document and move to it (this peer missed the move). */
  private async fetchEpoch (peer: PeerIdStr, epoch: number): Promise<void> {
    if (this.fetchingEpoch || epoch <= this.epochs.epoch || this.stopped || this.init.compactAfterEnded === 0) return
    const now = this.clock.now()
    // Every message of a later epoch says so: fetch once in a while, not per message.
    if (now - this.lastEpochFetchMs < EPOCH_FETCH_COOLDOWN_MS) return
    this.lastEpochFetchMs = now
    this.fetchingEpoch = true
    try {
      // A peer that can still move by itself does (its own checkpoint is checked against the proposal).
      this.stepEpochs(this.resolution())
      if (epoch <= this.epochs.epoch) return
      const update = await this.sync.fetchEpoch(peer, epoch)
      if (update === undefined || this.stopped || epoch <= this.epochs.epoch) return
      if (!this.input.acceptsUpdate(peer, update, { whole: true })) return
      const decision = this.epochs.adopt(this.doc, epoch, update, peer, this.replayed?.proposals)
      if (decision !== undefined) await this.enterEpoch(decision)
    } catch (error) {
      this.log.warn(`epoch: could not fetch epoch ${epoch} from ${shortId(peer)} (${(error as Error).message}); the next sync tries again`)
    } finally {
      this.fetchingEpoch = false
    }
  }

  /**
   * Replace the document with the next epoch's, at once (no await before the
   * swap: a write after it goes to the new document), then persist it as the
   * new snapshot. The old log's appends are queued before the snapshot, the
   * new document's after it; a crash in between restarts in either epoch
   * whole (agent/store.ts).
   */
  private async enterEpoch (decision: EpochDecision): Promise<void> {
    if (decision.epoch <= this.epochs.epoch || this.stopped) {
      decision.doc.destroy()
      return
    }
    const old = this.doc
    // What waits to go out is of the old document: what it holds is carried
    // over, and peers carry over what they hold or get it by sync.
    if (this.gossipTimer !== undefined) this.clock.clearTimeout(this.gossipTimer)
    this.gossipTimer = undefined
    this.pendingGossip = []
    this.doc = decision.doc
    this.clientId = decision.doc.clientID
    this.writer.moveTo(decision.doc)
    this.observe(decision.doc)
    this.epochs.moved(decision)
    this.metrics.epoch = decision.epoch
    this.metrics.epochMoves++
    this.ledgerDirty = true
    this.finalityDirty = true
    this.cached = undefined
    this.replayed = undefined
    this.sync.movedEpoch()
    const state = Y.encodeStateAsUpdate(decision.doc)
    old.destroy()
    this.log.info(`epoch: moved to epoch ${decision.epoch} (${decision.how}; checkpoint at ${decision.checkpoint.cut}, ${decision.checkpoint.running.length} running and ${decision.checkpoint.queue.length} queued there; ${decision.carried} entries carried over; document ${state.length} bytes)`)
    this.scheduleRefresh()
    // This node's own record is among the copies carried over; if a stale or
    // no copy of it wins in the new document, reassertRecord writes it again.
    for (const peer of this.network.peers().slice(0, 3)) this.schedule(() => { void this.syncWith(peer) }, Math.floor(this.random() * 50))
    const store = this.store
    const dataDir = this.init.dataDir
    if (store === undefined || dataDir === undefined) return
    const clientId = this.clientId
    try {
      await store.compact(state, { epoch: decision.epoch, clientId })
      // Only now do the files hold the new document: a restart may write under its id.
      await this.lease.moved(clientId)
    } catch (error) {
      this.fail(`could not write epoch ${decision.epoch}'s snapshot: ${(error as Error).message}`)
    }
  }

  private async maybeCompact (): Promise<void> {
    const store = this.store
    if (store === undefined || this.failed !== undefined || this.stopped) return
    if (store.sizeBytes() < DEFAULTS.compactAfterBytes) return
    const state = Y.encodeStateAsUpdate(this.doc)
    if (store.sizeBytes() < 2 * state.length) return
    try {
      await this.durableTail
      await store.compact(Y.encodeStateAsUpdate(this.doc), { epoch: this.epochs.epoch, clientId: this.clientId })
    } catch (error) {
      this.log.warn(`store: compaction failed (${(error as Error).message}); will retry`)
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
