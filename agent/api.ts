/**
 * The HTTP JSON API of one agent (docs/design.md "Interfaces"). Loopback by
 * default; a bearer token is required for any other bind (checked by the
 * daemon) and, when set, for every route but `/healthz`. Bad input gets a 4xx
 * with `{ error, detail, field }` naming the field, bodies over the limit get
 * 413, and nothing is half-written: every check runs before the single ledger
 * write.
 *
 * The routes, their inputs and answers are the contract's (api/contract.ts):
 * this file dispatches on its route table, validates with its schemas, and
 * holds one handler per route, typed by the answers the contract allows.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { z } from 'zod'
import { DuplicateReservationError, formatPlacement, formatSize, shortId, type FitAnswer, type Placement, type Verdict } from '../crdt/index.ts'
import type { Agent, AgentEvent } from './agent.ts'
import {
  ApiError, ROUTES, toApiError,
  type CapacityJson, type FitAnswerJson, type NodeJson, type ReserveAnswerJson, type RouteName, type RouteSpec, type VerdictJson
} from './api/contract.ts'
import { openApiDocument } from './api/openapi.ts'
import { UiFiles } from './api/ui.ts'
import { AckTimeoutError, BadRequestError, IdExistsError, NotFoundError, UnavailableError } from './errors.ts'

/** Largest request body accepted (a reservation is a few hundred bytes). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024
/** SSE keep-alive comment interval, so proxies keep the stream open. */
const SSE_KEEPALIVE_MS = 15_000
/** An event-stream client this far behind is disconnected (it can reconnect and re-read state). */
const SSE_MAX_BUFFERED_BYTES = 1024 * 1024

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

/** A 405, with the methods the path does take (for the `Allow` header). */
class MethodNotAllowedError extends ApiError {
  constructor (method: string, path: string, readonly allow: string[]) {
    super('MethodNotAllowed', `${method} is not allowed on ${path}; use ${allow.join(' or ')}`)
  }
}

/**
 * The agent's typed errors (agent/errors.ts) as API errors: the one place they
 * are mapped. The HTTP status is the code's, in the contract's `ERROR_STATUS`.
 */
function asApiError (error: unknown): ApiError {
  if (error instanceof ApiError) return error
  if (error instanceof BadRequestError) return new ApiError('BadRequest', error.message, error.field)
  if (error instanceof IdExistsError) return new ApiError('IdExists', error.message, 'id')
  // ckfix (issue 16): the ledger writer refuses an id this node wrote before that the agent's own check let through (after compaction).
  if (error instanceof DuplicateReservationError) return new ApiError('IdExists', error.message, 'id')
  if (error instanceof NotFoundError) return new ApiError('NotFound', error.message)
  if (error instanceof UnavailableError) return new ApiError('Unavailable', error.message)
  if (error instanceof AckTimeoutError) return new ApiError('AckTimeout', error.message)
  return new ApiError('Internal', 'internal error (logged)')
}

// ------------------------------------------------------------ the contract's types, per route

type Spec<K extends RouteName> = (typeof ROUTES)[K]
type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined
type Responses<K extends RouteName> = Spec<K> extends { responses: infer R } ? R : never
/** What a handler may answer: one of the route's statuses with that status's body; nothing for streamed and text routes (the handler writes them). */
type Reply<K extends RouteName> = [Responses<K>] extends [never]
  ? undefined
  : { [S in keyof Responses<K>]: { status: S, body: z.output<Responses<K>[S] & z.ZodType> } }[keyof Responses<K>]

interface Call<K extends RouteName> {
  params: Parsed<Spec<K> extends { params: infer P } ? P : undefined>
  query: Parsed<Spec<K> extends { query: infer Q } ? Q : undefined>
  body: Parsed<Spec<K> extends { body: infer B } ? B : undefined>
  req: IncomingMessage
  res: ServerResponse
}

type Handlers = { [K in RouteName]: (call: Call<K>) => Reply<K> | Promise<Reply<K>> }

/** A route's path as a matcher: `{name}` matches one path segment. */
const MATCHERS = Object.entries(ROUTES as Record<RouteName, RouteSpec>).map(([name, route]) => {
  const names: string[] = []
  const pattern = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_m, param: string) => { names.push(param); return '([^/]+)' })
  return { name: name as RouteName, route, regex: new RegExp(`^${pattern}$`), names }
})

