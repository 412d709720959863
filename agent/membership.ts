/**
 * Membership duties of an agent (docs/design.md "Membership as views",
 * "Agent"): asking to be admitted, admitting as a sponsor, acknowledging
 * eviction proposals, and proposing the eviction of members the failure
 * detector has suspected long enough. Every decision about who is a member is
 * `resolve()`'s; this writes the records that feed it, when and as the rules
 * say.
 */
import { formatSize, hlcWallMs, shortId, type LedgerWriter, type Resolution, type StreamPosition } from '../crdt/index.ts'
import { formatMs } from './alerts.ts'
import type { Liveness } from './liveness.ts'
import type { Clock, PeerIdStr } from './types.ts'

/** A joiner asks its sponsor again after this long without an admission (another sponsor after four times that). */
export const ADMISSION_RETRY_MS = 3000

export interface MembershipDeps {
  self: PeerIdStr
  cluster: string
  clock: Clock
  random: () => number
  log: (line: string) => void
  writer: () => LedgerWriter
  resolution: () => Resolution
  /** Make what was just written durable (and published). */
  durable: () => Promise<void>
  /** This node may write now (not read-only, clock not behind, lease passed). */
  writable: () => boolean
  joined: () => boolean
  stopped: () => boolean
  /** It left on purpose: it does not ask to come back. */
  leftOnPurpose: () => boolean
  /** Started with bootstrap peers: it never founds a cluster. */
  expectsPeers: boolean
  connected: () => PeerIdStr[]
  /** This node has compared its clock with `peer`'s stamps. */
  clockSampled: (peer: PeerIdStr) => boolean
  allocatableBytes: () => number
  liveness: (node: PeerIdStr) => Liveness
  /** How long the failure detector has suspected `node` (0 while alive). */
  silentForMs: (node: PeerIdStr) => number
  evictAfterMs: number
  maxClockSkewMs: number
  counters: { admissions: number, evictionProposals: number, evictionAcks: number }
}

export class MembershipDuties {
  private lastRequestAt = -Infinity
  private lastRequestSponsor?: PeerIdStr
  /** Admission requests this node admitted as a sponsor (`<node>/<seq>`). */
  private readonly admitted = new Set<string>()
  /** Joiners refused for their clock (logged once each). */
  private readonly refusedJoiners = new Set<PeerIdStr>()
  /** Proposals this node acknowledged (or declined to, logged once). */
  private readonly acknowledged = new Set<string>()

  constructor (private readonly deps: MembershipDeps) {}

  /** No longer a member (evicted, or it left): ask again at once, not after the retry delay. */
  askAgainNow (): void {
    this.lastRequestAt = -Infinity
  }

  /**
   * Not a member: ask a connected member to sponsor this node (docs/design.md
   * "Admission"). Asked again after `ADMISSION_RETRY_MS`, or at once through
   * another sponsor when the first is no longer connected. Never while this
   * host's clock is behind the cluster's: the request would be stamped in the
   * past, and a member with a clock far behind would hold finality back.
   */
  requestAdmission (res: Resolution): void {
    if (this.deps.joined() || this.deps.stopped() || this.deps.leftOnPurpose() || !this.deps.writable()) return
    if (res.view.epoch === 0 && !this.deps.expectsPeers) return
    const connected = this.deps.connected()
    const sponsors = connected.filter(p => res.members.includes(p)).sort()
    if (sponsors.length === 0) return
    // Not before this host's clock has been compared with a member's stamp:
    // a joiner whose clock is far behind must not become a member.
    if (!sponsors.some(p => this.deps.clockSampled(p))) return
    const now = this.deps.clock.now()
    const sameSponsor = this.lastRequestSponsor !== undefined && sponsors.includes(this.lastRequestSponsor)
    if (sameSponsor && now - this.lastRequestAt < ADMISSION_RETRY_MS) return
    const sponsor = sameSponsor && now - this.lastRequestAt < 4 * ADMISSION_RETRY_MS ? this.lastRequestSponsor! : sponsors[Math.floor(this.deps.random() * sponsors.length)]
    this.lastRequestAt = now
    this.lastRequestSponsor = sponsor
    this.deps.writer().requestAdmission(sponsor, this.deps.allocatableBytes(), now)
    this.deps.log(`asked ${shortId(sponsor)} to admit this node into cluster '${this.deps.cluster}'`)
    void this.deps.durable().catch(() => {})
  }

  /** As a sponsor: admit every node that asked this one (once per request), with the capacity it asked for. */
  admitRequests (res: Resolution): void {
    if (!this.deps.joined() || !this.deps.writable()) return
    const now = this.deps.clock.now()
    for (const request of res.requests) {
      if (request.sponsor !== this.deps.self) continue
      const key = `${request.node}/${request.seq}`
      if (this.admitted.has(key)) continue
      this.admitted.add(key)
      // A request stamped far off this host's clock comes from a host whose
      // clock is wrong (or a stale request): admitted, it would hold finality
      // back (behind) or have its writes sort minutes late (ahead).
      const offset = hlcWallMs(request.hlc) - now
      if (Math.abs(offset) > this.deps.maxClockSkewMs) {
        if (!this.refusedJoiners.has(request.node)) {
          this.refusedJoiners.add(request.node)
          this.deps.log(`not admitting ${request.node}: its request is stamped ${formatMs(Math.abs(offset))} ${offset > 0 ? 'ahead of' : 'behind'} this host's clock (more than ${formatMs(this.deps.maxClockSkewMs)}); fix its clock (NTP), it asks again (logged once)`)
        }
        continue
      }
      this.deps.writer().admit(request.node, request.allocatableBytes, now)
      this.deps.counters.admissions++
      this.deps.log(`admitted ${request.node} into cluster '${this.deps.cluster}' with ${formatSize(request.allocatableBytes)} allocatable (sponsor)`)
      void this.deps.durable().catch(() => {})
    }
  }

