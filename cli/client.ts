/**
 * A small HTTP client for one agent's API (docs/design.md "Interfaces"). It
 * only moves JSON: every answer it returns is the agent's, unchanged. Failures
 * become a {@link ClientError} carrying the CLI exit code they mean:
 *
 * - 3: no answer from the agent (connection refused, DNS, timeout, 5xx), with
 *   the URL tried and how to start an agent;
 * - 2: the request was refused as input (4xx `{ error, detail, field }`, 401
 *   token required or wrong).
 *
 * Statuses a command treats as a clean answer (409 IdExists for `reserve`, 404 for `where`)
 * are passed in `accept` and returned like a 2xx.
 */
import { readFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { anySignal } from 'any-signal'
import { createParser, type EventSourceParser } from 'eventsource-parser'

/** Default API address: the agent's default `--api 127.0.0.1:7647`. */
export const DEFAULT_API_URL = 'http://127.0.0.1:7647'
/** Per-request timeout; `--ack peers:K` makes the agent wait up to 10 s, so stay above it. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 20_000

export const EXIT_OK = 0
export const EXIT_NO = 1
export const EXIT_USAGE = 2
export const EXIT_UNREACHABLE = 3

/** A failure with the exit code it maps to; `message` is what the user reads. */
export class ClientError extends Error {
  override readonly name = 'ClientError'
  constructor (readonly exitCode: 2 | 3, message: string, readonly body?: unknown) {
    super(message)
  }
}

export interface ClientInit {
  /** Base URL, `http://host:port` (a bare `host:port` is accepted). */
  api: string
  /** Bearer token (the value, never printed). */
  token?: string
  timeoutMs?: number
}

export interface ApiAnswer<T = unknown> {
  status: number
  body: T
}

/** One server-sent event: its `event:` name and its `data:` parsed as JSON (or the raw text); the agent's events are the contract's `ApiEvent`. */
export interface SseEvent {
  event: string
  data: unknown
}

/** `127.0.0.1:7647` → `http://127.0.0.1:7647`; refuses what is not an http(s) URL. */
export function normalizeApiUrl (text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new ClientError(2, `--api: '${text}' is not a URL (e.g. http://127.0.0.1:7647)`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ClientError(2, `--api: '${text}' must be an http:// or https:// URL`)
  return url.origin
}

/** Read a bearer token from a file; the error names the file, never its content. */
export async function readTokenFile (path: string): Promise<string> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new ClientError(2, `--token: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  const token = text.trim()
  if (token === '') throw new ClientError(2, `--token: ${path} is empty`)
  return token
}

export function unreachableHint (api: string): string {
  return `Start an agent with 'npm start' (in the memgossip checkout) or 'memgossip agent', or point --api / MEMGOSSIP_API at a running one.`
    + (api === DEFAULT_API_URL ? '' : ` (the default is ${DEFAULT_API_URL})`)
}

export class ApiClient {
  readonly api: string
  private readonly token?: string
  private readonly timeoutMs: number

  constructor (init: ClientInit) {
    this.api = normalizeApiUrl(init.api)
    this.token = init.token
    this.timeoutMs = init.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  }

  async get<T = unknown>(path: string, accept: number[] = []): Promise<ApiAnswer<T>> {
    return await this.request<T>('GET', path, undefined, accept)
  }

  async post<T = unknown>(path: string, body: unknown, accept: number[] = []): Promise<ApiAnswer<T>> {
    return await this.request<T>('POST', path, body, accept)
  }

  async delete<T = unknown>(path: string, accept: number[] = []): Promise<ApiAnswer<T>> {
    return await this.request<T>('DELETE', path, undefined, accept)
  }

  /** One request; 2xx and the `accept`ed statuses resolve, everything else throws a ClientError. */
  async request<T = unknown>(method: string, path: string, body: unknown, accept: number[] = []): Promise<ApiAnswer<T>> {
    let status: number
    let text: string
    try {
      ({ status, text } = await this.send(method, this.api + path, body !== undefined ? JSON.stringify(body) : undefined))
    } catch (error) {
      throw this.unreachable(error)
    }
    let parsed: unknown = text
    try { parsed = JSON.parse(text) } catch {}
    if ((status >= 200 && status < 300) || accept.includes(status)) {
      return { status, body: parsed as T }
    }
    throw this.refused(status, parsed)
  }

  /**
   * One HTTP exchange through node:http rather than `fetch`: a command makes
   * one request and exits, and loading fetch's engine (undici) costs a CLI
   * process about 40 ms, more than the request itself. No connection pool
   * (`agent: false`): nothing keeps the process alive after the answer.
   */
  private async send (method: string, url: string, body: string | undefined): Promise<{ status: number, text: string }> {
    const request = url.startsWith('https:') ? (await import('node:https')).request : httpRequest
    const headers = this.headers(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {})
    return await new Promise((resolve, reject) => {
      const req = request(url, { method, headers, agent: false, signal: AbortSignal.timeout(this.timeoutMs) }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => { chunks.push(chunk) })
        res.once('end', () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }) })
        res.once('error', reject)
      })
      req.once('error', reject)
      req.end(body)
    })
  }

  /**
   * Follow `GET /v1/events` (server-sent events) until `signal` aborts or the
   * agent closes the stream. Yields each event with its `data:` parsed.
   */
  async * events (signal: AbortSignal): AsyncGenerator<SseEvent> {
    if (signal.aborted) return
    const url = this.api + '/v1/events'
    // No overall timeout: the stream is meant to stay open. Only the connect is bounded.
    // Aborted by the connect timeout, and at the end to close the connection.
    const local = new AbortController()
    const stream = anySignal([signal, local.signal])
    const connectTimer = setTimeout(() => { local.abort(new DOMException('connect timeout', 'TimeoutError')) }, this.timeoutMs)
    try {
      let response: Response
      try {
        response = await fetch(url, { headers: this.headers({ accept: 'text/event-stream' }), signal: stream })
      } catch (error) {
        if (signal.aborted) return
        throw this.unreachable(error)
      } finally {
        clearTimeout(connectTimer)
      }
      if (response.status !== 200 || response.body === null) {
        let parsed: unknown
        try { parsed = JSON.parse(await response.text()) } catch {}
        throw this.refused(response.status, parsed)
      }
      const parser = new SseParser()
      const decoder = new TextDecoder()
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          for (const event of parser.push(decoder.decode(chunk, { stream: true }))) yield event
        }
      } catch (error) {
        if (signal.aborted) return
        throw this.unreachable(error)
      }
    } finally {
      // Also runs when the consumer stops early: close the connection, then detach from `signal`.
      local.abort()
      stream.clear()
    }
  }

  private headers (extra: Record<string, string>): Record<string, string> {
    return this.token !== undefined ? { ...extra, authorization: `Bearer ${this.token}` } : extra
  }

  private unreachable (error: unknown): ClientError {
    // node:http errors carry `code` (ECONNREFUSED); fetch's carry it in `cause`.
    const e = error as Error & { code?: string, cause?: { code?: string, message?: string } }
    const why = e.name === 'TimeoutError' || e.name === 'AbortError'
      ? `no answer within ${this.timeoutMs >= 1000 ? `${Math.round(this.timeoutMs / 1000)} s` : `${this.timeoutMs} ms`}`
      : e.cause?.code ?? e.code ?? e.cause?.message ?? e.message
    return new ClientError(3, `cannot reach the memgossip agent at ${this.api} (${why}). ${unreachableHint(this.api)}`)
  }

  private refused (status: number, body: unknown): ClientError {
    const b = (typeof body === 'object' && body !== null ? body : {}) as { error?: string, detail?: string, field?: string }
    if (status === 401) {
      return new ClientError(2, `the agent at ${this.api} answered 401: token required/wrong (--token FILE or MEMGOSSIP_TOKEN)`, body)
    }
    const detail = b.detail ?? (typeof body === 'string' && body !== '' ? body.slice(0, 200) : `HTTP ${status}`)
    const what = `${b.error ?? `HTTP ${status}`}${b.field !== undefined ? ` (${b.field})` : ''}`
    if (status >= 400 && status < 500) return new ClientError(2, `${detail} [${what}]`, body)
    // 5xx: the agent answered but could not serve (not joined yet, read-only, ack timeout).
    return new ClientError(3, `the agent at ${this.api} could not serve the request: ${detail} [${what}]`, body)
  }
}

/**
 * Incremental parser of a `text/event-stream`: eventsource-parser does the
 * parsing (fields, CR/LF/CRLF line ends, comments as keep-alives, events
 * split across chunks), this gives each event's `data` parsed as JSON when it
 * is JSON. An event without data is not delivered (the spec's rule).
 */
export class SseParser {
  private readonly parser: EventSourceParser
  private ready: SseEvent[] = []

  constructor () {
    this.parser = createParser({
      onEvent: (message) => {
        let data: unknown = message.data
        try { data = JSON.parse(message.data) } catch {}
        this.ready.push({ event: message.event ?? 'message', data })
      }
    })
  }

  /** Feed the next chunk of text; returns the events it completed. */
  push (text: string): SseEvent[] {
    this.parser.feed(text)
    const out = this.ready
    this.ready = []
    return out
  }
}
