/**
 * The simulator's `Network` (agent/types.ts): an in-memory medium shared by
 * every agent of a virtual run (docs/design.md "Simulation harness"), the
 * counterpart of memberlist's mock transport and of the Yjs test connector. The
 * agent code is the same as in production; only this transport and the clock
 * differ.
 *
 * Model:
 * - Topology. The hub remembers the *links* the harness asked for
 *   (`hub.connect`, `network.dial`, `hub.connectRandom`). A link is an open
 *   connection whenever both peers are started and no partition separates
 *   them, so connections come back by themselves after `heal()` and when a
 *   crashed peer is started again — as libp2p's redial of known peers does in
 *   production. `hub.disconnect` forgets a link; `hub.crash(peer, { forgetLinks })`
 *   forgets all of a peer's.
 * - Connection events. Each end learns of an opened or closed connection after
 *   its own random latency; events about one peer reach a node in the order
 *   they happened. `peers()` is what the node has been told so far, so it is
 *   always consistent with the `onPeerConnected`/`onPeerDisconnected` calls.
 * - Gossip is a flood: a publication reaches every peer of the sender's
 *   connected component (gossipsub relays), each copy after one latency draw
 *   regardless of hop count, each independently lost with `lossRate` and, if
 *   not lost, delivered twice with `duplicateRate`. With `meshPaths` = D > 1
 *   the copy to each peer travels D paths, as in gossipsub, where a peer hears
 *   each message from every one of its D mesh neighbours: it is lost only if
 *   every path loses it, arrives after the fastest surviving path's latency,
 *   and the slower copies are the duplicates gossipsub drops by message id
 *   before the application sees them (counted in `meshDuplicatesIn`, never
 *   delivered). A copy in flight is dropped if its receiver stopped or a
 *   partition separates it from the sender when it lands; a copy whose path
 *   merely lost a link is delivered (it was already relayed).
 * - Direct messages (`send`) go to a directly connected peer only, one
 *   latency, delivered in order per pair or dropped when the connection is
 *   gone when they land.
 * - Requests go to a directly connected peer only (no dial on demand, unlike
 *   libp2p). The request and the response each take one latency; closing the
 *   connection fails the request when the requester learns of the close.
 * - Stats follow libp2p's `NetworkStats` where they overlap, so the two tiers
 *   report comparable figures: a publication counts once in `gossipOut`/
 *   `bytesOut` however many peers it reaches.
 *
 * Errors are those of the libp2p network (./errors.ts), so agent code that
 * branches on `name` behaves the same on both: `RequestTimeoutError`,
 * `RequestFailedError` (not connected, connection closed, the peer's handler
 * threw, response too large), `MessageTooLargeError`, `NetworkStateError`, and
 * an abort rejects with the signal's reason. Dial failures, which production
 * reports with libp2p's own errors, are `PeerUnreachableError`.
 *
 * Deterministic: all time comes from the injected `clock` and all chance from
 * the injected `random`, drawn in an order fixed by the calls made; every
 * collection is iterated in insertion order.
 */
import { LAN, MAX_MESSAGE_BYTES } from '../../agent/config.ts'
import { MessageTooLargeError, NetworkConfigError, NetworkStateError, RequestFailedError, RequestTimeoutError } from '../../agent/net/errors.ts'
import { MAX_DIRECT_BYTES, type Clock, type Network, type NetworkHandlers, type PeerIdStr } from '../../agent/types.ts'

/** Default one-way latency of every message and connection event, in ms (inclusive range). */
export const DEFAULT_LATENCY_MS: Readonly<LatencyRange> = Object.freeze({ min: 1, max: 5 })
/** Gossip copies lost by default: none, so tests opt in to loss. */
export const DEFAULT_LOSS_RATE = 0
/** Paths a gossip message takes to each peer by default: one, so `lossRate` is the loss per peer. */
export const DEFAULT_MESH_PATHS = 1
/** Gossip copies delivered twice by default: none. */
export const DEFAULT_DUPLICATE_RATE = 0
/** Same as the libp2p network's `DEFAULT_REQUEST_TIMEOUT_MS`, so timeouts play out alike. */
export const DEFAULT_REQUEST_TIMEOUT_MS = LAN.requestTimeoutMs
/** The product's one message limit (agent/config.ts). */
export const DEFAULT_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES
/** Prefix of a simulated peer's address: `/memory-sim/<peerId>`. */
export const MEMORY_ADDRESS_PREFIX = '/memory-sim/'

/**
 * A dial found no way to the peer: unknown or not running, itself, or on the
 * other side of a partition. (Kept here rather than in ./errors.ts because
 * only the simulated network raises it.)
 */
export class PeerUnreachableError extends Error {
  static readonly NAME = 'PeerUnreachableError'
  override readonly name = PeerUnreachableError.NAME
}

/** Inclusive range of integer milliseconds. */
export interface LatencyRange {
  min: number
  max: number
}

