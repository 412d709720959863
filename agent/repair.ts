/**
 * Repair of the clock channel (docs/design.md "Clock channel"): what a peer
 * does when a beacon or part of a member's stream that gossip should have
 * brought has not come. Beacons are not ledger entries, so anti-entropy does
 * not carry them; a lost one would hold a verdict back until the member's
 * next beacon. Two pulls cover it:
 *
 * - **Beacons.** A verdict that has waited `pullAfterMs` for members' clocks
 *   or confirmations asks one peer — one of those members when connected —
 *   for the latest beacon it holds of each (`PULL` → `BEACONS`). At most once
 *   a second, longer while this node's local health says it is slow. A member
 *   a pull brought nothing newer of (no answer in time, or an answer with
 *   its beacon no newer than the one held) is asked about again only after
 *   twice the wait of the last time, up to {@link BEACON_PULL_BACKOFF_MAX_MS}:
 *   a member slow to beacon is most likely slow to answer too, every peer
 *   waiting for it asks it, and at 50 agents on two cores those pulls
 *   (0.5–0.7 per node per second in the load windows) were most of the
 *   requests starved members left unanswered. A beacon of it that counts
 *   ends the backoff.
 * - **Stream gaps.** A member's beacon names a position in its stream this
 *   peer does not hold, and gossip has not brought it for a second (a lost
 *   update, and nothing written after it to show the gap): pull the gap and
 *   end the anti-entropy backoff. Once a second per member, first from a
 *   connected peer at random — the writer sent its update to every member, so
 *   most hold it — then from the member itself, and so on in turn. Every
 *   peer that lags sees the same beacon within the same second: pulling from
 *   the member alone sent them all to it at once, and at 50 agents on two
 *   cores the member, starved, answered none of them within 10 s. The second
 *   grows with this node's local health multiplier: a node whose own event
 *   loop is late most likely holds the update unread in its own sockets.
 *
 * The agent owns the connections and the channel; this module decides when
 * and whom to ask.
 */
import { hlcWallMs, type Resolution } from '../crdt/index.ts'
import type { Clock, PeerIdStr } from './types.ts'
import { encodeMessage, MAX_PULL, MSG_BEACONS, MSG_PULL, type WireBeacon, type WireMessage } from './wire.ts'

/** A member's stream is pulled once a beacon has shown a gap this long. */
const BEHIND_PULL_AFTER_MS = 1000
/** Beacons are pulled at most this often. */
const BEACON_PULL_EVERY_MS = 1000
/** How long a beacon pull waits for its answer. */
const BEACON_PULL_TIMEOUT_MS = 2000
/** The longest wait before asking again about a member whose last pulls brought nothing newer of it. */
export const BEACON_PULL_BACKOFF_MAX_MS = 16_000

export interface RepairDeps {
  clock: Clock
  random: () => number
  self: PeerIdStr
  /** Connected peers. */
  peers: () => readonly PeerIdStr[]
  /** One request/response with `peer`; undefined on no answer in time. */
  request: (peer: PeerIdStr, bytes: Uint8Array, timeoutMs: number) => Promise<WireMessage | undefined>
  /** Pulled beacons go in as received ones do, from `from`; returns the members whose beacon counted (newer than the one held). */
  receive: (from: PeerIdStr, beacons: readonly WireBeacon[]) => ReadonlySet<PeerIdStr>
  /** Members whose beacons name a position of their stream this peer does not hold. */
  streamsBehind: () => Iterable<PeerIdStr>
  /** Pull what this peer lacks of a member's stream from `peer`, and end the anti-entropy backoff. */
  pullGap: (peer: PeerIdStr) => void
  /** The failure detector's local health multiplier (0 while this node keeps up). */
  health: () => number
  stopped: () => boolean
  counters: { beaconPulls: number }
}

export class ClockRepair {
  private lastPullAtMs = -Infinity
  /** Per waiting verdict (`id@stamp`), when this peer first saw it waiting. */
  private waitingSince = new Map<string, number>()
  /** Per member whose stream is behind: since when, and how many pulls it has had. */
  private readonly behind = new Map<PeerIdStr, { sinceMs: number, pulls: number }>()
  /** Per member the last pulls brought nothing newer of: how many in a row, and not asked about before `nextMs`. */
  private readonly fruitless = new Map<PeerIdStr, { pulls: number, nextMs: number }>()

