/**
 * Anti-entropy: the sync exchange between two peers (docs/design.md
 * "Network"). Gossip is the fast path and is lossy; a sync heals what it lost,
 * and what a partition or a restart kept apart.
 *
 *   asker                                  answerer
 *   SYNC_REQUEST(state vector)   ──▶
 *                                ◀──       SYNC_REPLY(what the asker lacks, state vector)
 *   PUSH(what the answerer lacks) ──▶      (only when it lacks something)
 *                                ◀──       ACK
 *
 * A sync that brought news is passed on at once to every other connected peer
 * (epidemic pull, so a healed partition converges in a wave); an update that
 * arrived with a gap before it pulls the gap. Neither side serves its own
 * stream beyond what is durable (docs/design.md "Durability").
 *
 * Both sides name their epoch (docs/design.md "Compaction: epochs"): a state
 * vector or an update of one epoch's document means nothing in another's, so
 * peers in different epochs exchange nothing but that; a peer that learns of
 * a later epoch than its own is told ({@link SyncDeps.later}) and fetches it
 * whole ({@link SyncExchange.fetchEpoch}).
 */
import * as Y from 'yjs'
import { shortId } from '../crdt/index.ts'
import type { Clock, Network, PeerIdStr } from './types.ts'
import { decodeMessage, encodeMessage, MSG_ACK, MSG_ERROR, MSG_PUSH, MSG_SYNC_REPLY, MSG_SYNC_REQUEST, WireError, type WireMessage } from './wire.ts'

/** A peer is synced with at most this often by epidemic pull. */
const SPREAD_COOLDOWN_MS = 500
/**
 * Peers a sync that brought news passes it on to. Each that learns something
 * from it does the same, so news reaches a view of N in about log₃ N waves
 * at 3 exchanges per peer that learns it. Passing it to every connected peer
 * cost N − 1 exchanges per peer instead: at 50 agents on two cores, an
 * entry that arrived after its beacons (a gap pull) set off 49 exchanges on
 * every agent that pulled it, and the answers, late under that load, made
 * more gaps (docs/decisions.md "False deaths at N = 50 under load").
 */
export const SPREAD_FANOUT = 3
/** A gap is pulled from the same peer at most this often. */
const GAP_PULL_COOLDOWN_MS = 1000
/**
 * Periodic rounds that bring nothing back off, doubling up to this multiple of
 * the base interval (5 s → 60 s by default). Gossip carries news; what it
 * loses shows up as a gap (the writer's next update, or its beacon at a
 * position this peer does not hold), which pulls at once and resets the
 * backoff, as does a new connection.
 */
export const MAX_SYNC_BACKOFF = 12

/**
 * memberlist's `pushPullScale`: how much slower the work at rest that carries
 * O(N) bytes per round runs in a cluster of `members` — 1 up to 32 members,
 * then ⌈log₂ N − log₂ 32⌉ + 1 (2 up to 64, 3 up to 128, 6 up to 1,024). It
 * multiplies the anti-entropy's backoff cap (each quiet round sends a state
 * vector of every writer both ways) and the node record's refresh (every
 * peer receives every member's), so the bytes per node at rest grow as
 * N / log N, as Serf's push-pull does (docs/decisions.md "At rest, paced
 * like Serf's push-pull").
 */
export function pushPullScale (members: number): number {
  return members <= 32 ? 1 : Math.ceil(Math.log2(members) - 5) + 1
}

/**
 * The periodic rounds at rest, for base interval `baseMs` at `scale`: how
 * long after its last news a peer's rounds run at the backoff cap (the waits
 * of 2, 4, 8, … base intervals before the first capped one), and the capped
 * wait between rounds from then on. What a window that measures the rest
 * waits for, and how long it lasts.
 */
export function backoffSchedule (baseMs: number, scale: number): { quietMs: number, capMs: number } {
  const cap = MAX_SYNC_BACKOFF * scale
  let quietMs = 0
  for (let factor = 2; factor < cap; factor *= 2) quietMs += factor * baseMs
  return { quietMs, capMs: cap * baseMs }
}

/** A Yjs update with no entries and an empty delete set. */
export const EMPTY_UPDATE = new Uint8Array([0, 0])
/** The state vector of a document that holds nothing. */
export const EMPTY_STATE_VECTOR = new Uint8Array([0])