/** Options of `new MemoryNetworkHub()`. `clock` and `random` are required; the rest default. */
export interface MemoryNetworkHubInit {
  /** Time and timers of the run (a `VirtualClock` in simulations). */
  clock: Clock
  /** Source of every random choice, e.g. `seededRandom(seed)`; floats in [0, 1). */
  random: () => number
  /** One-way latency of each message, response and connection event. @default DEFAULT_LATENCY_MS */
  latencyMs?: LatencyRange
  /** Probability that one gossip copy to one peer is lost (requests are never lost). @default DEFAULT_LOSS_RATE */
  lossRate?: number
  /** Probability that a gossip copy that was not lost is delivered a second time. @default DEFAULT_DUPLICATE_RATE */
  duplicateRate?: number
  /**
   * Independent paths a gossip message takes to each peer (gossipsub's mesh
   * degree), each lost with `lossRate` and with a latency of its own: the
   * peer gets the fastest surviving copy. @default DEFAULT_MESH_PATHS
   */
  meshPaths?: number
  /** A request with no response after this much clock time fails. @default DEFAULT_REQUEST_TIMEOUT_MS */
  requestTimeoutMs?: number
  /** Largest gossip message, request or response; larger ones are refused and counted. @default DEFAULT_MAX_MESSAGE_BYTES */
  maxMessageBytes?: number
  /** Called for every connection change, delivery and drop, e.g. to record a trace. */
  onTrace?: (event: MemoryTraceEvent) => void
  /**
   * Called when an agent's `onGossip`, `onPeerConnected` or `onPeerDisconnected`
   * throws (`onRequest` may throw: that fails the request). The libp2p network
   * logs and carries on; here the default rethrows, so the error surfaces from
   * the clock's runner and the simulation stops with its seed.
   *
   * @default rethrow
   */
  onHandlerError?: (peer: PeerIdStr, handler: keyof NetworkHandlers, err: unknown) => void
}

/** Counters of one peer id since the hub was created, across restarts. Bytes are payload bytes. */
export interface MemoryPeerStats {
  /** Gossip copies delivered to `onGossip`, duplicates included. */
  gossipIn: number
  /** Publications (each counted once, however many peers it went to). */
  gossipOut: number
  /** Payload bytes received: gossip delivered, requests served, responses received. */
  bytesIn: number
  /** Payload bytes sent: publications, requests sent, responses served. */
  bytesOut: number
  /** Extra gossip copies delivered because of `duplicateRate`. */
  duplicatesIn: number
  /** Gossip copies that arrived by a slower mesh path (`meshPaths` > 1) and were dropped as already seen, as gossipsub does. */
  meshDuplicatesIn: number
  /** Direct messages delivered to `onMessage`, and sent. */
  directIn: number
  directOut: number
  /** Requests delivered to `onRequest`. */
  requestsIn: number
  /** Requests sent. */
  requestsOut: number
  /**
   * Messages meant for this peer that never arrived (gossip lost to `lossRate`,
   * gossip, requests or responses cut in flight by a stop, crash, partition or
   * closed connection), plus messages it tried to send over `maxMessageBytes`.
   */
  dropped: number
}

/** What a trace event records. */
export type MemoryTraceKind = 'connect' | 'disconnect' | 'gossip' | 'direct' | 'request' | 'response' | 'drop'

/** Why a message was dropped: `loss` (lossRate), `cut` (receiver or path gone in flight), `oversized`. */
export type MemoryDropReason = 'loss' | 'cut' | 'oversized'

/** One event of the medium, in the order it happened. */
export interface MemoryTraceEvent {
  /** `clock.now()` when it happened. */
  atMs: number
  kind: MemoryTraceKind
  /** Sender (or the first end of a connection). */
  from: PeerIdStr
  /** Receiver (or the other end of a connection); the sender itself for an oversized send. */
  to: PeerIdStr
  /** Payload bytes (0 for connection events). */
  bytes: number
  /** A gossip copy delivered because of `duplicateRate`. */
  duplicate?: boolean
  /** For `drop`: why. */
  reason?: MemoryDropReason
  /** For `drop`: what was dropped. */
  message?: 'gossip' | 'direct' | 'request' | 'response'
}

type NetworkState = 'created' | 'started' | 'stopped' | 'crashed'

interface PendingRequest {
  readonly peer: PeerIdStr
  /** The connection the request travels on; its close fails the request. */
  readonly connId: number
  settled: boolean
  resolve: (response: Uint8Array) => void
  reject: (err: unknown) => void
}

/**
 * The shared medium of a simulated cluster: creates the peers' networks and
 * plays the harness's topology, partitions and crashes.
 */
export class MemoryNetworkHub {
  private readonly clock: Clock
  private readonly random: () => number
  private readonly latency: LatencyRange
  private readonly lossRate: number
  private readonly duplicateRate: number
  private readonly meshPaths: number
  /** @internal */
  readonly requestTimeoutMs: number
  /** @internal */
  readonly maxMessageBytes: number
  private readonly onTrace: ((event: MemoryTraceEvent) => void) | undefined
  private readonly onHandlerError: ((peer: PeerIdStr, handler: keyof NetworkHandlers, err: unknown) => void) | undefined

