/**
 * The page at a thousand nodes. What is under test is the page (its list,
 * its refreshes), not the cluster, so the API is a stand-in here: the real
 * page files (agent/api/ui.ts) and answers in the contract's shapes for a
 * thousand nodes, with an event stream the test writes to. It checks that
 * only the rows in sight are in the document, that filtering, sorting and
 * the keyboard reach any node, and that a burst of events makes one refresh,
 * not one per event.
 */
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AlertListJson, CapacityJson, NodeJson, RentJson, ReservationListJson, StateJson } from '../../agent/api/contract.ts'
import { UiFiles } from '../../agent/api/ui.ts'
import { formatSize } from '../../crdt/index.ts'
import { waitFor } from '../cli/procs.ts'
import { launchChromium } from './browser.ts'

const N = 1000
const GiB = 1024 ** 3
const SELF = 'node-0000'

/** Node i: 8 to 64 GiB, committed a share that grows with i; every 97th under pressure. */
function node (i: number): NodeJson {
  const id = `node-${String(i).padStart(4, '0')}`
  const totalBytes = (8 + (i % 8) * 8) * GiB
  const floorBytes = Math.round(totalBytes * 0.05)
  const allocatableBytes = totalBytes - floorBytes
  const committedBytes = Math.round(allocatableBytes * ((i % 10) / 10))
  return {
    id, state: 'active', member: true, liveness: id === SELF ? 'self' : 'alive', heartbeatAgeMs: 500, totalBytes, allocatableBytes, committedBytes,
    headroomBytes: allocatableBytes - committedBytes, availableBytes: totalBytes - committedBytes, usedBytes: Math.round(committedBytes / 2), floorBytes,
    undersized: false, pressure: i % 97 === 0 && i > 0 ? 'warn' : 'ok', allNeedBytes: committedBytes, deficitBytes: 0, reservations: i % 10,
    labels: { rack: `r${i % 20}` }, version: '0.1.0'
  }
}

const nodes = Array.from({ length: N }, (_, i) => node(i))
const sum = (f: (n: NodeJson) => number): number => nodes.reduce((a, n) => a + f(n), 0)
const capacity: CapacityJson = {
  members: N, totalBytes: sum(n => n.totalBytes), allocatableBytes: sum(n => n.allocatableBytes), committedBytes: sum(n => n.committedBytes),
  headroomBytes: sum(n => n.headroomBytes), availableBytes: sum(n => n.availableBytes), pending: 0, counts: { admitted: 0, rejected: 0, evicted: 0, released: 0, invalid: 0, queued: 0 }, verdictsDigest: 'd', nodes
}
const state: StateJson = {
  self: SELF, cluster: 'big', joined: true, standing: 'member', members: nodes.map(n => n.id),
  view: { epoch: 7, members: nodes.map(n => n.id), digest: '7-abcdef', cause: 'genesis' }, viewChanges: [], admissionRequests: [],
  clock: { behindMs: 0, maxOffsetMs: 500, peersAheadMs: {} }, peers: [], reservations: 0, pending: 0, verdictsDigest: 'd',
  ledgerBytes: 0, floorBytes: nodes[0].floorBytes, floorRule: '5%', allocatableBytes: nodes[0].allocatableBytes
}
const reservations: ReservationListJson = { reservations: [], pending: 0, verdictsDigest: 'd' }
const rent: RentJson = { lines: [], totalByteSeconds: 0, totalCost: 0, pricePerGiBHour: 0, sinceMs: 0, nowMs: 0 }
const alerts: AlertListJson = { alerts: [] }
const ANSWERS: Record<string, unknown> = { '/v1/capacity': capacity, '/v1/state': state, '/v1/reservations': reservations, '/v1/rent': rent, '/v1/alerts': alerts }

const asked = new Map<string, number>()
const streams: ServerResponse[] = []
const files = new UiFiles()
const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname
  asked.set(path, (asked.get(path) ?? 0) + 1)
  if (path === '/ui') return files.send(res, 'index.html')
  if (path.startsWith('/ui/')) return files.send(res, path.slice(4))
  if (path === '/v1/events') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' })
    res.write(`event: hello\ndata: ${JSON.stringify({ self: SELF, alerts: [], verdictsDigest: 'd' })}\n\n`)
    streams.push(res)
    return
  }
  const body = ANSWERS[path]
  const answer = (): void => {
    res.writeHead(body !== undefined ? 200 : 404, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify(body ?? { error: 'NotFound', detail: `no route GET ${path}` }))
  }
  // The first capacity answer comes after the state's (as under load, once in CI): the page must still count members by liveness.
  if (path === '/v1/capacity' && asked.get(path) === 1) setTimeout(answer, 300)
  else answer()
})