export interface SyncCounters {
  bytesIn: number
  bytesOut: number
  syncRounds: number
  syncFailures: number
  gapPulls: number
}

export interface SyncDeps {
  /** The current epoch's document (it is replaced when the ledger moves to a new epoch). */
  doc: () => Y.Doc
  epoch: () => number
  /** `peer` is in a later epoch than this one. */
  later: (peer: PeerIdStr, epoch: number) => void
  network: Pick<Network, 'request' | 'peers'>
  clock: Clock
  random: () => number
  log: (line: string) => void
  counters: SyncCounters
  /** Apply a peer's update whole or not at all (input checks included); false when refused. */
  apply: (from: PeerIdStr, update: Uint8Array) => boolean
  /** Changes to the decision maps so far: a sync that moved it brought news. */
  ledgerChanges: () => number
  /** Every local write so far is durable. */
  durable: () => Promise<void>
  /** Every local write, including ones made while waiting, is durable. */
  settled: () => Promise<void>
  /** Read-only after a failed durable append: serve and push nothing of our own. */
  readOnly: () => boolean
  stopped: () => boolean
  /** After each completed round (a joiner asks for admission again). */
  afterRound: () => void
  schedule: (fn: () => void, ms: number) => void
}

type SyncRequest = Extract<WireMessage, { type: typeof MSG_SYNC_REQUEST | typeof MSG_PUSH }>

export class SyncExchange {
  private readonly deps: SyncDeps
  private readonly syncing = new Set<PeerIdStr>()
  /** How much of our own stream each peer holds (its state vector's entry for our client id). */
  private readonly peerClocks = new Map<PeerIdStr, number>()
  private readonly lastSpreadAt = new Map<PeerIdStr, number>()
  private readonly lastGapPullAt = new Map<PeerIdStr, number>()
  /** Periodic rounds in a row that brought nothing, and when the next one is due. */
  private quietRounds = 0
  private nextRoundAtMs = -Infinity
  /** Set by an exchange that applied or pushed something. */
  private moved = false

  constructor (deps: SyncDeps) {
    this.deps = deps
  }

  /** A sync is running with some peer. */
  get busy (): boolean {
    return this.syncing.size > 0
  }

  /** Peers known to hold our own stream up to `clock` (for `--ack peers:K`). */
  peersHolding (clock: number): number {
    let n = 0
    for (const c of this.peerClocks.values()) if (c >= clock) n++
    return n
  }

  /** One exchange with `peer`: pull what we lack, push what it lacks. */
  async syncWith (peer: PeerIdStr): Promise<boolean> {
    const { network, counters } = this.deps
    if (this.deps.stopped() || this.syncing.has(peer)) return false
    this.syncing.add(peer)
    try {
      await this.deps.durable()
      const doc = this.deps.doc()
      const epoch = this.deps.epoch()
      const reply = await this.request(peer, Y.encodeStateVector(doc), epoch)
      if ((reply.epoch ?? 0) !== epoch || this.deps.doc() !== doc) {
        if ((reply.epoch ?? 0) > epoch) this.deps.later(peer, reply.epoch!)
        return false
      }
      // Only decision-map news is passed on: node records supersede themselves;
      // relaying them made every periodic sync at rest start a wave.
      const changesBefore = this.deps.ledgerChanges()
      if (reply.update.length > EMPTY_UPDATE.length) {
        if (!this.deps.apply(peer, reply.update)) return false
        this.moved = true
      }
      if (this.deps.ledgerChanges() !== changesBefore) this.spreadNews(peer)
      const theirs = Y.decodeStateVector(reply.stateVector)
      this.notePeerClock(peer, theirs)
      if (!this.deps.readOnly()) {
        await this.deps.settled()
        // (The ledger may have moved to a new epoch meanwhile: push nothing of it.)
        if (this.deps.doc() === doc && lacksEntries(doc, theirs)) {
          const push = encodeMessage({ type: MSG_PUSH, update: Y.encodeStateAsUpdate(doc, reply.stateVector) })
          counters.bytesOut += push.length
          this.moved = true
          const ack = decodeMessage(await network.request(peer, push))
          if (ack.type === MSG_ACK) this.peerClocks.set(peer, doc.store.clients.has(doc.clientID) ? Y.getState(doc.store, doc.clientID) : 0)
        }
      }
      counters.syncRounds++
      this.deps.afterRound()
      return true
    } catch (error) {
      counters.syncFailures++
      if (!this.deps.stopped()) this.deps.log(`sync with ${shortId(peer)} failed: ${(error as Error).message}`)
      return false
    } finally {
      this.syncing.delete(peer)
    }
  }

