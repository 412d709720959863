/**
 * The seams of the agent (docs/design.md "Simulation harness"): everything the
 * agent touches outside its own memory — the network, the clock, randomness,
 * the disk and the memory probe — comes in through one of these small
 * interfaces, so the same agent code runs over real libp2p in production and
 * over an in-memory network on a virtual clock in the simulator.
 */

/** A libp2p peer id string, e.g. `12D3KooW…`. It is also the node id in the ledger. */
export type PeerIdStr = string

/** Callbacks the network delivers into the agent. */
export interface NetworkHandlers {
  /**
   * A gossip message (a batch of Yjs updates) arrived from `from`. Never called
   * for the node's own publications.
   */
  onGossip: (from: PeerIdStr, data: Uint8Array) => void
  /**
   * A peer opened a request (the anti-entropy sync protocol). The returned bytes
   * are sent back as the response. Throwing closes the exchange with an error on
   * the requester's side; it must never crash the agent.
   */
  onRequest: (from: PeerIdStr, data: Uint8Array) => Promise<Uint8Array>
  /** A direct message (`Network.send`) arrived from `from`, authenticated by the connection. */
  onMessage?: (from: PeerIdStr, data: Uint8Array) => void
  /** A connection to `peer` is now open (anti-entropy syncs with it at once). */
  onPeerConnected: (peer: PeerIdStr) => void
  /** The last connection to `peer` closed. */
  onPeerDisconnected: (peer: PeerIdStr) => void
}

/** Largest direct message (`Network.send`) sent or accepted: a beacon is well under 100 bytes. */
export const MAX_DIRECT_BYTES = 4096

/**
 * The network as the agent sees it: publish to everyone, request/response with
 * one peer. Implemented by libp2p (gossipsub + a stream protocol) and by the
 * simulator's in-memory network.
 */
export interface Network {
  /** This node's peer id. */
  readonly self: PeerIdStr
  /** Start delivering into `handlers`. */
  start: (handlers: NetworkHandlers) => Promise<void>
  /** Stop: close every connection, stream and timer. */
  stop: () => Promise<void>
  /** Best-effort broadcast to every peer of the cluster (gossip is lossy). */
  publish: (data: Uint8Array) => Promise<void>
  /** One request/response exchange with `peer`. Rejects on timeout or abort. */
  request: (peer: PeerIdStr, data: Uint8Array, options?: { signal?: AbortSignal }) => Promise<Uint8Array>
  /**
   * Best-effort message to one connected peer over a long-lived stream (small
   * messages: the clock channel). False when it cannot go: no open connection,
   * or the peer is not reading.
   */
  send?: (peer: PeerIdStr, data: Uint8Array) => boolean
  /** Peers with an open connection now. */
  peers: () => PeerIdStr[]
  /** Addresses other agents can bootstrap from (multiaddrs with `/p2p/<id>`). */
  addresses: () => string[]
  /** Open a connection to a peer by one of its addresses (optional: keeps the mesh beyond bootstrap peers). */
  dial?: (address: string, options?: { signal?: AbortSignal }) => Promise<void>
}

/** Time as the agent sees it (wall clock and timers), virtual in simulations. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now: () => number
  setTimeout: (fn: () => void, ms: number) => TimerHandle
  clearTimeout: (handle: TimerHandle) => void
  setInterval: (fn: () => void, ms: number) => TimerHandle
  clearInterval: (handle: TimerHandle) => void
}

export type TimerHandle = unknown

/** One memory measurement of the host (or of the cgroup the agent runs in). */
export interface MemorySample {
  /** Total memory the agent may account for (cgroup `memory.max` when limited). */
  totalBytes: number
  /** Memory available now (`MemAvailable`, or `memory.max - memory.current`). */
  availableBytes: number
  /** Where the figures came from, for display: `cgroup`, `meminfo` or `os`. */
  source: 'cgroup' | 'meminfo' | 'os' | 'fake'
}

export interface MemoryProbe {
  sample: () => Promise<MemorySample>
}
