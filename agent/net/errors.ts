/**
 * Errors of the network layer (`agent/net/`). Each kind of failure has its own
 * class with a stable `name`: callers and tests branch on `name`, never on the
 * wording of `message`, which is for humans and may change.
 */

/** What is wrong with a cluster key file, for callers that branch on it. */
export type ClusterKeyProblem =
  | 'unreadable'
  | 'too-large'
  | 'not-text'
  | 'bad-header'
  | 'bad-encoding'
  | 'bad-key'
  | 'trailing-data'

/**
 * A cluster key (swarm key, `/key/swarm/psk/1.0.0/`) is missing, unreadable or
 * malformed. The message says what is wrong and never contains key material.
 */
export class ClusterKeyError extends Error {
  static readonly NAME = 'ClusterKeyError'
  override readonly name = ClusterKeyError.NAME
  /** Which check failed. */
  readonly problem: ClusterKeyProblem

  constructor (problem: ClusterKeyProblem, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.problem = problem
  }
}

/**
 * The peer key file in the data directory exists but cannot be used (corrupt,
 * not Ed25519, unreadable). The agent must not silently replace it: that would
 * give the node a new identity (docs/design.md "Durability").
 */
export class PeerKeyError extends Error {
  static readonly NAME = 'PeerKeyError'
  override readonly name = PeerKeyError.NAME
}

/** A `Libp2pNetworkInit` field is invalid (e.g. a bootstrap address without `/p2p/<id>`). */
export class NetworkConfigError extends Error {
  static readonly NAME = 'NetworkConfigError'
  override readonly name = NetworkConfigError.NAME
}

/** The network was used in a state that does not allow it (started twice, used after stop). */
export class NetworkStateError extends Error {
  static readonly NAME = 'NetworkStateError'
  override readonly name = NetworkStateError.NAME
}

/** A gossip message, request or response is larger than `maxMessageBytes`. */
export class MessageTooLargeError extends Error {
  static readonly NAME = 'MessageTooLargeError'
  override readonly name = MessageTooLargeError.NAME
  /** The limit that was exceeded. */
  readonly maxBytes: number
  /** The size, when known (a peer's oversized frame is refused from its length prefix). */
  readonly sizeBytes: number | undefined

  constructor (what: string, maxBytes: number, sizeBytes?: number) {
    super(sizeBytes == null
      ? `${what} exceeds the limit of ${maxBytes} bytes`
      : `${what} of ${sizeBytes} bytes exceeds the limit of ${maxBytes} bytes`)
    this.maxBytes = maxBytes
    this.sizeBytes = sizeBytes
  }
}

/** A request got no response within `requestTimeoutMs`. */
export class RequestTimeoutError extends Error {
  static readonly NAME = 'RequestTimeoutError'
  override readonly name = RequestTimeoutError.NAME
}

/**
 * A request failed for another reason than a timeout, an abort by the caller or
 * a size limit: the peer could not be dialled, reset the stream (its handler
 * threw), or closed it without answering. The original error is the `cause`.
 */
export class RequestFailedError extends Error {
  static readonly NAME = 'RequestFailedError'
  override readonly name = RequestFailedError.NAME
}

/** A dial did not produce a connection within `requestTimeoutMs`. */
export class DialTimeoutError extends Error {
  static readonly NAME = 'DialTimeoutError'
  override readonly name = DialTimeoutError.NAME
}