  /**
   * The periodic round, called every base interval `baseMs`: one exchange with
   * a connected peer at random — unless backing off, because the last rounds
   * brought nothing either way, up to {@link MAX_SYNC_BACKOFF} × `scale`
   * ({@link pushPullScale} of the view).
   */
  async periodic (baseMs: number, scale = 1): Promise<void> {
    const now = this.deps.clock.now()
    if (now < this.nextRoundAtMs) return
    const peers = this.deps.network.peers()
    if (peers.length === 0) return
    this.moved = false
    const ok = await this.syncWith(peers[Math.floor(this.deps.random() * peers.length)])
    this.quietRounds = ok && !this.moved ? Math.min(this.quietRounds + 1, 16) : 0
    const factor = Math.min(MAX_SYNC_BACKOFF * scale, 2 ** this.quietRounds)
    // Half a base interval early, so the round falls on the tick it is due at.
    this.nextRoundAtMs = this.deps.clock.now() + (factor - 0.5) * baseMs
  }

  /**
   * The whole document of `epoch` from `peer` (a state vector that holds
   * nothing, in that epoch): what a peer that missed the move to it starts
   * from. Undefined when the peer is not in that epoch (any more).
   */
  async fetchEpoch (peer: PeerIdStr, epoch: number): Promise<Uint8Array | undefined> {
    const reply = await this.request(peer, EMPTY_STATE_VECTOR, epoch)
    return reply.epoch === epoch ? reply.update : undefined
  }

  /** The first half of an exchange: our state vector in `epoch`, the peer's reply; throws {@link WireError} on a refusal or another message. */
  private async request (peer: PeerIdStr, stateVector: Uint8Array, epoch: number): Promise<Extract<WireMessage, { type: typeof MSG_SYNC_REPLY }>> {
    const { counters } = this.deps
    const request = encodeMessage({ type: MSG_SYNC_REQUEST, stateVector, epoch })
    counters.bytesOut += request.length
    const replyBytes = await this.deps.network.request(peer, request)
    counters.bytesIn += replyBytes.length
    const reply = decodeMessage(replyBytes)
    if (reply.type === MSG_ERROR) throw new WireError(`peer refused sync: ${reply.reason}`)
    if (reply.type !== MSG_SYNC_REPLY) throw new WireError(`unexpected reply type 0x${reply.type.toString(16)}`)
    return reply
  }

  /** The ledger moved to a new epoch's document: what peers held of the old one says nothing of the new one. */
  movedEpoch (): void {
    this.peerClocks.clear()
    this.wake()
  }

  /** Something says a sync may bring news (a new connection, a gap): periodic rounds go back to the base interval. */
  wake (): void {
    this.quietRounds = 0
    this.nextRoundAtMs = -Infinity
  }

  /**
   * The answering side: a state vector gets what the asker lacks (nothing when
   * it holds every entry we hold — most periodic syncs: an update would carry
   * the whole delete set anyway); a push is applied. Throws {@link WireError}
   * on a malformed state vector (the caller drops it as invalid input).
   */
  async answer (from: PeerIdStr, message: SyncRequest): Promise<Uint8Array> {
    const { counters } = this.deps
    await this.deps.settled()
    const doc = this.deps.doc()
    const epoch = this.deps.epoch()
    if (this.deps.readOnly()) return encodeMessage({ type: MSG_ERROR, reason: 'peer is read-only' })
    if (message.type === MSG_SYNC_REQUEST && (message.epoch ?? 0) !== epoch) {
      // Another epoch's state vector: answer with our epoch only.
      if ((message.epoch ?? 0) > epoch) this.deps.later(from, message.epoch!)
      return encodeMessage({ type: MSG_SYNC_REPLY, update: EMPTY_UPDATE, stateVector: EMPTY_STATE_VECTOR, epoch })
    }
    if (message.type === MSG_PUSH) {
      const changesBefore = this.deps.ledgerChanges()
      if (this.deps.apply(from, message.update) && this.deps.ledgerChanges() !== changesBefore) this.spreadNews(from)
      return encodeMessage({ type: MSG_ACK })
    }
    let theirs: Map<number, number>
    try {
      theirs = Y.decodeStateVector(message.stateVector)
    } catch {
      throw new WireError('malformed state vector')
    }
    const update = lacksEntries(doc, theirs) ? Y.encodeStateAsUpdate(doc, message.stateVector) : EMPTY_UPDATE
    this.notePeerClock(from, theirs)
    const reply = encodeMessage({ type: MSG_SYNC_REPLY, update, stateVector: Y.encodeStateVector(doc), epoch })
    counters.bytesOut += reply.length
    return reply
  }

