/**
 * The HTTP JSON API of one agent (docs/design.md "Interfaces"). Loopback by
 * default; a bearer token is required for any other bind (checked by the
 * daemon) and, when set, for every route but `/healthz`. Bad input gets a 4xx
 * with `{ error, detail }` naming the field, bodies over the limit get 413, and
 * nothing is half-written: every check runs before the single ledger write.
 *
 * Routes: GET /healthz, /v1/state, /v1/nodes, /v1/capacity, /v1/alerts,
 * /v1/reservations[/:id], /v1/rent, /v1/events (SSE), /metrics; POST /v1/fit,
 * /v1/reservations, /v1/evict; DELETE /v1/reservations/:id.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  formatPlacement, formatSize, parsePlacement, parseSize, RESERVATION_ID_PATTERN,
  type FitAnswer, type Placement, type Verdict
} from '../crdt/index.ts'
import type { Agent, AgentEvent } from './agent.ts'
import { AckTimeoutError, BadRequestError, IdExistsError, NotFoundError, UnavailableError } from './errors.ts'

/** Largest request body accepted (a reservation is a few hundred bytes). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024
/** SSE keep-alive comment interval, so proxies keep the stream open. */
const SSE_KEEPALIVE_MS = 15_000
/** An event-stream client this far behind is disconnected (it can reconnect and re-read state). */
const SSE_MAX_BUFFERED_BYTES = 1024 * 1024
const MAX_LABELS = 32
/** The fixed paths and their methods, for 405 answers (`/v1/reservations/:id` is GET, DELETE). */
const ROUTE_METHODS: ReadonlyMap<string, string[]> = new Map([
  ['/healthz', ['GET']],
  ['/metrics', ['GET']],
  ['/v1/state', ['GET']],
  ['/v1/nodes', ['GET']],
  ['/v1/capacity', ['GET']],
  ['/v1/alerts', ['GET']],
  ['/v1/events', ['GET']],
  ['/v1/rent', ['GET']],
  ['/v1/fit', ['POST']],
  ['/v1/evict', ['POST']],
  ['/v1/reservations', ['GET', 'POST']]
])

export interface ApiInit {
  agent: Agent
  /** `host:port`; default `127.0.0.1:7647`. */
  listen?: string
  /** Bearer token; when set, required on every route but /healthz. */
  token?: string
  maxBodyBytes?: number
  log?: (line: string) => void
}

export interface ApiServer {
  server: Server
  url: string
  close: () => Promise<void>
}

/** Client input errors carry the HTTP status they map to. */
class HttpError extends Error {
  constructor (readonly status: number, readonly code: string, message: string, readonly field?: string) {
    super(message)
  }
}

/** The stable JSON shape of a verdict. Integer `…Bytes`; `size` for people. */
export function verdictJson (v: Verdict): Record<string, unknown> {
  return {
    id: v.id,
    status: v.status,
    final: v.final,
    waitingOn: v.waitingOn,
    waitsFor: v.waitsFor,
    view: v.view,
    code: v.code,
    reason: v.reason,
    decision: v.decision,
    decisionCode: v.decisionCode,
    decisionReason: v.decisionReason,
    nodes: v.nodes,
    runningOn: v.runningOn,
    bytes: v.bytes,
    size: formatSize(v.bytes),
    placement: v.placement !== undefined ? formatPlacement(v.placement) : undefined,
    priority: v.priority,
    creator: v.creator,
    hlc: v.hlc,
    labels: v.labels,
    winner: v.winner,
    endedHlc: v.endedHlc
  }
}

export function fitJson (answer: FitAnswer): Record<string, unknown> {
  return { ...answer, size: formatSize(answer.bytes) }
}

