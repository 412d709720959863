/**
 * The production `Network` (agent/types.ts) over libp2p
 * (docs/design.md "Network"):
 *
 * - gossip: gossipsub on one topic per cluster, `/memgossip/<cluster>/ledger/1`,
 *   messages signed by their author (StrictSign);
 * - requests: the anti-entropy protocol `/memgossip/<cluster>/sync/1`, one
 *   length-prefixed request and one length-prefixed response per stream
 *   (unsigned varint length, then the bytes; the requester half-closes after
 *   its request, the responder closes after its response);
 * - direct messages: `/memgossip/<cluster>/direct/1`, one long-lived stream
 *   per connected peer and direction carrying length-prefixed messages of at
 *   most {@link MAX_DIRECT_BYTES} (the clock channel's beacons): no stream
 *   negotiation, signature or relay per message, and lossy like gossip (a
 *   message that finds no open connection, or a full stream, is dropped);
 * - cluster boundary: an optional pre-shared cluster key (`@libp2p/pnet`), so a
 *   host without it cannot finish a handshake;
 * - discovery: bootstrap multiaddrs, redialled while disconnected, and mDNS on
 *   request;
 * - partitions on demand (`block`/`unblock`) for simulations and operators.
 *
 * Everything a peer sends is bounded by `maxMessageBytes`: larger gossip,
 * requests and responses are dropped and counted, never delivered. Errors caused
 * by a peer are logged once per peer and kind, counted, and never thrown into
 * libp2p's event loop.
 */
import '../shim.ts'
import { createHash } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, StrictSign, TopicValidatorResult } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import { memory } from '@libp2p/memory'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { anySignal } from 'any-signal'
import { createLibp2p } from 'libp2p'
import { raceSignal } from 'race-signal'
import { GOSSIP_D, LAN, MAX_MESSAGE_BYTES } from '../config.ts'
import { parseClusterKey } from './cluster-key.ts'
import {
  DialTimeoutError,
  MessageTooLargeError,
  NetworkConfigError,
  NetworkStateError,
  RequestFailedError,
  RequestTimeoutError
} from './errors.ts'
import { MAX_DIRECT_BYTES, type Network, type NetworkHandlers, type PeerIdStr } from '../types.ts'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type { RPC } from '@libp2p/gossipsub/message'
import type { Identify } from '@libp2p/identify'
import type { Connection, ConnectionGater, Libp2p, PeerId, PeerInfo, PrivateKey, Stream } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import type { Multiaddr } from '@multiformats/multiaddr'

/** Default TCP listen address: loopback only, so nothing is exposed unless asked (docs/design.md "Network"). */
export const DEFAULT_LISTEN_TCP: readonly string[] = ['/ip4/127.0.0.1/tcp/7646']
/** Largest gossip message, request or response accepted or sent: the one limit of agent/config.ts. */
export const DEFAULT_MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES
/** A direct stream with this much unsent data drops further messages (the peer is not reading). */
const DIRECT_QUEUE_BYTES = 64 * 1024
/** Every dial and request gives up after this long (the `lan` preset's, agent/config.ts). */
export const DEFAULT_REQUEST_TIMEOUT_MS = LAN.requestTimeoutMs
/** STACK.md: about 16 concurrent dials is safe; hundreds at once time out in the noise handshake. */
export const DEFAULT_MAX_CONCURRENT_DIALS = 16
/** How often disconnected bootstrap peers are dialled again. */
export const DEFAULT_REDIAL_INTERVAL_MS = 5_000

/**
 * Gossipsub mesh degree, tuned for clusters of a few to ~100 hosts whose
 * messages are small batches of Yjs updates (tens to hundreds of bytes), and
 * whose peers all hold the cluster key (the spec's D = 6 is sized for open
 * networks with adversarial peers):
 *
 * - `D = 3` (spec default 6): every mesh peer forwards each message, so a node
 *   receives about one copy per mesh peer. Every member's heartbeat reaches
 *   every member every 5 s, so copies are most of an agent's traffic. Side by
 *   side on the 2-core VM (docs/benchmarks.md), against D = 4 / Dhi = 12: copies
 *   per message 3.2 vs 4.3 at 10 agents and 2.7 vs 4.7 at 25, socket bytes at
 *   rest −12 % and −30 %, propagation p99 unchanged (under 0.5 s at 25). The
 *   mesh's diameter at 50 hosts is about 4 hops of a millisecond; anti-entropy
 *   and IHAVE gossip cover what a thin mesh misses.
 * - `Dlo = 2`: graft again when the mesh falls below 2.
 * - `Dhi = 5`: above this a peer prunes down to D, so inbound grafts cannot
 *   grow a mesh to many times D (with Dhi = 12 meshes averaged 5–6 peers). A
 *   peer pruned by a busy bootstrap node backs off from *that* mesh for 60 s,
 *   but the agent keeps connections to other members (agent.keepConnected), so
 *   it meshes elsewhere and still gets IHAVE gossip from the hub meanwhile.
 * - `Dout = 1`: must stay below Dlo and at most D/2.
 */
export { GOSSIP_D }
const GOSSIP_DLO = 2
const GOSSIP_DHI = 5
const GOSSIP_DOUT = 1
/**
 * Gossipsub message ids: the first 12 bytes of SHA-256(author peer id, seqno).
 * The default id is the author's public key and seqno concatenated (about
 * 46 bytes), and ids travel in every IHAVE, IWANT and IDONTWANT entry; 12
 * bytes cut gossipsub's control traffic about in half (docs/benchmarks.md). A
 * collision (2^-96 per pair) would drop one message from gossip, which
 * anti-entropy delivers anyway.
 */
