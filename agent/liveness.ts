/**
 * Liveness (docs/design.md "Liveness"): a failure detector whose cost per node
 * does not grow with the cluster — SWIM's probing with Lifeguard's
 * refinements, over the connections the agent already keeps.
 *
 * - **Probing.** Every probe interval a node pings one of its connected
 *   members, in a shuffled round robin. No answer within the probe timeout:
 *   it asks up to three other connected members to ping the target for it
 *   (ping-req), so one bad link does not make a suspect, and keeps its own
 *   ping open meanwhile: a late answer counts. They say "no" when they get
 *   no answer either; then, unless the target answered late or was heard
 *   from meanwhile, it is suspected, and the suspicion is published on the
 *   gossip topic. When not even they answer, the prober is the likely
 *   problem: it suspects nobody. A connection that closes is probed at once
 *   (a killed process closes its sockets).
 * - **Suspicion, refutation, death.** A suspicion names a stamp of the
 *   suspector's clock. A peer that heard from the target after that stamp (a
 *   beacon, a ledger write, an answered probe) ignores it; a peer connected to
 *   the target probes it next, and its ping tells the target it is suspected
 *   (Lifeguard's buddy system); the target, hearing it either way, refutes
 *   with a fresh beacon stamped after it. Otherwise the target is
 *   dead once the suspicion timeout passes: `suspicionMult × max(1, log10 N)`
 *   probe intervals when `confirmations` independent members suspect it,
 *   longer (up to `suspicionMaxMult` times that) while fewer do (Lifeguard's
 *   dynamic suspicion timeout).
 * - **Local health.** A node that misses acks, hears no answer from the
 *   members it asked, finds its own timer late (a starved event loop), or has
 *   to refute a suspicion of itself is probably the slow one (CPU-starved, its event loop late): its
 *   local health multiplier rises, and its probe timeout grows with it, so it
 *   does not accuse healthy peers of its own slowness (Lifeguard's LHM).
 *
 * Liveness is one node's judgement, never an input to `resolve()`: it drives
 * warnings, status and the proposal of evictions, which a strict majority
 * must acknowledge.
 */
import { encodeHlc, shortId, type HlcString } from '../crdt/index.ts'
import { DIRECT_MEMBERS_MAX } from './clock.ts'
import type { Clock, PeerIdStr, TimerHandle } from './types.ts'

export type Liveness = 'alive' | 'suspect' | 'dead' | 'self'
export type IndirectAnswer = 'ack' | 'nack' | 'none'

export interface LivenessCounters {
  probes: number
  probesFailed: number
  indirectProbes: number
  suspicionsRaised: number
  suspicionsRefuted: number
  declaredDead: number
}

export function emptyLivenessCounters (): LivenessCounters {
  return { probes: 0, probesFailed: 0, indirectProbes: 0, suspicionsRaised: 0, suspicionsRefuted: 0, declaredDead: 0 }
}

export interface FailureDetectorDeps {
  self: PeerIdStr
  clock: Clock
  random: () => number
  /** Members of the current view. */
  members: () => readonly PeerIdStr[]
  /** Peers with an open connection: the ones this node probes. */
  neighbours: () => readonly PeerIdStr[]
  /** A stamp of this node's clock now (names a suspicion). */
  stamp: () => HlcString
  /**
   * Ping `peer` directly; true on an answer within `timeoutMs`. `suspicion`
   * tells a suspected peer so, so that it refutes it (Lifeguard's buddy system).
   */
  ping: (peer: PeerIdStr, timeoutMs: number, suspicion?: HlcString) => Promise<boolean>
  /**
   * Ask `via` to ping `target`: `ack` when it got an answer, `nack` when it
   * says it got none, `none` when `via` itself did not answer in time.
   */
  pingVia: (via: PeerIdStr, target: PeerIdStr, timeoutMs: number) => Promise<IndirectAnswer>
  /** Publish a suspicion of `target`, stamped `stamp`, to every member. */
  announce: (target: PeerIdStr, stamp: HlcString) => void
  /** This node is suspected by a stamp `stamp`: prove it is alive (a fresh beacon stamped after it). */
  refute: (stamp: HlcString) => void
  /** `node` changed state here. */
  changed: (node: PeerIdStr, state: Liveness) => void
  log: (line: string) => void
  counters: LivenessCounters
}

export interface FailureDetectorSettings {
  probeIntervalMs: number
  probeTimeoutMs: number
  /** Members asked to ping a target that did not answer. */
  indirectProbes: number
  /** Suspicion timeout at full confirmation, in probe intervals per log10 of the view size. */
  suspicionMult: number
  /** The timeout with no confirmation, as a multiple of the one above. */
  suspicionMaxMult: number
  /** Independent suspicions for the shortest timeout. */
  confirmations: number
  /** Ceiling of the local health multiplier. */
  maxHealth: number
}

