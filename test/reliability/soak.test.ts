/**
 * The soak harness in miniature (18 s): churn with a partition, a restart and
 * a join; the report and chart are written and the cluster agrees at the end.
 * The real run is `npm run soak -- --minutes 30` (docs/reliability.md).
 */
import { readFile, rm } from 'node:fs/promises'
import { afterAll, describe, expect, it } from 'vitest'
import { runSoak, slope, type SoakReport } from '../../simulations/reliability/soak.ts'
import { tempDir } from '../../simulations/support/cluster.ts'

const dirs: string[] = []
afterAll(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

describe('soak', () => {
  it('slope is a least-squares fit', () => {
    expect(slope([[0, 1], [1, 3], [2, 5]])).toBeCloseTo(2)
    expect(slope([[0, 7], [1, 7]])).toBe(0)
    expect(slope([[0, 7]])).toBe(0)
  })

  it('--minutes 0.3: writes the JSON report and the SVG chart; every heal converges', async () => {
    const outDir = await tempDir('memgossip-soak-')
    dirs.push(outDir)
    const lines: string[] = []
    const { report, jsonPath, svgPath } = await runSoak({ minutes: 0.3, outDir, log: (l) => { lines.push(l) } })
    console.log(lines.join('\n'))
    console.log(report.summary.verdict)
    const written = JSON.parse(await readFile(jsonPath, 'utf8')) as SoakReport
    expect(written.samples.length).toBeGreaterThanOrEqual(3)
    expect(written.counts.reservationsMade).toBeGreaterThan(20)
    expect(written.counts.acknowledged).toBeGreaterThan(0)
    expect(written.events.map(e => e.kind)).toContain('partition')
    expect(written.events.every(e => e.convergedMs >= 0)).toBe(true)
    expect(written.summary.finalConverged).toBe(true)
    expect(written.summary.overCommittedNodes).toBe(0)
    expect(written.samples.at(-1)!.distinctDigests).toBe(1)
    expect(written.samples.every(s => s.rssBytes > 0 && s.ledgerBytes.every(b => b > 0) && s.resolveMs >= 0)).toBe(true)
    expect(written.summary.ledgerBytesPerReservation).toBeGreaterThan(0)
    const svg = await readFile(svgPath, 'utf8')
    expect(svg).toMatch(/^<svg /)
    expect(svg).toMatch(/<polyline/)
  }, 60_000)
})