function shortMessageId (msg: Message): Uint8Array {
  if (msg.type !== 'signed') throw new Error('expected a signed message')
  const hash = createHash('sha256')
  hash.update(msg.from.toMultihash().bytes)
  const seq = Buffer.alloc(8)
  seq.writeBigUInt64BE(msg.sequenceNumber)
  hash.update(seq)
  return hash.digest().subarray(0, 12)
}
/**
 * Gossipsub's local key for dropping a copy of a message it already took in,
 * read from the raw frame: the author's peer id and seqno, the same pair
 * `shortMessageId` hashes. Without it gossipsub checks the ed25519
 * signature of every copy before it finds the copy a duplicate, and a
 * message reaches a peer once from each mesh neighbour that forwards it
 * (docs/decisions.md "Duplicates dropped before their signature is
 * checked"). Only a message whose signature checked out enters the cache, so
 * a forged copy that shares the pair of a valid message is dropped as the
 * duplicate its message id already made it; one that arrives first is
 * checked, fails and leaves nothing behind.
 */
export function fastMessageId (msg: RPC.Message): string {
  const latin1 = (bytes: Uint8Array | undefined): string => bytes === undefined ? '' : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
  return `${msg.seqno?.byteLength ?? -1}:${latin1(msg.seqno)}${latin1(msg.from)}`
}
/** The mesh degree settings, for reports. */
export const GOSSIP_DEGREE = `D=${GOSSIP_D}/Dlo=${GOSSIP_DLO}/Dhi=${GOSSIP_DHI}/Dout=${GOSSIP_DOUT}`
/**
 * Largest gossipsub RPC frame read from a peer. One frame may carry several
 * messages (an IWANT answer) plus control data, so it is larger than one
 * message: gossipsub's own 4 MiB default, or one maximal message plus 64 KiB of
 * envelope when `maxMessageBytes` is larger. Per-message size is checked by the
 * topic validator, where it can be counted.
 */
const GOSSIP_RPC_DEFAULT_BYTES = 4 * 1024 * 1024
const GOSSIP_RPC_ENVELOPE_BYTES = 64 * 1024
/** `@libp2p/utils` byteStream buffers 4 MiB by default; a request may be larger than that. */
const LP_DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024
/** A varint length prefix of a 64-bit length is at most 10 bytes. */
const LP_MAX_PREFIX_BYTES = 10
/**
 * A connection to a bootstrap peer that closes within this long of opening is a
 * flap: typically the peer's gater refuses us (it blocked us) and hangs up at
 * once. Redialling it at the normal pace would fire onPeerConnected every few
 * seconds for nothing, so flapping peers are redialled with exponential backoff.
 */
const FLAP_WINDOW_MS = 2_000
/** Ceiling of the flap backoff: a refused peer is still retried once a minute. */
const MAX_FLAP_BACKOFF_MS = 60_000
/** Concurrent sync streams per connection, each way (libp2p's defaults are 32/64). */
const SYNC_MAX_STREAMS_PER_CONNECTION = 16
/** Bound on the memory of "already logged" keys; cleared when full. */
const MAX_LOGGED_ONCE_KEYS = 1000
/** Cluster names become part of protocol ids: keep them to a safe alphabet. */
const CLUSTER_NAME = /^[A-Za-z0-9._-]{1,64}$/
/** mDNS service name, so memgossip agents do not dial every libp2p node on the LAN. */
const MDNS_SERVICE_TAG = '_memgossip._udp.local'

/** The gossip topic of a cluster's ledger. */
export function ledgerTopic (cluster: string): string {
  return `/memgossip/${cluster}/ledger/1`
}

/** The anti-entropy request/response protocol id of a cluster. */
export function syncProtocol (cluster: string): string {
  return `/memgossip/${cluster}/sync/1`
}

/** The direct-message protocol id of a cluster. */
export function directProtocol (cluster: string): string {
  return `/memgossip/${cluster}/direct/1`
}

/** Where the network reports what an operator should see (peer misbehaviour, failed bootstrap dials). */
export type NetworkLog = (message: string) => void

/** Options of `createLibp2pNetwork`. Only `cluster` and `privateKey` are required. */
export interface Libp2pNetworkInit {
  /** Cluster name; names the gossip topic and the sync protocol. `[A-Za-z0-9._-]{1,64}`. */
  cluster: string
  /** The node's Ed25519 identity key (see `loadOrCreatePeerKey`). */
  privateKey: PrivateKey
  /**
   * Multiaddrs to listen on.
   *
   * @default ['/ip4/127.0.0.1/tcp/7646'] for TCP, ['/memory/<peer id>'] for the memory transport
   */
  listen?: string[]
  /**
   * Multiaddrs with `/p2p/<id>` dialled at start and again every
   * `redialIntervalMs` while that peer is disconnected (and not blocked).
   *
   * @default []
   */
  bootstrap?: string[]
  /**
   * Swarm key file bytes (`/key/swarm/psk/1.0.0/`); when set only holders of the
   * same key can connect. Validated with `parseClusterKey`.
   *
   * @default undefined (open network)
   */
  clusterKey?: Uint8Array
  /**
   * `tcp` for real deployments; `memory` for many agents in one process
   * (addresses `/memory/<name>`).
   *
   * @default 'tcp'
   */
  transport?: 'tcp' | 'memory'
  /**
   * Discover peers on the LAN with mDNS and dial them.
   *
   * @default false
   */
  mdns?: boolean
  /**
   * Many agents on one host (tests, simulations): let loopback peers past the
   * per-host inbound rate limit and turn off gossipsub's IP-colocation penalty.
   * Never set it on a real network: both are defenses against Sybil peers.
   *
   * @default false
   */
  localCluster?: boolean
  /**
   * Largest gossip message, request or response; larger ones are dropped and counted.
   *
   * @default 16 MiB (DEFAULT_MAX_MESSAGE_BYTES)
   */
  maxMessageBytes?: number
  /**
   * Timeout of every dial and request.
   *
   * @default 10 000 ms (DEFAULT_REQUEST_TIMEOUT_MS)
   */
  requestTimeoutMs?: number
  /**
   * Dials in flight at once (libp2p's dial queue and the bootstrap/mDNS dialer).
   *
   * @default 16 (DEFAULT_MAX_CONCURRENT_DIALS)
   */
  maxConcurrentDials?: number
  /**
   * Interval of the bootstrap redial loop.
   *
   * @default 5 000 ms (DEFAULT_REDIAL_INTERVAL_MS)
   */
  redialIntervalMs?: number
  /**
   * Sink for operator-facing warnings.
   *
   * @default writes `memgossip net: <message>` to stderr
   */
  log?: NetworkLog
}