  /**
   * Epidemic pull after a heal: a sync that brought news (a partition's worth
   * of writes, which gossip never carried across the cut) is passed on at once
   * by syncing with {@link SPREAD_FANOUT} other connected peers at random,
   * instead of waiting for the periodic round. Each peer that learns something
   * does the same; a sync that brings nothing triggers nothing, so the wave
   * stops by itself. A peer the wave missed still sees members' beacons name
   * positions it does not hold, and pulls them (agent/repair.ts). A per-peer
   * cooldown keeps a busy cluster from syncing in circles.
   */
  spreadNews (from: PeerIdStr): void {
    if (this.deps.stopped()) return
    const now = this.deps.clock.now()
    const eligible = this.deps.network.peers().filter(peer =>
      peer !== from && !this.syncing.has(peer) && now - (this.lastSpreadAt.get(peer) ?? 0) >= SPREAD_COOLDOWN_MS)
    for (let picked = 0; picked < SPREAD_FANOUT && eligible.length > 0; picked++) {
      const [peer] = eligible.splice(Math.floor(this.deps.random() * eligible.length), 1)
      this.lastSpreadAt.set(peer, now)
      this.deps.schedule(() => { void this.syncWith(peer) }, Math.floor(this.deps.random() * 20))
    }
  }

  /**
   * Sync at once with `from` when connected, else a connected peer at
   * random: the peer that sent an update we could not fully apply, or the one
   * agent/repair.ts picked for a gap a beacon showed (another peer, then the
   * member, in turn). Once per peer per second, and not while another sync is
   * running (after a heal or a restart those syncs bring the gap anyway; the
   * writer's next update shows it again if not); the periodic sync stays the
   * backstop.
   */
  pullGap (from: PeerIdStr): void {
    if (this.deps.stopped() || this.busy) return
    const peers = this.deps.network.peers()
    if (peers.length === 0) return
    const peer = peers.includes(from) ? from : peers[Math.floor(this.deps.random() * peers.length)]
    const now = this.deps.clock.now()
    if (now - (this.lastGapPullAt.get(peer) ?? -Infinity) < GAP_PULL_COOLDOWN_MS) return
    this.lastGapPullAt.set(peer, now)
    this.deps.counters.gapPulls++
    this.deps.schedule(() => { void this.syncWith(peer) }, 0)
  }

  private notePeerClock (peer: PeerIdStr, stateVector: Map<number, number>): void {
    const clock = stateVector.get(this.deps.doc().clientID) ?? 0
    this.peerClocks.set(peer, Math.max(clock, this.peerClocks.get(peer) ?? 0))
  }
}

/**
 * Whether a peer whose state vector is `theirs` lacks any entry of `doc`.
 * Deletes need no check of their own: in the ledger every delete is made by
 * the transaction that sets a new value on the same key (a node record
 * replacing the last one), and an update carries a transaction's entries and
 * deletes together; so a peer holding every entry holds every delete. (The one
 * other delete, the rollback of a write that could not be made durable, leaves
 * the agent read-only: it serves and pushes nothing after that.)
 */
export function lacksEntries (doc: Y.Doc, theirs: Map<number, number>): boolean {
  for (const client of doc.store.clients.keys()) {
    if (Y.getState(doc.store, client) > (theirs.get(client) ?? 0)) return true
  }
  return false
}