  /** Latest incarnation of each peer id. */
  private readonly nodes = new Map<PeerIdStr, MemoryNetwork>()
  /** Every peer id ever created, in creation order (the order `connectRandom` uses). */
  private readonly known = new Set<PeerIdStr>()
  private readonly counters = new Map<PeerIdStr, MemoryPeerStats>()
  /** Per sender>receiver pair, when its last direct message lands (messages on one stream stay in order). */
  private readonly directTail = new Map<string, number>()
  /** Links the harness asked for (symmetric). */
  private readonly wanted = new Map<PeerIdStr, Set<PeerIdStr>>()
  /** Open connections (symmetric): peer → other end → connection id. */
  private readonly open = new Map<PeerIdStr, Map<PeerIdStr, number>>()
  private nextConnId = 1
  /** Partition group of each listed peer; `undefined` when healed. */
  private groupOf: Map<PeerIdStr, number> | undefined
  /** Group of the peers a partition does not list. */
  private restGroup = 0
  /** Latest scheduled connection event per (node, peer), to keep them in order. */
  private readonly lastEventAt = new Map<string, number>()

  constructor (init: MemoryNetworkHubInit) {
    this.clock = init.clock
    this.random = init.random
    this.latency = { ...(init.latencyMs ?? DEFAULT_LATENCY_MS) }
    this.lossRate = init.lossRate ?? DEFAULT_LOSS_RATE
    this.duplicateRate = init.duplicateRate ?? DEFAULT_DUPLICATE_RATE
    this.meshPaths = init.meshPaths ?? DEFAULT_MESH_PATHS
    this.requestTimeoutMs = init.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    this.maxMessageBytes = init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.onTrace = init.onTrace
    this.onHandlerError = init.onHandlerError

    const { min, max } = this.latency
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 0 || max < min) {
      throw new NetworkConfigError(`latencyMs must be integers with 0 <= min <= max, got ${min}..${max}`)
    }
    checkRate('lossRate', this.lossRate)
    checkRate('duplicateRate', this.duplicateRate)
    if (!Number.isInteger(this.meshPaths) || this.meshPaths < 1) throw new NetworkConfigError(`meshPaths must be an integer >= 1, got ${this.meshPaths}`)
    if (!(this.requestTimeoutMs > 0)) throw new NetworkConfigError(`requestTimeoutMs must be positive, got ${this.requestTimeoutMs}`)
    if (!Number.isInteger(this.maxMessageBytes) || this.maxMessageBytes < 0) {
      throw new NetworkConfigError(`maxMessageBytes must be an integer >= 0, got ${this.maxMessageBytes}`)
    }
  }

  /**
   * The network of `peerId`, not yet started. Creating an id again after its
   * network stopped or crashed restarts that peer: once started, its links
   * reopen and its counters carry on.
   *
   * @throws {NetworkStateError} if a network with this id is created or started and not stopped
   */
  createNetwork (peerId: PeerIdStr): MemoryNetwork {
    if (typeof peerId !== 'string' || peerId === '') throw new NetworkConfigError('peerId must be a non-empty string')
    const current = this.nodes.get(peerId)
    if (current != null && (current.state === 'created' || current.state === 'started')) {
      throw new NetworkStateError(`peer ${peerId} already has a running network`)
    }
    const network = new MemoryNetwork(this, peerId)
    this.nodes.set(peerId, network)
    this.known.add(peerId)
    this.count(peerId)
    return network
  }

  /**
   * Link `a` and `b`. The connection opens now if both are started and on the
   * same side of any partition, otherwise as soon as they are.
   *
   * @returns whether the connection is open now
   * @throws {NetworkConfigError} for an unknown peer id or `a === b`
   */
  connect (a: PeerIdStr, b: PeerIdStr): boolean {
    this.checkPair(a, b)
    this.link(a, b)
    if (this.connId(a, b) == null && this.allowed(a, b)) this.openLink(a, b)
    return this.connId(a, b) != null
  }

  /**
   * Forget the link between `a` and `b` and close their connection.
   *
   * @returns whether a connection was open
   */
  disconnect (a: PeerIdStr, b: PeerIdStr): boolean {
    this.wanted.get(a)?.delete(b)
    this.wanted.get(b)?.delete(a)
    if (this.connId(a, b) == null) return false
    this.closeLink(a, b)
    return true
  }

  /**
   * Link every peer, in creation order, to `degree` distinct peers created
   * before it, chosen with the hub's `random` (the first peers get fewer).
   * The graph is connected and every peer has at least `degree` links once
   * `degree` peers exist.
   *
   * @returns the number of links added
   */
  connectRandom (degree: number): number {
    if (!Number.isInteger(degree) || degree < 0) throw new NetworkConfigError(`degree must be an integer >= 0, got ${degree}`)
    const peers = [...this.known]
    let added = 0
    for (let i = 1; i < peers.length; i++) {
      for (const j of sampleDistinct(Math.min(degree, i), i, this.random)) {
        if (this.wanted.get(peers[i])?.has(peers[j]) !== true) added++
        this.connect(peers[i], peers[j])
      }
    }
    return added
  }

  /**
   * Split the cluster: peers of different `groups` lose their connections
   * (both ends get `onPeerDisconnected`) and cannot dial, publish to or request
   * each other until `heal()`. Peers listed in no group form one more group
   * together. A new partition replaces the previous one.
   *
   * @throws {NetworkConfigError} if a peer is listed twice
   */
  partition (groups: PeerIdStr[][]): void {
    const groupOf = new Map<PeerIdStr, number>()
    groups.forEach((group, index) => {
      for (const peer of group) {
        if (groupOf.has(peer)) throw new NetworkConfigError(`peer ${peer} is in more than one partition group`)
        groupOf.set(peer, index)
      }
    })
    this.groupOf = groupOf
    this.restGroup = groups.length
    this.reconcile()
  }

  /** End the partition: every link it cut reopens (both ends get `onPeerConnected`). */
  heal (): void {
    this.groupOf = undefined
    this.reconcile()
  }

  /**
   * Kill `peerId` abruptly: its connections close (its peers get
   * `onPeerDisconnected`), its handlers are detached, messages in flight to it
   * are dropped and its own pending requests reject with `NetworkStateError`.
   * Its links are remembered (unless `forgetLinks`), so a network created again
   * with the same id reconnects when started. The agent's timers are the
   * harness's to stop (see `VirtualClock.scope()`).
   */
  crash (peerId: PeerIdStr, options: { forgetLinks?: boolean } = {}): void {
    const network = this.nodes.get(peerId)
    if (network != null && (network.state === 'created' || network.state === 'started')) this.halt(network, 'crashed')
    if (options.forgetLinks === true) {
      for (const other of [...(this.wanted.get(peerId) ?? [])]) this.disconnect(peerId, other)
    }
  }

  /** Whether `a` and `b` have an open connection now (before either end may have been told). */
  isConnected (a: PeerIdStr, b: PeerIdStr): boolean {
    return this.connId(a, b) != null
  }

  /** Every peer id created so far, in creation order. */
  peerIds (): PeerIdStr[] {
    return [...this.known]
  }

  /** Counters of every peer id, in creation order (copies). */
  stats (): Record<PeerIdStr, MemoryPeerStats>
  /** Counters of one peer id (a copy). */
  stats (peerId: PeerIdStr): MemoryPeerStats
  stats (peerId?: PeerIdStr): Record<PeerIdStr, MemoryPeerStats> | MemoryPeerStats {
    if (peerId != null) return { ...this.count(peerId) }
    const all: Record<PeerIdStr, MemoryPeerStats> = {}
    for (const peer of this.known) all[peer] = { ...this.count(peer) }
    return all
  }

  /** The counters summed over all peers. */
  totals (): MemoryPeerStats {
    const sum = emptyStats()
    for (const stats of this.counters.values()) {
      for (const key of Object.keys(sum) as Array<keyof MemoryPeerStats>) sum[key] += stats[key]
    }
    return sum
  }

  // --- used by MemoryNetwork -------------------------------------------------

  /** @internal */
  started (network: MemoryNetwork): void {
    for (const other of this.wanted.get(network.self) ?? []) {
      if (this.connId(network.self, other) == null && this.allowed(network.self, other)) this.openLink(network.self, other)
    }
  }

  /** @internal stop or crash: the network is already marked, now cut it off. */
  halt (network: MemoryNetwork, state: 'stopped' | 'crashed'): void {
    network.detach(state)
    for (const other of [...(this.open.get(network.self)?.keys() ?? [])]) this.closeLink(network.self, other)
    network.failPending(new NetworkStateError(state === 'crashed' ? 'network crashed' : 'network stopped'))
  }

  /**
   * @internal open a connection to `peer` for `network` and remember the link.
   * @returns the connection id
   */
  dial (network: MemoryNetwork, peer: PeerIdStr): number {
    const self = network.self
    if (peer === self) throw new PeerUnreachableError('a peer cannot dial itself')
    if (this.nodes.get(peer)?.state !== 'started') throw new PeerUnreachableError(`peer ${peer} is not running`)
    if (this.separated(self, peer)) throw new PeerUnreachableError(`peer ${peer} is on the other side of a partition`)
    this.link(self, peer)
    return this.connId(self, peer) ?? this.openLink(self, peer)
  }

  /** @internal */
  publish (network: MemoryNetwork, data: Uint8Array): void {
    const from = network.self
    const sender = this.count(from)
    sender.gossipOut++
    sender.bytesOut += data.byteLength
    for (const to of this.component(from)) {
      const target = this.nodes.get(to) as MemoryNetwork
      // The fastest of the paths that did not lose it; one path draws exactly
      // what it always did (a loss draw, then a latency), so seeds replay.
      let latency = Infinity
      let arrived = 0
      for (let path = 0; path < this.meshPaths; path++) {
        if (this.lossRate > 0 && this.random() < this.lossRate) continue
        arrived++
        latency = Math.min(latency, this.drawLatency())
      }
      if (arrived === 0) {
        this.drop(from, to, 'gossip', 'loss', data.byteLength)
        continue
      }
      if (arrived > 1) this.count(to).meshDuplicatesIn += arrived - 1
      this.sendGossip(from, target, data, false, latency)
      if (this.duplicateRate > 0 && this.random() < this.duplicateRate) this.sendGossip(from, target, data, true)
    }
  }

  /** @internal one direct message over the open connection to `peer`; false when there is none. */
  send (network: MemoryNetwork, peer: PeerIdStr, data: Uint8Array): boolean {
    const from = network.self
    const connId = this.connId(from, peer)
    if (connId == null) return false
    const sender = this.count(from)
    sender.directOut++
    sender.bytesOut += data.byteLength
    const target = this.nodes.get(peer) as MemoryNetwork
    // In order per pair, as on one stream: never before the previous message.
    const key = `${from}>${peer}`
    const at = Math.max(this.clock.now() + this.drawLatency(), this.directTail.get(key) ?? 0)
    this.directTail.set(key, at)
    this.clock.setTimeout(() => {
      if (this.directTail.get(key) === at) this.directTail.delete(key)
      if (target.state !== 'started' || this.connId(from, peer) !== connId) {
        this.drop(from, peer, 'direct', 'cut', data.byteLength)
        return
      }
      const stats = this.count(peer)
      stats.directIn++
      stats.bytesIn += data.byteLength
      this.trace({ atMs: this.clock.now(), kind: 'direct', from, to: peer, bytes: data.byteLength })
      target.deliverMessage(from, data)
    }, at - this.clock.now())
    return true
  }

  /** @internal */
  async request (network: MemoryNetwork, peer: PeerIdStr, data: Uint8Array, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const from = network.self
    const connId = this.connId(from, peer)
    if (connId == null) {
      throw new RequestFailedError(`request to ${peer} failed: not connected`, {
        cause: new PeerUnreachableError(`no open connection from ${from} to ${peer}`)
      })
    }
    const target = this.nodes.get(peer) as MemoryNetwork
    const stats = this.count(from)
    stats.requestsOut++
    stats.bytesOut += data.byteLength

    return await new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => { pending.reject(signal?.reason) }
      const timer = this.clock.setTimeout(() => {
        pending.reject(new RequestTimeoutError(`request to ${peer} got no response within ${this.requestTimeoutMs} ms`))
      }, this.requestTimeoutMs)
      const settle = (): boolean => {
        if (pending.settled) return false
        pending.settled = true
        this.clock.clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        network.outbound.delete(pending)
        return true
      }
      const pending: PendingRequest = {
        peer,
        connId,
        settled: false,
        resolve: (response) => { if (settle()) resolve(response) },
        reject: (err) => { if (settle()) reject(err) }
      }
      network.outbound.add(pending)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.clock.setTimeout(() => { this.deliverRequest(from, target, pending, data) }, this.drawLatency())
    })
  }

  /** @internal a send refused for its size, counted against the sender. */
  oversized (peer: PeerIdStr, message: 'gossip' | 'direct' | 'request' | 'response', bytes: number): void {
    this.drop(peer, peer, message, 'oversized', bytes)
  }

  /** @internal */
  handlerError (peer: PeerIdStr, handler: keyof NetworkHandlers, err: unknown): void {
    if (this.onHandlerError == null) throw err
    this.onHandlerError(peer, handler, err)
  }

  // --- topology --------------------------------------------------------------

  private checkPair (a: PeerIdStr, b: PeerIdStr): void {
    if (!this.known.has(a)) throw new NetworkConfigError(`unknown peer ${a}`)
    if (!this.known.has(b)) throw new NetworkConfigError(`unknown peer ${b}`)
    if (a === b) throw new NetworkConfigError(`cannot connect ${a} to itself`)
  }

  private link (a: PeerIdStr, b: PeerIdStr): void {
    getOrCreate(this.wanted, a, () => new Set()).add(b)
    getOrCreate(this.wanted, b, () => new Set()).add(a)
  }

  private connId (a: PeerIdStr, b: PeerIdStr): number | undefined {
    return this.open.get(a)?.get(b)
  }

  private allowed (a: PeerIdStr, b: PeerIdStr): boolean {
    return this.nodes.get(a)?.state === 'started' &&
      this.nodes.get(b)?.state === 'started' &&
      !this.separated(a, b)
  }

  private separated (a: PeerIdStr, b: PeerIdStr): boolean {
    const groupOf = this.groupOf
    if (groupOf == null) return false
    return (groupOf.get(a) ?? this.restGroup) !== (groupOf.get(b) ?? this.restGroup)
  }

  /** Make the open connections match the links, the running peers and the partition. */
  private reconcile (): void {
    for (const [a, others] of this.open) {
      for (const b of [...others.keys()]) {
        if (a < b && !(this.wanted.get(a)?.has(b) === true && this.allowed(a, b))) this.closeLink(a, b)
      }
    }
    for (const [a, others] of this.wanted) {
      for (const b of others) {
        if (a < b && this.connId(a, b) == null && this.allowed(a, b)) this.openLink(a, b)
      }
    }
  }

  private openLink (a: PeerIdStr, b: PeerIdStr): number {
    const connId = this.nextConnId++
    getOrCreate(this.open, a, () => new Map()).set(b, connId)
    getOrCreate(this.open, b, () => new Map()).set(a, connId)
    this.trace({ atMs: this.clock.now(), kind: 'connect', from: a, to: b, bytes: 0 })
    this.tell(a, b, 'connected', connId)
    this.tell(b, a, 'connected', connId)
    return connId
  }

  private closeLink (a: PeerIdStr, b: PeerIdStr): void {
    const connId = this.connId(a, b)
    if (connId == null) return
    this.open.get(a)?.delete(b)
    this.open.get(b)?.delete(a)
    this.trace({ atMs: this.clock.now(), kind: 'disconnect', from: a, to: b, bytes: 0 })
    this.tell(a, b, 'disconnected', connId)
    this.tell(b, a, 'disconnected', connId)
  }

  /**
   * Tell `node` (if running) that its connection `connId` to `peer` opened or
   * closed, after a latency but never before an earlier event about `peer`.
   */
  private tell (node: PeerIdStr, peer: PeerIdStr, change: 'connected' | 'disconnected', connId: number): void {
    const network = this.nodes.get(node)
    if (network?.state !== 'started') return
    const now = this.clock.now()
    const key = `${node}\u0000${peer}`
    // Equal due times fire in scheduling order, so max() is enough for order.
    const dueMs = Math.max(now + this.drawLatency(), this.lastEventAt.get(key) ?? now)
    this.lastEventAt.set(key, dueMs)
    this.clock.setTimeout(() => { network.connectionChanged(peer, change, connId) }, dueMs - now)
  }

  /** Peers reachable from `peer` over open connections, in breadth-first order, `peer` excluded. */
  private component (peer: PeerIdStr): PeerIdStr[] {
    const seen = new Set<PeerIdStr>([peer])
    const order: PeerIdStr[] = []
    const queue: PeerIdStr[] = [peer]
    for (let i = 0; i < queue.length; i++) {
      for (const next of this.open.get(queue[i])?.keys() ?? []) {
        if (seen.has(next)) continue
        seen.add(next)
        order.push(next)
        queue.push(next)
      }
    }
    return order
  }

  // --- delivery --------------------------------------------------------------

  private sendGossip (from: PeerIdStr, target: MemoryNetwork, data: Uint8Array, duplicate: boolean, latency = this.drawLatency()): void {
    this.clock.setTimeout(() => { this.deliverGossip(from, target, data, duplicate) }, latency)
  }

  private deliverGossip (from: PeerIdStr, target: MemoryNetwork, data: Uint8Array, duplicate: boolean): void {
    const to = target.self
    if (target.state !== 'started' || this.separated(from, to)) {
      this.drop(from, to, 'gossip', 'cut', data.byteLength)
      return
    }
    const stats = this.count(to)
    stats.gossipIn++
    stats.bytesIn += data.byteLength
    if (duplicate) stats.duplicatesIn++
    this.trace({ atMs: this.clock.now(), kind: 'gossip', from, to, bytes: data.byteLength, ...(duplicate ? { duplicate } : {}) })
    // Each receiver gets its own copy, as on a real network: an agent that
    // mutates a buffer it was given must not corrupt its peers' copies.
    target.deliverGossip(from, data.slice())
  }

  private deliverRequest (from: PeerIdStr, target: MemoryNetwork, pending: PendingRequest, data: Uint8Array): void {
    // Given up (timeout, abort, stop) before the request landed: the stream
    // was reset, the responder never sees it.
    if (pending.settled) return
    const to = target.self
    if (target.state !== 'started' || this.connId(from, to) !== pending.connId) {
      // The requester fails when it learns the connection closed.
      this.drop(from, to, 'request', 'cut', data.byteLength)
      return
    }
    const stats = this.count(to)
    stats.requestsIn++
    stats.bytesIn += data.byteLength
    this.trace({ atMs: this.clock.now(), kind: 'request', from, to, bytes: data.byteLength })
    target.serveRequest(from, data).then(
      (response) => { this.respond(from, target, pending, response) },
      (err: unknown) => { this.respondWithError(from, target, pending, err) }
    )
  }

  private respond (from: PeerIdStr, target: MemoryNetwork, pending: PendingRequest, response: Uint8Array): void {
    const to = target.self
    // A responder that stopped or lost the connection meanwhile sends nothing;
    // the requester fails through the close.
    if (target.state !== 'started' || this.connId(from, to) !== pending.connId) return
    if (!(response instanceof Uint8Array)) {
      this.respondWithError(from, target, pending, new TypeError('onRequest resolved to something other than a Uint8Array'))
      return
    }
    if (response.byteLength > this.maxMessageBytes) {
      this.oversized(to, 'response', response.byteLength)
      this.respondWithError(from, target, pending, new MessageTooLargeError('response', this.maxMessageBytes, response.byteLength))
      return
    }
    this.count(to).bytesOut += response.byteLength
    const copy = response.slice()
    this.clock.setTimeout(() => { this.deliverResponse(to, from, pending, copy) }, this.drawLatency())
  }

  private deliverResponse (responder: PeerIdStr, requester: PeerIdStr, pending: PendingRequest, response: Uint8Array): void {
    if (pending.settled) return
    if (this.connId(requester, responder) !== pending.connId) {
      this.drop(responder, requester, 'response', 'cut', response.byteLength)
      return
    }
    this.count(requester).bytesIn += response.byteLength
    this.trace({ atMs: this.clock.now(), kind: 'response', from: responder, to: requester, bytes: response.byteLength })
    pending.resolve(response)
  }

  /** The responder reset the exchange; the requester learns after one latency. */
  private respondWithError (from: PeerIdStr, target: MemoryNetwork, pending: PendingRequest, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err)
    this.clock.setTimeout(() => {
      pending.reject(new RequestFailedError(`request to ${target.self} failed: the peer reset the exchange (${message})`, { cause: err }))
    }, this.drawLatency())
  }

  private drop (from: PeerIdStr, to: PeerIdStr, message: 'gossip' | 'direct' | 'request' | 'response', reason: MemoryDropReason, bytes: number): void {
    this.count(to).dropped++
    this.trace({ atMs: this.clock.now(), kind: 'drop', from, to, bytes, reason, message })
  }

  private count (peer: PeerIdStr): MemoryPeerStats {
    return getOrCreate(this.counters, peer, emptyStats)
  }

  private trace (event: MemoryTraceEvent): void {
    this.onTrace?.(event)
  }

  private drawLatency (): number {
    const { min, max } = this.latency
    return min === max ? min : min + Math.floor(this.random() * (max - min + 1))
  }
}

