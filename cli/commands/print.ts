/**
 * Human renderings of the API's answers, shared by fit/reserve/where/release/
 * watch. They only lay out what the agent said: every verdict, code, reason,
 * histogram and warning comes from the answer as is.
 */
import { shortId } from '../../crdt/index.ts'
import { formatSize, table, type Paint } from '../format.ts'

/** The JSON of a fit answer (`POST /v1/fit`, and `answer` of a reservation). */
export interface FitAnswerJson {
  fits: boolean
  code: string
  reason: string
  bytes: number
  placement: string
  nodes: string[]
  histogram: string
  perNode: Array<{ node: string, state: string, allocatableBytes: number, committedBytes: number, headroomBytes: number, fit: string, chosen: boolean, headroomAfterBytes?: number }>
  warnings: string[]
  final: boolean
  waitingOn?: string
  waitsFor: string[]
}

/** The JSON of a verdict (`GET /v1/reservations/:id`). */
export interface VerdictJson {
  id: string
  status: string
  final: boolean
  /** What a tentative verdict waits for: members' clocks, their confirmations, or an open view change. */
  waitingOn?: 'clocks' | 'confirmations' | 'view-change'
  waitsFor: string[]
  /** Epoch of the view it was decided in. */
  view?: number
  code: string
  reason: string
  decision: string
  decisionCode: string
  decisionReason: string
  nodes: string[]
  runningOn: string[]
  bytes: number
  placement?: string
  priority: number
  creator: string
  hlc?: string
  labels: Record<string, string>
  winner?: string
  /** What it uses, per node where it was measured (docs/design.md "Enforcement"). */
  usage?: UsageJson[]
}

/** One node's measurement of a reservation: live on the asked agent, else from that node's record. */
export interface UsageJson {
  node: string
  usedBytes: number
  peakBytes?: number
  /** Processes OOM-killed because it exceeded its limit. */
  oomKills?: number
  live: boolean
}

/** `107.99 MiB (42%)` of what it reserved, summed over the nodes measured; `-` when nothing was. */
export function usedText (v: Pick<VerdictJson, 'bytes' | 'usage'>): string {
  const usage = v.usage ?? []
  if (usage.length === 0) return '-'
  const used = usage.reduce((a, u) => a + u.usedBytes, 0)
  const reserved = v.bytes * usage.length
  return `${formatSize(used)} (${reserved > 0 ? Math.round((used / reserved) * 100) : 0}%)`
}

export function statusColor (c: Paint, status: string): (s: string) => string {
  switch (status) {
    case 'admitted': return c.green
    case 'released': return c.cyan
    case 'rejected': case 'evicted': case 'invalid': return c.red
    default: return (s) => s
  }
}

const WAITING_ON: Record<string, string> = {
  clocks: "members' clocks",
  confirmations: 'confirmations from a majority',
  'view-change': 'an open view change'
}

export function finality (c: Paint, final: boolean, waitsFor: string[], waitingOn?: string): string {
  if (final) return c.green('final')
  const on = waitingOn !== undefined ? ` on ${WAITING_ON[waitingOn] ?? waitingOn}` : ''
  return c.yellow(`tentative, waits${on}: ${waitsFor.length} member(s)${waitsFor.length > 0 ? ` (${waitsFor.join(', ')})` : ''}`)
}

/** The dry-run plan: verdict, where, headroom before → after, histogram, the per-node table, warnings, finality. */
export function renderFit (a: FitAnswerJson, c: Paint): string {
  const lines: string[] = []
  const head = a.fits ? c.green(c.bold('fits')) : c.red(c.bold('does not fit'))
  lines.push(`${head}: ${formatSize(a.bytes)}, placement ${a.placement}`)
  lines.push(`  ${a.reason}`)
  for (const row of a.perNode.filter(r => r.chosen)) {
    lines.push(`  on ${row.node}: headroom ${formatSize(row.headroomBytes)} → ${formatSize(row.headroomAfterBytes ?? row.headroomBytes - a.bytes)}`)
  }
  lines.push(`  ${a.fits ? a.histogram : c.red(a.histogram)}`)
  lines.push('')
  lines.push(renderFitTable(a, c).trimEnd())
  lines.push('')
  for (const w of a.warnings) lines.push(c.yellow(`warning: ${w}`))
  lines.push(`answer: ${finality(c, a.final, a.waitsFor, a.waitingOn)}`)
  return lines.join('\n') + '\n'
}

export function renderFitTable (a: FitAnswerJson, c: Paint): string {
  const rows = a.perNode.map(r => [
    r.chosen ? c.bold(r.node) : r.node,
    r.state,
    formatSize(r.allocatableBytes),
    formatSize(r.committedBytes),
    formatSize(r.headroomBytes),
    r.fit === 'Fits' ? c.green(r.fit) : c.red(r.fit),
    r.chosen ? `→ ${formatSize(r.headroomAfterBytes ?? r.headroomBytes - a.bytes)}` : ''
  ])
  return table(['NODE', 'STATE', 'ALLOCATABLE', 'COMMITTED', 'HEADROOM', 'FIT', 'AFTER'], rows, { right: [2, 3, 4], header: c.bold })
}

/** One verdict: status, where it runs, the reason, the decision behind a later status, finality. */
export function renderVerdict (v: VerdictJson, c: Paint): string {
  const lines: string[] = []
  const where = v.runningOn.length > 0 ? ` on ${v.runningOn.join(', ')}` : ', runs nowhere'
  lines.push(`${v.id}: ${statusColor(c, v.status)(c.bold(v.status))}${where}`)
  lines.push(`  reason: ${v.reason} [${v.code}]`)
  if (v.decision !== v.status || v.decisionCode !== v.code) lines.push(`  decided: ${v.decision}: ${v.decisionReason} [${v.decisionCode}]`)
  if (v.winner !== undefined) lines.push(`  winner: ${v.winner}`)
  const labels = Object.entries(v.labels ?? {}).map(([k, val]) => `${k}=${val}`).join(',')
  lines.push(`  size ${formatSize(v.bytes)}, placement ${v.placement ?? '?'}, priority ${v.priority}, creator ${v.creator}${labels !== '' ? `, labels ${labels}` : ''}`)
  for (const u of v.usage ?? []) {
    const share = v.bytes > 0 ? ` (${Math.round((u.usedBytes / v.bytes) * 100)}%)` : ''
    const peak = u.peakBytes !== undefined ? `, peak ${formatSize(u.peakBytes)}` : ''
    const oom = u.oomKills !== undefined && u.oomKills > 0 ? c.red(`, exceeded its limit: ${u.oomKills} OOM kill(s)`) : ''
    lines.push(`  used: ${formatSize(u.usedBytes)} of ${formatSize(v.bytes)}${share}${peak} on ${u.node}${u.live ? '' : ' (as its record last said)'}${oom}`)
  }
  lines.push(`  verdict: ${finality(c, v.final, v.waitsFor, v.waitingOn)}`)
  return lines.join('\n') + '\n'
}

/** Nodes for a narrow table column. */
export function shortNodes (ids: string[]): string {
  return ids.length === 0 ? '-' : ids.map(shortId).join(',')
}
