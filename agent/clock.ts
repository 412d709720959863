/**
 * The clock channel (docs/design.md "Clock channel"): beacons beside the
 * ledger, not in it. A beacon is a member's clock stamp, its stream position
 * and its completeness line; a peer that holds the member's stream up to that
 * position knows it holds everything the member will ever stamp at or below
 * the stamp, and the line is the member's announcement for finality.
 *
 * A member beacons
 * - on demand, a jittered 20–60 ms after it holds an entry its last beacon
 *   did not pass, or when its line moved past an entry its last announcement
 *   did not cover — so a write is final about two mesh round trips after it is
 *   written;
 * - on a slow timer, so its peers hear it while nothing is written (liveness).
 *
 * A beacon goes to a relay when one can take it (agent/relay.ts: the relay
 * forwards one batch of every member's newest beacon to every peer), else
 * straight to every member, else on the gossip topic.
 *
 * Incoming beacons are checked before they count: named by the member that
 * published them (else `forged`), from a member of the current view (else
 * `stranger`), well formed with a line no later than their own stamp (else
 * `invalid`), and newer than the member's last one (else `replayed`). None
 * of them can make a decision final early: a beacon counts only once this
 * peer holds the member's stream up to its position, and what it promises —
 * no write of the member at or below its stamp — holds however far ahead that
 * stamp is (a member's clock never goes back). A stamp far ahead of this
 * host's clock is counted (`beaconsAhead`) and feeds the clock-offset alert.
 */
import { decodeHlc, encodeHlc, hlcWallMs, shortId, stampInRange, type Beacon, type HlcString, type NodeId, type Resolution } from '../crdt/index.ts'
import type { Clock, PeerIdStr, TimerHandle } from './types.ts'
import { encodeMessage, MSG_BEACON, tagNames, type WireBeacon } from './wire.ts'

/** Why an incoming beacon did not count. */
export type BeaconDrop = 'forged' | 'stranger' | 'invalid' | 'replayed'

/** The channel's counters (flat, so they sit among the agent's metrics). */
export interface BeaconCounters {
  /** Beacons this node published: all, and those sent because an entry waited (not on the timer). */
  beaconsSent: number
  beaconsOnDemand: number
  /** Sent straight to every member (not published on the gossip topic). */
  beaconsDirect: number
  /** Handed to a relay (agent/relay.ts) instead. */
  beaconsRelayed: number
  /** As a relay: batches sent, and the beacons they carried. */
  relayBatches: number
  relayBatchBeacons: number
  /** This node's beacon did not come back in its relay's batch in time: sent the old way. */
  relayTimeouts: number
  /** Beacons accepted from members. */
  beaconsAccepted: number
  /** Accepted, stamped further ahead of this host's clock than `maxAheadMs` (a clock offset; alerted). */
  beaconsAhead: number
  /** Dropped, by reason. */
  beaconsForged: number
  beaconsStranger: number
  beaconsInvalid: number
  beaconsReplayed: number
}

export function emptyBeaconCounters (): BeaconCounters {
  return { beaconsSent: 0, beaconsOnDemand: 0, beaconsDirect: 0, beaconsRelayed: 0, relayBatches: 0, relayBatchBeacons: 0, relayTimeouts: 0, beaconsAccepted: 0, beaconsAhead: 0, beaconsForged: 0, beaconsStranger: 0, beaconsInvalid: 0, beaconsReplayed: 0 }
}

const DROP_COUNTER = { forged: 'beaconsForged', stranger: 'beaconsStranger', invalid: 'beaconsInvalid', replayed: 'beaconsReplayed' } as const

/** A way to send this node's beacon through a relay (agent/relay.ts). */
export interface BeaconRoute {
  /** Hand the beacon to a relay; false when none can take it (then it goes directly or by gossip). */
  route: (beacon: WireBeacon) => boolean
  /** Would a beacon go by a relay now? */
  active: () => boolean
}