export async function startApi (init: ApiInit): Promise<ApiServer> {
  const { agent } = init
  const maxBody = init.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  const tokenDigest = init.token !== undefined ? sha256(init.token) : undefined
  const [host, portText] = splitHostPort(init.listen ?? '127.0.0.1:7647')
  const requests = { total: 0, errors4xx: 0, errors5xx: 0 }

  const server = createServer((req, res) => {
    requests.total++
    handle(req, res).catch((error: unknown) => {
      const e = toHttpError(error)
      if (e.status >= 500) {
        requests.errors5xx++
        if (e.status === 500) init.log?.(`api: ${req.method} ${req.url}: ${(error as Error).stack ?? String(error)}`)
      } else requests.errors4xx++
      if (!res.headersSent) send(res, e.status, { error: e.code, detail: e.message, field: e.field })
      else res.end()
    })
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.keepAliveTimeout = 5_000

  /** A verdict with what it uses where it runs (docs/design.md "Enforcement"): `usage` per node, when measured. */
  function withUsage (v: Verdict): Record<string, unknown> {
    return { ...verdictJson(v), usage: v.status === 'admitted' ? agent.reservationUsage(v.id) : [] }
  }

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const path = url.pathname
    const method = req.method ?? 'GET'
    // Browsers: a page on another site can make this machine's browser talk to a
    // loopback API (DNS rebinding, or a cross-site form POST). Refuse a Host that
    // is not this API's, an Origin that is not local, and non-JSON writes.
    if (!hostAllowed(req.headers.host, host)) throw new HttpError(403, 'ForbiddenHost', `Host '${String(req.headers.host).slice(0, 80)}' is not this agent's address (DNS rebinding protection)`)
    const origin = req.headers.origin
    if (origin !== undefined && !originAllowed(origin, host)) throw new HttpError(403, 'ForbiddenOrigin', `requests from origin '${origin.slice(0, 80)}' are refused (cross-site protection)`)
    if (method === 'POST' && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      req.resume()
      throw new HttpError(415, 'UnsupportedMediaType', "send the body as JSON with 'Content-Type: application/json'")
    }
    if (path === '/healthz' && method === 'GET') {
      const state = agent.state()
      send(res, state.readOnly === undefined ? 200 : 503, { ok: state.readOnly === undefined, self: state.self, joined: state.joined, readOnly: state.readOnly })
      return
    }
    if (tokenDigest !== undefined && !authorized(req, tokenDigest)) {
      res.setHeader('WWW-Authenticate', 'Bearer')
      throw new HttpError(401, 'Unauthorized', 'missing or wrong bearer token (Authorization: Bearer <token>)')
    }
    if (path === '/metrics' && method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' })
      res.end(metricsText(agent, requests))
      return
    }
    if (path === '/v1/state' && method === 'GET') return send(res, 200, agent.state())
    if (path === '/v1/nodes' && method === 'GET') return send(res, 200, { nodes: nodesJson(agent) })
    if (path === '/v1/capacity' && method === 'GET') return send(res, 200, capacityJson(agent))
    if (path === '/v1/alerts' && method === 'GET') return send(res, 200, { alerts: agent.alerts() })
    if (path === '/v1/events' && method === 'GET') return streamEvents(req, res)
    if (path === '/v1/rent' && method === 'GET') return send(res, 200, rentJson(agent, url))
    if (path === '/v1/fit' && method === 'POST') {
      const body = await readJson(req, maxBody)
      const { bytes, placement } = sizeAndPlacement(body)
      return send(res, 200, fitJson(agent.fit(bytes, placement)))
    }
    if (path === '/v1/evict' && method === 'POST') {
      const body = await readJson(req, maxBody)
      if (typeof body.node !== 'string' || body.node === '') throw new HttpError(400, 'InvalidNode', "'node' must be a node id", 'node')
      if (body.force !== undefined && typeof body.force !== 'boolean') throw new HttpError(400, 'InvalidForce', "'force' must be true or false", 'force')
      const answer = await agent.evict(body.node, { force: body.force === true })
      return send(res, answer.status === 'done' ? 200 : 202, answer)
    }
    if (path === '/v1/reservations' && method === 'GET') {
      const node = url.searchParams.get('node')
      const status = url.searchParams.get('status')
      const res0 = agent.resolution()
      let list = [...res0.verdicts.values(), ...res0.conflicts]
      if (node !== null) list = list.filter(v => v.runningOn.includes(node) || v.nodes.includes(node))
      if (status !== null) {
        if (!['admitted', 'rejected', 'evicted', 'released', 'invalid'].includes(status)) throw new HttpError(400, 'InvalidStatus', 'status must be admitted, rejected, evicted, released or invalid', 'status')
        list = list.filter(v => v.status === status)
      }
      list.sort((a, b) => (a.hlc ?? '') < (b.hlc ?? '') ? -1 : (a.hlc ?? '') > (b.hlc ?? '') ? 1 : (a.key < b.key ? -1 : 1))
      return send(res, 200, { reservations: list.map(withUsage), pending: res0.pending, verdictsDigest: res0.digest })
    }
    if (path === '/v1/reservations' && method === 'POST') {
      const body = await readJson(req, maxBody)
      const id = body.id
      if (typeof id !== 'string' || !RESERVATION_ID_PATTERN.test(id)) {
        throw new HttpError(400, 'InvalidId', "'id' must be 1-128 characters of letters, digits and . _ : / - (starting with a letter or digit)", 'id')
      }
      const { bytes, placement } = sizeAndPlacement(body)
      const priority = body.priority ?? 0
      if (typeof priority !== 'number' || !Number.isSafeInteger(priority)) throw new HttpError(400, 'InvalidPriority', "'priority' must be an integer", 'priority')
      const labels = parseLabels(body.labels)
      const result = await agent.reserve({ id, bytes, placement, priority, labels })
      if (!result.written) {
        return send(res, 409, { error: 'DoesNotFit', detail: result.answer.reason, answer: fitJson(result.answer) })
      }
      const verdict = result.verdict
      return send(res, 201, { verdict: verdict !== undefined ? verdictJson(verdict) : undefined, warnings: result.answer.warnings, answer: fitJson(result.answer), ackedPeers: result.ackedPeers })
    }
    // Usage per reservation (docs/design.md "Enforcement"): `memgossip run` names its cgroup; the agent reads it.
    const usageMatch = /^\/v1\/reservations\/([^/]+)\/usage$/.exec(path)
    if (usageMatch !== null) {
      let id: string
      try { id = decodeURIComponent(usageMatch[1]) } catch { throw new HttpError(400, 'InvalidId', 'malformed percent-encoding in the id', 'id') }
      if (!RESERVATION_ID_PATTERN.test(id)) throw new HttpError(400, 'InvalidId', 'malformed reservation id', 'id')
      if (method === 'GET') return send(res, 200, { id, usage: agent.reservationUsage(id) })
      if (method !== 'POST') {
        res.setHeader('Allow', 'GET, POST')
        throw new HttpError(405, 'MethodNotAllowed', `${method} is not allowed on ${path}`)
      }
      const body = await readJson(req, maxBody)
      if (typeof body.cgroup !== 'string' || body.cgroup === '') throw new HttpError(400, 'InvalidCgroup', "'cgroup' must be the absolute path of the reservation's cgroup directory", 'cgroup')
      return send(res, 200, await agent.watchUsage(id, body.cgroup))
    }
    const match = /^\/v1\/reservations\/([^/]+)$/.exec(path)
    if (match !== null) {
      let id: string
      try { id = decodeURIComponent(match[1]) } catch { throw new HttpError(400, 'InvalidId', 'malformed percent-encoding in the id', 'id') }
      if (!RESERVATION_ID_PATTERN.test(id)) throw new HttpError(400, 'InvalidId', 'malformed reservation id', 'id')
      if (method === 'GET') {
        const v = agent.verdict(id)
        if (v === undefined) throw new HttpError(404, 'NotFound', `no reservation '${id}'`, 'id')
        return send(res, 200, withUsage(v))
      }
      if (method === 'DELETE') return send(res, 200, verdictJson(await agent.release(id)))
      res.setHeader('Allow', 'GET, DELETE')
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not allowed on ${path}`)
    }
    // A known path asked with another method is 405 with Allow, not "no route".
    const allowed = ROUTE_METHODS.get(path)
    if (allowed !== undefined) {
      res.setHeader('Allow', allowed.join(', '))
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not allowed on ${path}; use ${allowed.join(' or ')}`)
    }
    throw new HttpError(404, 'NotFound', `no route ${method} ${path}`)
  }

  function streamEvents (req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' })
    res.write(`event: hello\ndata: ${JSON.stringify({ self: agent.self, alerts: agent.alerts(), verdictsDigest: agent.resolution().digest })}\n\n`)
    const onEvent = (event: AgentEvent): void => {
      // A client that does not read must not make the agent buffer without bound.
      if (res.writableLength > SSE_MAX_BUFFERED_BYTES) {
        res.destroy()
        return
      }
      res.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`)
    }
    agent.on('event', onEvent)
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), SSE_KEEPALIVE_MS)
    const close = (): void => {
      clearInterval(keepAlive)
      agent.off('event', onEvent)
    }
    req.on('close', close)
    res.on('error', close)
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(Number(portText), host, () => { server.off('error', reject); resolve() })
  })
  const address = server.address() as AddressInfo
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
  return {
    server,
    url,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

// ------------------------------------------------------------ helpers

const LOOPBACK_NAMES = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\]|::1)$/i

function hostnameOf (hostHeader: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d+)?$/.exec(hostHeader)
  return (m?.[1] ?? hostHeader).toLowerCase()
}

/** Host must name this API: a loopback name, or the address it is bound to. */
function hostAllowed (hostHeader: string | undefined, boundHost: string): boolean {
  if (hostHeader === undefined) return true // HTTP/1.0 clients; browsers always send Host
  const name = hostnameOf(hostHeader)
  const bound = boundHost.toLowerCase()
  if (bound === '0.0.0.0' || bound === '::' || bound === '') return true // any-address bind: a token is required then
  return LOOPBACK_NAMES.test(name) || name === bound || name === `[${bound}]`
}

function originAllowed (origin: string, boundHost: string): boolean {
  try {
    return hostAllowed(new URL(origin).host, boundHost)
  } catch {
    return false
  }
}

function sha256 (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** Constant-time: compare digests of equal length, never the raw strings. */
function authorized (req: IncomingMessage, tokenDigest: Buffer): boolean {
  const header = req.headers.authorization ?? ''
  // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
  const given = /^bearer /i.test(header) ? header.slice(7) : ''
  return timingSafeEqual(sha256(given), tokenDigest)
}

export function splitHostPort (text: string): [string, string] {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(text)
  if (m === null) throw new BadRequestError('api', `'${text}' is not host:port (e.g. 127.0.0.1:7647)`)
  return [m[1], m[2]]
}

function send (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

async function readJson (req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > maxBytes) {
    req.resume()
    throw new HttpError(413, 'BodyTooLarge', `request body of ${declared} bytes exceeds the limit of ${maxBytes}`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > maxBytes) {
      req.resume()
      throw new HttpError(413, 'BodyTooLarge', `request body exceeds the limit of ${maxBytes} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') throw new HttpError(400, 'InvalidJson', 'request body is empty; send a JSON object')
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (error) {
    throw new HttpError(400, 'InvalidJson', `request body is not JSON: ${(error as Error).message}`)
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'InvalidJson', 'request body must be a JSON object')
  return body as Record<string, unknown>
}

/** `size` (a string such as "2GiB") or `bytes` (an integer), and a placement string. */
function sizeAndPlacement (body: Record<string, unknown>): { bytes: number, placement: Placement } {
  let bytes: number
  if (body.size !== undefined && body.bytes !== undefined) throw new HttpError(400, 'InvalidSize', "give either 'size' or 'bytes', not both", 'size')
  if (body.size !== undefined) {
    if (typeof body.size !== 'string') throw new HttpError(400, 'InvalidSize', "'size' must be a string such as \"2GiB\"; use 'bytes' for an integer", 'size')
    try {
      bytes = parseSize(body.size)
    } catch (error) {
      throw new HttpError(400, 'InvalidSize', (error as Error).message, 'size')
    }
  } else if (body.bytes !== undefined) {
    if (typeof body.bytes !== 'number' || !Number.isSafeInteger(body.bytes) || body.bytes < 0) throw new HttpError(400, 'InvalidSize', "'bytes' must be a non-negative integer", 'bytes')
    bytes = body.bytes
  } else {
    throw new HttpError(400, 'InvalidSize', "missing 'size' (e.g. \"2GiB\") or 'bytes'", 'size')
  }
  if (bytes === 0) throw new HttpError(400, 'InvalidSize', 'size must be greater than zero', body.size !== undefined ? 'size' : 'bytes')
  const placementText = body.placement ?? 'any'
  if (typeof placementText !== 'string') throw new HttpError(400, 'InvalidPlacement', "'placement' must be a string: any, all, node:<id> or spread:<k>", 'placement')
  let placement: Placement
  try {
    placement = parsePlacement(placementText)
  } catch (error) {
    throw new HttpError(400, 'InvalidPlacement', (error as Error).message, 'placement')
  }
  return { bytes, placement }
}

function parseLabels (value: unknown): Record<string, string> {
  if (value === undefined) return {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'InvalidLabels', "'labels' must be an object of strings", 'labels')
  const entries = Object.entries(value)
  if (entries.length > MAX_LABELS) throw new HttpError(400, 'InvalidLabels', `at most ${MAX_LABELS} labels`, 'labels')
  for (const [k, v] of entries) {
    if (typeof v !== 'string' || k.length > 256 || v.length > 256) throw new HttpError(400, 'InvalidLabels', `label '${k.slice(0, 40)}' must be a string of at most 256 characters`, 'labels')
  }
  return value as Record<string, string>
}

function toHttpError (error: unknown): HttpError {
  if (error instanceof HttpError) return error
  const e = error as Error
  switch (e?.name) {
    case 'BadRequestError': return new HttpError(400, 'BadRequest', e.message, (e as BadRequestError).field)
    case 'IdExistsError': return new HttpError(409, 'IdExists', e.message, 'id')
    case 'NotFoundError': return new HttpError(404, 'NotFound', e.message)
    case 'UnavailableError': return new HttpError(503, 'Unavailable', e.message)
    case 'AckTimeoutError': return new HttpError(504, 'AckTimeout', e.message)
    default: return new HttpError(500, 'Internal', 'internal error (logged)')
  }
}
// Keep the imported classes referenced for readers: these are what toHttpError maps.
void [AckTimeoutError, IdExistsError, NotFoundError, UnavailableError]

function nodesJson (agent: Agent): Array<Record<string, unknown>> {
  return agent.nodes().map(n => ({
    id: n.id,
    state: n.undersized ? 'undersized' : n.state,
    member: n.member,
    liveness: n.liveness,
    heartbeatAgeMs: n.heartbeatAgeMs,
    totalBytes: n.heartbeat?.totalBytes ?? 0,
    allocatableBytes: n.allocatableBytes,
    committedBytes: n.committedBytes,
    headroomBytes: n.allocatableBytes - n.committedBytes,
    availableBytes: n.heartbeat?.availableBytes ?? 0,
    usedBytes: n.heartbeat?.usedBytes ?? 0,
    floorBytes: n.heartbeat?.floorBytes ?? 0,
    undersized: n.undersized,
    pressure: n.id === agent.self ? agent.pressureLevel() : n.heartbeat?.pressure ?? 'ok',
    // What the reservations running there use, as its record last said (undefined: nothing measured).
    reservationsUsedBytes: n.heartbeat?.usage !== undefined ? Object.values(n.heartbeat.usage).reduce((a, u) => a + u.usedBytes, 0) : undefined,
    allNeedBytes: n.allNeedBytes,
    deficitBytes: n.deficitBytes,
    reservations: n.reservations.length,
    labels: n.heartbeat?.labels ?? {},
    version: n.heartbeat?.version ?? ''
  }))
}

function capacityJson (agent: Agent): Record<string, unknown> {
  const nodes = nodesJson(agent).filter(n => n.member === true)
  const sum = (field: string): number => nodes.reduce((a, n) => a + (n[field] as number), 0)
  const res = agent.resolution()
  return {
    members: nodes.length,
    totalBytes: sum('totalBytes'),
    allocatableBytes: sum('allocatableBytes'),
    committedBytes: sum('committedBytes'),
    headroomBytes: sum('headroomBytes'),
    availableBytes: sum('availableBytes'),
    pending: res.pending,
    counts: res.counts,
    verdictsDigest: res.digest,
    nodes
  }
}

function rentJson (agent: Agent, url: URL): Record<string, unknown> {
  const sinceText = url.searchParams.get('since')
  const priceText = url.searchParams.get('pricePerGiBHour')
  let sinceMs: number | undefined
  if (sinceText !== null) {
    sinceMs = /^\d+$/.test(sinceText) ? Number(sinceText) : Date.parse(sinceText)
    if (!Number.isFinite(sinceMs)) throw new HttpError(400, 'InvalidSince', "'since' must be ms since the epoch or an ISO date", 'since')
  }
  let price: number | undefined
  if (priceText !== null) {
    price = Number(priceText)
    if (!Number.isFinite(price) || price < 0) throw new HttpError(400, 'InvalidPrice', "'pricePerGiBHour' must be a non-negative number", 'pricePerGiBHour')
  }
  return { ...agent.rent({ sinceMs, pricePerGiBHour: price }) }
}

function metricsText (agent: Agent, requests: { total: number, errors4xx: number, errors5xx: number }): string {
  const m = agent.metrics
  const state = agent.state()
  const res = agent.resolution()
  const lines: string[] = []
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number, labels = ''): void => {
    if (!lines.some(l => l.startsWith(`# HELP ${name} `))) lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    lines.push(`${name}${labels} ${value}`)
  }
  metric('memgossip_peers', 'gauge', 'Peers with an open connection.', state.peers.length)
  metric('memgossip_members', 'gauge', 'Cluster members holding finality.', state.members.length)
  metric('memgossip_heartbeats_total', 'counter', 'Node records (figures) written by this agent.', m.heartbeats)
  metric('memgossip_beacons_sent_total', 'counter', 'Clock-channel beacons published by this agent.', m.beaconsSent)
  metric('memgossip_beacons_on_demand_total', 'counter', 'Beacons published because an entry waited for them (not on the timer).', m.beaconsOnDemand)
  metric('memgossip_beacons_direct_total', 'counter', 'Beacons sent straight to every member over direct streams instead of the gossip topic.', m.beaconsDirect)
  metric('memgossip_beacons_accepted_total', 'counter', 'Beacons accepted from members.', m.beaconsAccepted)
  metric('memgossip_beacons_ahead_total', 'counter', 'Accepted beacons stamped more than the skew bound ahead of this host\'s clock.', m.beaconsAhead)
  for (const [reason, value] of [['forged', m.beaconsForged], ['stranger', m.beaconsStranger], ['invalid', m.beaconsInvalid], ['replayed', m.beaconsReplayed]] as const) {
    metric('memgossip_beacons_dropped_total', 'counter', 'Beacons dropped, by reason.', value, `{reason="${reason}"}`)
  }
  metric('memgossip_updates_in_total', 'counter', 'Ledger updates applied from peers.', m.updatesIn)
  metric('memgossip_updates_out_total', 'counter', 'Local ledger updates written.', m.updatesOut)
  metric('memgossip_bytes_in_total', 'counter', 'Protocol bytes received (gossip and sync).', m.bytesIn)
  metric('memgossip_bytes_out_total', 'counter', 'Protocol bytes sent (gossip and sync).', m.bytesOut)
  metric('memgossip_sync_rounds_total', 'counter', 'Completed anti-entropy exchanges.', m.syncRounds)
  metric('memgossip_sync_failures_total', 'counter', 'Failed anti-entropy exchanges.', m.syncFailures)
  metric('memgossip_dropped_total', 'counter', 'Peer input dropped, by reason.', m.droppedOversized, '{reason="oversized"}')
  metric('memgossip_dropped_total', 'counter', 'Peer input dropped, by reason.', m.droppedInvalid, '{reason="invalid"}')
  metric('memgossip_dropped_total', 'counter', 'Peer input dropped, by reason.', m.droppedThrottled, '{reason="throttled"}')
  metric('memgossip_redundant_updates_total', 'counter', 'Peer updates that brought nothing new (gossip amplification).', m.redundantUpdates)
  metric('memgossip_gap_pulls_total', 'counter', 'Syncs started at once because a peer update arrived after one that was missed.', m.gapPulls)
  for (const [status, count] of Object.entries(res.counts)) metric('memgossip_verdicts', 'gauge', 'Verdicts by status.', count, `{status="${status}"}`)
  metric('memgossip_verdicts_pending', 'gauge', 'Verdicts not yet final.', res.pending)
  metric('memgossip_ledger_issues', 'gauge', 'Ledger entries refused by validation (other than reservations).', res.issues.length)
  metric('memgossip_ledger_bytes', 'gauge', 'Size of the persisted ledger files.', state.ledgerBytes)
  metric('memgossip_allocatable_bytes', 'gauge', 'This node\'s allocatable memory.', state.allocatableBytes)
  metric('memgossip_floor_bytes', 'gauge', 'This node\'s memory floor.', state.floorBytes)
  for (const alert of agent.alerts()) metric('memgossip_alert', 'gauge', 'Active alerts (1 while raised).', 1, `{kind="${alert.kind}",node="${alert.node}"}`)
  metric('memgossip_http_requests_total', 'counter', 'HTTP API requests.', requests.total)
  metric('memgossip_http_errors_total', 'counter', 'HTTP API error answers by class.', requests.errors4xx, '{class="4xx"}')
  metric('memgossip_http_errors_total', 'counter', 'HTTP API error answers by class.', requests.errors5xx, '{class="5xx"}')
  metric('memgossip_oom_kills_total', 'counter', 'Processes OOM-killed inside reservations\' cgroups on this node, by cause: limit (the reservation exceeded its limit) or host (killed within its limit).', m.oomKillsLimit, '{cause="limit"}')
  metric('memgossip_oom_kills_total', 'counter', 'Processes OOM-killed inside reservations\' cgroups on this node, by cause: limit (the reservation exceeded its limit) or host (killed within its limit).', m.oomKillsHost, '{cause="host"}')
  metric('memgossip_pressure_level', 'gauge', 'This node\'s pressure ladder: 0 ok, 1 warn, 2 refuse, 3 evict.', ['ok', 'warn', 'refuse', 'evict'].indexOf(agent.pressureLevel()))
  metric('memgossip_read_only', 'gauge', '1 when a disk failure made the agent read-only.', state.readOnly !== undefined ? 1 : 0)
  return lines.join('\n') + '\n'
}