/**
 * One peer's view of the `MemoryNetworkHub`: the `Network` an agent of the
 * virtual tier is given. Create it with `hub.createNetwork(peerId)`.
 */
export class MemoryNetwork implements Network {
  readonly self: PeerIdStr
  /** @internal */
  state: NetworkState = 'created'
  /** @internal requests sent and not settled */
  readonly outbound = new Set<PendingRequest>()
  private readonly hub: MemoryNetworkHub
  private handlers: NetworkHandlers | undefined
  /** Peers this node has been told are connected, with the connection id it was told of. */
  private readonly view = new Map<PeerIdStr, number>()
  /** `dial` calls waiting for the connected event of a connection id. */
  private readonly dialWaiters = new Map<number, Array<{ resolve: () => void, reject: (err: unknown) => void }>>()

  /** @internal use `hub.createNetwork` */
  constructor (hub: MemoryNetworkHub, self: PeerIdStr) {
    this.hub = hub
    this.self = self
  }

  /**
   * Start delivering into `handlers`; the links the hub remembers for this
   * peer open, and `onPeerConnected` follows for each.
   *
   * @throws {NetworkStateError} unless the network is new
   */
  async start (handlers: NetworkHandlers): Promise<void> {
    if (this.state !== 'created') throw new NetworkStateError(`cannot start a network that is ${this.state}`)
    this.handlers = handlers
    this.state = 'started'
    this.hub.started(this)
  }