/** The route for this method and path, or the 404/405 the route table implies. */
function matchRoute (method: string, path: string): { name: RouteName, route: RouteSpec, rawParams: Record<string, string> } | ApiError {
  const onPath = MATCHERS.filter(m => m.regex.test(path))
  if (onPath.length === 0) return new ApiError('NotFound', `no route ${method} ${path}`)
  const match = onPath.find(m => m.route.method === method)
  if (match === undefined) return new MethodNotAllowedError(method, path, onPath.map(m => m.route.method))
  const values = match.regex.exec(path)!.slice(1)
  return { name: match.name, route: match.route, rawParams: Object.fromEntries(match.names.map((n, i) => [n, values[i]])) }
}

function parse<S extends z.ZodType | undefined> (schema: S, value: unknown, where: 'body' | 'query' | 'path'): unknown {
  if (schema === undefined) return undefined
  const result = schema.safeParse(value)
  if (!result.success) throw toApiError(result.error, where)
  return result.data
}

export async function startApi (init: ApiInit): Promise<ApiServer> {
  const { agent } = init
  const maxBody = init.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  const tokenDigest = init.token !== undefined ? sha256(init.token) : undefined
  const [host, portText] = splitHostPort(init.listen ?? '127.0.0.1:7647')
  const requests = { total: 0, errors4xx: 0, errors5xx: 0 }
  let openApi: Record<string, unknown> | undefined
  const page = new UiFiles()

  /** `node:<id>` must name a node this agent knows: an unknown one is a typo, not a "does not fit". */
  const knownPlacement = (placement: Placement): void => {
    if (placement.kind !== 'node' || agent.resolution().nodes.has(placement.node)) return
    const known = [...agent.resolution().nodes.keys()].map(shortId).join(', ')
    throw new ApiError('UnknownNode', `no node '${placement.node}' in this agent's view (known: ${known === '' ? 'none' : known})`, 'placement')
  }

  const handlers: Handlers = {
    health: () => {
      const state = agent.state()
      const body = { ok: state.readOnly === undefined, self: state.self, joined: state.joined, readOnly: state.readOnly }
      return state.readOnly === undefined ? { status: 200, body } : { status: 503, body }
    },
    metrics: ({ res }) => {
      res.writeHead(200, { 'Content-Type': ROUTES.metrics.produces })
      res.end(metricsText(agent, requests))
      return undefined
    },
    openapi: () => {
      openApi ??= openApiDocument()
      return { status: 200, body: openApi }
    },
    state: () => ({ status: 200, body: agent.state() }),
    nodes: () => ({ status: 200, body: { nodes: nodesJson(agent) } }),
    capacity: () => ({ status: 200, body: capacityJson(agent) }),
    alerts: () => ({ status: 200, body: { alerts: agent.alerts() } }),
    events: ({ req, res }) => { streamEvents(req, res); return undefined },
    rent: ({ query }) => ({ status: 200, body: agent.rent({ sinceMs: query.since, pricePerGiBHour: query.pricePerGiBHour }) }),
    fit: ({ body }) => {
      knownPlacement(body.placement)
      return { status: 200, body: fitJson(agent.fit(body.bytes, body.placement)) }
    },
    evict: async ({ body }) => {
      const answer = await agent.evict(body.node, { force: body.force })
      return answer.status === 'done' ? { status: 200, body: answer } : { status: 202, body: answer }
    },
    listReservations: ({ query }) => {
      const res = agent.resolution()
      let list = [...res.all]
      const { node, status } = query
      if (node !== undefined) list = list.filter(v => v.runningOn.includes(node) || v.nodes.includes(node))
      if (status !== undefined) list = list.filter(v => v.status === status)
      list.sort((a, b) => (a.hlc ?? '') < (b.hlc ?? '') ? -1 : (a.hlc ?? '') > (b.hlc ?? '') ? 1 : (a.key < b.key ? -1 : 1))
      return { status: 200, body: { reservations: list.map(withUsage), pending: res.pending, verdictsDigest: res.digest } }
    },
    reserve: async ({ body }) => {
      knownPlacement(body.placement)
      const result = await agent.reserve(body)
      const answer = fitJson(result.answer)
      const made = { id: body.id, answer, warnings: result.answer.warnings, ackedPeers: result.ackedPeers }
      const verdict = result.verdict
      if (!result.written || verdict === undefined) {
        // Did not fit in this agent's view: the same shape as a rejection, nothing written.
        return { status: 200, body: { ...made, written: false, status: 'rejected', code: answer.code, reason: answer.reason, final: true } }
      }
      const reply: ReserveAnswerJson = { ...made, written: true, status: verdict.status, code: verdict.code, reason: verdict.reason, final: verdict.final, verdict: verdictJson(verdict) }
      return { status: 201, body: reply }
    },
    getReservation: ({ params }) => {
      const v = agent.verdict(params.id)
      if (v === undefined) throw new ApiError('NotFound', `no reservation '${params.id}'`, 'id')
      return { status: 200, body: withUsage(v) }
    },
    release: async ({ params }) => ({ status: 200, body: verdictJson(await agent.release(params.id)) }),
    // Usage per reservation (docs/design.md "Enforcement"): `memgossip run` names its cgroup; the agent reads it.
    usage: ({ params }) => ({ status: 200, body: { id: params.id, usage: agent.reservationUsage(params.id) } }),
    watchUsage: async ({ params, body }) => ({ status: 200, body: await agent.watchUsage(params.id, body.cgroup) }),
    // The browser page (agent/api/ui.ts).
    ui: ({ res }) => { page.send(res, 'index.html'); return undefined },
    uiFile: ({ params, res }) => { page.send(res, params.file); return undefined }
  }

  /** A verdict with what it uses where it runs (docs/design.md "Enforcement"): `usage` per node, when measured. */
  function withUsage (v: Verdict): VerdictJson {
    return { ...verdictJson(v), usage: v.status === 'admitted' ? agent.reservationUsage(v.id) : [] }
  }

  const server = createServer((req, res) => {
    requests.total++
    handle(req, res).catch((error: unknown) => {
      const e = asApiError(error)
      if (e.status >= 500) {
        requests.errors5xx++
        if (e.status === 500) init.log?.(`api: ${req.method} ${req.url}: ${(error as Error).stack ?? String(error)}`)
      } else requests.errors4xx++
      if (!res.headersSent) {
        if (e instanceof MethodNotAllowedError) res.setHeader('Allow', e.allow.join(', '))
        if (e.code === 'Unauthorized') res.setHeader('WWW-Authenticate', 'Bearer')
        send(res, e.status, { error: e.code, detail: e.message, field: e.field })
      } else res.end()
    })
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.keepAliveTimeout = 5_000

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const method = req.method ?? 'GET'
    // Browsers: a page on another site can make this machine's browser talk to a
    // loopback API (DNS rebinding, or a cross-site form POST). Refuse a Host that
    // is not this API's, an Origin that is not local, and non-JSON writes.
    if (!hostAllowed(req.headers.host, host)) throw new ApiError('ForbiddenHost', `Host '${String(req.headers.host).slice(0, 80)}' is not this agent's address (DNS rebinding protection)`)
    const origin = req.headers.origin
    if (origin !== undefined && !originAllowed(origin, host)) throw new ApiError('ForbiddenOrigin', `requests from origin '${origin.slice(0, 80)}' are refused (cross-site protection)`)
    if (method === 'POST' && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      req.resume()
      throw new ApiError('UnsupportedMediaType', "send the body as JSON with 'Content-Type: application/json'")
    }
    const match = matchRoute(method, url.pathname)
    // Only public routes answer without the token; an unknown route asked without it is 401 too.
    if (tokenDigest !== undefined && !(!(match instanceof ApiError) && match.route.public === true) && !authorized(req, tokenDigest)) {
      throw new ApiError('Unauthorized', 'missing or wrong bearer token (Authorization: Bearer <token>)')
    }
    if (match instanceof ApiError) throw match
    const { name, route, rawParams } = match
    const rawIds: Record<string, string> = {}
    for (const [k, v] of Object.entries(rawParams)) {
      try { rawIds[k] = decodeURIComponent(v) } catch { throw new ApiError('InvalidId', `malformed percent-encoding in the ${k}`, k) }
    }
    const call = {
      params: parse(route.params, rawIds, 'path'),
      query: parse(route.query, Object.fromEntries(url.searchParams), 'query'),
      body: route.body !== undefined ? parse(route.body, await readJson(req, maxBody), 'body') : undefined,
      req,
      res
    }
    const reply = await (handlers[name] as (call: unknown) => Promise<{ status: number, body: unknown } | undefined>)(call)
    if (reply !== undefined) send(res, reply.status, reply.body)
  }

  function streamEvents (req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': ROUTES.events.produces, 'Cache-Control': 'no-cache', Connection: 'keep-alive' })
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

/** The JSON of a verdict. Integer `…Bytes`; `size` for people. */
export function verdictJson (v: Verdict): VerdictJson {
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
    endedHlc: v.endedHlc,
    // Bounds and the queue (docs/design.md "Bounds and the queue").
    minBytes: v.minBytes,
    effectiveBytes: v.effectiveBytes,
    shrunkHlc: v.shrunkHlc,
    queue: v.queue,
    queuePosition: v.queuePosition,
    queueLength: v.queueLength,
    queueExpiresHlc: v.queueExpiresHlc,
    admittedHlc: v.admittedHlc,
    decidedHlc: v.decidedHlc
  }
}

export function fitJson (answer: FitAnswer): FitAnswerJson {
  return { ...answer, size: formatSize(answer.bytes) }
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
    throw new ApiError('BodyTooLarge', `request body of ${declared} bytes exceeds the limit of ${maxBytes}`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > maxBytes) {
      req.resume()
      throw new ApiError('BodyTooLarge', `request body exceeds the limit of ${maxBytes} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') throw new ApiError('InvalidJson', 'request body is empty; send a JSON object')
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (error) {
    throw new ApiError('InvalidJson', `request body is not JSON: ${(error as Error).message}`)
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError('InvalidJson', 'request body must be a JSON object')
  return body as Record<string, unknown>
}

function nodesJson (agent: Agent): NodeJson[] {
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

function capacityJson (agent: Agent): CapacityJson {
  const nodes = nodesJson(agent).filter(n => n.member)
  const sum = (field: 'totalBytes' | 'allocatableBytes' | 'committedBytes' | 'headroomBytes' | 'availableBytes'): number => nodes.reduce((a, n) => a + n[field], 0)
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
  metric('memgossip_beacons_relayed_total', 'counter', 'Beacons of this agent handed to a relay that passes them on in batches.', m.beaconsRelayed)
  metric('memgossip_relay_batches_total', 'counter', 'Batches of members\' beacons this agent sent as a relay.', m.relayBatches)
  metric('memgossip_relay_batch_beacons_total', 'counter', 'Beacons carried in the batches this agent sent as a relay.', m.relayBatchBeacons)
  metric('memgossip_relay_timeouts_total', 'counter', 'Beacons of this agent whose relay did not pass them back in time (then sent directly).', m.relayTimeouts)
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
  metric('memgossip_beacon_pulls_total', 'counter', 'Beacons asked of a peer because a verdict waited too long for members\' clocks.', m.beaconPulls)
  metric('memgossip_updates_direct_total', 'counter', 'Local update batches sent straight to every member (a view of up to 64, all connected) instead of published by gossip.', m.updatesDirect)
  const memory = process.memoryUsage()
  metric('process_resident_memory_bytes', 'gauge', 'Resident set size of the agent process.', memory.rss)
  metric('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use (live objects and garbage not yet collected).', memory.heapUsed)
  metric('memgossip_epoch', 'gauge', 'The epoch the ledger is in: each move to a new epoch leaves behind what ended before its checkpoint.', m.epoch)
  metric('memgossip_epoch_moves_total', 'counter', 'Moves of the ledger to a new epoch (built here or fetched from a peer).', m.epochMoves)
  metric('memgossip_epoch_mismatches_total', 'counter', 'Settled epoch proposals refused because this peer computed a different checkpoint (alerted; nothing removed).', m.epochMismatches)
  metric('memgossip_epoch_foreign_total', 'counter', 'Updates of another epoch dropped (a peer not moved yet, or ahead: then its epoch is fetched).', m.epochForeign)
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
