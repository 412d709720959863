/**
 * Self-contained SVG charts for docs/: grouped bars (the median) with a
 * whisker up to the p99, on a linear or log axis, with an optional target
 * line. No fonts, scripts or external references beyond the SVG namespace.
 */

export interface Series { name: string, color: string }
export interface Group { label: string, values: Array<{ p50: number, p99?: number } | undefined> }

export interface BarChart {
  title: string
  unit: string
  series: Series[]
  groups: Group[]
  log?: boolean
  /** A horizontal line (e.g. a target), in data units. */
  line?: { value: number, label: string }
  width?: number
  height?: number
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

function niceTicks (min: number, max: number, log: boolean): number[] {
  if (log) {
    const ticks: number[] = []
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e
        if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v)
      }
    }
    return ticks
  }
  const span = max - min
  const step0 = 10 ** Math.floor(Math.log10(span / 5))
  const step = [1, 2, 5, 10].map(m => m * step0).find(s => span / s <= 6) ?? step0 * 10
  const ticks: number[] = []
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) ticks.push(Number(v.toPrecision(12)))
  return ticks
}

function label (v: number): string {
  if (v >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`
  if (v >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`
  return `${+v.toPrecision(3)}`
}

export function barChart (chart: BarChart): string {
  const width = chart.width ?? 760
  const height = chart.height ?? 360
  const margin = { top: 40, right: 20, bottom: 70, left: 70 }
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom
  const values = chart.groups.flatMap(g => g.values.flatMap(v => v === undefined ? [] : [v.p50, v.p99 ?? v.p50])).filter(v => Number.isFinite(v) && (!chart.log || v > 0))
  if (chart.line !== undefined) values.push(chart.line.value)
  const log = chart.log === true
  let lo = log ? Math.min(...values) / 1.5 : 0
  let hi = Math.max(...values) * (log ? 1.5 : 1.1)
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || hi <= lo) { lo = log ? 1 : 0; hi = log ? 10 : 1 }
  if (log) { lo = 10 ** Math.floor(Math.log10(lo)); hi = 10 ** Math.ceil(Math.log10(hi)) }
  const y = (v: number): number => {
    const f = log ? (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo)
    return margin.top + plotH - f * plotH
  }
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(chart.title)}</text>`)
  for (const t of niceTicks(lo, hi, log)) {
    const ty = y(t)
    out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${ty.toFixed(1)}" y2="${ty.toFixed(1)}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${margin.left - 6}" y="${(ty + 4).toFixed(1)}" text-anchor="end" fill="#444">${label(t)}</text>`)
  }
  out.push(`<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#444">${esc(chart.unit)}${log ? ' (log scale)' : ''}</text>`)
  out.push(`<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#888"/>`)
  out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${margin.top + plotH}" y2="${margin.top + plotH}" stroke="#888"/>`)
  const groupW = plotW / Math.max(1, chart.groups.length)
  const barW = Math.min(40, (groupW * 0.8) / Math.max(1, chart.series.length))
  chart.groups.forEach((g, gi) => {
    const gx = margin.left + gi * groupW + (groupW - barW * chart.series.length) / 2
    g.values.forEach((v, si) => {
      if (v === undefined || !Number.isFinite(v.p50)) return
      const x = gx + si * barW
      const top = y(v.p50)
      out.push(`<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${Math.max(0, margin.top + plotH - top).toFixed(1)}" fill="${chart.series[si].color}"><title>${esc(`${g.label.replace(/\n/g, ' ')} ${chart.series[si].name}: median ${label(v.p50)}${v.p99 !== undefined ? `, p99 ${label(v.p99)}` : ''} ${chart.unit}`)}</title></rect>`)
      if (v.p99 !== undefined && Number.isFinite(v.p99)) {
        const cx = x + (barW - 3) / 2
        out.push(`<line x1="${cx.toFixed(1)}" x2="${cx.toFixed(1)}" y1="${top.toFixed(1)}" y2="${y(v.p99).toFixed(1)}" stroke="#222"/>`)
        out.push(`<line x1="${(cx - 5).toFixed(1)}" x2="${(cx + 5).toFixed(1)}" y1="${y(v.p99).toFixed(1)}" y2="${y(v.p99).toFixed(1)}" stroke="#222"/>`)
      }
    })
    const lines = g.label.split('\n')
    lines.forEach((l, li) => {
      out.push(`<text x="${(margin.left + gi * groupW + groupW / 2).toFixed(1)}" y="${margin.top + plotH + 18 + li * 14}" text-anchor="middle" fill="#222">${esc(l)}</text>`)
    })
  })
  if (chart.line !== undefined) {
    const ly = y(chart.line.value)
    out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${ly.toFixed(1)}" y2="${ly.toFixed(1)}" stroke="#c00" stroke-dasharray="6 4"/>`)
    out.push(`<text x="${margin.left + plotW - 4}" y="${(ly - 5).toFixed(1)}" text-anchor="end" fill="#c00">${esc(chart.line.label)}</text>`)
  }
  // Legend.
  let lx = margin.left
  const ly = height - 16
  for (const s of chart.series) {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${s.color}"/>`)
    out.push(`<text x="${lx + 16}" y="${ly}" fill="#222">${esc(s.name)}</text>`)
    lx += 24 + s.name.length * 7
  }
  out.push(`<text x="${width - margin.right}" y="${ly}" text-anchor="end" fill="#666">bar: median, whisker: p99</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}
