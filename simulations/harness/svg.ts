/**
 * The convergence picture of a run: disagreeing peers over scenario time as a
 * step curve, partitions shaded, events marked. One self-contained SVG file (no
 * scripts, fonts or links), readable in a browser or embedded in docs. Drawn
 * with the chart pieces of simulations/support/svg.ts.
 */
import { el, niceCeil, px as f, svgDocument, svgOpen, text, ticks, tooltip } from '../support/svg.ts'
import type { RunReport } from './report.ts'

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
  const top = MARGIN.top
  const bottom = MARGIN.top + plotH
  const endMs = Math.max(report.time.endMs, 1)
  const series = report.disagreement.series
  const maxRunning = Math.max(1, ...series.map(p => p[2]))
  const yMax = niceCeil(Math.max(1, report.disagreement.maxPeers, Math.ceil(maxRunning / 2)))
  const x = (t: number): number => MARGIN.left + (Math.min(Math.max(t, 0), endMs) / endMs) * plotW
  const y = (v: number): number => MARGIN.top + plotH - (Math.min(v, yMax) / yMax) * plotH
  const parts: string[] = []

  parts.push(svgOpen(WIDTH, HEIGHT, { viewBox: true, fontFamily: 'Helvetica, Arial, sans-serif' }))
  parts.push(tooltip(`${report.scenario}: disagreeing peers over time (${report.tier} tier, ${report.nodes} peers, seed ${report.seed})`))
  parts.push(el('rect', { x: 0, y: 0, width: WIDTH, height: HEIGHT, fill: '#ffffff' }))

  // Title and subtitle.
  const verdict = report.passed ? 'PASS' : 'FAIL'
  parts.push(text({ x: MARGIN.left, y: 22, 'font-size': 16, 'font-weight': 'bold', fill: COLORS.text }, `${report.scenario} — ${report.tier} tier (${report.transport}), ${report.nodes} peers, seed ${report.seed}`))
  parts.push(text({ x: WIDTH - MARGIN.right, y: 22, 'font-size': 16, 'font-weight': 'bold', 'text-anchor': 'end', fill: report.passed ? COLORS.heal : COLORS.disagree }, verdict))
  const conv = report.convergence.allAgreeAfterMs
  const subtitle = conv === null
    ? 'peers did not converge'
    : `all peers agree ${fmtMs(conv)} after the ${report.convergence.referenceEvent} · per peer p50 ${fmtMs(report.convergence.peerP50Ms)}, p99 ${fmtMs(report.convergence.peerP99Ms)} · sampled every ${fmtMs(report.convergence.resolutionMs)}`
  parts.push(text({ x: MARGIN.left, y: 40, fill: '#555' }, subtitle))

  // Partitions.
  for (const span of report.partitions) {
    const x0 = x(span.fromMs)
    const x1 = x(span.toMs ?? endMs)
    const label = span.sides.map(s => `${s.name}:${s.size}`).join(' | ')
    parts.push(el('rect', { x: f(x0), y: top, width: f(Math.max(1, x1 - x0)), height: plotH, fill: COLORS.partition, 'fill-opacity': '0.12' }, tooltip(`partition ${label}, ${fmtMs(span.fromMs)} – ${fmtMs(span.toMs ?? endMs)}`)))
    if (x1 - x0 > 50) parts.push(text({ x: f(x0 + 4), y: top + 14, 'font-size': 10, fill: COLORS.partition }, truncate(`partition ${label}`, Math.floor((x1 - x0) / 6))))
  }

  // Grid and axes.
  for (const v of ticks(0, yMax, 5)) {
    parts.push(el('line', { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: f(y(v)), y2: f(y(v)), stroke: COLORS.grid }))
    parts.push(text({ x: MARGIN.left - 8, y: f(y(v) + 4), 'text-anchor': 'end', fill: COLORS.text }, v))
  }
  for (const t of ticks(0, endMs / 1000, 10)) {
    const tx = x(t * 1000)
    parts.push(el('line', { x1: f(tx), x2: f(tx), y1: bottom, y2: bottom + 5, stroke: COLORS.text }))
    parts.push(text({ x: f(tx), y: bottom + 18, 'text-anchor': 'middle', fill: COLORS.text }, t))
  }
  parts.push(el('line', { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: bottom, y2: bottom, stroke: COLORS.text }))
  parts.push(el('line', { x1: MARGIN.left, x2: MARGIN.left, y1: top, y2: bottom, stroke: COLORS.text }))
  parts.push(text({ x: MARGIN.left + plotW / 2, y: HEIGHT - 22, 'text-anchor': 'middle', fill: COLORS.text }, 'scenario time (s)'))
  parts.push(text({ transform: `translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)`, 'text-anchor': 'middle', fill: COLORS.text }, 'peers off the majority digest'))

  // Events: ticks under the top edge; heals as dashed lines.
  for (const m of report.events) {
    const mx = x(m.atMs)
    const color = m.role === 'heal' ? COLORS.heal : m.role === 'cut' ? COLORS.partition : m.role === 'fault' ? COLORS.fault : COLORS.write
    const title = tooltip(`${fmtMs(m.atMs)}: ${m.label}`)
    if (m.role === 'heal' || m.role === 'cut') {
      parts.push(el('line', { x1: f(mx), x2: f(mx), y1: top, y2: bottom, stroke: color, 'stroke-dasharray': '4 3' }, title))
    } else {
      parts.push(el('path', { d: `M ${f(mx - 4)} ${top - 8} L ${f(mx + 4)} ${top - 8} L ${f(mx)} ${top - 1} Z`, fill: color }, title))
    }
  }

  // Reference point of the convergence figure.
  if (conv !== null) {
    const rx = x(report.convergence.referenceMs)
    const cx = x(report.convergence.referenceMs + conv)
    parts.push(el('line', { x1: f(rx), x2: f(cx), y1: bottom - 6, y2: bottom - 6, stroke: COLORS.reference, 'stroke-width': 3 }, tooltip(`converged ${fmtMs(conv)} after the ${report.convergence.referenceEvent}`)))
  }

  // Running peers (thin grey), then disagreeing peers (red step curve).
  if (series.length > 0) {
    parts.push(el('path', { d: stepPath(series.map(p => [p[0], p[2]]), endMs, x, y), fill: 'none', stroke: COLORS.running, 'stroke-width': 1, 'stroke-dasharray': '2 2' }))
    parts.push(el('path', { d: stepPath(series.map(p => [p[0], p[1]]), endMs, x, y), fill: 'none', stroke: COLORS.disagree, 'stroke-width': 2 }))
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
    if (kind === 'area') parts.push(el('rect', { x: lx, y: ly - 9, width: 18, height: 10, fill: color, 'fill-opacity': '0.25' }))
    else if (kind === 'mark') parts.push(el('path', { d: `M ${lx + 5} ${ly - 9} L ${lx + 13} ${ly - 9} L ${lx + 9} ${ly - 2} Z`, fill: color }))
    else parts.push(el('line', { x1: lx, x2: lx + 18, y1: ly - 4, y2: ly - 4, stroke: color, 'stroke-width': 2, 'stroke-dasharray': kind === 'dash' ? '4 3' : undefined }))
    parts.push(text({ x: lx + 22, y: ly, 'font-size': 11, fill: COLORS.text }, label))
    lx += 30 + label.length * 6
  }

  return svgDocument(parts)
}

function stepPath (points: Array<[number, number]>, endMs: number, x: (t: number) => number, y: (v: number) => number): string {
  let d = `M ${f(x(points[0][0]))} ${f(y(points[0][1]))}`
  for (let i = 1; i < points.length; i++) {
    d += ` H ${f(x(points[i][0]))} V ${f(y(points[i][1]))}`
  }
  d += ` H ${f(x(endMs))}`
  return d
}

function fmtMs (ms: number | null): string {
  if (ms === null) return '—'
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`
}

function truncate (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`
}