  constructor (private readonly deps: RepairDeps, private readonly pullAfterMs: number) {}

  /** After each resolution: pull beacons for verdicts that waited too long. */
  afterResolution (res: Resolution): void {
    const now = this.deps.clock.now()
    if (res.pending === 0) this.fruitless.clear()
    if (res.pending === 0 || now - this.lastPullAtMs < BEACON_PULL_EVERY_MS * (1 + this.deps.health()) || this.deps.stopped()) return
    const wanted = new Set<PeerIdStr>()
    const waitedFor = new Set<PeerIdStr>()
    // How long a verdict waited is measured on this host's clock from when
    // this peer first saw it waiting, not from its stamp: a host whose clock
    // is behind the writer's would otherwise never pull.
    const waiting = new Map<string, number>()
    for (const v of res.all) {
      if (v.final || v.hlc === undefined || (v.waitingOn !== 'clocks' && v.waitingOn !== 'confirmations')) continue
      const key = `${v.id}@${v.hlc}`
      const since = this.waitingSince.get(key) ?? Math.min(now, hlcWallMs(v.hlc))
      waiting.set(key, since)
      for (const node of v.waitsFor) waitedFor.add(node)
      if (now - since < this.pullAfterMs || wanted.size >= MAX_PULL) continue
      for (const node of v.waitsFor) if (node !== this.deps.self && (this.fruitless.get(node)?.nextMs ?? -Infinity) <= now) wanted.add(node)
    }
    this.waitingSince = waiting
    for (const node of this.fruitless.keys()) if (!waitedFor.has(node)) this.fruitless.delete(node)
    if (wanted.size === 0) return
    const peers = this.deps.peers()
    if (peers.length === 0) return
    this.lastPullAtMs = now
    const direct = peers.filter(p => wanted.has(p))
    const pick = direct.length > 0 ? direct : peers
    const from = pick[Math.floor(this.deps.random() * pick.length)]
    const asked = [...wanted].slice(0, MAX_PULL)
    this.deps.counters.beaconPulls++
    void (async () => {
      const reply = await this.deps.request(from, encodeMessage({ type: MSG_PULL, nodes: asked }), BEACON_PULL_TIMEOUT_MS)
      if (this.deps.stopped()) return
      const fresh = reply?.type === MSG_BEACONS ? this.deps.receive(from, reply.beacons) : new Set<PeerIdStr>()
      this.backOff(asked, fresh)
    })()
  }

  /** After a pull about `asked`: forget the backoff of the members it brought a newer beacon of, double the others'. */
  private backOff (asked: readonly PeerIdStr[], fresh: ReadonlySet<PeerIdStr>): void {
    const now = this.deps.clock.now()
    for (const node of asked) {
      if (fresh.has(node)) {
        this.fruitless.delete(node)
        continue
      }
      const pulls = (this.fruitless.get(node)?.pulls ?? 0) + 1
      const waitMs = Math.min(BEACON_PULL_BACKOFF_MAX_MS, BEACON_PULL_EVERY_MS * 2 ** pulls)
      this.fruitless.set(node, { pulls, nextMs: now + waitMs })
    }
  }

  /** Every second: pull the streams that beacons have shown a gap in for a second (longer while this node is slow). */
  tick (): void {
    const now = this.deps.clock.now()
    const behind = new Set(this.deps.streamsBehind())
    for (const node of this.behind.keys()) if (!behind.has(node)) this.behind.delete(node)
    const waitMs = BEHIND_PULL_AFTER_MS * (1 + this.deps.health())
    for (const node of behind) {
      const gap = this.behind.get(node)
      if (gap === undefined) {
        this.behind.set(node, { sinceMs: now, pulls: 0 })
      } else if (now - gap.sinceMs >= waitMs) {
        gap.sinceMs = now
        this.deps.pullGap(gap.pulls++ % 2 === 0 ? this.anyPeerBut(node) ?? node : node)
      }
    }
  }

  private anyPeerBut (node: PeerIdStr): PeerIdStr | undefined {
    const others = this.deps.peers().filter(p => p !== node && p !== this.deps.self)
    return others.length > 0 ? others[Math.floor(this.deps.random() * others.length)] : undefined
  }
}