  /**
   * Close every connection (peers get `onPeerDisconnected`, this node gets no
   * more callbacks) and reject pending requests and dials with `NetworkStateError`.
   */
  async stop (): Promise<void> {
    if (this.state === 'stopped' || this.state === 'crashed') return
    this.hub.halt(this, 'stopped')
  }

  /**
   * Flood `data` to the sender's connected component.
   *
   * @throws {NetworkStateError} unless started
   * @throws {MessageTooLargeError} over `maxMessageBytes` (counted as dropped)
   */
  async publish (data: Uint8Array): Promise<void> {
    this.requireStarted()
    if (data.byteLength > this.hub.maxMessageBytes) {
      this.hub.oversized(this.self, 'gossip', data.byteLength)
      throw new MessageTooLargeError('gossip message', this.hub.maxMessageBytes, data.byteLength)
    }
    // Copied now: the caller may reuse its buffer once publish resolves.
    this.hub.publish(this, data.slice())
  }

  /**
   * A direct message to a connected `peer` (see the module comment); false when not connected.
   *
   * @throws {MessageTooLargeError} over `MAX_DIRECT_BYTES` (counted as dropped)
   */
  send (peer: PeerIdStr, data: Uint8Array): boolean {
    if (this.state !== 'started') return false
    if (data.byteLength > MAX_DIRECT_BYTES) {
      this.hub.oversized(this.self, 'direct', data.byteLength)
      throw new MessageTooLargeError('direct message', MAX_DIRECT_BYTES, data.byteLength)
    }
    return this.hub.send(this, peer, data.slice())
  }