export interface ClockChannelDeps {
  self: PeerIdStr
  clock: Clock
  random: () => number
  /** Stamp a beacon: ticks this node's clock, so every later write sorts after it. */
  stamp: (wallMs: number, seen?: HlcString) => Beacon
  /** Make sure a restart never stamps at or below `wallMs` (a durable clock lease); resolves once it holds. */
  lease: (wallMs: number) => Promise<void>
  publish: (bytes: Uint8Array) => Promise<void>
  /** Send to every member directly when connected to each; false when it did not (then `publish`). */
  direct?: (bytes: Uint8Array) => boolean
  /** Tried first: a relay that batches every member's beacon into one message per peer. */
  relay?: BeaconRoute
  /** The current resolution, computed with this channel's beacons. */
  resolution: () => Resolution
  /** This node may beacon now: a member, writing, with a peer to tell. */
  canBeacon: () => boolean
  /** How far this peer holds `node`'s stream (its highest sequence number). */
  heldSeq: (node: NodeId) => number
  /** A beacon was accepted or sent: finality may have moved. */
  changed: () => void
  /** `node` was heard now, its clock at `hlc` (liveness and clock offsets). */
  heard: (node: PeerIdStr, hlc: HlcString) => void
  log: (line: string) => void
  /** Where to count (the agent's metrics). */
  counters: BeaconCounters
}

export interface ClockChannelSettings {
  /** Batch delay of an on-demand beacon (jittered to 1–3×). */
  delayMs: number
  /** Slow beacon: at least this often while joined. */
  intervalMs: number
  /** A beacon stamped further ahead of this host's clock than this is counted as ahead. */
  maxAheadMs: number
}

/**
 * Largest view whose members beacon each other directly (one stream message
 * per member, the agent connected to all of them); larger views publish their
 * beacons on the gossip topic.
 */
export const DIRECT_MEMBERS_MAX = 64

/** Beacons held per member while its newest are not covered yet. */
const MAX_HELD = 8

export class ClockChannel {
  /**
   * Per member, its beacons in stream order (position and stamp both rising),
   * newest last. A beacon counts here only once this peer holds the member's
   * stream up to its position, so the newest one may not count yet; the older
   * ones keep counting meanwhile, or a final verdict would turn tentative.
   */
  private readonly coverage = new Map<NodeId, Beacon[]>()
  /** Per member, the beacons whose lines count as its announcements: higher lines at higher positions. */
  private readonly announcing = new Map<NodeId, Beacon[]>()
  /** What `resolve()` gets: the announcing beacons, then the coverage list. */
  private readonly held = new Map<NodeId, Beacon[]>()
  private lastBeaconHlc = ''
  private lastAnnouncedSeen = ''
  private lastSentAtMs = -Infinity
  private timer?: TimerHandle
  private sending = false
  private again = false
  private stopped = false
  private readonly loggedDrops = new Set<string>()

  private readonly counters: BeaconCounters

  constructor (private readonly deps: ClockChannelDeps, private readonly settings: ClockChannelSettings) {
    this.counters = deps.counters
  }

  /** The beacons held of each member, for `resolve()`. */
  get beacons (): ReadonlyMap<NodeId, readonly Beacon[]> {
    return this.held
  }

  stop (): void {
    this.stopped = true
    if (this.timer !== undefined) this.deps.clock.clearTimeout(this.timer)
    this.timer = undefined
  }

