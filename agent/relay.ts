/**
 * Relays of the clock channel (docs/design.md "Clock channel", "Relays"):
 * instead of sending its beacon to every member, a member sends it to one
 * relay, and the relay forwards, after a short batch window, one message
 * carrying the newest beacon it holds of each member (the maximum per member)
 * to every peer — a few bytes per beacon instead of a framed message per
 * member per beacon.
 *
 * - **Which relay.** The view's members ordered by a hash of the view's digest,
 *   a time slot and the member id: every member computes the same order, so
 *   the members' beacons meet at one relay, and the slot moves that load
 *   around the view. A member tries the first few in that order, skipping any
 *   it is not connected to, that its failure detector suspects, or whose last
 *   batch failed to come back; a member that is first in the order relays its
 *   own beacon.
 * - **The echo.** A relay's batch goes to every peer, the member that sent a
 *   beacon included, so that member sees its beacon come back. If it does not
 *   within {@link RELAY_DEFAULTS} `echoTimeoutMs`, the relay is set aside for a
 *   while and the beacon goes the old way (straight to every member, or by
 *   gossip) — a relay that died, hung or lost the message costs one timeout.
 * - **Trust.** A relay is trusted as a pull's answer is: it is a member (the
 *   cluster key keeps strangers out, and a batch from a non-member is
 *   dropped); each beacon in its batch names its member by tag and goes
 *   through the clock channel's checks, and counts only once the receiving
 *   peer holds that member's stream up to its position — a relay cannot make
 *   anything final that the member's own beacon would not.
 * - **The way out.** A relay connected to every other member of a view of at
 *   most {@link DIRECT_MEMBERS_MAX} sends its batch straight to each; else it
 *   publishes the batch on the gossip topic (one signed message for many
 *   beacons).
 */
import { createHash } from 'node:crypto'
import { shortId, type NodeId } from '../crdt/index.ts'
import { DIRECT_MEMBERS_MAX, type BeaconCounters, type BeaconDrop, type BeaconRoute } from './clock.ts'
import type { Liveness } from './liveness.ts'
import type { Clock, PeerIdStr, TimerHandle } from './types.ts'
import { encodeMessage, MSG_BEACON, MSG_BEACON_RELAY, MSG_RELAYED, relayedTag, type WireBeacon, type WireMessage } from './wire.ts'

export interface RelaySettings {
  /**
   * Longest a relay holds beacons before it forwards them in one message (on
   * the finality path: small). It forwards at once when it holds a beacon of
   * every member of the view.
   */
  windowMs: number
  /** How long a member waits for its beacon to come back in its relay's batch before it sends it directly. */
  echoTimeoutMs: number
  /** A relay whose batch did not come back is not asked again for this long. */
  setAsideMs: number
  /** The relay order changes every this often (spreads the relay's load over the view). */
  rotateMs: number
  /** How many of the first members in the relay order a member tries. */
  candidates: number
}

export const RELAY_DEFAULTS: RelaySettings = {
  // Members beacon 10–15 ms after they hold an entry (clock.ts), so on an
  // idle host one round's beacons reach the relay within about 10 ms of each
  // other and the window ends early, once every member's beacon is in. On a
  // loaded one they straggle: with 40 ms, 25 agent processes on 2 cores sent
  // 3.3 batches per change instead of 2, each to every peer and each a
  // resolution there; 100 ms brought it to 2.0, with less CPU and no slower
  // finality (docs/decisions.md "A longer relay window").
  windowMs: 100,
  // Two hops on a LAN are a few ms, but a loaded host may take hundreds (250
  // ms timed out a third of the echoes with 25 agent processes on 2 cores,
  // and every false timeout sends the beacon to every member again and moves
  // that member to another relay, splitting the batches). A relay whose
  // connection closed is skipped at once; this is for one that lost the
  // message or hung, which the beacon pull (1 s) covers as well.
  echoTimeoutMs: 1000,
  setAsideMs: 10_000,
  rotateMs: 60_000,
  candidates: 4
}

/** Beacons in one batch message: 100 × at most 36 bytes (10 typical) stays under the direct stream's 4 KiB frame. */
const MAX_BATCH = 100

export type RelayCounters = Pick<BeaconCounters, 'beaconsRelayed' | 'relayBatches' | 'relayBatchBeacons' | 'relayTimeouts'>

export interface BeaconRelaysDeps {
  self: PeerIdStr
  clock: Clock
  /** The current view: its sorted members and its digest. */
  view: () => { readonly members: readonly NodeId[], readonly digest: string }
  liveness: (node: PeerIdStr) => Liveness
  /** Peers with an open connection now. */
  peers: () => PeerIdStr[]
  /** Send to one connected peer (direct stream); false when it cannot go. Without it there are no relays. */
  send?: (peer: PeerIdStr, bytes: Uint8Array) => boolean
  publish: (bytes: Uint8Array) => Promise<void>
  /** The clock channel's checks: true when the beacon counted. */
  receive: (from: PeerIdStr, beacon: WireBeacon, options: { relayed?: boolean }) => boolean
  /** Count a beacon dropped before the clock channel could check it (its tag names no member). */
  drop: (from: PeerIdStr, why: BeaconDrop, reason: string) => void
  /** Send this node's own beacon the way it went before relays (every member, or gossip). */
  fallback: (bytes: Uint8Array) => void
  log: (line: string) => void
  counters: RelayCounters
}

