/**
 * The chart module (simulations/support/svg.ts): the pieces every figure is
 * drawn with, and the benchmark's bar chart rendered from made-up figures.
 * The simulator's picture and the soak's chart are rendered by their own
 * suites (test/simulations/cli.test.ts, test/reliability/soak.test.ts).
 */
import { describe, expect, it } from 'vitest'
import { barChart, barTicks, el, polyline, text, ticks } from '../../simulations/support/svg.ts'

describe('SVG pieces', () => {
  it('writes attributes in the order given, leaves out undefined ones, escapes attributes and text', () => {
    expect(el('line', { x1: 1, x2: 2.5, stroke: '#222', 'stroke-dasharray': undefined })).toBe('<line x1="1" x2="2.5" stroke="#222"/>')
    expect(el('rect', { fill: 'a"b' }, el('title', {}, 'x'))).toBe('<rect fill="a&quot;b"><title>x</title></rect>')
    expect(text({ x: 0 }, 'p50 < 5 ms & "fast"')).toBe('<text x="0">p50 &lt; 5 ms &amp; &quot;fast&quot;</text>')
    expect(polyline([[0, 1], [2.25, 3]], { color: 'red', dash: '6,3' })).toBe('<polyline fill="none" stroke="red" stroke-width="2" stroke-dasharray="6,3" points="0.0,1.0 2.3,3.0"/>')
  })

  it('puts axis ticks on round numbers', () => {
    expect(ticks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10])
    expect(ticks(0, 0.7, 10)).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    expect(barTicks(1, 1000, true)).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
    expect(barTicks(0, 110, false)).toEqual([0, 20, 40, 60, 80, 100])
  })
})

describe('bar chart', () => {
  const chart = {
    title: 'propagation <p50>',
    unit: 'ms',
    series: [{ name: 'memgossip', color: '#1f77b4' }, { name: 'serf', color: '#ff7f0e' }],
    groups: [{ label: '3 nodes\nlan', values: [{ p50: 12, p99: 40 }, { p50: 30 }] }, { label: '10 nodes', values: [undefined, { p50: 300, p99: 900 }] }],
    line: { value: 100, label: 'target 100 ms' }
  }

  it('renders one bar per value, a whisker per p99, the target line and a legend entry per series', () => {
    const svg = barChart(chart)
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="760" height="360" viewBox="0 0 760 360"/)
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true)
    expect(svg).not.toMatch(/<script|href=/)
    const bars = [...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" fill="(#[0-9a-f]+)"><title>([^<]*)<\/title><\/rect>/g)]
    expect(bars.map(b => [b[1], b[2]])).toEqual([
      ['#1f77b4', '3 nodes lan memgossip: median 12, p99 40 ms'],
      ['#ff7f0e', '3 nodes lan serf: median 30 ms'],
      ['#ff7f0e', '10 nodes serf: median 300, p99 900 ms']
    ])
    // Two lines a whisker (stem and cap), for the two values with a p99.
    expect(svg.match(/stroke="#222"/g)).toHaveLength(4)
    expect(svg).toContain('<text x="380" y="22" text-anchor="middle" font-size="15" font-weight="bold">propagation &lt;p50&gt;</text>')
    expect(svg).toContain('stroke="#c00" stroke-dasharray="6 4"')
    expect(svg).toContain('>target 100 ms</text>')
    expect(svg).toContain('>memgossip</text>')
    expect(svg).toContain('>serf</text>')
  })

  it('a taller bar for a larger median; on a log axis too', () => {
    for (const log of [false, true]) {
      const heights = [...barChart({ ...chart, log }).matchAll(/<rect [^>]*height="([\d.]+)" fill="#ff7f0e">/g)].map(m => Number(m[1]))
      expect(heights).toHaveLength(2)
      expect(heights[1]).toBeGreaterThan(heights[0])
    }
    expect(barChart({ ...chart, log: true })).toContain('ms (log scale)')
  })

  it('an empty chart still renders (axes, no bars)', () => {
    const svg = barChart({ title: 'nothing yet', unit: 'B', series: [], groups: [] })
    expect(svg).toContain('nothing yet')
    expect(svg).not.toMatch(/<title>/)
  })
})