  /**
   * A beacon from `from`: published or sent by its member, or passed on by a
   * member — in a pull's answer (`pulled`) or a relay's batch (`relayed`).
   */
  receive (from: PeerIdStr, wire: WireBeacon, isMember: (node: NodeId) => boolean, options: { pulled?: boolean, relayed?: boolean } = {}): boolean {
    // A pulled or relayed beacon names whom it is of (the member, resolved
    // from its tag by the relay code); a published one names its member by a
    // tag, which must be its author's (wire.ts nodeTag).
    if (options.pulled !== true && options.relayed !== true) {
      if (!tagNames(wire.tag, from)) return this.drop(from, 'forged', `beacon published by ${shortId(from)} names another member`)
      wire = { ...wire, node: from }
    }
    if (!isMember(from) || !isMember(wire.node)) return this.drop(from, 'stranger', `beacon of ${shortId(wire.node)} from ${shortId(from)}: not a member of the current view`)
    if (!stampInRange(wire.wallMs, wire.counter) || !Number.isSafeInteger(wire.seq) || wire.seq < 0) {
      return this.drop(from, 'invalid', `beacon from ${shortId(from)} has a stamp or position out of range (wall ${wire.wallMs}, counter ${wire.counter}, seq ${wire.seq})`)
    }
    const node = wire.node
    const stamped = encodeHlc({ wallMs: wire.wallMs, counter: wire.counter, node })
    if (wire.seen !== undefined && wire.seen > stamped) return this.drop(from, 'invalid', `beacon from ${shortId(from)} announces a line (${wire.seen}) past its own clock (${stamped})`)
    const previous = this.newest(node)
    // (The same beacon again is a replay too — also when it came both directly
    // and by gossip, after a direct send to another member failed.)
    if (previous !== undefined && (stamped <= previous.hlc || wire.seq < previous.seq)) {
      // A pull's answer may hold what gossip already brought: not a replay.
      if (options.pulled === true) return false
      return this.drop(from, 'replayed', `beacon from ${shortId(from)} at ${stamped} (position ${wire.seq}) is not newer than its last one (${previous.hlc}, position ${previous.seq})`)
    }
    this.deps.heard(node, stamped)
    // A stamp far ahead of this host's clock is still the member's promise
    // (its clock never goes back): it counts. It is counted here, and the
    // offset sample raises ClockSkew on whichever side is off.
    if (wire.wallMs > this.deps.clock.now() + this.settings.maxAheadMs) this.counters.beaconsAhead++
    const beacon: Beacon = wire.seen === undefined ? { hlc: stamped, seq: wire.seq } : { hlc: stamped, seq: wire.seq, seen: wire.seen }
    this.keep(node, beacon)
    this.counters.beaconsAccepted++
    this.deps.changed()
    return true
  }

  /**
   * Members whose newest beacon is at a position past what this peer holds
   * of their stream: a sync with them would bring entries (a gossip message
   * was lost, or is still on its way — beacons often arrive first).
   */
  streamsBehind (): NodeId[] {
    const behind: NodeId[] = []
    for (const [node, list] of this.coverage) {
      if (node === this.deps.self) continue
      const newest = list[list.length - 1]
      if (newest !== undefined && newest.seq > this.deps.heldSeq(node)) behind.push(node)
    }
    return behind
  }

  private newest (node: NodeId): Beacon | undefined {
    const list = this.coverage.get(node)
    return list?.[list.length - 1]
  }

  /** A beacon message not through a relay: straight to every member when connected to each, else on the gossip topic. */
  async sendUnrelayed (bytes: Uint8Array): Promise<void> {
    if (this.deps.direct?.(bytes) === true) this.counters.beaconsDirect++
    else await this.deps.publish(bytes)
  }

  /** Send a beacon now (a refutation of a suspicion of this node). */
  sendNow (): void {
    if (this.stopped || !this.deps.canBeacon()) return
    if (this.sending) {
      this.again = true
      return
    }
    void this.send(false)
  }

  /**
   * Answer a pull: a fresh beacon of this node if asked, and the newest held
   * of each other node asked for (relayed: the asker trusts this member to
   * pass them on as it got them).
   */
  async answerPull (nodes: readonly NodeId[]): Promise<WireBeacon[]> {
    const out: WireBeacon[] = []
    for (const node of new Set(nodes)) {
      if (node === this.deps.self) {
        if (!this.deps.canBeacon()) continue
        const beacon = this.ownBeacon()
        await this.deps.lease(hlcWallMs(beacon.hlc))
        out.push(toWire(this.deps.self, beacon))
        continue
      }
      const beacon = this.newest(node)
      if (beacon !== undefined) out.push(toWire(node, beacon))
    }
    return out
  }