/**
 * A direct ping is answered in time within one probe timeout; an answer that
 * comes later, while the indirect probes run, still counts within this many.
 */
const LATE_ANSWER_TIMEOUTS = 2

/** An unconnected member of a small view not heard for this many probe intervals is probed. */
const SILENT_PROBE_INTERVALS = 5

export const FAILURE_DETECTOR_DEFAULTS: FailureDetectorSettings = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 1000,
  indirectProbes: 3,
  suspicionMult: 4,
  suspicionMaxMult: 6,
  confirmations: 3,
  maxHealth: 8
}

interface Member {
  state: 'alive' | 'suspect' | 'dead'
  /** When it became suspect (or dead: since it was first suspected). */
  sinceMs: number
  /** The latest proof of life: a stamp of the node itself, or of this node's clock when it answered. */
  heardHlc: HlcString
  heardAtMs: number
  /** Stamp of the earliest suspicion in force, and who suspects it. */
  suspicion?: HlcString
  suspectors: Set<PeerIdStr>
}

export class FailureDetector {
  private readonly known = new Map<PeerIdStr, Member>()
  private order: PeerIdStr[] = []
  private next = 0
  private probing = false
  /** Lifeguard's local health multiplier: 0 when this node keeps up. */
  private health = 0
  private readonly urgent = new Set<PeerIdStr>()
  private lastTickAtMs?: number
  private laggedAtMs = -Infinity
  private readonly lost = new Set<PeerIdStr>()

  constructor (private readonly deps: FailureDetectorDeps, private readonly settings: FailureDetectorSettings = FAILURE_DETECTOR_DEFAULTS) {}

  /** The local health multiplier (0 to maxHealth), for status and metrics. */
  get localHealth (): number {
    return this.health
  }

  state (node: PeerIdStr): Liveness {
    if (node === this.deps.self) return 'self'
    return this.member(node).state
  }

  /** How long `node` has been suspected here (0 while alive). */
  silentForMs (node: PeerIdStr): number {
    if (node === this.deps.self) return 0
    const m = this.member(node)
    return m.state === 'alive' ? 0 : this.deps.clock.now() - m.sinceMs
  }

  /** When this node last had a proof of life of `node` (its own clock, ms). */
  heardAtMs (node: PeerIdStr): number {
    return this.member(node).heardAtMs
  }

  /**
   * Proof that `node` is alive: a beacon or write of its own (`hlc` is its
   * stamp), or an answer to a probe (`hlc` omitted: this node's clock now).
   */
  heard (node: PeerIdStr, hlc?: HlcString): void {
    if (node === this.deps.self) return
    const m = this.member(node)
    const stamp = hlc ?? this.deps.stamp()
    // Old news (a write brought by a sync) is no proof of life now.
    if (stamp <= m.heardHlc) return
    m.heardHlc = stamp
    m.heardAtMs = this.deps.clock.now()
    if (m.state !== 'alive' && m.suspicion !== undefined && m.heardHlc > m.suspicion) {
      m.state = 'alive'
      m.suspicion = undefined
      m.suspectors.clear()
      this.deps.counters.suspicionsRefuted++
      this.deps.changed(node, 'alive')
    }
  }

  /** A member published a suspicion of `target`, stamped `stamp`. */
  suspected (suspector: PeerIdStr, target: PeerIdStr, stamp: HlcString): void {
    if (target === this.deps.self) {
      // Somebody could not reach this node: likely this node is the slow one.
      this.health = Math.min(this.settings.maxHealth, this.health + 1)
      this.deps.refute(stamp)
      return
    }
    const m = this.member(target)
    if (m.heardHlc > stamp) return
    this.suspect(target, m, suspector, stamp)
    // Probe it ourselves next: an independent confirmation if it is gone,
    // and news for it (it refutes) if it is not.
    // In a view small enough for every member to connect to every other
    // (clock.ts DIRECT_MEMBERS_MAX), connected to it or not: a member that
    // crashed before this node ever connected to it is suspected only by those
    // that were, and its eviction needs a majority's acknowledgements. In a
    // larger view, only over a connection (every member probing every suspect
    // would cost O(N) probes per suspicion).
    if (this.deps.members().length <= DIRECT_MEMBERS_MAX || this.deps.neighbours().includes(target)) this.urgent.add(target)
  }

