/**
 * `memgossip status`: the cluster as the asked peer sees it — one table of
 * nodes (GET /v1/nodes) and a footer of cluster totals, pending reservations
 * and active alerts (GET /v1/capacity, /v1/state, /v1/alerts).
 */
import type { AlertJson, AlertListJson, CapacityJson, NodeJson, NodeListJson, StateJson } from '../../agent/api/contract.ts'
import { shortId } from '../../crdt/placement.ts'
import { formatAge, formatSize, jsonText, percent, table, type Paint } from '../format.ts'
import { clientCommand } from './common.ts'

export const status = clientCommand({
  name: 'status',
  args: '',
  summary: 'the cluster as this peer sees it: nodes, memory, liveness, alerts',
  description: `One table of the cluster as the asked agent sees it: per node its total,
allocatable, committed (and share of allocatable), what its reservations use
(measured in their cgroups), available memory, state (with its pressure level when not ok),
liveness and heartbeat age; then cluster totals, pending (tentative)
reservations and active alerts. Colour on a terminal; none when piped or with
NO_COLOR set. Calls GET /v1/nodes, /v1/capacity, /v1/state and /v1/alerts.`,
  examples: ['memgossip status', 'memgossip status --api http://127.0.0.1:7712 --json']
}, async ({ client, json, color: c, out }) => {
  const [nodes, capacity, state, alerts] = await Promise.all([
    client.get<NodeListJson>('/v1/nodes'),
    client.get<CapacityJson>('/v1/capacity'),
    client.get<StateJson>('/v1/state'),
    client.get<AlertListJson>('/v1/alerts')
  ])
  if (json) {
    out(jsonText({ nodes: nodes.body.nodes, capacity: capacity.body, state: state.body, alerts: alerts.body.alerts }))
    return 0
  }
  out(renderStatus(nodes.body.nodes, capacity.body, state.body, alerts.body.alerts, c))
  return 0
})

export function renderStatus (nodes: NodeJson[], capacity: CapacityJson, state: StateJson, alerts: AlertJson[], c: Paint): string {
  const high = new Set(alerts.filter(a => a.kind === 'NodeCommittedHigh').map(a => a.node))
  const stateColor = (s: string): string => s === 'active' ? c.green(s) : s === 'draining' || s === 'cordoned' ? c.yellow(s) : c.red(s)
  const liveColor = (s: string): string => s === 'alive' || s === 'self' ? c.green(s) : s === 'suspect' ? c.yellow(s) : c.red(s)
  const rows = nodes.map(n => {
    const share = percent(n.committedBytes, n.allocatableBytes)
    return [
      n.id === state.self ? c.bold(n.id) : n.id,
      formatSize(n.totalBytes),
      formatSize(n.allocatableBytes),
      formatSize(n.committedBytes),
      high.has(n.id) ? c.red(share) : share,
      n.reservationsUsedBytes !== undefined ? formatSize(n.reservationsUsedBytes) : '-',
      formatSize(n.availableBytes),
      stateColor(n.state) + (n.pressure !== undefined && n.pressure !== 'ok' ? c.red(` (pressure ${n.pressure})`) : '') + (n.member ? '' : c.dim(' (not a member)')),
      liveColor(n.liveness),
      n.liveness === 'self' ? '-' : formatAge(n.heartbeatAgeMs)
    ]
  })
  const lines: string[] = []
  lines.push(table(['NODE', 'TOTAL', 'ALLOCATABLE', 'COMMITTED', '%', 'USED', 'AVAILABLE', 'STATE', 'LIVENESS', 'HEARTBEAT'], rows, { right: [1, 2, 3, 4, 5, 6, 9], header: c.bold }).trimEnd())
  lines.push('')
  lines.push(`cluster '${state.cluster}' as seen by ${shortId(state.self)}: ${capacity.members} member(s), ${state.peers.length} peer(s) connected${state.joined ? '' : c.yellow(` (this agent is not a member: ${state.standing})`)}`)
  lines.push(`view ${state.view.epoch}: ${state.view.members.length} member(s), since ${state.view.cause}`)
  for (const change of state.viewChanges) {
    lines.push(c.yellow(`open view change: ${change.kind} of ${change.targets.map(shortId).join(', ')} proposed by ${shortId(change.by)}; acknowledged by ${change.acknowledged.length} of the ${change.majorityOf - change.targets.length} other member(s), waiting for ${change.waitingFor.length > 0 ? change.waitingFor.map(shortId).join(', ') : 'nobody'}`))
  }
  for (const request of state.admissionRequests) lines.push(c.dim(`admission requested: ${shortId(request.node)} asks ${shortId(request.sponsor)}`))
  if (state.writesRefused !== undefined && state.readOnly === undefined) lines.push(c.red(`writes refused: ${state.writesRefused}`))
  lines.push(`totals: total ${formatSize(capacity.totalBytes)}, allocatable ${formatSize(capacity.allocatableBytes)}, committed ${formatSize(capacity.committedBytes)} (${percent(capacity.committedBytes, capacity.allocatableBytes)}), headroom ${formatSize(capacity.headroomBytes)}, available ${formatSize(capacity.availableBytes)}`)
  const counts = Object.entries(capacity.counts).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ')
  const pending = capacity.pending
  lines.push(`reservations: ${counts === '' ? 'none' : counts}; ${pending > 0 ? c.yellow(`${pending} pending (tentative)`) : '0 pending (tentative)'}`)
  if (state.readOnly !== undefined) lines.push(c.red(`read-only: ${state.readOnly}`))
  if (alerts.length === 0) lines.push('alerts: none')
  else {
    lines.push(c.red(`alerts (${alerts.length}):`))
    for (const a of alerts) lines.push(`  ${c.red(a.kind)} ${a.message} (setting: ${a.setting})`)
  }
  return lines.join('\n') + '\n'
}