  /**
   * Forget nodes that were never members. A member that left or was evicted
   * keeps its beacons: what it announced while a member still counts for the
   * views it was in (a final verdict must not turn tentative because its
   * confirmer left).
   */
  prune (wasMember: (node: NodeId) => boolean): void {
    for (const node of this.held.keys()) {
      if (wasMember(node)) continue
      this.held.delete(node)
      this.coverage.delete(node)
      this.announcing.delete(node)
    }
  }

  /**
   * Add a member's newest beacon. Older beacons are kept only while they may
   * be the newest one this peer's copy of the stream covers: those at or
   * below a covered one go, and at most {@link MAX_HELD} stay (dropping one
   * can only make this peer wait longer, never decide early). The beacons
   * that carried the member's rising lines are kept too, as they came: an
   * announcement stays true, and whether it counts (the member's standing at
   * that stamp and position: a cut makes every beacon past it not count) is
   * for `resolve()` to say.
   */
  private keep (node: NodeId, beacon: Beacon): void {
    const list = (this.coverage.get(node) ?? []).slice()
    while (list.length > 0 && list[list.length - 1].seq >= beacon.seq) list.pop()
    list.push(beacon)
    const streamAt = node === this.deps.self ? Infinity : this.deps.heldSeq(node)
    let covered = -1
    for (let i = 0; i < list.length; i++) if (list[i].seq <= streamAt) covered = i
    if (covered > 0) list.splice(0, covered)
    if (list.length > MAX_HELD) list.splice(1, list.length - MAX_HELD)
    this.coverage.set(node, list)
    // Announcements: the frontier of (position, line) — a later beacon
    // replaces an earlier one only with a higher line at the same position,
    // because a cut may make every beacon past some position not count.
    const frontier = (this.announcing.get(node) ?? []).slice()
    const last = frontier[frontier.length - 1]
    if (beacon.seen !== undefined && (last?.seen === undefined || beacon.seen > last.seen)) {
      if (last !== undefined && last.seq === beacon.seq) frontier.pop()
      frontier.push(beacon)
      if (frontier.length > MAX_HELD) frontier.splice(0, frontier.length - MAX_HELD)
      this.announcing.set(node, frontier)
    }
    this.held.set(node, [...frontier.filter(b => !list.includes(b)), ...list])
  }

  /**
   * Called every second: the slow beacon when its interval passed; and the
   * on-demand check, for what becomes due by time alone (an open view
   * change whose deadline passed) rather than by a new entry.
   */
  tick (): void {
    if (this.stopped || this.timer !== undefined) return
    if (this.settings.intervalMs > 0 && this.deps.clock.now() - this.lastSentAtMs >= this.settings.intervalMs && this.deps.canBeacon()) {
      void this.send(false)
      return
    }
    this.maybeBeacon(this.deps.resolution())
  }

