/**
 * The browser page (docs/design.md "Interfaces"), end to end: three real
 * agents as child processes (real libp2p over TCP with a cluster key, fake
 * 8 GiB memory each), the page opened on the one that needs an API token, in
 * headless Chromium (Debian's `chromium`, driven by playwright-core; CI
 * installs it in .ci/run). The CLI makes and releases reservations on the
 * other agents; the page must follow without a reload. It checks what a
 * person checks: the nodes and their numbers, a reservation arriving and
 * turning final, a release freeing the bar, the fit form agreeing with
 * `memgossip fit`, and a malformed size showing the API's words.
 *
 * A screenshot is written to test/artifacts/ui.png (ignored by git); its path
 * and the test's duration are printed.
 */
import { existsSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatSize } from '../../crdt/index.ts'
import { cli, getJson, REPO, startChildAgent, stopAgents, tempDir, waitFor, type ChildAgent } from '../cli/procs.ts'
import { launchChromium } from './browser.ts'

const TOKEN = 'ui-test-token-0123456789abcdef'
const SCREENSHOT = join(REPO, 'test/artifacts/ui.png')
const SCREENSHOT_DARK = join(REPO, 'test/artifacts/ui-dark.png')
const started = Date.now()

let dir: string
let tokenFile: string
let A: ChildAgent, B: ChildAgent, C: ChildAgent
const agents: ChildAgent[] = []
let browser: Browser | undefined
let page: Page
const pageErrors: string[] = []

const withToken = (agent: ChildAgent): string[] => agent === A ? ['--api', agent.api, '--token', tokenFile] : ['--api', agent.api]

/** A's figures for every node, as the API gives them. */
async function nodesOfA (): Promise<Array<{ id: string, totalBytes: number, allocatableBytes: number, committedBytes: number, floorBytes: number, usedBytes: number }>> {
  return (await getJson(`${A.api}/v1/nodes`, TOKEN)).nodes
}

/** The aria-label of a node's row: the text alternative of its bar, with every number it draws. */
async function rowLabel (id: string): Promise<string> {
  return await page.locator(`#nodes [data-node="${id}"]`).getAttribute('aria-label', { timeout: 5000 }) ?? ''
}

beforeAll(async () => {
  // First, so a machine without chromium fails at once with how to install it.
  browser = await launchChromium()
  dir = await tempDir('memgossip-ui-')
  const keyFile = join(dir, 'cluster.key')
  tokenFile = join(dir, 'api.token')
  await writeFile(keyFile, (await cli(['keygen'])).stdout, { mode: 0o600 })
  await writeFile(tokenFile, TOKEN + '\n', { mode: 0o600 })
  A = await startChildAgent(['--cluster-key', keyFile, '--api-token', tokenFile])
  agents.push(A)
  const boot = ['--cluster-key', keyFile, '--bootstrap', A.info.multiaddrs[0]]
  ;[B, C] = await Promise.all([startChildAgent(boot), startChildAgent(boot)])
  agents.push(B, C)
  await waitFor('three joined members on every agent, one digest', async () => {
    const states = await Promise.all([A, B, C].map(async a => await getJson(`${a.api}/v1/state`, a === A ? TOKEN : undefined)))
    return states.every(s => s.joined === true && s.members.length === 3) && new Set(states.map(s => s.verdictsDigest)).size === 1
  }, 45_000)
  page = await browser.newPage({ viewport: { width: 1280, height: 1100 } })
  page.on('pageerror', (error) => pageErrors.push(error.message))
  // The browser logs each 4xx answer as an error; those are the API's expected refusals (no token yet, a bad size).
  page.on('console', (message) => { if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) pageErrors.push(message.text()) })
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await stopAgents(agents)
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  process.stdout.write(`ui.e2e: ${((Date.now() - started) / 1000).toFixed(1)} s in all (three agents, chromium, the page)\n`)
})

