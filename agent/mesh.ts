/**
 * Connections beyond the bootstrap peers (docs/design.md "Network",
 * "Connections"). Members publish their addresses in their node records; an
 * agent dials members by them until it holds a few connections — or, while
 * the view is small enough for direct beacons, a connection to every member,
 * so that beacons go straight to each and the failure detector probes every
 * member over a connection it already has. Without this every agent would
 * stay connected only to its bootstrap peers: a star that one node's death,
 * or a partition through it, cuts apart although every agent knows every
 * member.
 */
import { MAX_ADDRS, shortId, type Resolution } from '../crdt/index.ts'
import { DIRECT_MEMBERS_MAX } from './clock.ts'
import type { Liveness } from './liveness.ts'
import type { Network, PeerIdStr } from './types.ts'

/** New connections opened per round, so a joiner does not dial a whole view at once. */
const DIALS_PER_ROUND = 4
/** Members whose failed dial was logged, before that table starts over (a bound, not a policy). */
const MAX_LOGGED = 1000

/**
 * The connections an agent keeps in a view of `viewSize` members: every other
 * member while the view is small enough for direct beacons, else
 * `targetPeers`. Benchmarks wait for this steady state before measuring.
 */
export function wantedConnections (viewSize: number, targetPeers: number): number {
  return viewSize - 1 <= DIRECT_MEMBERS_MAX ? Math.max(targetPeers, viewSize - 1) : targetPeers
}

export interface MeshDeps {
  self: PeerIdStr
  network: Pick<Network, 'addresses' | 'peers' | 'dial'>
  random: () => number
  log: (line: string) => void
  liveness: (node: PeerIdStr) => Liveness
  /** Connections wanted beyond a small view's every-member rule. */
  targetPeers: number
  stopped: () => boolean
}

export class Mesh {
  private readonly deps: MeshDeps
  /** The newest addresses each member published. */
  private readonly addrs = new Map<PeerIdStr, string[]>()
  private readonly dialFailuresLogged = new Set<PeerIdStr>()
  /** The addresses our last node record carried. */
  private published = ''

  constructor (deps: MeshDeps) {
    this.deps = deps
  }

  /** A member's node record arrived or changed: remember the addresses it carries. */
  remember (node: PeerIdStr, record: { addrs?: unknown } | undefined): void {
    if (node === this.deps.self) return
    const addrs = record?.addrs
    if (Array.isArray(addrs) && addrs.length > 0 && addrs.length <= MAX_ADDRS && addrs.every(a => typeof a === 'string')) {
      this.addrs.set(node, addrs as string[])
    }
  }

  /** Our addresses moved since the last record (a record goes out at once then). */
  addressesMoved (): boolean {
    return this.current().join(' ') !== this.published
  }

  /**
   * The addresses for this node's next record: every record carries them. A
   * record replaces the previous one, and a peer that joins later or heals
   * from a partition reads only the newest: a record without them (they used
   * to ride on every twelfth heartbeat only) left that peer unable to dial the
   * member until the next record, which at rest may be hours away, so process
   * agents of a 25-member cluster stayed at 2–16 connections.
   */
  forRecord (): string[] | undefined {
    const addrs = this.current()
    this.published = addrs.join(' ')
    return addrs.length > 0 ? addrs : undefined
  }

  /** One round: dial a few members not connected yet, by the addresses they published. */
  async keepConnected (res: Resolution): Promise<void> {
    const { network } = this.deps
    const dial = network.dial
    if (dial === undefined || this.deps.stopped()) return
    const connected = new Set(network.peers())
    const missing = wantedConnections(res.view.size, this.deps.targetPeers) - connected.size
    if (missing <= 0) return
    const candidates = res.members.filter(id => id !== this.deps.self && !connected.has(id) && this.deps.liveness(id) !== 'dead' && this.addrs.has(id))
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(this.deps.random() * (i + 1));
      [candidates[i], candidates[j]] = [candidates[j], candidates[i]]
    }
    for (const id of candidates.slice(0, Math.min(missing, DIALS_PER_ROUND))) {
      for (const address of this.addrs.get(id) ?? []) {
        try {
          await dial.call(network, address)
          this.dialFailuresLogged.delete(id)
          break
        } catch (error) {
          // Another of its addresses may work (a host has several interfaces).
          // Said once per member until a dial to it works: a member this node
          // cannot reach gets no direct beacons from it.
          if (!this.dialFailuresLogged.has(id) && this.dialFailuresLogged.size < MAX_LOGGED) {
            this.dialFailuresLogged.add(id)
            this.deps.log(`cannot connect to member ${shortId(id)} at ${address}: ${(error as Error).message} (retried every sync round)`)
          }
        }
      }
    }
  }

  private current (): string[] {
    return this.deps.network.addresses().slice(0, MAX_ADDRS)
  }
}
