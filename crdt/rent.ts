/**
 * Rent (docs/design.md "Rent"): every reservation accrues byte-seconds from
 * admission to release or eviction, by HLC wall time, on every node it runs on.
 * Computed from the ledger alone (and a `nowMs` passed in for what still runs),
 * so every peer bills the same.
 */
import { hlcWallMs } from './hlc.ts'
import type { Resolution, Verdict, VerdictStatus } from './resolve.ts'
import type { NodeId, ReservationId } from './schema.ts'

const GIB = 1024 ** 3
const MS_PER_HOUR = 3_600_000

export interface RentOptions {
  /** End of the billing window for reservations still running, in ms since the epoch. */
  nowMs: number
  /** Start of the billing window (default: the beginning of time). */
  sinceMs?: number
  /** Price of one GiB held for one hour (default 0: byte-seconds only). */
  pricePerGiBHour?: number
  /**
   * What ended before the checkpoint the resolution started from
   * (crdt/checkpoint.ts): its entries are gone, its byte-seconds are in the
   * checkpoint's totals. Added to a bill from the beginning; a bill since a
   * later time cannot tell how much of it fell after that time, so it is left
   * out there.
   */
  ended?: { byteSeconds: number }
}

export interface RentLine {
  id: ReservationId
  creator: NodeId
  status: VerdictStatus
  bytes: number
  /** Nodes it is (or was) charged on. */
  nodeCount: number
  startMs: number
  endMs: number
  byteSeconds: number
  cost: number
}

export interface RentBill {
  lines: RentLine[]
  totalByteSeconds: number
  totalCost: number
  pricePerGiBHour: number
  sinceMs: number
  nowMs: number
}

export function computeRent (resolution: Resolution, options: RentOptions): RentBill {
  const price = options.pricePerGiBHour ?? 0
  const since = options.sinceMs ?? 0
  const lines: RentLine[] = []
  let totalByteSeconds = 0
  let totalCost = 0
  // Entries that held an id before a later one took it (with the conflicts) ran too.
  for (const verdict of resolution.all) {
    const line = rentLine(verdict, since, options.nowMs, price)
    if (line === undefined) continue
    lines.push(line)
    totalByteSeconds += line.byteSeconds
    totalCost += line.cost
  }
  lines.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.creator < b.creator ? -1 : a.creator > b.creator ? 1 : 0))
  if (options.ended !== undefined && since <= 0) {
    totalByteSeconds += options.ended.byteSeconds
    totalCost += (options.ended.byteSeconds * 1000 / GIB / MS_PER_HOUR) * price
  }
  return { lines, totalByteSeconds, totalCost, pricePerGiBHour: price, sinceMs: since, nowMs: options.nowMs }
}

/** One verdict's rent from `since` to its end (or `nowMs` while it runs); undefined when it was never admitted. */
export function rentLine (verdict: Verdict, since: number, nowMs: number, price: number): RentLine | undefined {
  if (verdict.decision !== 'admitted' || verdict.hlc === undefined) return undefined
  // A queued entry is billed from where the queue let it in, not from when it asked.
  const startMs = Math.max(hlcWallMs(verdict.admittedHlc ?? verdict.hlc), since)
  const endMs = verdict.endedHlc !== undefined ? hlcWallMs(verdict.endedHlc) : nowMs
  const nodeCount = verdict.status === 'admitted' ? verdict.runningOn.length : verdict.nodes.length
  // Shrunk toward its minimum on capacity loss ("Bounds and the queue"): the
  // limit in force from the shrink on. (Only the last shrink is kept, so an
  // earlier, smaller one is billed at the full limit until the last.)
  const shrunkMs = verdict.shrunkHlc !== undefined ? Math.min(Math.max(hlcWallMs(verdict.shrunkHlc), startMs), endMs) : endMs
  const byteMs = nodeCount * (verdict.bytes * Math.max(0, shrunkMs - startMs) + verdict.effectiveBytes * Math.max(0, endMs - shrunkMs))
  const byteSeconds = Math.round(byteMs / 1000)
  const cost = (byteMs / GIB / MS_PER_HOUR) * price
  return { id: verdict.id, creator: verdict.creator, status: verdict.status, bytes: verdict.bytes, nodeCount, startMs, endMs: Math.max(endMs, startMs), byteSeconds, cost }
}