export class BeaconRelays implements BeaconRoute {
  private readonly settings: RelaySettings
  /** What this node holds as a relay: the newest beacon of each member since its last batch. */
  private readonly pending = new Map<NodeId, WireBeacon>()
  private windowTimer?: TimerHandle
  /** This node's last beacon handed to another relay, until it comes back. */
  private awaiting?: { relay: PeerIdStr, wallMs: number, counter: number, bytes: Uint8Array, timer: TimerHandle }
  private readonly setAside = new Map<PeerIdStr, number>()
  private order?: { key: string, members: readonly NodeId[] }
  /** The view's members by their relayed tag; `null` where two members share one. */
  private tags?: { digest: string, byTag: Map<string, NodeId | null>, ambiguous: boolean }
  private readonly loggedSetAside = new Set<PeerIdStr>()
  private stopped = false

  constructor (private readonly deps: BeaconRelaysDeps, settings: Partial<RelaySettings> = {}) {
    this.settings = { ...RELAY_DEFAULTS, ...settings }
  }

  stop (): void {
    this.stopped = true
    if (this.windowTimer !== undefined) this.deps.clock.clearTimeout(this.windowTimer)
    if (this.awaiting !== undefined) this.deps.clock.clearTimeout(this.awaiting.timer)
    this.windowTimer = undefined
    this.awaiting = undefined
    this.pending.clear()
  }

  /** Would a beacon sent now go by a relay? (The clock channel then beacons with less jitter.) */
  active (): boolean {
    return this.choose() !== undefined
  }

  /**
   * Hand this node's own beacon to a relay — itself, when it is first in the
   * order. False when no relay can take it: the caller sends it as before.
   */
  route (beacon: WireBeacon): boolean {
    if (this.stopped) return false
    const relay = this.choose()
    if (relay === undefined) return false
    if (relay === this.deps.self) {
      this.hold(this.deps.self, beacon)
      this.deps.counters.beaconsRelayed++
      return true
    }
    const bytes = encodeMessage({ type: MSG_BEACON_RELAY, beacon })
    if (this.deps.send?.(relay, bytes) !== true) {
      this.putAside(relay, 'the message could not be sent')
      return this.route(beacon)
    }
    this.deps.counters.beaconsRelayed++
    if (this.awaiting !== undefined) this.deps.clock.clearTimeout(this.awaiting.timer)
    const timer = this.deps.clock.setTimeout(() => { this.echoMissed() }, this.settings.echoTimeoutMs)
    this.awaiting = { relay, wallMs: beacon.wallMs, counter: beacon.counter, bytes: encodeMessage({ type: MSG_BEACON, beacon }), timer }
    return true
  }

  /** A relay-me (a member's beacon to pass on) or a relay's batch, from `from`. */
  onMessage (from: PeerIdStr, message: Extract<WireMessage, { type: typeof MSG_BEACON_RELAY | typeof MSG_RELAYED }>): void {
    if (this.stopped) return
    if (message.type === MSG_BEACON_RELAY) {
      // The member's own beacon, checked as a direct one (its tag must name
      // the sender); only one that counted here is passed on.
      if (this.deps.receive(from, message.beacon, {}) && this.tagsOfView().get(hex(relayedTag(from))) === from) this.hold(from, { ...message.beacon, node: from, tag: undefined })
      return
    }
    const byTag = this.tagsOfView()
    for (const beacon of message.beacons) {
      const node = beacon.tag === undefined ? undefined : byTag.get(hex(beacon.tag))
      if (node === undefined) {
        this.deps.drop(from, 'stranger', `relayed beacon from ${shortId(from)} names no member of the current view`)
        continue
      }
      if (node === null) {
        this.deps.drop(from, 'invalid', `relayed beacon from ${shortId(from)} names two members of the current view (their tags collide)`)
        continue
      }
      if (node === this.deps.self) {
        this.echoed(from, beacon)
        continue
      }
      this.deps.receive(from, { ...beacon, node, tag: undefined }, { relayed: true })
    }
  }

  /** Keep the newer of a member's held beacon and `beacon` (the maximum per member), and open the batch window. */
  private hold (node: NodeId, beacon: WireBeacon): void {
    const held = this.pending.get(node)
    if (held === undefined || newer(beacon, held)) this.pending.set(node, { ...beacon, node })
    if (this.pending.size >= this.deps.view().members.length) {
      // Every member's beacon is in: waiting longer only delays finality.
      if (this.windowTimer !== undefined) this.deps.clock.clearTimeout(this.windowTimer)
      this.flush()
      return
    }
    if (this.windowTimer === undefined) this.windowTimer = this.deps.clock.setTimeout(() => { this.flush() }, this.settings.windowMs)
  }