  /**
   * A connection closed: probe that peer at the next tick rather than in its
   * turn, and keep probing it (dialling) while it is a member nobody here is
   * connected to, until it answers or is suspected — else a member whose
   * connections all closed would never be probed again.
   */
  disconnected (peer: PeerIdStr): void {
    if (peer === this.deps.self) return
    this.urgent.add(peer)
    this.lost.add(peer)
  }

  /** Forget nodes no longer members. */
  prune (): void {
    const members = new Set(this.deps.members())
    for (const node of this.known.keys()) if (!members.has(node)) this.known.delete(node)
  }

  /** Every probe interval: time suspicions out, and probe one neighbour. */
  tick (): void {
    const now = this.deps.clock.now()
    // A tick that comes late means this node's event loop is starved: it is
    // the slow one, and its timeouts say more about itself than its peers.
    if (this.lastTickAtMs !== undefined && now - this.lastTickAtMs > 2 * this.settings.probeIntervalMs) {
      this.health = Math.min(this.settings.maxHealth, this.health + 1)
      this.laggedAtMs = now
    }
    this.lastTickAtMs = now
    const members = this.deps.members()
    const timeout = this.suspicionTimeouts(members.length)
    for (const [node, m] of this.known) {
      if (m.state !== 'suspect') continue
      const confirmations = Math.min(m.suspectors.size - 1, this.settings.confirmations)
      // Lifeguard: from the longest timeout down to the shortest as confirmations arrive (log scale).
      const wait = Math.max(timeout.min, timeout.max - (timeout.max - timeout.min) * Math.log(confirmations + 1) / Math.log(this.settings.confirmations + 1))
      if (now - m.sinceMs >= wait) {
        m.state = 'dead'
        this.deps.counters.declaredDead++
        this.deps.log(`${shortId(node)} is dead: suspected ${Math.round((now - m.sinceMs) / 100) / 10} s ago by ${m.suspectors.size} member(s), not refuted`)
        this.deps.changed(node, 'dead')
      }
    }
    void this.probeOne()
  }

  /** Shortest and longest suspicion timeouts for a view of `n` members. */
  suspicionTimeouts (n: number): { min: number, max: number } {
    const min = this.settings.suspicionMult * Math.max(1, Math.log10(Math.max(1, n))) * this.settings.probeIntervalMs
    return { min, max: min * this.settings.suspicionMaxMult }
  }

  private async probeOne (): Promise<void> {
    if (this.probing) return
    const members = new Set(this.deps.members())
    const connected = this.deps.neighbours()
    for (const p of this.lost) {
      // Back on a connection, gone from the view, or suspected already (the suspicion runs its course).
      if (connected.includes(p) || !members.has(p) || this.member(p).state !== 'alive') this.lost.delete(p)
    }
    // A member of a small view (every member connects to every other there)
    // that this node is not connected to and has not heard from for a while
    // is probed too, as SWIM probes members, not connections: one that was
    // never connected to this node (a star bootstrap, a mesh still forming)
    // and then went silent would otherwise never be suspected here, and its
    // eviction would wait for an acknowledgement from this node for ever.
    if (members.size <= DIRECT_MEMBERS_MAX) {
      const now = this.deps.clock.now()
      const silentMs = SILENT_PROBE_INTERVALS * this.settings.probeIntervalMs
      for (const p of members) {
        if (p === this.deps.self || connected.includes(p) || this.lost.has(p)) continue
        const m = this.member(p)
        if (m.state === 'alive' && now - m.heardAtMs > silentMs) this.lost.add(p)
      }
    }
    const neighbours = [...new Set([...connected, ...this.lost])].filter(p => members.has(p) && p !== this.deps.self)
    if (neighbours.length === 0) return
    let target: PeerIdStr | undefined
    for (const p of this.urgent) {
      this.urgent.delete(p)
      if (members.has(p)) { target = p; break }
    }
    if (target === undefined) {
      if (this.next >= this.order.length) {
        this.order = shuffle([...neighbours], this.deps.random)
        this.next = 0
      }
      target = this.order[this.next++]
      if (!neighbours.includes(target)) return
    }
    this.probing = true
    try {
      await this.probe(target)
    } finally {
      this.probing = false
    }
  }

