/**
 * One node's stream of writes into the ledger. It owns the node's HLC and its
 * sequence number, so every write sorts after everything this node wrote or saw
 * before (the finality rule, docs/design.md "Finality", depends on that). Wall
 * time is passed into each call: `crdt/` never reads a clock.
 */
import type * as Y from 'yjs'
import { DuplicateReservationError } from './errors.ts'
import { MAP_EPOCH, SEED_KEY } from './epoch.ts'
import { HybridClock, isHlc, stampedBy, type HlcString } from './hlc.ts'
import {
  entryKey, ledgerMaps, MAP_EPOCHS, membershipKey, releaseKey, writeCapacity, writeHeartbeat, writeMembership, writeRelease, writeProposal, writeReservation,
  type Beacon, type EpochProposal, type EvictionAck, type EvictionProposal, type Heartbeat, type NodeId, type NodeState, type Placement, type Release,
  type Reservation, type ReservationId, type StreamPosition
} from './schema.ts'

export interface HeartbeatFigures {
  totalBytes: number
  floorBytes: number
  allocatableBytes: number
  availableBytes: number
  usedBytes: number
  labels?: Record<string, string>
  version?: string
  addrs?: string[]
  pressure?: Heartbeat['pressure']
  usage?: Heartbeat['usage']
}

export interface ReservationRequest {
  id: ReservationId
  bytes: number
  placement: Placement
  priority?: number
  labels?: Record<string, string>
  /** Least it may be shrunk to on capacity loss (docs/design.md "Bounds and the queue"). */
  minBytes?: number
  /** Wait in the log for room instead of being rejected. */
  queue?: boolean
  /** With `queue`: give up this long after its stamp. */
  queueTimeoutMs?: number
}

export class LedgerWriter {
  doc: Y.Doc
  readonly node: NodeId
  readonly clock: HybridClock
  /** Origin tag of every local transaction, so the network layer can tell local writes from received ones. */
  readonly origin: unknown
  private seq: number
  private state: NodeState = 'active'
  private released?: { doc: Y.Doc, entries: Set<string> }

  /**
   * Resume this node's stream from whatever the document already holds of it
   * (a restart from the data dir): the clock and the sequence number continue
   * past its latest write, so no stamp a peer may have seen is ever reused.
   */
  constructor (doc: Y.Doc, node: NodeId, origin: unknown = 'local') {
    this.doc = doc
    this.node = node
    this.origin = origin
    const { latestHlc, latestSeq } = scanOwnWrites(doc, node)
    this.clock = new HybridClock(node, latestHlc)
    this.seq = latestSeq
  }

  /**
   * Go on past a position of this node's stream that the document no longer
   * shows: its writes before an epoch's checkpoint left the document, the
   * checkpoint keeps how far they reached (crdt/epoch.ts). A position or a
   * stamp must never be issued twice.
   */
  resume (position: { hlc?: HlcString, seq: number }, wallMs: number): void {
    if (position.seq > this.seq) this.seq = position.seq
    if (position.hlc !== undefined) this.observe(position.hlc, wallMs)
  }

  /**
   * The entries (`<id>@<creator>`) the document holds a release without a stamp (`of`) of, kept up
   * to date as releases arrive: asked on every reservation in an epoch's
   * document, which holds thousands of releases between compactions, so not
   * a scan of them each time. (Keys are `<id>@<creator>@<by>`; an id and a
   * node id have no `@`. A rolled-back release stays in it: a refusal too
   * many, never one too few.)
   */
  private releasedEntries (): Set<string> {
    if (this.released?.doc !== this.doc) {
      const releases = ledgerMaps(this.doc).releases
      const entries = new Set<string>()
      // Only releases that name no stamp: one naming its entry's stamp ends nothing of a new entry with the key.
      const add = (key: string): void => {
        if ((releases.get(key) as { of?: unknown } | undefined)?.of === undefined) entries.add(key.slice(0, key.lastIndexOf('@')))
      }
      for (const key of releases.keys()) add(key)
      releases.observe(event => { for (const key of event.keysChanged) if (releases.has(key)) add(key) })
      this.released = { doc: this.doc, entries }
    }
    return this.released.entries
  }

  /** Highest sequence number written so far. */
  get lastSeq (): number {
    return this.seq
  }

  /** Merge a stamp seen in a peer's write so our next write sorts after it (a no-op when the clock is already past it). */
  observe (hlc: HlcString, wallMs: number): void {
    if (hlc > this.clock.peek()) this.clock.receive(hlc, wallMs)
  }

