/**
 * Self-contained SVG charts — no fonts, scripts or links beyond the SVG
 * namespace, readable in a browser and embedded in docs/. The one chart module
 * of simulations/: the elements and axes every figure is drawn with, and the
 * benchmark's grouped bar chart. The figures themselves (the simulator's
 * convergence picture, simulations/harness/svg.ts; the soak's memory over
 * time, simulations/reliability/soak.ts) are drawn with these pieces next to
 * the report they show.
 */

type Attributes = Record<string, string | number | undefined>

/** Text safe inside an element or an attribute. */
export function esc (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A coordinate as written in the files: one decimal. */
export function px (v: number): string {
  return v.toFixed(1)
}

/**
 * One element, attributes in the order given (undefined ones left out);
 * `children` is markup (from other calls, or `esc`aped text). Without children
 * the element is self-closing.
 */
export function el (tag: string, attributes: Attributes, children?: string): string {
  const attrs = Object.entries(attributes).filter(([, v]) => v !== undefined).map(([k, v]) => ` ${k}="${esc(String(v))}"`).join('')
  return children === undefined ? `<${tag}${attrs}/>` : `<${tag}${attrs}>${children}</${tag}>`
}

/** A text element; `content` is escaped. */
export function text (attributes: Attributes, content: string | number): string {
  return el('text', attributes, esc(String(content)))
}

/** A `<title>` tooltip, as the child of a shape. */
export function tooltip (content: string): string {
  return el('title', {}, esc(content))
}

/** The opening `<svg>` tag; close the document with `'</svg>'`. */
export function svgOpen (width: number, height: number, options: { viewBox?: boolean, fontFamily?: string, fontSize?: number } = {}): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"${options.viewBox === true ? ` viewBox="0 0 ${width} ${height}"` : ''} font-family="${options.fontFamily ?? 'sans-serif'}" font-size="${options.fontSize ?? 12}">`
}

/** A document from its parts, one a line, ending in a newline. */
export function svgDocument (parts: string[]): string {
  return [...parts, '</svg>'].join('\n') + '\n'
}

/** Round numbers for a linear axis from `from` to `to`, about `count` of them (steps of 1, 2, 5 × 10^k). */
export function ticks (from: number, to: number, count: number): number[] {
  const span = to - from
  if (span <= 0) return [from]
  const raw = span / count
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map(m => m * magnitude).find(s => s >= raw) ?? raw
  const out: number[] = []
  for (let v = Math.ceil(from / step) * step; v <= to + 1e-9; v += step) out.push(Number(v.toFixed(6)))
  return out
}

/** Axis ticks for a bar chart: 1, 2, 5 per decade on a log axis; at most 6 round steps on a linear one. */
export function barTicks (min: number, max: number, log: boolean): number[] {
  if (log) {
    const out: number[] = []
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e
        if (v >= min * 0.999 && v <= max * 1.001) out.push(v)
      }
    }
    return out
  }
  const span = max - min
  const step0 = 10 ** Math.floor(Math.log10(span / 5))
  const step = [1, 2, 5, 10].map(m => m * step0).find(s => span / s <= 6) ?? step0 * 10
  const out: number[] = []
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) out.push(Number(v.toPrecision(12)))
  return out
}

/** The smallest round number (1, 2, 2.5, 5 × 10^k; an integer up to 5) at or above `v`: an axis maximum. */
export function niceCeil (v: number): number {
  if (v <= 5) return Math.max(1, Math.ceil(v))
  const magnitude = 10 ** Math.floor(Math.log10(v))
  return ([1, 2, 2.5, 5, 10].map(m => m * magnitude).find(s => s >= v)) ?? v
}

