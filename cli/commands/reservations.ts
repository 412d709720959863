/**
 * `memgossip reservations` (GET /v1/reservations: a table, like Dask's
 * has-what) and `memgossip where ID` (GET /v1/reservations/:id).
 */
import { shortId } from '../../crdt/placement.ts'
import { formatSize, jsonText, table } from '../format.ts'
import { clientCommand, idPath } from './common.ts'
import type { ErrorJson, ReservationListJson, VerdictJson } from '../../agent/api/contract.ts'
import { readableReason, renderVerdict, shortNodes, statusColor, usedText } from './print.ts'

export const reservations = clientCommand({
  name: 'reservations',
  args: '',
  summary: 'table of reservations: id, size, status, used, final, nodes, creator, reason',
  description: `List reservations as the asked agent resolves them (GET /v1/reservations),
oldest first: id, size, status, what it uses (measured in its cgroup where
'memgossip run' runs it, and its share of the size), whether the verdict is final, the nodes it runs
on (or was decided on), its creator and the reason. Node ids are shortened in
the table; --json and 'memgossip where ID' give them in full.`,
  examples: ['memgossip reservations', 'memgossip reservations --status admitted --node 12D3KooW...', 'memgossip reservations --status queued'],
  flags: {
    node: { type: 'string', help: 'only reservations placed on this node id' },
    status: { type: 'string', help: 'only this status: admitted, rejected, evicted, released, invalid or queued (the queue, first in line first)' }
  }
}, async ({ client, json, color: c, flags, out }) => {
  const query = new URLSearchParams()
  if (flags.node !== undefined) query.set('node', flags.node as string)
  if (flags.status !== undefined) query.set('status', flags.status as string)
  const q = query.toString()
  const { body } = await client.get<ReservationListJson>(`/v1/reservations${q !== '' ? `?${q}` : ''}`)
  if (json) { out(jsonText(body)); return 0 }
  const rows = body.reservations.map(v => [
    v.id,
    formatSize(v.bytes),
    statusColor(c, v.status)(v.status),
    usedText(v),
    v.final ? 'yes' : c.yellow('no'),
    shortNodes(v.runningOn.length > 0 ? v.runningOn : v.nodes),
    shortId(v.creator),
    v.status === 'queued' ? `#${v.queuePosition ?? '?'} of ${v.queueLength ?? '?'}: ${readableReason(v.reason)}` : readableReason(v.reason)
  ])
  out(table(['ID', 'SIZE', 'STATUS', 'USED', 'FINAL', 'NODES', 'CREATOR', 'REASON'], rows, { right: [1, 3], header: c.bold }))
  out(`${body.reservations.length} reservation(s); ${body.pending} pending (tentative) in the whole ledger; verdicts digest ${body.verdictsDigest}\n`)
  return 0
})

export const where = clientCommand({
  name: 'where',
  args: 'ID',
  summary: 'which nodes run reservation ID, its status and reason',
  description: `Show where deployment ID runs (GET /v1/reservations/:id): its status, the nodes
(full ids), the reason and, when it changed since, the decision behind it
(a rejection names the winner), and whether the verdict is final.
Exit 0 when it is admitted (it runs), 1 when it runs nowhere (rejected,
released, evicted, invalid) or the agent knows no such reservation.`,
  examples: ['memgossip where web-1', 'memgossip where web-1 --api http://127.0.0.1:7713 --json']
}, async ({ client, json, color, positionals, out, err }) => {
  const id = positionals[0]
  const { status, body } = await client.get<VerdictJson | ErrorJson>(`/v1/reservations/${idPath(id)}`, [404])
  if (status === 404) {
    if (json) out(jsonText(body))
    err(`memgossip where: ${(body as ErrorJson).detail ?? `no reservation '${id}'`} (as ${client.api} sees it)\n`)
    return 1
  }
  const v = body as VerdictJson
  out(json ? jsonText(v) : renderVerdict(v, color))
  return v.status === 'admitted' ? 0 : 1
})