  /** Ask `sponsor` to admit this node with `allocatableBytes` (replaces an earlier request). */
  requestAdmission (sponsor: NodeId, allocatableBytes: number, wallMs: number): void {
    writeMembership(this.doc, { kind: 'request', node: this.node, sponsor, allocatableBytes, hlc: this.clock.now(wallMs), seq: ++this.seq }, this.origin)
  }

  /** Admit `node` (this node as its sponsor; itself only into an empty view) with its initial capacity. Returns the record's key. */
  admit (node: NodeId, allocatableBytes: number, wallMs: number): string {
    const record = { kind: 'admit' as const, node, by: this.node, allocatableBytes, hlc: this.clock.now(wallMs), seq: ++this.seq }
    writeMembership(this.doc, record, this.origin)
    return membershipKey(record)
  }

  /** Propose evicting `targets` from the view named by `view`; `positions` is what this node holds of their streams. Returns the proposal's key. */
  proposeEviction (targets: NodeId[], view: string, positions: Record<NodeId, StreamPosition>, wallMs: number, options: { force?: boolean, manual?: boolean } = {}): string {
    const record: EvictionProposal = { kind: 'propose', targets: [...targets].sort(), view, positions, by: this.node, hlc: this.clock.now(wallMs), seq: ++this.seq }
    if (options.force === true) record.force = true
    if (options.manual === true) record.manual = true
    writeMembership(this.doc, record, this.origin)
    return membershipKey(record)
  }

  /**
   * Acknowledge a proposal with the highest position this node holds of each
   * target's stream. The acknowledgement is caused by the proposal, so it is
   * stamped after it whatever this node's wall clock says (an acknowledgement
   * that sorted before its proposal would count for nothing).
   */
  ackEviction (proposal: { key: string, hlc: HlcString }, positions: Record<NodeId, StreamPosition>, wallMs: number): string {
    this.clock.receive(proposal.hlc, wallMs)
    const record: EvictionAck = { kind: 'ack', proposal: proposal.key, positions, by: this.node, hlc: this.clock.now(wallMs), seq: ++this.seq }
    writeMembership(this.doc, record, this.origin)
    return membershipKey(record)
  }

  /** A change of allocatable memory or state (join, shrink, grow, drain, leave). */
  capacity (allocatableBytes: number, state: NodeState, wallMs: number): void {
    this.state = state
    writeCapacity(this.doc, { node: this.node, allocatableBytes, state, hlc: this.clock.now(wallMs), seq: ++this.seq }, this.origin)
  }

  /**
   * A beacon for the clock channel (docs/design.md "Clock channel"): a fresh
   * stamp and this stream's position, written nowhere. Every later write
   * sorts after the stamp; the caller keeps that true across a restart.
   */
  beacon (wallMs: number, seen?: HlcString): Beacon {
    const beacon: Beacon = { hlc: this.clock.now(wallMs), seq: this.seq }
    if (seen !== undefined && isHlc(seen)) beacon.seen = seen
    return beacon
  }

  /** Write this node's beacon; `seen` is its completeness line (what it announces for finality). */
  heartbeat (figures: HeartbeatFigures, wallMs: number, seen?: HlcString): Heartbeat {
    const heartbeat: Heartbeat = {
      totalBytes: figures.totalBytes,
      floorBytes: figures.floorBytes,
      allocatableBytes: figures.allocatableBytes,
      availableBytes: figures.availableBytes,
      usedBytes: figures.usedBytes,
      hlc: this.clock.now(wallMs),
      seq: ++this.seq,
      state: this.state,
      labels: figures.labels ?? {},
      version: figures.version ?? ''
    }
    if (figures.addrs !== undefined) heartbeat.addrs = figures.addrs
    if (figures.pressure !== undefined) heartbeat.pressure = figures.pressure
    if (figures.usage !== undefined) heartbeat.usage = figures.usage
    if (seen !== undefined && isHlc(seen)) heartbeat.seen = seen
    writeHeartbeat(this.doc, this.node, heartbeat, this.origin)
    return heartbeat
  }

