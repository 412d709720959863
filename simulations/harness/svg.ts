/**
 * The convergence picture of a run: disagreeing peers over scenario time as a
 * step curve, partitions shaded, events marked. One self-contained SVG file (no
 * scripts, fonts or links), readable in a browser or embedded in docs.
 */
import type { RunReport } from './run.ts'

const WIDTH = 960
const HEIGHT = 400
const MARGIN = { top: 58, right: 24, bottom: 58, left: 64 }
const COLORS = {
  disagree: '#d62728',
  running: '#7f7f7f',
  partition: '#1f77b4',
  heal: '#2ca02c',
  write: '#555555',
  fault: '#9467bd',
  reference: '#ff7f0e',
  grid: '#e5e5e5',
  text: '#222222'
}

export function renderSvg (report: RunReport): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const endMs = Math.max(report.time.endMs, 1)
  const series = report.disagreement.series
  const maxRunning = Math.max(1, ...series.map(p => p[2]))
  const yMax = niceCeil(Math.max(1, report.disagreement.maxPeers, Math.ceil(maxRunning / 2)))
  const x = (t: number): number => MARGIN.left + (Math.min(Math.max(t, 0), endMs) / endMs) * plotW
  const y = (v: number): number => MARGIN.top + plotH - (Math.min(v, yMax) / yMax) * plotH
  const parts: string[] = []

  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`)
  parts.push(`<title>${esc(`${report.scenario}: disagreeing peers over time (${report.tier} tier, ${report.nodes} peers, seed ${report.seed})`)}</title>`)
  parts.push(`<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`)

  // Title and subtitle.
  const verdict = report.passed ? 'PASS' : 'FAIL'
  parts.push(`<text x="${MARGIN.left}" y="22" font-size="16" font-weight="bold" fill="${COLORS.text}">${esc(`${report.scenario} — ${report.tier} tier (${report.transport}), ${report.nodes} peers, seed ${report.seed}`)}</text>`)
  parts.push(`<text x="${WIDTH - MARGIN.right}" y="22" font-size="16" font-weight="bold" text-anchor="end" fill="${report.passed ? COLORS.heal : COLORS.disagree}">${verdict}</text>`)
  const conv = report.convergence.allAgreeAfterMs
  const subtitle = conv === null
    ? 'peers did not converge'
    : `all peers agree ${fmtMs(conv)} after the ${report.convergence.referenceEvent} · per peer p50 ${fmtMs(report.convergence.peerP50Ms)}, p99 ${fmtMs(report.convergence.peerP99Ms)} · sampled every ${fmtMs(report.convergence.resolutionMs)}`
  parts.push(`<text x="${MARGIN.left}" y="40" fill="#555">${esc(subtitle)}</text>`)

  // Partitions.
  for (const span of report.partitions) {
    const x0 = x(span.fromMs)
    const x1 = x(span.toMs ?? endMs)
    const label = span.sides.map(s => `${s.name}:${s.size}`).join(' | ')
    parts.push(`<rect x="${f(x0)}" y="${MARGIN.top}" width="${f(Math.max(1, x1 - x0))}" height="${plotH}" fill="${COLORS.partition}" fill-opacity="0.12"><title>${esc(`partition ${label}, ${fmtMs(span.fromMs)} – ${fmtMs(span.toMs ?? endMs)}`)}</title></rect>`)
    if (x1 - x0 > 50) parts.push(`<text x="${f(x0 + 4)}" y="${MARGIN.top + 14}" font-size="10" fill="${COLORS.partition}">${esc(truncate(`partition ${label}`, Math.floor((x1 - x0) / 6)))}</text>`)
  }

  // Grid and axes.
  for (const v of ticks(0, yMax, 5)) {
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="${COLORS.grid}"/>`)
    parts.push(`<text x="${MARGIN.left - 8}" y="${f(y(v) + 4)}" text-anchor="end" fill="${COLORS.text}">${v}</text>`)
  }
  for (const t of ticks(0, endMs / 1000, 10)) {
    const px = x(t * 1000)
    parts.push(`<line x1="${f(px)}" x2="${f(px)}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH + 5}" stroke="${COLORS.text}"/>`)
    parts.push(`<text x="${f(px)}" y="${MARGIN.top + plotH + 18}" text-anchor="middle" fill="${COLORS.text}">${t}</text>`)
  }
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}" stroke="${COLORS.text}"/>`)
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="${COLORS.text}"/>`)
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 22}" text-anchor="middle" fill="${COLORS.text}">scenario time (s)</text>`)
  parts.push(`<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="${COLORS.text}">peers off the majority digest</text>`)

  // Events: ticks under the top edge; heals as dashed lines.
  for (const m of report.events) {
    const px = x(m.atMs)
    const color = m.role === 'heal' ? COLORS.heal : m.role === 'cut' ? COLORS.partition : m.role === 'fault' ? COLORS.fault : COLORS.write
    if (m.role === 'heal' || m.role === 'cut') {
      parts.push(`<line x1="${f(px)}" x2="${f(px)}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="${color}" stroke-dasharray="4 3"><title>${esc(`${fmtMs(m.atMs)}: ${m.label}`)}</title></line>`)
    } else {
      parts.push(`<path d="M ${f(px - 4)} ${MARGIN.top - 8} L ${f(px + 4)} ${MARGIN.top - 8} L ${f(px)} ${MARGIN.top - 1} Z" fill="${color}"><title>${esc(`${fmtMs(m.atMs)}: ${m.label}`)}</title></path>`)
    }
  }

  // Reference point of the convergence figure.
  if (conv !== null) {
    const rx = x(report.convergence.referenceMs)
    const cx = x(report.convergence.referenceMs + conv)
    parts.push(`<line x1="${f(rx)}" x2="${f(cx)}" y1="${MARGIN.top + plotH - 6}" y2="${MARGIN.top + plotH - 6}" stroke="${COLORS.reference}" stroke-width="3"><title>${esc(`converged ${fmtMs(conv)} after the ${report.convergence.referenceEvent}`)}</title></line>`)
  }

  // Running peers (thin grey), then disagreeing peers (red step curve).
  if (series.length > 0) {
    parts.push(`<path d="${stepPath(series.map(p => [p[0], p[2]]), endMs, x, y)}" fill="none" stroke="${COLORS.running}" stroke-width="1" stroke-dasharray="2 2"/>`)
    parts.push(`<path d="${stepPath(series.map(p => [p[0], p[1]]), endMs, x, y)}" fill="none" stroke="${COLORS.disagree}" stroke-width="2"/>`)
  }

  // Legend.
  const ly = HEIGHT - 8
  const legend: Array<[string, string, string]> = [
    [COLORS.disagree, 'solid', 'peers off the majority digest'],
    [COLORS.running, 'dash', 'running peers (clipped)'],
    [COLORS.partition, 'area', 'partition'],
    [COLORS.heal, 'dash', 'heal'],
    [COLORS.write, 'mark', 'write / event'],
    [COLORS.reference, 'solid', 'time to converge']
  ]
  let lx = MARGIN.left
  for (const [color, kind, label] of legend) {
    if (kind === 'area') parts.push(`<rect x="${lx}" y="${ly - 9}" width="18" height="10" fill="${color}" fill-opacity="0.25"/>`)
    else if (kind === 'mark') parts.push(`<path d="M ${lx + 5} ${ly - 9} L ${lx + 13} ${ly - 9} L ${lx + 9} ${ly - 2} Z" fill="${color}"/>`)
    else parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${kind === 'dash' ? ' stroke-dasharray="4 3"' : ''}/>`)
    parts.push(`<text x="${lx + 22}" y="${ly}" font-size="11" fill="${COLORS.text}">${esc(label)}</text>`)
    lx += 30 + label.length * 6
  }

  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

function stepPath (points: Array<[number, number]>, endMs: number, x: (t: number) => number, y: (v: number) => number): string {
  let d = `M ${f(x(points[0][0]))} ${f(y(points[0][1]))}`
  for (let i = 1; i < points.length; i++) {
    d += ` H ${f(x(points[i][0]))} V ${f(y(points[i][1]))}`
  }
  d += ` H ${f(x(endMs))}`
  return d
}

/** Round numbers for an axis from `from` to `to`, about `count` of them. */
function ticks (from: number, to: number, count: number): number[] {
  const span = to - from
  if (span <= 0) return [from]
  const raw = span / count
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map(m => m * magnitude).find(s => s >= raw) ?? raw
  const out: number[] = []
  for (let v = Math.ceil(from / step) * step; v <= to + 1e-9; v += step) out.push(Number(v.toFixed(6)))
  return out
}

function niceCeil (v: number): number {
  if (v <= 5) return Math.max(1, Math.ceil(v))
  const magnitude = 10 ** Math.floor(Math.log10(v))
  return ([1, 2, 2.5, 5, 10].map(m => m * magnitude).find(s => s >= v)) ?? v
}

function fmtMs (ms: number | null): string {
  if (ms === null) return '—'
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`
}

function f (v: number): string {
  return v.toFixed(1)
}

function truncate (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`
}

function esc (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}