/** Counters since start. Bytes are payload bytes (gossip data, request and response bodies), not wire bytes. */
export interface NetworkStats {
  /** Gossip messages delivered to `onGossip`. */
  gossipIn: number
  /** Gossip messages published (each counted once, however many peers it went to). */
  gossipOut: number
  /** Payload bytes received: delivered gossip, requests served, responses received. */
  bytesIn: number
  /** Payload bytes sent: published gossip, requests sent, responses served. */
  bytesOut: number
  /** Requests received from peers and read completely. */
  requestsIn: number
  /** Requests written to peers. */
  requestsOut: number
  /** Direct messages delivered to `onMessage`, and written to peers. */
  directIn: number
  directOut: number
  /** Direct messages not sent: no open connection, or the peer's stream full. */
  directUnsent: number
  /** Gossip messages, requests or responses over `maxMessageBytes`, ours or a peer's. */
  droppedOversized: number
  /**
   * Input from a peer that was malformed (a truncated or badly framed request),
   * not signed, or that the agent's handler refused by throwing.
   */
  droppedInvalid: number
}

/** A `Network` over libp2p, with the controls simulations and operators need. */
export interface Libp2pNetwork extends Network {
  /**
   * Cut this node off from `peers`: the connection gater refuses dials to them
   * and their inbound and outbound connections, and open connections to them are
   * closed. Blocks accumulate until `unblock`. Calling it before `start` only
   * records the rule.
   *
   * @throws {NetworkConfigError} if an entry is not a peer id (nothing is blocked then)
   */
  block: (peers: Iterable<PeerIdStr>) => Promise<void>
  /**
   * Lift the block on `peers` (all peers when omitted), then dial them again at
   * their known addresses (peer store, then bootstrap addresses). Resolves when
   * those dials have settled; a failed dial is not an error, the redial loop
   * keeps trying bootstrap peers.
   */
  unblock: (peers?: Iterable<PeerIdStr>) => Promise<void>
  /**
   * Dial a multiaddr (with or without `/p2p/`), within `requestTimeoutMs` or
   * until `signal` aborts. Rejects with `DialTimeoutError`, the caller's abort
   * reason, or libp2p's error (e.g. `EncryptionFailedError` for another cluster key).
   */
  dial: (address: string, options?: { signal?: AbortSignal }) => Promise<void>
  /** A snapshot of the counters. */
  stats: () => NetworkStats
}

interface Services extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
}

/** An outbound direct stream: messages queue while it opens and while a write is in flight. */
interface DirectStream {
  stream?: Stream
  lp?: ReturnType<typeof lpStream>
  queue: Uint8Array[]
  queuedBytes: number
  writing?: boolean
}

interface BootstrapPeer {
  peer: PeerIdStr
  addrs: Multiaddr[]
}

/**
 * Create the libp2p network of an agent. The node is built but not started:
 * `start(handlers)` starts listening, joins the gossip topic and dials the
 * bootstrap peers; `addresses()` is empty until then.
 *
 * @throws {NetworkConfigError} for an invalid cluster name, key type, limit or address
 * @throws {ClusterKeyError} when `clusterKey` is malformed
 */
export async function createLibp2pNetwork (init: Libp2pNetworkInit): Promise<Libp2pNetwork> {
  const network = new Libp2pNetworkImpl(init)
  await network.init()
  return network
}

class Libp2pNetworkImpl implements Libp2pNetwork {
  readonly self: PeerIdStr
  private readonly topic: string
  private readonly protocol: string
  private readonly direct: string
  /** The outbound direct stream of each peer, opening or open. */
  private readonly directStreams = new Map<PeerIdStr, DirectStream>()
  private readonly privateKey: PrivateKey
  private readonly listen: string[]
  private readonly bootstrap: BootstrapPeer[]
  private readonly clusterKey: Uint8Array | undefined
  private readonly transport: 'tcp' | 'memory'
  private readonly mdns: boolean
  private readonly localCluster: boolean
  private readonly maxMessageBytes: number
  private readonly requestTimeoutMs: number
  private readonly maxConcurrentDials: number
  private readonly redialIntervalMs: number
  private readonly log: NetworkLog

  /** Peers refused by the connection gater (partition). */
  private readonly blocked = new Set<PeerIdStr>()
  /** Peers with a background dial (bootstrap, mDNS) in flight. */
  private readonly dialing = new Set<PeerIdStr>()
  /** When each connected peer's first connection opened, to detect flaps. */
  private readonly connectedAt = new Map<PeerIdStr, number>()
  /**
   * `peers()` as last computed; dropped whenever a connection opens or
   * closes. libp2p's `getPeers()` rebuilds a PeerSet from the connections
   * (each id base58-encoded, decoded and encoded again), and the agent asks on
   * every refresh: at 50 agents in one process that was a quarter of all CPU
   * while writing (docs/decisions.md "Fleet-scale figures").
   */
  private peersCache: PeerIdStr[] | undefined
  /** Redial backoff of flapping peers: current delay and the earliest next dial. */
  private readonly flapBackoff = new Map<PeerIdStr, { delayMs: number, notBefore: number }>()
  /** `kind:peer` keys already logged, so a misbehaving peer costs one log line. */
  private readonly loggedOnce = new Set<string>()
  private readonly counters: NetworkStats = {
    gossipIn: 0,
    gossipOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    requestsIn: 0,
    requestsOut: 0,
    directIn: 0,
    directOut: 0,
    directUnsent: 0,
    droppedOversized: 0,
    droppedInvalid: 0
  }

  /** Aborted by `stop()`: cancels background dials and in-flight requests. */
  private readonly lifetime = new AbortController()
  private node?: Libp2p<Services>
  private handlers?: NetworkHandlers
  private redialTimer?: ReturnType<typeof setInterval>
  private state: 'created' | 'started' | 'stopped' = 'created'