/** `12k`, `3.5M`: a short axis label. */
export function shortNumber (v: number): string {
  if (v >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`
  if (v >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`
  return `${+v.toPrecision(3)}`
}

/** A line through `points` (already in pixels). */
export function polyline (points: Array<[number, number]>, stroke: { color: string, width?: number, dash?: string }): string {
  return el('polyline', {
    fill: 'none',
    stroke: stroke.color,
    'stroke-width': stroke.width ?? 2,
    'stroke-dasharray': stroke.dash !== undefined && stroke.dash !== '' ? stroke.dash : undefined,
    points: points.map(([x, y]) => `${px(x)},${px(y)}`).join(' ')
  })
}

// ------------------------------------------------------------ bar chart

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

/** Grouped bars (the median) with a whisker up to the p99, on a linear or log axis, with an optional target line. */
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
  out.push(svgOpen(width, height, { viewBox: true }))
  out.push(el('rect', { width, height, fill: '#ffffff' }))
  out.push(text({ x: width / 2, y: 22, 'text-anchor': 'middle', 'font-size': 15, 'font-weight': 'bold' }, chart.title))
  for (const t of barTicks(lo, hi, log)) {
    const ty = y(t)
    out.push(el('line', { x1: margin.left, x2: margin.left + plotW, y1: px(ty), y2: px(ty), stroke: '#e5e5e5' }))
    out.push(text({ x: margin.left - 6, y: px(ty + 4), 'text-anchor': 'end', fill: '#444' }, shortNumber(t)))
  }
  out.push(text({ transform: `translate(16 ${margin.top + plotH / 2}) rotate(-90)`, 'text-anchor': 'middle', fill: '#444' }, `${chart.unit}${log ? ' (log scale)' : ''}`))
  out.push(el('line', { x1: margin.left, x2: margin.left, y1: margin.top, y2: margin.top + plotH, stroke: '#888' }))
  out.push(el('line', { x1: margin.left, x2: margin.left + plotW, y1: margin.top + plotH, y2: margin.top + plotH, stroke: '#888' }))
  const groupW = plotW / Math.max(1, chart.groups.length)
  const barW = Math.min(40, (groupW * 0.8) / Math.max(1, chart.series.length))
  chart.groups.forEach((g, gi) => {
    const gx = margin.left + gi * groupW + (groupW - barW * chart.series.length) / 2
    g.values.forEach((v, si) => {
      if (v === undefined || !Number.isFinite(v.p50)) return
      const x = gx + si * barW
      const top = y(v.p50)
      const title = `${g.label.replace(/\n/g, ' ')} ${chart.series[si].name}: median ${shortNumber(v.p50)}${v.p99 !== undefined ? `, p99 ${shortNumber(v.p99)}` : ''} ${chart.unit}`
      out.push(el('rect', { x: px(x), y: px(top), width: px(barW - 3), height: px(Math.max(0, margin.top + plotH - top)), fill: chart.series[si].color }, tooltip(title)))
      if (v.p99 !== undefined && Number.isFinite(v.p99)) {
        const cx = x + (barW - 3) / 2
        out.push(el('line', { x1: px(cx), x2: px(cx), y1: px(top), y2: px(y(v.p99)), stroke: '#222' }))
        out.push(el('line', { x1: px(cx - 5), x2: px(cx + 5), y1: px(y(v.p99)), y2: px(y(v.p99)), stroke: '#222' }))
      }
    })
    g.label.split('\n').forEach((l, li) => {
      out.push(text({ x: px(margin.left + gi * groupW + groupW / 2), y: margin.top + plotH + 18 + li * 14, 'text-anchor': 'middle', fill: '#222' }, l))
    })
  })
  if (chart.line !== undefined) {
    const ly = y(chart.line.value)
    out.push(el('line', { x1: margin.left, x2: margin.left + plotW, y1: px(ly), y2: px(ly), stroke: '#c00', 'stroke-dasharray': '6 4' }))
    out.push(text({ x: margin.left + plotW - 4, y: px(ly - 5), 'text-anchor': 'end', fill: '#c00' }, chart.line.label))
  }
  // Legend.
  let lx = margin.left
  const ly = height - 16
  for (const s of chart.series) {
    out.push(el('rect', { x: lx, y: ly - 10, width: 12, height: 12, fill: s.color }))
    out.push(text({ x: lx + 16, y: ly, fill: '#222' }, s.name))
    lx += 24 + s.name.length * 7
  }
  out.push(text({ x: width - margin.right, y: ly, 'text-anchor': 'end', fill: '#666' }, 'bar: median, whisker: p99'))
  return svgDocument(out)
}