  /**
   * Acknowledge every open eviction proposal of the current view with the
   * highest position this node holds of each target's stream: the flush that
   * makes the cut safe (docs/design.md "Membership as views"). A proposal from
   * a silence timeout is acknowledged once this node has not heard the targets
   * for half the timeout either, so a member that still hears a target blocks
   * its eviction; an operator's proposal is acknowledged at once.
   */
  acknowledgeProposals (res: Resolution): void {
    if (!this.deps.joined() || !this.deps.writable()) return
    const now = this.deps.clock.now()
    const evictAfter = this.deps.evictAfterMs
    for (const p of res.proposals) {
      if (p.status !== 'open' || this.acknowledged.has(p.key) || p.acks[this.deps.self] !== undefined) continue
      // Past its deadline an acknowledgement no longer counts (crdt/views.ts PROPOSAL_TTL_MS).
      if (hlcWallMs(p.deadline) < now) continue
      if (p.targets.includes(this.deps.self) || !p.viewMembers.includes(this.deps.self)) continue
      if (!p.manual && p.targets.some(t => this.deps.silentForMs(t) < evictAfter / 2)) continue
      this.acknowledged.add(p.key)
      if (hlcWallMs(p.hlc) > now + this.deps.maxClockSkewMs) {
        this.deps.log(`not acknowledging ${p.key}: stamped ${formatMs(hlcWallMs(p.hlc) - now)} ahead of this host's clock`)
        continue
      }
      this.deps.writer().ackEviction(p, positionsOf(res, p.targets), now)
      this.deps.counters.evictionAcks++
      this.deps.log(`acknowledged the eviction of ${p.targets.map(shortId).join(', ')} proposed by ${shortId(p.by)} (holding ${p.targets.map(t => `${shortId(t)}@${res.nodes.get(t)?.lastSeq ?? 0}`).join(', ')})`)
      void this.deps.durable().catch(() => {})
    }
  }

  /**
   * Propose evicting the members silent for `evictAfterMs` (docs/design.md
   * "Eviction"): one proposal for all of them, for the current view. The live
   * member with the smallest id proposes, so a healthy cluster writes one
   * proposal, not one per peer; the others step in after a second grace
   * period if it does not. Nothing is proposed while this side is not a
   * strict majority (it could never take effect: a minority never evicts the
   * majority), nor again while this node's proposal for the same set is open.
   */
  async evictTheDead (): Promise<void> {
    if (!this.deps.joined() || !this.deps.writable() || this.deps.stopped()) return
    const evictAfter = this.deps.evictAfterMs
    const res = this.deps.resolution()
    const silent = res.members.filter(id => id !== this.deps.self && this.deps.silentForMs(id) >= evictAfter)
    if (silent.length === 0) {
      this.blocked = undefined
      return
    }
    const reachable = res.members.filter(id => !silent.includes(id))
    const designated = reachable.filter(id => id === this.deps.self || this.deps.liveness(id) === 'alive').sort()[0] === this.deps.self
    if (!designated && silent.some(id => this.deps.silentForMs(id) < 2 * evictAfter)) return
    if (2 * reachable.length <= res.members.length) {
      this.blocked = `${silent.length} of ${res.members.length} members silent for ${formatMs(evictAfter)} or more, but the ${reachable.length} reachable are not a strict majority: no eviction can take effect from this side; finality waits for them to return (or an operator forces it: memgossip evict --force NODE)`
      return
    }
    this.blocked = undefined
    const key = silent.join(',')
    // One open proposal of ours for these targets at a time; one past its deadline can no longer take effect.
    if (res.proposals.some(p => p.status === 'open' && p.by === this.deps.self && p.targets.join(',') === key && hlcWallMs(p.deadline) >= this.deps.clock.now())) return
    const proposal = this.deps.writer().proposeEviction(silent, res.view.digest, positionsOf(res, silent), this.deps.clock.now())
    this.deps.counters.evictionProposals++
    this.deps.log(`proposed evicting ${silent.join(', ')}: suspected for ${formatMs(Math.min(...silent.map(id => this.deps.silentForMs(id))))} or more (--evict-after ${formatMs(evictAfter)}); proposal ${proposal}`)
    await this.deps.durable().catch(() => {})
  }

  /** Why the silent members cannot be evicted from this side, while that holds (an alert). */
  blocked?: string
}

/** What this peer holds of each node's stream: its highest sequence number and latest stamp. */
export function positionsOf (res: Resolution, nodes: PeerIdStr[]): Record<PeerIdStr, StreamPosition> {
  const out: Record<PeerIdStr, StreamPosition> = {}
  for (const node of nodes) {
    const view = res.nodes.get(node)
    // Its clock as far as this peer holds its stream, beacons included: its line here is capped at it while the eviction is open.
    out[node] = view?.heldTo !== undefined ? { seq: view.lastSeq, hlc: view.heldTo } : { seq: view?.lastSeq ?? 0 }
  }
  return out
}