  /**
   * One request/response exchange with a directly connected `peer`.
   *
   * @throws {NetworkStateError} unless started, or when stopped meanwhile
   * @throws {MessageTooLargeError} for a request over `maxMessageBytes`
   * @throws {RequestFailedError} not connected, connection closed, or the peer's handler failed
   * @throws {RequestTimeoutError} no response within `requestTimeoutMs` of clock time
   * @throws the signal's reason when `signal` aborts
   */
  async request (peer: PeerIdStr, data: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    this.requireStarted()
    if (data.byteLength > this.hub.maxMessageBytes) {
      this.hub.oversized(this.self, 'request', data.byteLength)
      throw new MessageTooLargeError('request', this.hub.maxMessageBytes, data.byteLength)
    }
    options.signal?.throwIfAborted()
    return await this.hub.request(this, peer, data.slice(), options.signal)
  }

  /**
   * Connect to `peer` (a peer id or its `/memory-sim/<peerId>` address) and
   * remember the link; resolves once this node has been told of the
   * connection (immediately if it already has).
   *
   * @throws {PeerUnreachableError} itself, not running, or across a partition
   * @throws {NetworkStateError} unless started, or when stopped meanwhile
   */
  async dial (peer: PeerIdStr, options: { signal?: AbortSignal } = {}): Promise<void> {
    this.requireStarted()
    options.signal?.throwIfAborted()
    const id = peer.startsWith(MEMORY_ADDRESS_PREFIX) ? peer.slice(MEMORY_ADDRESS_PREFIX.length) : peer
    const connId = this.hub.dial(this, id)
    if (this.view.get(id) === connId) return
    const signal = options.signal
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => { waiter.reject(signal?.reason) }
      const done = (): void => {
        signal?.removeEventListener('abort', onAbort)
        const waiters = this.dialWaiters.get(connId)
        waiters?.splice(waiters.indexOf(waiter), 1)
        if (waiters?.length === 0) this.dialWaiters.delete(connId)
      }
      const waiter = {
        resolve: () => { done(); resolve() },
        reject: (err: unknown) => { done(); reject(err) }
      }
      getOrCreate(this.dialWaiters, connId, () => []).push(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Peers this node has been told are connected (`onPeerConnected` without a later `onPeerDisconnected`). */
  peers (): PeerIdStr[] {
    return [...this.view.keys()]
  }

  /** `[/memory-sim/<peerId>]` while started, which `dial` accepts. */
  addresses (): string[] {
    return this.state === 'started' ? [MEMORY_ADDRESS_PREFIX + this.self] : []
  }

  /** This peer's counters (see `MemoryNetworkHub.stats`). */
  stats (): MemoryPeerStats {
    return this.hub.stats(this.self)
  }

  /** @internal */
  detach (state: 'stopped' | 'crashed'): void {
    this.state = state
    this.handlers = undefined
    this.view.clear()
  }

  /** @internal reject every pending request and dial */
  failPending (err: Error): void {
    for (const pending of [...this.outbound]) pending.reject(err)
    for (const waiters of [...this.dialWaiters.values()]) {
      for (const waiter of [...waiters]) waiter.reject(err)
    }
  }

  /** @internal */
  connectionChanged (peer: PeerIdStr, change: 'connected' | 'disconnected', connId: number): void {
    if (this.state !== 'started') return
    if (change === 'connected') {
      this.view.set(peer, connId)
      for (const waiter of [...(this.dialWaiters.get(connId) ?? [])]) waiter.resolve()
      this.callHandler('onPeerConnected', handlers => { handlers.onPeerConnected(peer) })
      return
    }
    if (this.view.get(peer) === connId) this.view.delete(peer)
    for (const pending of [...this.outbound]) {
      if (pending.connId === connId) pending.reject(new RequestFailedError(`request to ${peer} failed: connection closed`))
    }
    this.callHandler('onPeerDisconnected', handlers => { handlers.onPeerDisconnected(peer) })
  }

  /** @internal */
  deliverGossip (from: PeerIdStr, data: Uint8Array): void {
    this.callHandler('onGossip', handlers => { handlers.onGossip(from, data) })
  }

  /** @internal */
  deliverMessage (from: PeerIdStr, data: Uint8Array): void {
    this.callHandler('onMessage', handlers => { handlers.onMessage?.(from, data) })
  }

  /** @internal the handler's response; a synchronous throw becomes a rejection. */
  async serveRequest (from: PeerIdStr, data: Uint8Array): Promise<Uint8Array> {
    const handlers = this.handlers
    if (handlers == null) throw new NetworkStateError('network stopped')
    return await handlers.onRequest(from, data)
  }

  private callHandler (name: keyof NetworkHandlers, call: (handlers: NetworkHandlers) => void): void {
    const handlers = this.handlers
    if (handlers == null) return
    try {
      call(handlers)
    } catch (err) {
      this.hub.handlerError(this.self, name, err)
    }
  }

  private requireStarted (): void {
    if (this.state !== 'started') throw new NetworkStateError(`network of ${this.self} is ${this.state}`)
  }
}

/**
 * `count` distinct integers of [0, n), chosen uniformly with Floyd's
 * algorithm: exactly `count` draws, none wasted on rejections.
 */
function sampleDistinct (count: number, n: number, random: () => number): number[] {
  const chosen = new Set<number>()
  for (let j = n - count; j < n; j++) {
    const t = Math.floor(random() * (j + 1))
    chosen.add(chosen.has(t) ? j : t)
  }
  return [...chosen]
}

function emptyStats (): MemoryPeerStats {
  return { gossipIn: 0, gossipOut: 0, bytesIn: 0, bytesOut: 0, duplicatesIn: 0, meshDuplicatesIn: 0, directIn: 0, directOut: 0, requestsIn: 0, requestsOut: 0, dropped: 0 }
}

function getOrCreate<K, V> (map: Map<K, V>, key: K, create: () => V): V {
  let value = map.get(key)
  if (value === undefined) {
    value = create()
    map.set(key, value)
  }
  return value
}

function checkRate (name: string, rate: number): void {
  if (!(rate >= 0 && rate <= 1)) throw new NetworkConfigError(`${name} must be within [0, 1], got ${rate}`)
}