  constructor (init: Libp2pNetworkInit) {
    // Every request, dial and served request in flight listens on this signal;
    // more than Node's default of 10 at once is normal, not a leak.
    setMaxListeners(Infinity, this.lifetime.signal)
    if (!CLUSTER_NAME.test(init.cluster)) {
      throw new NetworkConfigError(`cluster name must match ${String(CLUSTER_NAME)}`)
    }
    if (init.privateKey.type !== 'Ed25519') {
      throw new NetworkConfigError(`peer key must be Ed25519, got ${init.privateKey.type}`)
    }
    this.topic = ledgerTopic(init.cluster)
    this.protocol = syncProtocol(init.cluster)
    this.direct = directProtocol(init.cluster)
    this.privateKey = init.privateKey
    this.self = peerIdFromPrivateKey(init.privateKey).toString()
    this.transport = init.transport ?? 'tcp'
    this.listen = init.listen ?? (this.transport === 'memory' ? [`/memory/${this.self}`] : [...DEFAULT_LISTEN_TCP])
    this.bootstrap = groupBootstrap(init.bootstrap ?? [])
    this.clusterKey = init.clusterKey == null ? undefined : parseClusterKey(init.clusterKey)
    this.mdns = init.mdns ?? false
    this.localCluster = init.localCluster ?? false
    this.maxMessageBytes = positiveInteger('maxMessageBytes', init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES)
    this.requestTimeoutMs = positiveInteger('requestTimeoutMs', init.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS)
    this.maxConcurrentDials = positiveInteger('maxConcurrentDials', init.maxConcurrentDials ?? DEFAULT_MAX_CONCURRENT_DIALS)
    this.redialIntervalMs = positiveInteger('redialIntervalMs', init.redialIntervalMs ?? DEFAULT_REDIAL_INTERVAL_MS)
    this.log = init.log ?? ((message) => { console.warn(`memgossip net: ${message}`) })
  }

  /** Build the (stopped) libp2p node. */
  async init (): Promise<void> {
    const blocked = this.blocked
    const isBlocked = (peer: PeerId): boolean => blocked.has(peer.toString())
    // Denying at the encrypted stage is the earliest point where the remote
    // peer id is known for inbound connections (STACK.md "Cutting a partition").
    const connectionGater: ConnectionGater = {
      denyDialPeer: isBlocked,
      denyInboundEncryptedConnection: isBlocked,
      denyOutboundEncryptedConnection: isBlocked
    }

    this.node = await createLibp2p<Services>({
      start: false,
      privateKey: this.privateKey,
      addresses: { listen: this.listen },
      transports: [this.transport === 'memory' ? memory() : tcp()],
      connectionEncrypters: [noise()],
      // yamux pings every connection from both ends every 30 s and only
      // logs a ping that fails: about 200 B/s per node at rest at N = 50,
      // growing with N, that tells nobody anything. The failure detector's
      // probes already cross every connection (docs/decisions.md "False
      // deaths at N = 50 under load").
      streamMuxers: [yamux({ enableKeepAlive: false })],
      ...(this.clusterKey == null ? {} : { connectionProtector: preSharedKey({ psk: this.clusterKey }) }),
      peerDiscovery: this.mdns ? [mdns({ serviceTag: MDNS_SERVICE_TAG })] : [],
      connectionGater,
      // libp2p would ping every connection (a new stream with its protocol
      // negotiation each time) to find dead ones: with a connection to every
      // member that is a cost per node that grows with N. Members' liveness
      // is the failure detector's (agent/liveness.ts), which probes each
      // member over the connection it has; an idle connection to a dead host
      // costs nothing, and one that is written to fails by TCP's own timers.
      connectionMonitor: { enabled: false },
      connectionManager: {
        maxParallelDials: this.maxConcurrentDials,
        dialTimeout: this.requestTimeoutMs,
        // A private-network handshake with a peer without the key never
        // completes (STACK.md): bound it on the inbound side too.
        inboundUpgradeTimeout: this.requestTimeoutMs,
        ...(this.localCluster ? { allow: ['/ip4/127.0.0.1'] } : {})
      },
      services: {
        // gossipsub refuses to start without identify; identify also teaches the
        // peer store the listen addresses `unblock` redials.
        identify: identify(),
        // Answers peers that still run libp2p's connection monitor (agents of
        // an older version), which would close a connection whose ping fails.
        ping: ping(),
        pubsub: gossipsub({
          globalSignaturePolicy: StrictSign,
          emitSelf: false,
          // Publishing before the mesh forms must not throw; what is lost there
          // is recovered by anti-entropy (STACK.md, docs/design.md "Network").
          allowPublishToZeroTopicPeers: true,
          fallbackToFloodsub: false,
          allowedTopics: [this.topic],
          D: GOSSIP_D,
          Dlo: GOSSIP_DLO,
          Dhi: GOSSIP_DHI,
          Dout: GOSSIP_DOUT,
          maxInboundDataLength: Math.max(GOSSIP_RPC_DEFAULT_BYTES, this.maxMessageBytes + GOSSIP_RPC_ENVELOPE_BYTES),
          // Every agent of a local cluster shares 127.0.0.1; the colocation
          // penalty would score them all negative and empty the meshes.
          ...(this.localCluster ? { scoreParams: { IPColocationFactorWeight: 0 } } : {}),
          msgIdFn: shortMessageId,
          fastMsgIdFn: fastMessageId
        })
      }
    })
  }