  /**
   * Write a reservation once. Entries are write-once (a rewrite would move a
   * decision another peer may already hold as final, and the releases that
   * name the old entry would end the new one), so writing the same id twice
   * from this node throws {@link DuplicateReservationError}, even once the
   * first has ended; another node may take the id then (docs/design.md
   * "Resolution"). In an epoch's document (crdt/epoch.ts) an entry that ended
   * before the checkpoint is gone, but a release naming it may have been
   * carried over. One that names the old entry's stamp (`of`) ends nothing
   * of a new one; one that does not (written by an agent before `of`) would
   * end a new entry under the same key, so that is refused the same way.
   */
  reserve (request: ReservationRequest, wallMs: number): Reservation {
    const maps = ledgerMaps(this.doc)
    const key = entryKey(request.id, this.node)
    if (maps.reservations.has(key)) throw new DuplicateReservationError(request.id, this.node)
    if (this.doc.getMap(MAP_EPOCH).has(SEED_KEY) && this.releasedEntries().has(key)) {
      throw new DuplicateReservationError(request.id, this.node, 'the ledger still holds a release of that entry (it ended before the last compaction), which would end a new one')
    }
    const reservation: Reservation = {
      id: request.id,
      bytes: request.bytes,
      placement: request.placement,
      priority: request.priority ?? 0,
      hlc: this.clock.now(wallMs),
      creator: this.node,
      seq: ++this.seq,
      labels: request.labels ?? {}
    }
    if (request.minBytes !== undefined) reservation.minBytes = request.minBytes
    if (request.queue === true) {
      reservation.queue = true
      if (request.queueTimeoutMs !== undefined) reservation.queueTimeoutMs = request.queueTimeoutMs
    }
    writeReservation(this.doc, reservation, this.origin)
    return reservation
  }

  /** Propose moving the ledger to `epoch`, seeded with the checkpoint at `cut` whose digest is `digest` (crdt/epoch.ts). */
  proposeEpoch (epoch: number, cut: HlcString, digest: string, wallMs: number): EpochProposal {
    const proposal: EpochProposal = { epoch, cut, digest, proposer: this.node, hlc: this.clock.now(wallMs), seq: ++this.seq }
    writeProposal(this.doc, proposal, this.origin)
    return proposal
  }

  /**
   * Write into `doc` from now on: the ledger moved to a new epoch's document
   * (crdt/epoch.ts). The clock and the stream position go on where they were.
   */
  moveTo (doc: Y.Doc): void {
    this.doc = doc
  }

  /**
   * Release the entry `<id>@<creator>`, naming its stamp; releasing it again
   * through this node is a no-op (the first release keeps its place in the
   * log). Returns false then.
   */
  release (id: ReservationId, creator: NodeId, wallMs: number): boolean {
    const maps = ledgerMaps(this.doc)
    if (maps.releases.has(releaseKey(id, creator, this.node))) return false
    const release: Release = { id, creator, hlc: this.clock.now(wallMs), by: this.node, seq: ++this.seq }
    // Name the entry by its stamp when the document holds it and it sorts
    // before this release (an entry stamped past this clock is not observed:
    // the agent keeps its clock within the skew bound).
    const entry = maps.reservations.get(entryKey(id, creator)) as { hlc?: unknown } | undefined
    if (isHlc(entry?.hlc) && entry.hlc < release.hlc) release.of = entry.hlc
    writeRelease(this.doc, release, this.origin)
    return true
  }
}

/** Latest stamp and sequence number of `node`'s own writes in the document. */
function scanOwnWrites (doc: Y.Doc, node: NodeId): { latestHlc?: HlcString, latestSeq: number } {
  let latestHlc: HlcString | undefined
  let latestSeq = 0
  const consider = (value: unknown, writer: unknown): void => {
    if (writer !== node || typeof value !== 'object' || value === null) return
    const v = value as { hlc?: unknown, seq?: unknown }
    if (typeof v.hlc === 'string' && stampedBy(v.hlc, node) && (latestHlc === undefined || v.hlc > latestHlc)) latestHlc = v.hlc
    if (typeof v.seq === 'number' && Number.isSafeInteger(v.seq) && v.seq > latestSeq) latestSeq = v.seq
  }
  const maps = ledgerMaps(doc)
  consider(maps.nodes.get(node), node)
  for (const v of maps.reservations.values()) consider(v, (v as { creator?: unknown } | null)?.creator)
  for (const v of maps.releases.values()) consider(v, (v as { by?: unknown } | null)?.by)
  for (const v of maps.capacity.values()) consider(v, (v as { node?: unknown } | null)?.node)
  for (const v of maps.membership.values()) {
    const r = v as { kind?: unknown, node?: unknown, by?: unknown } | null
    consider(v, r?.kind === 'request' ? r.node : r?.by)
  }
  for (const v of doc.getMap(MAP_EPOCHS).values()) consider(v, (v as { proposer?: unknown } | null)?.proposer)
  return { latestHlc, latestSeq }
}
