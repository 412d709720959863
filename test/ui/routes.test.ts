/**
 * The page's routes on a real agent's API (docs/design.md "Interfaces"): the
 * files are served without the token (a browser cannot add it to a
 * navigation) and hold no cluster data; every API route still needs it. Only
 * the page's own files are served, with a policy that lets nothing else run
 * in the page; 404 and 405 come from the route table like every route's.
 */
import { writeFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAgent, stopAll, tempDir, type TestAgent } from '../../simulations/support/cluster.ts'
import { UI_CONTENT_TYPES, UiFiles } from '../../agent/api/ui.ts'

const TOKEN = 'ui-routes-token-0123456789abcdef'
let agent: TestAgent
let dir: string

async function get (path: string, init: { method?: string, headers?: Record<string, string> } = {}): Promise<{ status: number, text: string, headers: Headers }> {
  const response = await fetch(`${agent.daemon.api.url}${path}`, { method: init.method ?? 'GET', headers: init.headers })
  return { status: response.status, text: await response.text(), headers: response.headers }
}

beforeAll(async () => {
  dir = await tempDir('memgossip-ui-routes-')
  const tokenFile = join(dir, 'api.token')
  await writeFile(tokenFile, TOKEN + '\n', { mode: 0o600 })
  agent = await startAgent({ apiTokenFile: tokenFile })
})

afterAll(async () => {
  await stopAll([agent])
  await rm(dir, { recursive: true, force: true })
})

describe('/ui on an agent with a token', () => {
  it('serves the page and each of its files without the token, with their types and a strict policy', async () => {
    const index = await get('/ui')
    expect(index.status).toBe(200)
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(index.text).toContain('<script type="module" src="/ui/app.js"></script>')
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(index.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    expect(index.headers.get('x-content-type-options')).toBe('nosniff')
    const names = new UiFiles().names()
    expect(names).toEqual(expect.arrayContaining(['app.js', 'api.js', 'dom.js', 'fit.js', 'format.js', 'nodes.js', 'style.css', 'index.html']))
    // Every file the page refers to is served, as its type.
    for (const [, file] of index.text.matchAll(/(?:src|href)="\/ui\/([^"]+)"/g)) expect(names).toContain(file)
    for (const name of names) {
      const r = await get(`/ui/${name}`)
      expect(r.status, name).toBe(200)
      expect(r.headers.get('content-type')).toBe(UI_CONTENT_TYPES[name.slice(name.lastIndexOf('.')) as keyof typeof UI_CONTENT_TYPES])
    }
    // The page's modules import each other only, by a path the agent serves.
    const app = await get('/ui/app.js')
    for (const [, file] of app.text.matchAll(/from '\.\/([^']+)'/g)) expect(names).toContain(file)
  })

  it('the API behind it still needs the token', async () => {
    expect((await get('/v1/capacity')).status).toBe(401)
    expect((await get('/v1/capacity', { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200)
  })

  it('serves nothing but its files: unknown names, other folders and tsconfig are 404; a write is 405', async () => {
    for (const path of ['/ui/nope.js', '/ui/tsconfig.json', '/ui/..%2Fapi.ts']) {
      const r = await get(path)
      expect(r.status, path).toBe(404)
      expect(JSON.parse(r.text).error).toBe('NotFound')
    }
    // Deeper paths are no route at all: like any unknown route, 401 without the token, 404 with it.
    expect((await get('/ui/app.js/x')).status).toBe(401)
    expect((await get('/ui/app.js/x', { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404)
    const post = await fetch(`${agent.daemon.api.url}/ui`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: '{}' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET')
  })
})