describe('the page at /ui', () => {
  it('asks for the token, keeps it in the tab (not the URL), and shows every node with its numbers', async () => {
    // The page's first reads go out without a token, and their refusals can arrive after the token is typed (the
    // event stream's refusal shows the form first; so it went once in CI, under load). A refusal of a token no longer
    // in use must neither ask again nor stop the stream that follows the new one: hold those reads until then.
    let held = 0
    await page.route(/\/v1\/(capacity|state|reservations|rent|alerts)$/, async (route) => {
      if (route.request().headers().authorization === undefined) {
        held++
        await page.locator('#token-form').waitFor({ state: 'hidden' })
      }
      await route.continue()
    })
    await page.goto(`${A.api}/ui`)
    await page.locator('#token-form').waitFor({ state: 'visible' })
    await waitFor('the token-less reads held', async () => held > 0, 10_000)
    await page.fill('#token', TOKEN)
    await page.press('#token', 'Enter')
    await page.locator('#nodes [data-node]').nth(2).waitFor()
    expect(page.url()).not.toContain(TOKEN)
    expect(await page.evaluate("sessionStorage.getItem('memgossip.token')")).toBe(TOKEN)
    await page.locator('#live.on').waitFor()
    await page.unroute(/\/v1\/(capacity|state|reservations|rent|alerts)$/)

    const nodes = await nodesOfA()
    expect(nodes.map(n => n.id).sort()).toEqual([A, B, C].map(a => a.info.peerId).sort())
    expect(await page.locator('#nodes [data-node]').count()).toBe(3)
    for (const n of nodes) {
      const label = await rowLabel(n.id)
      expect(label).toContain(`allocatable ${formatSize(n.allocatableBytes)} of ${formatSize(n.totalBytes)}`)
      expect(label).toContain(`committed ${formatSize(n.committedBytes)} (${formatSize(n.committedBytes)} final, 0 B tentative)`)
      expect(label).toContain(`floor ${formatSize(n.floorBytes)}`)
      expect(label).toContain(n.id === A.info.peerId ? 'active, self' : 'active, alive')
    }
    expect(await page.locator('#totals').textContent()).toContain(`3 node(s), 3 member(s) · allocatable ${formatSize(nodes.reduce((a, n) => a + n.allocatableBytes, 0))}`)
    expect(await page.locator('#membership').textContent()).toMatch(/3 member\(s\)/)

    // Keyboard: the list takes focus and the arrow keys move through its rows.
    await page.focus('#nodes')
    const first = await page.getAttribute('#nodes', 'aria-activedescendant')
    await page.keyboard.press('ArrowDown')
    expect(await page.getAttribute('#nodes', 'aria-activedescendant')).not.toBe(first)
  })

  it('a reservation made through the CLI on another agent appears, turns final and leaves "tentative" without a reload; a release frees the bar', async () => {
    // Marks this document (a reload would lose it) and records each state the row shows.
    // (Page code as text: this file is compiled without the DOM's types.)
    await page.evaluate(`
      window.mark = 'no reload'
      window.seen = []
      new MutationObserver(() => {
        const row = document.querySelector('tr[data-reservation="web-1"]')
        if (row !== null) window.seen.push(row.getAttribute('data-status') + '/' + row.getAttribute('data-final'))
      }).observe(document.getElementById('reservations'), { childList: true, subtree: true, attributes: true })
    `)
    const made = await cli(['reserve', 'web-1', '2GiB', '--label', 'team=web', ...withToken(B), '--json'])
    expect(made.code, made.stderr).toBe(0)
    const node = JSON.parse(made.stdout).verdict.nodes[0] as string

    const row = page.locator('tr[data-reservation="web-1"]')
    await row.waitFor({ timeout: 20_000 })
    await page.locator('tr[data-reservation="web-1"][data-final="true"]').waitFor({ timeout: 30_000 })
    expect(await row.getAttribute('data-status')).toBe('admitted')
    expect(await row.textContent()).toContain('2.00 GiB')
    expect(await row.textContent()).toContain('team=web')
    await page.locator('#pending[data-pending="0"]').waitFor({ timeout: 10_000 })
    // Filter "tentative": it is not there any more.
    await page.selectOption('#res-status', 'tentative')
    expect(await row.count()).toBe(0)
    await page.selectOption('#res-status', '')
    await waitFor('the bar of the chosen node shows 2 GiB final', async () => (await rowLabel(node)).includes('committed 2.00 GiB (2.00 GiB final, 0 B tentative)'), 15_000)
    const seen = await page.evaluate('window.seen') as string[]
    process.stdout.write(`ui.e2e: web-1 as the page showed it: ${[...new Set(seen)].join(' → ')}\n`)

    const released = await cli(['release', 'web-1', ...withToken(C)])
    expect(released.code, released.stderr).toBe(0)
    await page.locator('tr[data-reservation="web-1"][data-status="released"]').waitFor({ timeout: 20_000 })
    await waitFor('the bar of that node is free again', async () => (await rowLabel(node)).includes('committed 0 B (0 B final, 0 B tentative)'), 15_000)
    expect(await page.evaluate('window.mark')).toBe('no reload')
  })

  it('the fit form gives the same answer as `memgossip fit`, fitting or not', async () => {
    for (const [size, placement] of [['3GiB', ''], ['20GiB', ''], ['5GiB', 'spread:2']] as const) {
      const args = ['fit', size, ...withToken(A), '--json', ...(placement !== '' ? ['--placement', placement] : [])]
      const r = await cli(args)
      const answer = JSON.parse(r.stdout)
      await page.fill('#fit-size', size)
      await page.fill('#fit-placement', placement)
      await page.click('#fit-form button[type="submit"]')
      await page.locator(`#fit-answer [data-fits="${String(answer.fits)}"]`).waitFor()
      expect(await page.locator('#fit-histogram').textContent(), size).toBe(answer.histogram)
      expect(await page.locator('#fit-answer .verdict').textContent()).toContain(answer.reason)
      expect(await page.locator('#fit-answer .per-node tr.chosen').count()).toBe(answer.nodes.length)
      for (const n of answer.perNode) {
        const cells = await page.locator(`#fit-answer .per-node tr[data-node="${n.node}"] td`).allTextContents()
        expect(cells[2]).toBe(n.fit)
        expect(cells[3]).toBe(formatSize(n.headroomBytes))
        expect(cells[4]).toBe(n.headroomAfterBytes !== undefined ? formatSize(n.headroomAfterBytes) : '-')
      }
    }
  })

  it("a malformed size shows the API's error text, never a stack trace", async () => {
    const response = await fetch(`${A.api}/v1/fit`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ size: '12XB' }) })
    const error = await response.json() as { error: string, detail: string }
    expect(response.status).toBe(400)
    await page.fill('#fit-size', '12XB')
    await page.fill('#fit-placement', '')
    await page.click('#fit-form button[type="submit"]')
    const shown = page.locator('#fit-answer .error[role="alert"]')
    await shown.waitFor()
    expect(await shown.getAttribute('data-code')).toBe(error.error)
    expect(await shown.textContent()).toContain(error.detail)
    const text = await page.locator('body').innerText()
    expect(text).not.toMatch(/\n\s+at .+:\d+:\d+/)
    expect(text).not.toMatch(/TypeError|SyntaxError|ReferenceError/)
  })

  it('writes a screenshot; the page raised no script error', async () => {
    // Something held, so the bars have something to show.
    for (const [id, size, placement] of [['db-1', '3GiB', 'spread:2'], ['cache-1', '1GiB', 'any']] as const) {
      const r = await cli(['reserve', id, size, '--placement', placement, '--label', 'team=data', ...withToken(B)])
      expect(r.code, r.stderr).toBe(0)
    }
    await page.locator('tr[data-reservation="cache-1"][data-final="true"]').waitFor({ timeout: 30_000 })
    await page.locator('tr[data-reservation="db-1"][data-final="true"]').waitFor({ timeout: 30_000 })
    await page.fill('#fit-size', '3GiB')
    await page.click('#fit-form button[type="submit"]')
    await page.locator('#fit-answer [data-fits="true"]').waitFor()
    await mkdir(join(REPO, 'test/artifacts'), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    // The same page for a system that prefers dark.
    await page.emulateMedia({ colorScheme: 'dark' })
    const background = await page.evaluate('getComputedStyle(document.body).backgroundColor')
    expect(background).toBe('rgb(22, 24, 27)')
    await page.screenshot({ path: SCREENSHOT_DARK, fullPage: true })
    await page.emulateMedia({ colorScheme: 'light' })
    process.stdout.write(`ui.e2e: screenshots ${SCREENSHOT}, ${SCREENSHOT_DARK}\n`)
    expect(existsSync(SCREENSHOT)).toBe(true)
    expect(pageErrors).toEqual([])
  })
})
