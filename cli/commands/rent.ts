/**
 * `memgossip rent` (GET /v1/rent): byte-seconds, GiB-hours and cost per
 * reservation, computed by the agent from the ledger alone (every peer bills
 * the same), and `memgossip evict NODE` (POST /v1/evict).
 */
import type { EvictAnswerJson, EvictRequestIn, RentJson } from '../../agent/api/contract.ts'
import { shortId } from '../../crdt/placement.ts'
import { UsageError } from '../args.ts'
import { formatSize, formatTime, jsonText, table } from '../format.ts'
import { clientCommand, DURATION_PATTERN, durationArg } from './common.ts'
import { statusColor } from './print.ts'

const GIB_HOUR_BYTE_SECONDS = 1024 ** 3 * 3600


/** byte-seconds → GiB-hours, for reading only (the agent bills in byte-seconds and cost). */
export function gibHours (byteSeconds: number): string {
  return (byteSeconds / GIB_HOUR_BYTE_SECONDS).toFixed(4)
}

export const rent = clientCommand({
  name: 'rent',
  args: '',
  summary: 'rent per reservation: byte-seconds, GiB-hours, cost',
  description: `The bill (GET /v1/rent): each admitted reservation accrues byte-seconds from
admission to release or eviction, on every node it runs on, by HLC wall time,
so every peer computes the same bill. Prints byte-seconds, GiB-hours and cost
per reservation, and totals.

--since takes an ISO date (2026-01-31T00:00:00Z), ms since the epoch, or a
duration back from now (1h, 30m, 7d).`,
  examples: ['memgossip rent', 'memgossip rent --since 24h --price-per-gib-hour 0.005'],
  flags: {
    since: { type: 'string', help: 'start of the billing window: ISO date, epoch ms, or a duration ago (1h, 7d)' },
    'price-per-gib-hour': { type: 'string', help: 'price of one GiB held for one hour (default: the agent\'s, 0)' }
  }
}, async ({ client, json, color: c, flags, out }) => {
  const query = new URLSearchParams()
  const since = flags.since as string | undefined
  if (since !== undefined) {
    // A relative window is turned into a point in time here; the agent bills from it.
    const text = since.trim()
    if (!DURATION_PATTERN.test(text) && !/^\d+$/.test(text) && Number.isNaN(Date.parse(text))) {
      throw new UsageError(`--since: '${since}' is not a duration back from now (1h, 30m, 7d), an ISO date (2026-01-31T00:00:00Z) or ms since the epoch`)
    }
    query.set('since', DURATION_PATTERN.test(text) ? String(Date.now() - durationArg(text, '--since')) : text)
  }
  const price = flags['price-per-gib-hour'] as string | undefined
  if (price !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(price.trim())) throw new UsageError(`--price-per-gib-hour: '${price}' is not a non-negative number`)
    query.set('pricePerGiBHour', price.trim())
  }
  const q = query.toString()
  const { body } = await client.get<RentJson>(`/v1/rent${q !== '' ? `?${q}` : ''}`)
  if (json) { out(jsonText(body)); return 0 }
  const rows = body.lines.map(l => [
    l.id,
    statusColor(c, l.status)(l.status),
    formatSize(l.bytes),
    String(l.nodeCount),
    shortId(l.creator),
    formatTime(l.startMs),
    formatTime(l.endMs),
    String(l.byteSeconds),
    gibHours(l.byteSeconds),
    l.cost.toFixed(4)
  ])
  rows.push(['TOTAL', '', '', '', '', '', '', String(body.totalByteSeconds), gibHours(body.totalByteSeconds), body.totalCost.toFixed(4)])
  out(table(['ID', 'STATUS', 'SIZE', 'NODES', 'CREATOR', 'START', 'END', 'BYTE-SECONDS', 'GIB-HOURS', 'COST'], rows, { right: [2, 3, 7, 8, 9], header: c.bold }))
  out(`${body.lines.length} reservation(s) billed from ${body.sinceMs === 0 ? 'the beginning' : formatTime(body.sinceMs)} to ${formatTime(body.nowMs)} at ${body.pricePerGiBHour} per GiB-hour\n`)
  return 0
})

export const evict = clientCommand({
  name: 'evict',
  args: 'NODE',
  flags: {
    force: { type: 'boolean', help: 'take effect at once, without a majority (a cluster of two, an even split); decisions resting on NODE\'s unseen writes may change' }
  },
  summary: 'propose evicting member NODE (takes effect once the other members acknowledge it)',
  description: `Propose evicting member NODE from the current view (POST /v1/evict), through the
same flush the agent uses after --evict-after of silence: every other member
acknowledges it with the highest position it holds of NODE's writes, and it
takes effect once all of them have and they are a strict majority of the
view. NODE's writes after the highest acknowledged position are rejected
(CreatorEvicted) on every peer and its reservations are evicted; a final
verdict never changes. A minority can never evict the majority. --force takes
effect at once (the record says so): for a cluster of two or an even split,
when the operator accepts that a decision resting on NODE's unseen writes may
change. An agent cannot evict itself: ask another peer.`,
  examples: ['memgossip evict 12D3KooWAbc... --api http://127.0.0.1:7711', 'memgossip evict --force 12D3KooWAbc...']
}, async ({ client, json, positionals, flags, out }) => {
  const node = positionals[0]
  const request: EvictRequestIn = { node, force: flags.force === true }
  const { body } = await client.post<EvictAnswerJson>('/v1/evict', request)
  if (json) out(jsonText(body))
  else {
    const waiting = body.status === 'open' && body.waitingFor.length > 0 ? ` (waiting for ${body.waitingFor.length}: ${body.waitingFor.map(shortId).join(', ')})` : ''
    out(`${body.detail}${waiting}\nproposal ${body.proposal}: ${body.status}; follow it with: memgossip status\n`)
  }
  return 0
})