  async start (handlers: NetworkHandlers): Promise<void> {
    if (this.state !== 'created') {
      throw new NetworkStateError(`cannot start a network that is ${this.state}`)
    }
    const node = this.requireNode()
    this.handlers = handlers
    this.state = 'started'

    const dropPeers = (): void => { this.peersCache = undefined }
    node.addEventListener('connection:open', dropPeers)
    node.addEventListener('connection:close', dropPeers)
    node.addEventListener('peer:connect', (evt) => {
      this.peersCache = undefined
      const peer = evt.detail.toString()
      this.loggedOnce.delete(`dial:${peer}`)
      this.connectedAt.set(peer, Date.now())
      this.callHandler('onPeerConnected', peer, () => this.handlers?.onPeerConnected(peer))
    })
    node.addEventListener('peer:disconnect', (evt) => {
      this.peersCache = undefined
      const peer = evt.detail.toString()
      this.directStreams.get(peer)?.stream?.abort(new NetworkStateError('disconnected'))
      this.directStreams.delete(peer)
      this.noteDisconnect(peer)
      this.callHandler('onPeerDisconnected', peer, () => this.handlers?.onPeerDisconnected(peer))
    })
    if (this.mdns) {
      node.addEventListener('peer:discovery', (evt) => { this.onDiscovery(evt.detail) })
    }

    await node.handle(this.protocol, async (stream, connection) => { await this.serveRequest(stream, connection) }, {
      maxInboundStreams: SYNC_MAX_STREAMS_PER_CONNECTION,
      maxOutboundStreams: SYNC_MAX_STREAMS_PER_CONNECTION
    })

    await node.handle(this.direct, async (stream, connection) => { await this.serveDirect(stream, connection) }, {
      maxInboundStreams: 2,
      maxOutboundStreams: 2
    })

    const pubsub = node.services.pubsub
    pubsub.topicValidators.set(this.topic, (from, message) => this.validateGossip(from, message))
    pubsub.addEventListener('message', (evt) => { this.onGossipMessage(evt.detail) })

    try {
      await node.start()
      pubsub.subscribe(this.topic)
    } catch (err) {
      // E.g. the listen port is taken: leave nothing half-started behind.
      await this.stop().catch(() => {})
      throw err
    }

    this.redialTimer = setInterval(() => { this.redialBootstrap() }, this.redialIntervalMs)
    this.redialBootstrap()
  }

  async stop (): Promise<void> {
    if (this.state === 'stopped') return
    this.state = 'stopped'
    clearInterval(this.redialTimer)
    this.redialTimer = undefined
    this.lifetime.abort(new NetworkStateError('network stopped'))
    this.handlers = undefined
    await this.node?.stop()
  }

  async publish (data: Uint8Array): Promise<void> {
    const node = this.requireStarted()
    if (data.byteLength > this.maxMessageBytes) {
      this.counters.droppedOversized++
      throw new MessageTooLargeError('gossip message', this.maxMessageBytes, data.byteLength)
    }
    await node.services.pubsub.publish(this.topic, data)
    this.counters.gossipOut++
    this.counters.bytesOut += data.byteLength
  }

  async request (peer: PeerIdStr, data: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    const node = this.requireStarted()
    if (data.byteLength > this.maxMessageBytes) {
      this.counters.droppedOversized++
      throw new MessageTooLargeError('request', this.maxMessageBytes, data.byteLength)
    }
    options.signal?.throwIfAborted()
    const operation = boundedSignal(this.requestTimeoutMs, [this.lifetime.signal, options.signal])
    const signal = operation.signal

    let stream: Stream | undefined
    try {
      stream = await node.dialProtocol(peerIdFromString(peer), this.protocol, { signal })
      const lp = lpStream(stream, this.lpOptions())
      await lp.write(data, { signal })
      this.counters.requestsOut++
      this.counters.bytesOut += data.byteLength
      // Half-close: the request is complete, the responder may answer.
      await stream.close({ signal })
      const response = (await lp.read({ signal })).subarray()
      this.counters.bytesIn += response.byteLength
      return response
    } catch (err) {
      stream?.abort(asError(err))
      if (options.signal?.aborted === true) throw options.signal.reason
      if (this.lifetime.signal.aborted) throw this.lifetime.signal.reason
      if (operation.timedOut()) {
        throw new RequestTimeoutError(`request to ${peer} got no response within ${this.requestTimeoutMs} ms`, { cause: err })
      }
      if (isTooLongError(err)) {
        this.counters.droppedOversized++
        this.logOnce('oversized-response', peer, `dropped a response over ${this.maxMessageBytes} bytes from ${peer}`)
        throw new MessageTooLargeError('response', this.maxMessageBytes)
      }
      throw new RequestFailedError(`request to ${peer} failed: ${asError(err).message}`, { cause: err })
    } finally {
      operation.dispose()
    }
  }

  send (peer: PeerIdStr, data: Uint8Array): boolean {
    if (this.state !== 'started') return false
    if (data.byteLength > MAX_DIRECT_BYTES) {
      this.counters.droppedOversized++
      throw new MessageTooLargeError('direct message', MAX_DIRECT_BYTES, data.byteLength)
    }
    const node = this.requireNode()
    let channel = this.directStreams.get(peer)
    if (channel === undefined) {
      if (node.getConnections(peerIdFromString(peer)).length === 0) {
        this.counters.directUnsent++
        return false
      }
      channel = { queue: [], queuedBytes: 0 }
      this.directStreams.set(peer, channel)
      void this.openDirect(peer, channel)
    }
    if (channel.queuedBytes + data.byteLength > DIRECT_QUEUE_BYTES) {
      this.counters.directUnsent++
      return false
    }
    channel.queue.push(data)
    channel.queuedBytes += data.byteLength
    if (channel.lp !== undefined && !channel.writing) void this.flushDirect(peer, channel)
    return true
  }

  peers (): PeerIdStr[] {
    if (this.state !== 'started' || this.node === undefined) return this.node?.getPeers().map(String) ?? []
    this.peersCache ??= this.node.getPeers().map(String)
    // A copy: callers may sort or splice what they get.
    return [...this.peersCache]
  }

  addresses (): string[] {
    if (this.state !== 'started') return []
    return this.requireNode().getMultiaddrs().map(String)
  }

