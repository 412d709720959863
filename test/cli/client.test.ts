/**
 * The CLI's own pieces without an agent: the HTTP client's mapping of answers
 * to exit codes (against a tiny local server), the SSE parser, tables, colour
 * rules, durations and argument checks.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_QUEUE_TIMEOUT_MS, parseSize } from '../../crdt/index.ts'
import { ApiClient, ClientError, normalizeApiUrl, SseParser } from '../../cli/client.ts'
import { formatAge, paint, percent, table, useColor, visibleLength } from '../../cli/format.ts'
import { QUEUE_TIMEOUT_MAX_MS } from '../../cli/commands/reserve.ts'
import { readableReason } from '../../cli/commands/print.ts'
import { cli, modulesLoaded } from './procs.ts'

let server: Server
let base: string
const seen: Array<{ method?: string, url?: string, auth?: string, body: string }> = []

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body })
      const reply = (status: number, json: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(json)) }
      switch (req.url) {
        case '/ok': return reply(200, { hello: 'world' })
        case '/401': return reply(401, { error: 'Unauthorized', detail: 'missing or wrong bearer token' })
        case '/400': return reply(400, { error: 'InvalidSize', detail: "unknown unit 'XB'", field: 'size' })
        case '/409': return reply(409, { error: 'IdExists', detail: "reservation 'x' already exists", field: 'id' })
        case '/503': return reply(503, { error: 'Unavailable', detail: 'agent has not joined the cluster yet' })
        case '/hang': return // never answers
        case '/v1/events':
          res.writeHead(200, { 'content-type': 'text/event-stream' })
          res.write('event: hello\ndata: {"self":"me"}\n\n: keep-alive\n\nevent: verdict\nda')
          setTimeout(() => { res.write('ta: {"id":"x","status":"admitted"}\n\n'); res.end() }, 20)
          return
        case '/v1/nodes': return reply(401, { error: 'Unauthorized', detail: 'missing or wrong bearer token' })
        default: return reply(404, { error: 'NotFound', detail: `no route ${req.method} ${req.url}` })
      }
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) })

async function failure (p: Promise<unknown>): Promise<ClientError> {
  try {
    await p
  } catch (error) {
    if (error instanceof ClientError) return error
    throw error
  }
  throw new Error('expected a ClientError')
}

describe('ApiClient', () => {
  it('returns 2xx and accepted statuses as they are, with the bearer token', async () => {
    const client = new ApiClient({ api: base, token: 'tok-123' })
    expect(await client.get('/ok')).toEqual({ status: 200, body: { hello: 'world' } })
    expect(seen.at(-1)!.auth).toBe('Bearer tok-123')
    expect((await client.post('/409', { a: 1 }, [409])).status).toBe(409)
    expect(seen.at(-1)!.body).toBe('{"a":1}')
  })

  it.each([
    ['/401', 2, /token required\/wrong \(--token FILE or MEMGOSSIP_TOKEN\)/],
    ['/400', 2, /unknown unit 'XB' \[InvalidSize \(size\)\]/],
    ['/409', 2, /reservation 'x' already exists \[IdExists \(id\)\]/],
    ['/nothing', 2, /no route GET \/nothing \[NotFound\]/],
    ['/503', 3, /could not serve the request: agent has not joined the cluster yet/]
  ])('maps %s to exit %i', async (path, code, message) => {
    const e = await failure(new ApiClient({ api: base }).get(path))
    expect(e.exitCode).toBe(code)
    expect(e.message).toMatch(message)
  })

  it('maps a refused connection and a hung agent to exit 3 naming the URL and how to start one', async () => {
    const refused = await failure(new ApiClient({ api: 'http://127.0.0.1:9' }).get('/ok'))
    expect(refused.exitCode).toBe(3)
    expect(refused.message).toContain('cannot reach the memgossip agent at http://127.0.0.1:9')
    expect(refused.message).toContain("'npm start'")
    expect(refused.message).toContain("'memgossip agent'")
    const hung = await failure(new ApiClient({ api: base, timeoutMs: 200 }).get('/hang'))
    expect(hung.exitCode).toBe(3)
    expect(hung.message).toContain('(no answer within 200 ms)')
  })

  it('normalizes the API address and refuses what is not a URL (exit 2)', () => {
    expect(normalizeApiUrl('127.0.0.1:7647')).toBe('http://127.0.0.1:7647')
    expect(normalizeApiUrl('http://127.0.0.1:7647/')).toBe('http://127.0.0.1:7647')
    expect(() => normalizeApiUrl('not a url')).toThrow(ClientError)
    expect(() => normalizeApiUrl('ftp://x:1')).toThrow(/http/)
  })

  it('follows the event stream across chunk boundaries, skipping keep-alives', async () => {
    const events = []
    for await (const e of new ApiClient({ api: base }).events(new AbortController().signal)) events.push(e)
    expect(events).toEqual([
      { event: 'hello', data: { self: 'me' } },
      { event: 'verdict', data: { id: 'x', status: 'admitted' } }
    ])
  })
})

describe('SseParser', () => {
  it('parses event/data lines, multi-line data, CRLF, comments, and non-JSON data', () => {
    const p = new SseParser()
    expect(p.push('event: a\r\ndata: {"n":1}\r\n\r\n: ping\n\ndata: plain\ndata: text\n')).toEqual([{ event: 'a', data: { n: 1 } }])
    expect(p.push('\n')).toEqual([{ event: 'message', data: 'plain\ntext' }])
  })
})

describe('format', () => {
  it('aligns tables by visible width (colour codes take no room), numbers to the right', () => {
    const c = paint(true)
    const text = table(['NAME', 'SIZE'], [[c.green('a'), '1.00 GiB'], ['bbb', '512 B']], { right: [1] })
    const plain = text.replace(/\x1b\[[0-9;]*m/g, '')
    expect(plain).toBe('NAME      SIZE\na     1.00 GiB\nbbb      512 B\n')
    expect(visibleLength(c.red('abc'))).toBe(3)
  })

  it('colours only a terminal, never with NO_COLOR', () => {
    expect(useColor(true, {})).toBe(true)
    expect(useColor(false, {})).toBe(false)
    expect(useColor(true, { NO_COLOR: '1' })).toBe(false)
    expect(useColor(true, { NO_COLOR: '' })).toBe(true)
    expect(paint(false).red('x')).toBe('x')
  })

  it.each([[undefined, '-'], [0, '0ms'], [850, '850ms'], [4200, '4.2s'], [184_000, '3m04s'], [7_500_000, '2h05m']])('formatAge(%s) = %s', (ms, text) => {
    expect(formatAge(ms)).toBe(text)
  })

  it('release reasons read as UTC times and short peer ids (the agent\'s text kept in --json)', () => {
    const peer = '12D3KooWEFCHDzeu9Ldqw7bLh4nRX4Z1EMRtQ2LhZY4VFv6StnpK'
    const wallMs = Date.UTC(2026, 11, 6, 7, 14, 58, 742)
    expect(readableReason(`released at ${String(wallMs).padStart(15, '0')}:000003:${peer} by 12D3KooW…tnpK`))
      .toBe('released at 2026-12-06T07:14:58.742Z by 12D3KooW…tnpK')
    expect(readableReason(`lost to ${peer}'s claim`)).toBe("lost to 12D3KooW…tnpK's claim")
    expect(readableReason('fits on node 12D3KooW…tnpK (best fit): 1.00 GiB of 60.80 GiB headroom')).toBe('fits on node 12D3KooW…tnpK (best fit): 1.00 GiB of 60.80 GiB headroom')
  })

  it('percent of a whole, - for an empty whole', () => {
    expect(percent(1, 8)).toBe('12.5%')
    expect(percent(1, 0)).toBe('-')
  })
})

describe('arguments (exit 2 before any call)', () => {
  const api = ['--api', 'http://127.0.0.1:9']
  it.each([
    [['fit', '12XB', ...api], (() => { try { parseSize('12XB') } catch (e) { return `SIZE: ${(e as Error).message}` } })()],
    [['fit', '1.5KiB5', ...api], 'accepted:'],
    [['fit', '512m', ...api], "lowercase 'm' is Kubernetes' milli"],
    [['fit', ...api], 'missing SIZE'],
    [['fit', '1GiB', '2GiB', ...api], "unexpected argument '2GiB'"],
    [['fit', '1GiB', '--placement', 'somewhere', ...api], "--placement: unknown placement 'somewhere'"],
    [['fit', '1GiB', '--bogus', ...api], 'unknown flag --bogus'],
    [['reserve', 'x', '1GiB', '--priority', 'high', ...api], "--priority: 'high' is not an integer"],
    [['reserve', 'x', '1GiB', '--label', 'novalue', ...api], "--label: 'novalue' is not k=v"],
    [['reserve', 'x', '1GiB', '--timeout', '5s', ...api], '--timeout only applies with --wait-final'],
    [['reserve', 'x', '1GiB', '--wait-final', '--timeout', '30', ...api], "--timeout: '30' is not a duration with a unit"],
    [['reserve', 'x', '1GiB', '--min', '2GiB', ...api], '--min 2.00 GiB is above SIZE 1.00 GiB: the minimum must be at most the limit'],
    [['reserve', 'x', '1GiB', '--min', '0', ...api], '--min must be greater than zero'],
    [['reserve', 'x', '1GiB', '--min', '12XB', ...api], '--min: '],
    [['reserve', 'x', '1GiB', '--queue-timeout', '5m', ...api], '--queue-timeout only applies with --queue'],
    [['reserve', 'x', '1GiB', '--queue', '--queue-timeout', '5', ...api], "--queue-timeout: '5' is not a duration with a unit"],
    [['reserve', 'x', '1GiB', '--queue', '--queue-timeout', '31d', ...api], "--queue-timeout: '31d' must be from 1ms to 30d"],
    [['run', 'x', '1GiB', '--queue-timeout', '5m', ...api, '--', 'true'], '--queue-timeout only applies with --queue'],
    [['run', 'x', '1GiB', '--min', '2GiB', ...api, '--', 'true'], '--min 2.00 GiB is above SIZE 1.00 GiB'],
    [['rent', '--price-per-gib-hour', '-1', ...api], "--price-per-gib-hour: '-1' is not a non-negative number"],
    [['rent', '--since', 'yesterday', ...api], "--since: 'yesterday' is not a duration back from now (1h, 30m, 7d), an ISO date (2026-01-31T00:00:00Z) or ms since the epoch"],
    [['status', '--api', 'not a url'], "--api: 'not a url' is not a URL"],
    [['status', '--token', '/nonexistent/token', ...api], '--token: cannot read /nonexistent/token (ENOENT)'],
    [['where', ...api], 'missing ID'],
    [['nonsense'], "unknown command 'nonsense'"]
  ])('%j', async (argv, message) => {
    const r = await cli(argv as string[])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(message)
    expect(r.stdout).toBe('')
  })

  it("the CLI's longest --queue-timeout is the ledger's (repeated so client commands load no Yjs)", () => {
    expect(QUEUE_TIMEOUT_MAX_MS).toBe(MAX_QUEUE_TIMEOUT_MS)
  })

  it('401 from the agent is exit 2 and says how to give a token', async () => {
    const r = await cli(['status', '--api', base])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('token required/wrong (--token FILE or MEMGOSSIP_TOKEN)')
  })

  it('client commands load nothing of libp2p, Yjs, the agent or simulations/; simulate and bench load theirs on demand', async () => {
    const heavy = (u: string): boolean => /\/node_modules\/(libp2p|@libp2p|@chainsafe|yjs)\/|\/(agent|simulations)\//.test(u)
    for (const argv of [['fit', '--help'], ['status', '--help'], ['watch', '--help'], ['reservations', '--help'], ['rent', '--help']]) {
      const r = await modulesLoaded(argv)
      expect(r.code, argv.join(' ')).toBe(0)
      expect(r.urls.some(u => u.endsWith('/cli/commands/fit.ts')), 'the recorder saw the CLI load').toBe(true)
      expect(r.urls.filter(heavy), argv.join(' ')).toEqual([])
    }
    // The request path too (the local server answers 404: exit 2, the agent's detail printed).
    const asked = await modulesLoaded(['fit', '1GiB', '--api', base])
    expect(asked.code).toBe(2)
    expect(asked.urls.filter(heavy)).toEqual([])
    // --placement loads the agent's placement parser (beside the Yjs schema), still nothing of libp2p or the agent.
    const placed = await modulesLoaded(['fit', '1GiB', '--placement', 'spread:2', '--api', base])
    expect(placed.code).toBe(2)
    expect(placed.urls.some(u => u.endsWith('/crdt/schema.ts'))).toBe(true)
    expect(placed.urls.filter(u => heavy(u) && !u.includes('/node_modules/yjs/'))).toEqual([])
    const sim = await modulesLoaded(['simulate', '--help'])
    expect(sim.code).toBe(0)
    expect(sim.urls.some(u => u.endsWith('/simulations/cli.ts'))).toBe(true)
  })
})