let browser: Browser
let page: Page
let base: string
const rowsInDocument = async (): Promise<number> => await page.locator('#nodes [data-node]').count()

beforeAll(async () => {
  browser = await launchChromium()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } })
})

afterAll(async () => {
  await browser?.close()
  for (const s of streams) s.destroy()
  server.closeAllConnections()
  await new Promise<void>(resolve => server.close(() => resolve()))
})

describe('the page with a thousand nodes', () => {
  it('keeps only the rows in sight in the document, and the keyboard, filter and sort reach any node', async () => {
    const start = Date.now()
    await page.goto(`${base}/ui`)
    await page.locator('#nodes [data-node="node-0000"]').waitFor()
    process.stdout.write(`ui.scale: ${N} nodes drawn ${Date.now() - start} ms after opening the page\n`)
    expect(await page.locator('#totals').textContent()).toContain(`${N} node(s), ${N} member(s) · allocatable ${formatSize(capacity.allocatableBytes)}`)
    // The view of a thousand members is counted, not listed.
    await page.locator('#membership').getByText('1 self, 999 alive').waitFor()
    expect(await page.locator('#membership li').count()).toBe(0)
    const drawn = await rowsInDocument()
    expect(drawn).toBeGreaterThan(5)
    expect(drawn).toBeLessThan(30)

    // End: the last node, still only a window of rows.
    await page.focus('#nodes')
    await page.keyboard.press('End')
    await page.locator('#nodes [data-node="node-0999"][aria-selected="true"]').waitFor()
    expect(await rowsInDocument()).toBeLessThan(30)
    expect(await page.getAttribute('#nodes', 'aria-activedescendant')).toBe('node-node-0999')

    // Filter: a label narrows the list (50 nodes on rack r7), the numbers are in the row's text alternative.
    await page.fill('#node-filter', 'rack=r7 ')
    await page.locator('#nodes [data-node="node-0007"]').waitFor()
    expect(await page.locator('#totals').textContent()).toContain('showing 50')
    const n7 = nodes[7]
    expect(await page.getAttribute('#nodes [data-node="node-0007"]', 'aria-label')).toContain(`allocatable ${formatSize(n7.allocatableBytes)} of ${formatSize(n7.totalBytes)}, committed ${formatSize(n7.committedBytes)}`)
    await page.fill('#node-filter', '')

    // Marked first: the nodes under pressure lead.
    await page.selectOption('#node-sort', 'marked')
    await page.locator('#nodes [data-node="node-0097"]').waitFor()
    expect(await page.getAttribute('#nodes [data-node="node-0097"]', 'aria-label')).toContain('pressure warn')
    await page.check('#node-marked')
    expect(await page.locator('#totals').textContent()).toContain(`showing ${Math.floor((N - 1) / 97)}`)
  })

  it('a burst of events makes one refresh of what they change, not one per event', async () => {
    await waitFor('the stream is open', () => streams.length > 0, 10_000)
    await new Promise(resolve => setTimeout(resolve, 500))
    const before = { capacity: asked.get('/v1/capacity') ?? 0, reservations: asked.get('/v1/reservations') ?? 0, state: asked.get('/v1/state') ?? 0 }
    const stream = streams[streams.length - 1]
    for (let i = 0; i < 200; i++) {
      stream.write(`event: verdict\ndata: ${JSON.stringify({ type: 'verdict', id: `r-${i}`, status: 'admitted', final: false, code: 'Fits', reason: 'fits', nodes: [nodes[i].id] })}\n\n`)
    }
    await waitFor('a refresh', () => (asked.get('/v1/reservations') ?? 0) > before.reservations, 5000)
    await new Promise(resolve => setTimeout(resolve, 1000))
    const capacityRefreshes = (asked.get('/v1/capacity') ?? 0) - before.capacity
    const reservationRefreshes = (asked.get('/v1/reservations') ?? 0) - before.reservations
    process.stdout.write(`ui.scale: 200 verdict events → ${reservationRefreshes} reservations and ${capacityRefreshes} capacity refresh(es)\n`)
    expect(reservationRefreshes).toBeGreaterThanOrEqual(1)
    expect(reservationRefreshes).toBeLessThanOrEqual(2)
    expect(capacityRefreshes).toBeLessThanOrEqual(2)
    // Verdicts do not change the membership view: no refresh of it.
    expect((asked.get('/v1/state') ?? 0) - before.state).toBe(0)
  })
})