  async block (peers: Iterable<PeerIdStr>): Promise<void> {
    const node = this.requireNode()
    // Parse every id before blocking any, so a typo blocks nothing.
    const ids = [...peers].map(peer => parsePeerId(peer))
    const added: PeerId[] = []
    for (const id of ids) {
      const peer = id.toString()
      if (peer === this.self || this.blocked.has(peer)) continue
      this.blocked.add(peer)
      added.push(id)
    }
    if (this.state !== 'started') return
    await Promise.all(added.map(async (id) => {
      if (node.getConnections(id).length === 0) return
      await node.hangUp(id, { signal: AbortSignal.timeout(this.requestTimeoutMs) }).catch((err) => {
        // hangUp gives up gracefully after the timeout; the gater still refuses
        // everything new, and a connection that will not close is aborted.
        for (const connection of node.getConnections(id)) connection.abort(asError(err))
      })
    }))
  }

  async unblock (peers?: Iterable<PeerIdStr>): Promise<void> {
    const lifted = peers == null ? [...this.blocked] : [...peers].filter(peer => this.blocked.has(peer))
    for (const peer of lifted) {
      this.blocked.delete(peer)
      this.flapBackoff.delete(peer)
    }
    if (this.state !== 'started') return
    // Heal at once rather than waiting for the next redial tick (and peers that
    // are not bootstrap peers have no redial tick at all), a few dials at a time.
    for (let i = 0; i < lifted.length; i += this.maxConcurrentDials) {
      await Promise.all(lifted.slice(i, i + this.maxConcurrentDials).map(async peer => { await this.redial(peer) }))
    }
  }

  async dial (address: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const node = this.requireStarted()
    let target: Multiaddr
    try {
      target = multiaddr(address)
    } catch (err) {
      throw new NetworkConfigError(`not a multiaddr: ${address}`, { cause: err })
    }
    const operation = boundedSignal(this.requestTimeoutMs, [this.lifetime.signal, options.signal])
    try {
      await node.dial(target, { signal: operation.signal })
    } catch (err) {
      if (options.signal?.aborted === true) throw options.signal.reason
      if (operation.timedOut()) throw new DialTimeoutError(`dial ${address} did not connect within ${this.requestTimeoutMs} ms`, { cause: err })
      throw err
    } finally {
      operation.dispose()
    }
  }

  stats (): NetworkStats {
    return { ...this.counters }
  }

  // --- gossip --------------------------------------------------------------

  /** Runs once per new message, before it is delivered or forwarded. */
  private validateGossip (from: PeerId, message: Message): TopicValidatorResult {
    if (message.data.byteLength > this.maxMessageBytes) {
      this.counters.droppedOversized++
      this.logOnce('oversized-gossip', from.toString(), `dropped gossip over ${this.maxMessageBytes} bytes relayed by ${from.toString()}`)
      // Reject, not Ignore: no agent of the cluster publishes such a message,
      // so the relaying peer is penalised and the message goes no further.
      return TopicValidatorResult.Reject
    }
    return TopicValidatorResult.Accept
  }

  private onGossipMessage (message: Message): void {
    if (message.topic !== this.topic) return
    if (message.type !== 'signed') {
      // StrictSign already refuses these; kept as a guard should that change.
      this.counters.droppedInvalid++
      return
    }
    const from = message.from.toString()
    if (from === this.self) return
    if (message.data.byteLength > this.maxMessageBytes) return
    this.counters.gossipIn++
    this.counters.bytesIn += message.data.byteLength
    this.callHandler('onGossip', from, () => this.handlers?.onGossip(from, message.data))
  }

  // --- direct messages -----------------------------------------------------

  /** Open the outbound direct stream of `peer` (on its existing connection) and send what queued meanwhile. */
  private async openDirect (peer: PeerIdStr, channel: DirectStream): Promise<void> {
    const operation = boundedSignal(this.requestTimeoutMs, [this.lifetime.signal])
    try {
      const stream = await this.requireNode().dialProtocol(peerIdFromString(peer), this.direct, { signal: operation.signal })
      if (this.directStreams.get(peer) !== channel) {
        stream.abort(new NetworkStateError('superseded'))
        return
      }
      channel.stream = stream
      channel.lp = lpStream(stream, { maxDataLength: MAX_DIRECT_BYTES })
      await this.flushDirect(peer, channel)
    } catch (err) {
      this.dropDirect(peer, channel, err)
    } finally {
      operation.dispose()
    }
  }

  private async flushDirect (peer: PeerIdStr, channel: DirectStream): Promise<void> {
    if (channel.writing || channel.lp === undefined) return
    channel.writing = true
    try {
      while (channel.queue.length > 0) {
        const data = channel.queue.shift()!
        channel.queuedBytes -= data.byteLength
        await channel.lp.write(data, { signal: this.lifetime.signal })
        this.counters.directOut++
        this.counters.bytesOut += data.byteLength
      }
    } catch (err) {
      this.dropDirect(peer, channel, err)
    } finally {
      channel.writing = false
    }
  }

  /** A direct stream failed: what it held is lost (direct messages are lossy); the next send opens a new one. */
  private dropDirect (peer: PeerIdStr, channel: DirectStream, err: unknown): void {
    this.counters.directUnsent += channel.queue.length
    channel.queue.length = 0
    channel.queuedBytes = 0
    channel.stream?.abort(asError(err))
    if (this.directStreams.get(peer) === channel) this.directStreams.delete(peer)
    if (this.state === 'started') this.logOnce('direct', peer, `direct stream to ${peer} closed: ${asError(err).message}`)
  }