  private async probe (target: PeerIdStr): Promise<void> {
    const startedAtMs = this.deps.clock.now()
    const startedHlc = this.deps.stamp()
    const timeoutMs = this.settings.probeTimeoutMs * (1 + this.health)
    this.deps.counters.probes++
    const known = this.member(target)
    const connected = this.deps.neighbours().includes(target)
    // The direct ping stays open while the indirect probes run, as in
    // memberlist: a target whose answer comes after the timeout — its event
    // loop starved for a moment, the commonest silence on a loaded host — is
    // late, not suspect. Waiting for it costs nothing: the indirect probes
    // take as long.
    const direct = this.deps.ping(target, LATE_ANSWER_TIMEOUTS * timeoutMs, known.state !== 'alive' ? known.suspicion : undefined).catch(() => false)
    if (await this.within(direct, timeoutMs) === true) {
      this.health = Math.max(0, this.health - 1)
      this.heard(target)
      return
    }
    this.deps.counters.probesFailed++
    const others = shuffle(this.deps.neighbours().filter(p => p !== target && p !== this.deps.self), this.deps.random).slice(0, this.settings.indirectProbes)
    this.deps.counters.indirectProbes += others.length
    const answers = await Promise.all(others.map(async via => await this.deps.pingVia(via, target, timeoutMs).catch((): IndirectAnswer => 'none')))
    if (answers.includes('ack')) {
      // Others reach it: the trouble is between us, or here (Lifeguard
      // counts it against this node) — unless this node has no connection
      // to it to begin with (a large mesh, or one still forming).
      if (connected) this.health = Math.min(this.settings.maxHealth, this.health + 1)
      this.heard(target)
      return
    }
    // The direct ping answered late, while the helpers tried: the target's, not this node's, slowness.
    if (await this.within(direct, Math.max(0, startedAtMs + LATE_ANSWER_TIMEOUTS * timeoutMs - this.deps.clock.now())) === true) {
      this.heard(target)
      return
    }
    if (answers.length > 0 && !answers.includes('nack')) {
      // Nobody answered at all, not even to say no: this node is the one
      // that is slow or cut off. Accusing the target would be wrong.
      this.health = Math.min(this.settings.maxHealth, this.health + 1)
      return
    }
    // Heard from it meanwhile (a beacon, a write, a request of its own,
    // stamped after this probe began): alive, however its pings fare.
    if (this.member(target).heardHlc > startedHlc) return
    // Starved while it probed (a late tick, or the probe took far longer than
    // its timeouts allow): the silence may be this node's own; suspect nobody.
    const elapsedMs = this.deps.clock.now() - startedAtMs
    if (this.laggedAtMs >= startedAtMs || elapsedMs > 4 * timeoutMs + this.settings.probeIntervalMs) {
      this.health = Math.min(this.settings.maxHealth, this.health + 1)
      return
    }
    // Suspect it, or confirm another member's suspicion: independent
    // confirmations shorten the timeout, so each suspector says so once.
    const m = this.member(target)
    if (m.state !== 'alive' && m.suspectors.has(this.deps.self)) return
    const stamp = this.deps.stamp()
    this.suspect(target, m, this.deps.self, stamp)
    this.deps.counters.suspicionsRaised++
    this.deps.announce(target, stamp)
  }

  /** `answer`'s value if it comes within `ms` (on the detector's clock), else undefined. */
  private async within (answer: Promise<boolean>, ms: number): Promise<boolean | undefined> {
    let timer: TimerHandle | undefined
    const late = new Promise<undefined>(resolve => { timer = this.deps.clock.setTimeout(() => { resolve(undefined) }, ms) })
    try {
      return await Promise.race([answer, late])
    } finally {
      if (timer !== undefined) this.deps.clock.clearTimeout(timer)
    }
  }

  private suspect (target: PeerIdStr, m: Member, suspector: PeerIdStr, stamp: HlcString): void {
    if (m.state === 'alive') {
      m.state = 'suspect'
      m.sinceMs = this.deps.clock.now()
      m.suspicion = stamp
      m.suspectors = new Set([suspector])
      this.deps.log(`${shortId(target)} is suspect: ${suspector === this.deps.self ? 'no answer to a direct or indirect probe' : `suspected by ${shortId(suspector)}`}`)
      this.deps.changed(target, 'suspect')
      return
    }
    m.suspectors.add(suspector)
    if (m.suspicion === undefined || stamp < m.suspicion) m.suspicion = stamp
  }

  private member (node: PeerIdStr): Member {
    let m = this.known.get(node)
    if (m === undefined) {
      // Newly known (or known again: re-admitted): alive as of now, so a
      // suspicion stamped before — one delivered late — does not count.
      const now = this.deps.clock.now()
      m = { state: 'alive', sinceMs: now, heardHlc: encodeHlc({ wallMs: Math.max(0, now - 1), counter: 0, node: this.deps.self }), heardAtMs: now, suspectors: new Set() }
      this.known.set(node, m)
    }
    return m
  }
}

function shuffle<T> (items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]]
  }
  return items
}