  private flush (): void {
    this.windowTimer = undefined
    if (this.stopped || this.pending.size === 0) return
    const beacons = [...this.pending.values()]
    this.pending.clear()
    const others = this.deps.view().members.filter(id => id !== this.deps.self)
    const peers = this.deps.peers()
    const connected = new Set(peers)
    const direct = others.length <= DIRECT_MEMBERS_MAX && others.every(id => connected.has(id))
    for (let i = 0; i < beacons.length; i += MAX_BATCH) {
      const bytes = encodeMessage({ type: MSG_RELAYED, beacons: beacons.slice(i, i + MAX_BATCH) })
      this.deps.counters.relayBatches++
      // Every connected peer, members or not: a joiner not yet in this
      // node's view counts beacons too. A send that fails (a stream full or
      // closing) makes the batch go by gossip as well; a peer that gets both
      // drops the second copy as a replay.
      let sentToAll = direct
      if (direct) for (const peer of peers) sentToAll = this.deps.send?.(peer, bytes) === true && sentToAll
      if (!sentToAll) {
        this.deps.publish(bytes).catch((error: Error) => { this.deps.log(`relayed beacons not published: ${error.message}`) })
      }
    }
    this.deps.counters.relayBatchBeacons += beacons.length
  }

  private echoed (relay: PeerIdStr, beacon: WireBeacon): void {
    const waiting = this.awaiting
    if (waiting === undefined) return
    if (beacon.wallMs > waiting.wallMs || (beacon.wallMs === waiting.wallMs && beacon.counter >= waiting.counter)) {
      this.deps.clock.clearTimeout(waiting.timer)
      this.awaiting = undefined
      this.setAside.delete(relay)
    }
  }

  private echoMissed (): void {
    const waiting = this.awaiting
    this.awaiting = undefined
    if (waiting === undefined || this.stopped) return
    this.deps.counters.relayTimeouts++
    this.putAside(waiting.relay, `its batch did not bring this node's beacon back within ${this.settings.echoTimeoutMs} ms`)
    this.deps.fallback(waiting.bytes)
  }

  private putAside (relay: PeerIdStr, why: string): void {
    this.setAside.set(relay, this.deps.clock.now() + this.settings.setAsideMs)
    if (!this.loggedSetAside.has(relay)) {
      if (this.loggedSetAside.size >= 1000) this.loggedSetAside.clear()
      this.loggedSetAside.add(relay)
      this.deps.log(`beacon relay ${shortId(relay)} set aside for ${this.settings.setAsideMs / 1000} s: ${why} (beacons go to the next relay, or straight to every member)`)
    }
  }

  /** The first usable relay of the first `candidates` in the order, or undefined. */
  private choose (): PeerIdStr | undefined {
    if (this.deps.send === undefined) return undefined
    // Two members whose relayed tags collide could not be told apart in a
    // batch: such a view does not relay (every member sees the same).
    this.tagsOfView()
    if (this.tags?.ambiguous === true) return undefined
    const order = this.relayOrder()
    if (order.length < 2) return undefined
    const now = this.deps.clock.now()
    let connected: Set<PeerIdStr> | undefined
    for (const candidate of order.slice(0, this.settings.candidates)) {
      if (candidate === this.deps.self) return candidate
      connected ??= new Set(this.deps.peers())
      if (!connected.has(candidate) || this.deps.liveness(candidate) !== 'alive') continue
      if ((this.setAside.get(candidate) ?? 0) > now) continue
      return candidate
    }
    return undefined
  }

  /** The view's members by a hash of (view digest, time slot, member): the same order on every member. */
  private relayOrder (): readonly NodeId[] {
    const view = this.deps.view()
    const slot = Math.floor(this.deps.clock.now() / this.settings.rotateMs)
    const key = `${view.digest}|${slot}`
    if (this.order?.key !== key) this.order = { key, members: relayOrder(view.members, key) }
    return this.order.members
  }

  private tagsOfView (): Map<string, NodeId | null> {
    const view = this.deps.view()
    if (this.tags?.digest !== view.digest) {
      const byTag = new Map<string, NodeId | null>()
      let ambiguous = false
      for (const id of view.members) {
        const tag = hex(relayedTag(id))
        ambiguous ||= byTag.has(tag)
        byTag.set(tag, byTag.has(tag) ? null : id)
      }
      this.tags = { digest: view.digest, byTag, ambiguous }
    }
    return this.tags.byTag
  }
}

/** Members ordered by SHA-256 of `key` and the member id: a pure function, so every member agrees. */
export function relayOrder (members: readonly NodeId[], key: string): NodeId[] {
  const rank = new Map(members.map(id => [id, createHash('sha256').update(key).update('\0').update(id).digest('hex')]))
  return [...members].sort((a, b) => rank.get(a)! < rank.get(b)! ? -1 : rank.get(a)! > rank.get(b)! ? 1 : 0)
}

/** Is `a` stamped after `b` (the same member's beacons)? */
function newer (a: WireBeacon, b: WireBeacon): boolean {
  return a.wallMs > b.wallMs || (a.wallMs === b.wallMs && a.counter > b.counter)
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}