  /** Read a peer's direct stream until it ends; an oversized or malformed frame ends it (counted). */
  private async serveDirect (stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_DIRECT_BYTES })
    try {
      while (this.state === 'started') {
        const data = (await lp.read({ signal: this.lifetime.signal })).subarray()
        this.counters.directIn++
        this.counters.bytesIn += data.byteLength
        this.callHandler('onMessage', from, () => this.handlers?.onMessage?.(from, data))
      }
    } catch (err) {
      if (isTooLongError(err)) {
        this.counters.droppedOversized++
        this.logOnce('oversized-direct', from, `dropped a direct message over ${MAX_DIRECT_BYTES} bytes from ${from}`)
      } else if (isMalformedError(err)) {
        this.counters.droppedInvalid++
        this.logOnce('malformed-direct', from, `dropped a malformed direct message from ${from}: ${asError(err).message}`)
      }
      // Otherwise the stream ended: the peer closed it, disconnected, or we stopped.
      stream.abort(asError(err))
    }
  }

  // --- requests ------------------------------------------------------------

  private async serveRequest (stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString()
    const operation = boundedSignal(this.requestTimeoutMs, [this.lifetime.signal])
    try {
      await this.exchange(from, stream, operation.signal)
    } catch (err) {
      // `exchange` handles what it expects; this is the backstop that keeps a
      // surprise inside one stream instead of an unhandled rejection.
      this.logOnce('sync-stream', from, `sync stream from ${from} failed: ${asError(err).message}`)
      stream.abort(asError(err))
    } finally {
      operation.dispose()
    }
  }

  /** Read one request, answer it, close; everything a peer can get wrong is counted and logged once. */
  private async exchange (from: PeerIdStr, stream: Stream, signal: AbortSignal): Promise<void> {
    const lp = lpStream(stream, this.lpOptions())

    let request: Uint8Array
    try {
      request = (await lp.read({ signal })).subarray()
    } catch (err) {
      if (isTooLongError(err)) {
        this.counters.droppedOversized++
        this.logOnce('oversized-request', from, `dropped a request over ${this.maxMessageBytes} bytes from ${from}`)
      } else if (isMalformedError(err)) {
        this.counters.droppedInvalid++
        this.logOnce('malformed-request', from, `dropped a malformed request from ${from}: ${asError(err).message}`)
      }
      // Anything else is a timeout, a reset or our own stop: not the peer's fault to count.
      stream.abort(asError(err))
      return
    }
    this.counters.requestsIn++
    this.counters.bytesIn += request.byteLength

    let response: Uint8Array
    try {
      const handlers = this.handlers
      if (handlers == null) throw new NetworkStateError('network stopped')
      // The handler cannot be cancelled, but the exchange stops waiting for it
      // when the requester's time is up or we stop.
      response = await raceSignal(handlers.onRequest(from, request), signal)
    } catch (err) {
      stream.abort(asError(err))
      if (signal.aborted) {
        // The first byte is the message type (agent/wire.ts): which handler was slow.
        this.logOnce('request-handler-slow', from, `request from ${from} (type 0x${(request[0] ?? 0).toString(16).padStart(2, '0')}, ${request.byteLength} bytes) not answered within ${this.requestTimeoutMs} ms`)
        return
      }
      // The agent refused the request (undecodable, or a bug): the requester
      // sees a reset stream; this node carries on.
      this.counters.droppedInvalid++
      this.logOnce('request-handler', from, `request from ${from} failed in the handler: ${asError(err).message}`)
      return
    }
    if (response.byteLength > this.maxMessageBytes) {
      this.counters.droppedOversized++
      this.logOnce('oversized-response', this.self, `refused to send a ${response.byteLength}-byte response (limit ${this.maxMessageBytes})`)
      stream.abort(new MessageTooLargeError('response', this.maxMessageBytes, response.byteLength))
      return
    }
    try {
      await lp.write(response, { signal })
      await stream.close({ signal })
      this.counters.bytesOut += response.byteLength
    } catch (err) {
      stream.abort(asError(err))
    }
  }

  private lpOptions (): { maxDataLength: number, maxBufferSize: number } {
    return {
      maxDataLength: this.maxMessageBytes,
      maxBufferSize: Math.max(LP_DEFAULT_BUFFER_BYTES, this.maxMessageBytes + LP_MAX_PREFIX_BYTES)
    }
  }

  // --- dialling ------------------------------------------------------------

  private redialBootstrap (): void {
    const node = this.node
    if (node == null || this.state !== 'started') return
    const now = Date.now()
    for (const { peer, addrs } of this.bootstrap) {
      if (this.dialing.size >= this.maxConcurrentDials) return
      if (!this.shouldDial(peer) || (this.flapBackoff.get(peer)?.notBefore ?? 0) > now) continue
      void this.dialInBackground(peer, addrs)
    }
  }

  /** Track flapping peers (see FLAP_WINDOW_MS); a connection that lasted clears the backoff. */
  private noteDisconnect (peer: PeerIdStr): void {
    const now = Date.now()
    const openedAt = this.connectedAt.get(peer)
    this.connectedAt.delete(peer)
    if (openedAt == null || now - openedAt >= FLAP_WINDOW_MS) {
      this.flapBackoff.delete(peer)
      return
    }
    const previous = this.flapBackoff.get(peer)?.delayMs
    const delayMs = Math.min(previous == null ? 2 * this.redialIntervalMs : 2 * previous, MAX_FLAP_BACKOFF_MS)
    this.flapBackoff.set(peer, { delayMs, notBefore: now + delayMs })
  }

  private onDiscovery (info: PeerInfo): void {
    const peer = info.id.toString()
    if (this.dialing.size >= this.maxConcurrentDials || !this.shouldDial(peer)) return
    // mDNS repeats its announcements, so a dial skipped here is retried then.
    // By id: libp2p has put the announced addresses in the peer store, and a
    // dial by id verifies that whoever answers really is that peer.
    void this.dialInBackground(peer, info.id)
  }

  /** Dial again after `unblock`: the peer store's addresses first, then the bootstrap list. */
  private async redial (peer: PeerIdStr): Promise<void> {
    if (!this.shouldDial(peer)) return
    const id = peerIdFromString(peer)
    const known = await this.requireNode().peerStore.get(id).then(p => p.addresses.length > 0, () => false)
    if (known && await this.dialInBackground(peer, id)) return
    const addrs = this.bootstrap.find(entry => entry.peer === peer)?.addrs
    if (addrs != null && this.shouldDial(peer)) await this.dialInBackground(peer, addrs)
  }

  private shouldDial (peer: PeerIdStr): boolean {
    return this.state === 'started' &&
      peer !== this.self &&
      !this.blocked.has(peer) &&
      !this.dialing.has(peer) &&
      this.requireNode().getConnections(peerIdFromString(peer)).length === 0
  }

  /** Dial without throwing; failures are logged once per peer until it connects. Returns whether it connected. */
  private async dialInBackground (peer: PeerIdStr, target: PeerId | Multiaddr | Multiaddr[]): Promise<boolean> {
    this.dialing.add(peer)
    const operation = boundedSignal(this.requestTimeoutMs, [this.lifetime.signal])
    try {
      await this.requireNode().dial(target, { signal: operation.signal })
      return true
    } catch (err) {
      if (this.state === 'started') {
        this.logOnce('dial', peer, `cannot reach peer ${peer}: ${asError(err).message} (retrying quietly)`)
      }
      return false
    } finally {
      operation.dispose()
      this.dialing.delete(peer)
    }
  }

  // --- helpers -------------------------------------------------------------

  /** Call into the agent; an exception there is the agent's bug, logged, never thrown into libp2p. */
  private callHandler (name: keyof NetworkHandlers, peer: PeerIdStr, call: () => unknown): void {
    const fail = (err: unknown): void => {
      if (name === 'onGossip' || name === 'onMessage') this.counters.droppedInvalid++
      this.logOnce(`handler-${name}`, peer, `${name} threw for peer ${peer}: ${asError(err).message}`)
    }
    try {
      // The handlers are typed to return void, but an async one must not become
      // an unhandled rejection either.
      const result = call()
      if (result instanceof Promise) result.catch(fail)
    } catch (err) {
      fail(err)
    }
  }

  private logOnce (kind: string, peer: PeerIdStr, message: string): void {
    const key = `${kind}:${peer}`
    if (this.loggedOnce.has(key)) return
    if (this.loggedOnce.size >= MAX_LOGGED_ONCE_KEYS) this.loggedOnce.clear()
    this.loggedOnce.add(key)
    try {
      this.log(message)
    } catch {
      // A broken log sink must not take the network down.
    }
  }

  private requireNode (): Libp2p<Services> {
    if (this.node == null) throw new NetworkStateError('network not initialised')
    return this.node
  }

  private requireStarted (): Libp2p<Services> {
    if (this.state !== 'started') throw new NetworkStateError(`network is ${this.state}, not started`)
    return this.requireNode()
  }
}

