/**
 * Human renderings of the API's answers, shared by fit/reserve/where/release/
 * watch. They only lay out what the agent said: every verdict, code, reason,
 * histogram and warning comes from the answer as is, typed by the API
 * contract (agent/api/contract.ts).
 */
import type { FitAnswerJson, VerdictJson } from '../../agent/api/contract.ts'
import { shortId } from '../../crdt/placement.ts'
import { formatSize, table, type Paint } from '../format.ts'

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
    case 'queued': return c.yellow
    default: return (s) => s
  }
}

const WAITING_ON: Record<string, string> = {
  clocks: "members' clocks",
  confirmations: 'confirmations from a majority',
  'view-change': 'an open view change',
  capacity: 'room (queued)'
}

export function finality (c: Paint, final: boolean, waitsFor: string[], waitingOn?: string): string {
  if (final) return c.green('final')
  const on = waitingOn !== undefined ? ` on ${WAITING_ON[waitingOn] ?? waitingOn}` : ''
  return c.yellow(`tentative, waits${on}: ${waitsFor.length} member(s)${waitsFor.length > 0 ? ` (${waitsFor.join(', ')})` : ''}`)
}

/** The dry-run plan: verdict, where, headroom before → after, histogram, the per-node table, warnings, finality. */
export function renderFit (a: FitAnswerJson, c: Paint): string {
  const lines: string[] = []
  const head = a.fits ? c.green(c.bold('fits')) : c.red(c.bold(a.code === 'NeverFits' ? 'never fits' : 'does not fit'))
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
  lines.push(`  reason: ${readableReason(v.reason)} [${v.code}]`)
  if (v.decision !== v.status || v.decisionCode !== v.code) lines.push(`  decided: ${v.decision}: ${readableReason(v.decisionReason)} [${v.decisionCode}]`)
  if (v.winner !== undefined) lines.push(`  winner: ${v.winner}`)
  const labels = Object.entries(v.labels ?? {}).map(([k, val]) => `${k}=${val}`).join(',')
  lines.push(`  size ${formatSize(v.bytes)}, placement ${v.placement ?? '?'}, priority ${v.priority}, creator ${v.creator}${labels !== '' ? `, labels ${labels}` : ''}`)
  if (v.minBytes !== undefined || v.effectiveBytes !== v.bytes) {
    lines.push(`  limit in force ${formatSize(v.effectiveBytes)}${v.minBytes !== undefined ? `, minimum ${formatSize(v.minBytes)}` : ''}${v.shrunkHlc !== undefined ? `, shrunk at ${v.shrunkHlc}` : ''}`)
  }
  if (v.status === 'queued') {
    lines.push(`  queue: position ${v.queuePosition ?? '?'} of ${v.queueLength ?? '?'}${v.queueExpiresHlc !== undefined ? `, times out at ${v.queueExpiresHlc}` : ', no timeout'}; waits for a release, a node growing or joining`)
  } else if (v.queue === true && v.admittedHlc !== undefined && v.admittedHlc !== v.hlc) {
    lines.push(`  admitted from the queue at ${v.admittedHlc}`)
  }
  for (const u of v.usage ?? []) {
    const share = v.bytes > 0 ? ` (${Math.round((u.usedBytes / v.bytes) * 100)}%)` : ''
    const peak = u.peakBytes !== undefined ? `, peak ${formatSize(u.peakBytes)}` : ''
    const oom = u.oomKills !== undefined && u.oomKills > 0 ? c.red(`, exceeded its limit: ${u.oomKills} OOM kill(s)`) : ''
    lines.push(`  used: ${formatSize(u.usedBytes)} of ${formatSize(v.bytes)}${share}${peak} on ${u.node}${u.live ? '' : ' (as its record last said)'}${oom}`)
  }
  lines.push(`  verdict: ${v.status === 'queued' ? c.yellow('queued, not decided yet') : finality(c, v.final, v.waitsFor, v.waitingOn)}`)
  return lines.join('\n') + '\n'
}

const HLC_IN_TEXT = /\b(\d{15}):\d{6}:[1-9A-HJ-NP-Za-km-z]+/g
const PEER_ID_IN_TEXT = /\b12D3KooW[1-9A-HJ-NP-Za-km-z]{44}\b/g

/**
 * A reason as the agent wrote it, for a person: clock stamps (`<wall ms>:<counter>:<node id>`)
 * become UTC times and peer ids are shortened, e.g. `released at 2026-12-06T07:14:58.742Z by
 * 12D3KooW…tnpK`. `--json` keeps the agent's text.
 */
export function readableReason (reason: string): string {
  return reason
    .replace(HLC_IN_TEXT, (_stamp, wallMs: string) => new Date(Number(wallMs)).toISOString())
    .replace(PEER_ID_IN_TEXT, id => shortId(id))
}

/** Nodes for a narrow table column. */
export function shortNodes (ids: string[]): string {
  return ids.length === 0 ? '-' : ids.map(shortId).join(',')
}
