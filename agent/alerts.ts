/**
 * Alerts (docs/design.md "Measuring memory", "Clocks", "Membership as views"):
 * what an operator should look at, each with its numbers and the setting to
 * change. `computeAlerts()` is a pure function of what the agent knows; the
 * sink turns its result into raised and cleared events and a log that a
 * figure wobbling around a threshold cannot flood.
 */
import { formatSize, hlcWallMs, shortId, type NodeId, type Resolution } from '../crdt/index.ts'
import type { Clock, MemorySample, PeerIdStr } from './types.ts'

export interface Alert {
  /** Stable identity, e.g. `pressure/<node>`. */
  key: string
  kind: 'MemoryPressure' | 'PressureLevel' | 'ReservationNearLimit' | 'NodeCommittedHigh' | 'UnaccountedUsage' | 'NodeUndersized' | 'StorageFailed' | 'ClockSkew' | 'IdentityConflict' | 'NotAMember' | 'EvictionBlocked' | 'CheckpointMismatch' | 'FinalityStalled'
  node: PeerIdStr
  message: string
  /** The setting an operator would change. */
  setting: string
}

/** Everything the alerts are computed from. */
export interface AlertInputs {
  self: NodeId
  res: Resolution
  sample?: MemorySample
  floorBytes: number
  floorRule: string
  systemReservedBytes: number
  /** Alert when a node is committed above this share of its allocatable memory. */
  committedRatio: number
  /** Why the data dir cannot be written, if it cannot. */
  failed?: string
  identityLost?: string
  /** A settled epoch proposal this peer refused: its checkpoint differs here (agent/epochs.ts). */
  checkpointMismatch?: string
  clockBehindMs: number
  maxOffsetMs: number
  /** Members whose clocks run ahead of the cluster's by more than the maximum offset, and by how much. */
  peersAhead: Array<[PeerIdStr, number]>
  joined: boolean
  evictionBlocked?: string
  /** The pressure ladder's level when not ok, with the line of numbers it was entered with (agent/pressure.ts). */
  pressure?: { level: string, message: string }
  /** Usage of the reservations running here (agent/usage.ts). */
  usage?: ReadonlyArray<{ id: string, usedBytes: number, reservedBytes: number, peakBytes?: number }>
  /** Alert when a reservation uses more than this share of what it reserved (default 0.9). */
  nearLimitRatio?: number
  /** This host's wall clock, and how long a verdict may stay tentative before finality counts as stalled. */
  nowMs?: number
  finalityStallMs?: number
}