  /**
   * On demand (docs/design.md "Finality"): an entry exists that this node's
   * last beacon did not pass, or its line moved past an entry its last
   * announcement did not cover. Jittered, and checked again when it fires: a
   * member whose beacon is no longer needed by then stays quiet.
   */
  maybeBeacon (res: Resolution): void {
    if (this.stopped || this.timer !== undefined || !this.due(res)) return
    // Jittered to 1–3× the delay. By a relay, 0.5–0.75× instead: the relay
    // batches too (agent/relay.ts), and one round's beacons should reach it
    // close together, within one batch window.
    const [base, jitter] = this.deps.relay?.active() === true ? [0.5, 0.25] : [1, 2]
    const delay = Math.round(this.settings.delayMs * (base + jitter * this.deps.random()))
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = undefined
      if (this.stopped || !this.due(this.deps.resolution())) return
      void this.send(true)
    }, delay)
  }

  /**
   * An entry still waiting on clocks that this node's last beacon did not
   * pass; or an entry its completeness line now covers that its last
   * announcement did not — final here or not, since the other peers count this
   * node's announcement, not its own view.
   */
  due (res: Resolution): boolean {
    if (!this.deps.canBeacon()) return false
    const now = this.deps.clock.now()
    const latest = res.latestHlc
    const last = this.lastBeaconHlc
    if (res.pending > 0 && latest !== undefined && latest > last && hlcWallMs(latest) <= now + this.settings.maxAheadMs) {
      for (const v of res.verdicts.values()) if (!v.final && v.hlc !== undefined && v.hlc > last && v.waitingOn === 'clocks') return true
      for (const v of res.conflicts) if (!v.final && v.hlc !== undefined && v.hlc > last && v.waitingOn === 'clocks') return true
      if (res.proposals.some(p => p.status === 'open' && p.hlc > last)) return true
    }
    // An open view change past its deadline ends, for an acknowledger, once
    // it holds every other member's clock past the deadline ("Membership":
    // proposal expiry); nothing may be written meanwhile, so each member
    // beacons once after the deadline.
    for (const p of res.proposals) {
      if (p.status === 'open' && p.deadline > last && hlcWallMs(p.deadline) < now) return true
    }
    const seen = res.seen
    const announced = this.lastAnnouncedSeen
    if (seen !== undefined && seen > announced) {
      const covers = (hlc: string | undefined): boolean => hlc !== undefined && hlc > announced && hlc <= seen
      for (const v of res.verdicts.values()) if (covers(v.hlc)) return true
      for (const v of res.conflicts) if (covers(v.hlc)) return true
    }
    return false
  }

  /**
   * A fresh beacon of this node, kept as its own announcement; the caller
   * holds the clock lease past it before it leaves. Only a published one
   * counts as telling everyone (`send`): a pull's answer reaches one peer.
   */
  private ownBeacon (): Beacon {
    const beacon = this.deps.stamp(this.deps.clock.now(), this.deps.resolution().seen)
    this.keep(this.deps.self, beacon)
    this.deps.changed()
    return beacon
  }

  private async send (onDemand: boolean): Promise<void> {
    if (this.sending) return
    this.sending = true
    try {
      const beacon = this.ownBeacon()
      this.lastSentAtMs = this.deps.clock.now()
      this.lastBeaconHlc = beacon.hlc
      if (beacon.seen !== undefined) this.lastAnnouncedSeen = beacon.seen
      await this.deps.lease(hlcWallMs(beacon.hlc))
      if (this.stopped) return
      const wire = toWire(this.deps.self, beacon)
      this.counters.beaconsSent++
      if (onDemand) this.counters.beaconsOnDemand++
      if (this.deps.relay?.route(wire) !== true) await this.sendUnrelayed(encodeMessage({ type: MSG_BEACON, beacon: wire }))
    } catch (error) {
      this.deps.log(`beacon not sent: ${(error as Error).message}`)
    } finally {
      this.sending = false
    }
    if (this.again && !this.stopped) {
      this.again = false
      void this.send(false)
      return
    }
    // Something may have become due while this one was on its way.
    if (!this.stopped) this.maybeBeacon(this.deps.resolution())
  }

  /** Count a dropped beacon, and say so once per peer and reason. */
  drop (from: PeerIdStr, why: BeaconDrop, reason: string): false {
    this.counters[DROP_COUNTER[why]]++
    const key = `${why}|${from}`
    if (!this.loggedDrops.has(key)) {
      if (this.loggedDrops.size >= 1000) this.loggedDrops.clear()
      this.loggedDrops.add(key)
      this.deps.log(`dropped ${why} beacon: ${reason}`)
    }
    return false
  }
}

function toWire (node: NodeId, beacon: Beacon): WireBeacon {
  const { wallMs, counter } = decodeHlc(beacon.hlc)
  const wire: WireBeacon = { node, wallMs, counter, seq: beacon.seq }
  if (beacon.seen !== undefined) wire.seen = beacon.seen
  return wire
}