/** Group bootstrap addresses by the peer id in their `/p2p/` component. */
function groupBootstrap (addresses: string[]): BootstrapPeer[] {
  const byPeer = new Map<PeerIdStr, Multiaddr[]>()
  for (const address of addresses) {
    let addr: Multiaddr
    try {
      addr = multiaddr(address)
    } catch (err) {
      throw new NetworkConfigError(`bootstrap address is not a multiaddr: ${address}`, { cause: err })
    }
    const peer = addr.getComponents().findLast(c => c.name === 'p2p')?.value
    if (peer == null) {
      throw new NetworkConfigError(`bootstrap address needs /p2p/<peer id>: ${address}`)
    }
    try {
      peerIdFromString(peer)
    } catch (err) {
      throw new NetworkConfigError(`bootstrap address has an invalid peer id: ${address}`, { cause: err })
    }
    byPeer.set(peer, [...(byPeer.get(peer) ?? []), addr])
  }
  return [...byPeer].map(([peer, addrs]) => ({ peer, addrs }))
}

interface BoundedSignal {
  signal: AbortSignal
  /** Whether it was the timeout (not a source) that aborted `signal`. */
  timedOut: () => boolean
  /** Detach from the sources and clear the timer; call when the operation ends. */
  dispose: () => void
}

/**
 * A signal that aborts after `timeoutMs` or when any source aborts: any-signal
 * combines them (`AbortSignal.any` leaks when combined with the long-lived
 * `lifetime` signal on every request, nodejs/node#54614, #55351; any-signal
 * detaches in `clear`). The timeout is a timer of ours, cleared in `dispose`,
 * so a finished request holds nothing until it would have expired.
 */
function boundedSignal (timeoutMs: number, sources: Array<AbortSignal | undefined>): BoundedSignal {
  const timeout = new AbortController()
  const timer = setTimeout(() => {
    timeout.abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError'))
  }, timeoutMs)
  const signal = anySignal([...sources, timeout.signal])
  setMaxListeners(Infinity, signal)
  return {
    signal,
    timedOut: () => timeout.signal.aborted,
    dispose: () => {
      clearTimeout(timer)
      signal.clear()
    }
  }
}

function parsePeerId (peer: PeerIdStr): PeerId {
  try {
    return peerIdFromString(peer)
  } catch (err) {
    throw new NetworkConfigError(`not a peer id: ${peer}`, { cause: err })
  }
}

function positiveInteger (name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new NetworkConfigError(`${name} must be a positive integer, got ${value}`)
  }
  return value
}

/** lpStream: a length prefix above `maxDataLength` (or a prefix longer than any valid one). */
function isTooLongError (err: unknown): boolean {
  const name = (err as Error | undefined)?.name
  return name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError'
}

/** lpStream: a bad length prefix, or a stream that ended inside a message. */
/**
 * A request whose length prefix is invalid. A stream that ends before the
 * request is complete (UnexpectedEOFError) is not counted: that is a requester
 * that gave up (its timeout, a restart) — seen at every start of a busy
 * cluster, and not something a peer did wrong.
 */
function isMalformedError (err: unknown): boolean {
  return (err as Error | undefined)?.name === 'InvalidMessageLengthError'
}

function asError (err: unknown): Error {
  if (err instanceof Error) return err
  // libp2p's streams reject with their close/abort Event (some carry the error).
  if (typeof Event !== 'undefined' && err instanceof Event) {
    const inner = (err as Event & { error?: unknown }).error
    return inner instanceof Error ? inner : new Error(`the stream ended (${err.type} event)`)
  }
  return new Error(String(err))
}