export function computeAlerts (i: AlertInputs): Map<string, Alert> {
  const next = new Map<string, Alert>()
  const add = (alert: Alert): void => { next.set(alert.key, alert) }
  const { self, res, sample } = i
  const own = res.nodes.get(self)
  if (sample !== undefined && sample.availableBytes < i.floorBytes) {
    add({ key: `pressure/${self}`, kind: 'MemoryPressure', node: self, message: `memory pressure on ${shortId(self)}: ${formatSize(sample.availableBytes)} available, under the floor of ${formatSize(i.floorBytes)} (${i.floorRule})`, setting: 'MEMGOSSIP_MINMEM_FREE / --floor' })
  }
  if (sample !== undefined && own !== undefined) {
    const used = sample.totalBytes - sample.availableBytes
    const unaccounted = used - own.committedBytes - i.systemReservedBytes - i.floorBytes
    if (unaccounted > Math.max(i.floorBytes, sample.totalBytes * 0.05)) {
      add({ key: `unaccounted/${self}`, kind: 'UnaccountedUsage', node: self, message: `${formatSize(unaccounted)} in use on ${shortId(self)} outside any reservation (used ${formatSize(used)}, committed ${formatSize(own.committedBytes)})`, setting: '--system-reserved' })
    }
  }
  for (const node of res.nodes.values()) {
    if (!node.member) continue
    if (node.allocatableBytes > 0 && node.committedBytes / node.allocatableBytes > i.committedRatio) {
      add({ key: `committed/${node.id}`, kind: 'NodeCommittedHigh', node: node.id, message: `node ${shortId(node.id)} is ${((node.committedBytes / node.allocatableBytes) * 100).toFixed(1)}% committed (${formatSize(node.committedBytes)} of ${formatSize(node.allocatableBytes)})`, setting: '--allocatable / add memory' })
    }
    if (node.undersized) {
      add({ key: `undersized/${node.id}`, kind: 'NodeUndersized', node: node.id, message: `node ${shortId(node.id)} has ${formatSize(node.allocatableBytes)} allocatable, the network needs ${formatSize(node.allNeedBytes)}: add memory or it will be evicted`, setting: '--allocatable / add memory' })
    }
  }
  if (i.failed !== undefined) add({ key: `storage/${self}`, kind: 'StorageFailed', node: self, message: `data dir cannot be written: ${i.failed}`, setting: '--data-dir' })
  if (i.checkpointMismatch !== undefined) add({ key: `checkpoint/${self}`, kind: 'CheckpointMismatch', node: self, message: i.checkpointMismatch, setting: 'none: report it (a bug or a damaged replica); the ledger is not compacted meanwhile, nothing is removed' })
  if (i.identityLost !== undefined) add({ key: `identity/${self}`, kind: 'IdentityConflict', node: self, message: i.identityLost, setting: '--data-dir (give each host its own; a restored copy needs a new identity)' })
  if (i.clockBehindMs > i.maxOffsetMs) {
    add({ key: `clock/${self}`, kind: 'ClockSkew', node: self, message: `this host's clock is ${formatMs(i.clockBehindMs)} behind the cluster's (median of the members' stamps; maximum offset ${formatMs(i.maxOffsetMs)}): writes refused${i.joined ? '' : ', admission not requested'}`, setting: 'NTP / chrony on this host, or --max-clock-offset' })
  }
  for (const [peer, aheadMs] of i.peersAhead) {
    add({ key: `clock/${peer}`, kind: 'ClockSkew', node: peer, message: `member ${shortId(peer)}'s clock runs at least ${formatMs(aheadMs)} ahead of the cluster's (maximum offset ${formatMs(i.maxOffsetMs)}): its writes sort late and finality waits for the others' clocks to pass them`, setting: `NTP / chrony on ${shortId(peer)}` })
  }
  if (!i.joined && res.view.epoch > 0) {
    add({ key: `member/${self}`, kind: 'NotAMember', node: self, message: own?.standing === 'evicted' ? `this node was evicted from the view (writes after position ${own.cutSeq ?? 0} do not count); it asks to be admitted again` : 'this node is not a member yet: waiting for a sponsor to admit it', setting: '--bootstrap' })
  }
  if (i.pressure !== undefined) {
    add({ key: `ladder/${self}`, kind: 'PressureLevel', node: self, message: `${shortId(self)}: ${i.pressure.message}`, setting: '--pressure-warn / --pressure-refuse / --pressure-evict (× floor), --floor' })
  }
  const nearLimit = i.nearLimitRatio ?? 0.9
  for (const u of i.usage ?? []) {
    if (u.reservedBytes <= 0 || u.usedBytes < u.reservedBytes * nearLimit) continue
    // Whole percents in the message: it is raised again (and the event sent) only when the share moves by one.
    const pct = Math.floor((u.usedBytes / u.reservedBytes) * 100)
    add({ key: `near-limit/${u.id}`, kind: 'ReservationNearLimit', node: self, message: `reservation ${u.id} uses ${pct}% of its limit on ${shortId(self)} (about ${formatSize(Math.floor(u.reservedBytes * pct / 100))} of ${formatSize(u.reservedBytes)}, alert at ${Math.round(nearLimit * 100)}%): the kernel OOM-kills it at the limit`, setting: 'reserve more for it, or --near-limit' })
  }
  // The oldest tentative verdict, as the resolution found it (queued entries wait for room, not for finality).
  const stalled = res.oldestPending
  if (stalled !== undefined && i.nowMs !== undefined && i.finalityStallMs !== undefined && hlcWallMs(stalled.decidedHlc ?? stalled.hlc!) < i.nowMs - i.finalityStallMs) {
    const names = stalled.waitsFor.slice(0, 5).map(shortId).join(', ') + (stalled.waitsFor.length > 5 ? ` and ${stalled.waitsFor.length - 5} more` : '')
    const on = stalled.waitingOn === 'confirmations' ? 'the confirmations (announced lines) of' : stalled.waitingOn === 'view-change' ? 'the open view change of' : 'the clocks (beacons) of'
    add({ key: `finality/${self}`, kind: 'FinalityStalled', node: self, message: `finality has stalled on ${shortId(self)}: ${stalled.id}, written over ${formatMs(i.finalityStallMs!)} ago, is still tentative here, waiting on ${on} ${names || 'no member'}`, setting: 'none: look at the members named (memgossip status: liveness, clock offset, reachability); a minority side of a partition waits for the heal' })
  }
  if (i.evictionBlocked !== undefined) add({ key: `eviction/${self}`, kind: 'EvictionBlocked', node: self, message: i.evictionBlocked, setting: '--evict-after / memgossip evict --force' })
  return next
}

export interface AlertSinkDeps {
  clock: Clock
  log: (line: string) => void
  /** An alert was raised (or raised again with new figures) or cleared. */
  emit: (state: 'raised' | 'cleared', alert: Alert) => void
  /** Log an unchanged alert again at most this often. */
  logIntervalMs: number
}

/** The alerts in force: raises what is new or changed, clears what is gone, logs at a bounded rate. */
export class AlertSink {
  private active = new Map<string, Alert>()
  private readonly loggedAt = new Map<string, number>()

  constructor (private readonly deps: AlertSinkDeps) {}

  list (): Alert[] {
    return [...this.active.values()]
  }

  /** Replace the alerts in force with `next`. */
  update (next: Map<string, Alert>): void {
    for (const [key, alert] of next) {
      const previous = this.active.get(key)
      if (previous === undefined || previous.message !== alert.message) this.raise(alert)
    }
    for (const [key, alert] of this.active) {
      if (!next.has(key)) {
        this.deps.emit('cleared', alert)
        this.deps.log(`alert cleared: ${alert.message}`)
      }
    }
    this.active = new Map(next)
  }

  /** Raise one alert now (a failure found outside the periodic update). */
  raise (alert: Alert): void {
    this.active.set(alert.key, alert)
    this.deps.emit('raised', alert)
    const now = this.deps.clock.now()
    const last = this.loggedAt.get(alert.key)
    // Rate-limited: a figure that wobbles must not flood the log.
    if (last === undefined || now - last > this.deps.logIntervalMs) {
      if (this.loggedAt.size >= 10_000) this.loggedAt.clear()
      this.loggedAt.set(alert.key, now)
      this.deps.log(`ALERT ${alert.kind}: ${alert.message} (setting: ${alert.setting})`)
    }
  }
}

export function formatMs (ms: number): string {
  const abs = Math.abs(ms)
  if (abs < 1000) return `${Math.round(ms)} ms`
  if (abs < 120_000) return `${(ms / 1000).toFixed(1)} s`
  return `${(ms / 60_000).toFixed(1)} min`
}
