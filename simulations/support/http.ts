/**
 * HTTP helpers for talking to agents, shared by the benchmark, the reliability
 * scripts and the tests: JSON requests over keep-alive connections (so a trial
 * does not pay for a TCP handshake), Prometheus text scraping, and a
 * server-sent-events reader that timestamps every event as it is read. (The
 * CLI has its own client in cli/, kept lean for start-up time.)
 */
import { Agent as HttpAgent, request, type IncomingMessage, type ClientRequest } from 'node:http'
import { SseParser } from '../../cli/client.ts'

const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 16 })

export interface JsonRequest {
  /** Default POST when there is a body, else GET. */
  method?: string
  /** Sent as JSON (`content-type: application/json`). */
  body?: unknown
  /** Sent as it is instead of `body` (to send what is not JSON); also `content-type: application/json` unless `headers` say otherwise. */
  raw?: string
  headers?: Record<string, string>
  /** Default 30 s. */
  timeoutMs?: number
}

/** The answer: its status and its body parsed as JSON, or the text when it is not JSON. */
export interface JsonAnswer { status: number, body: any }

/** One request; a pooled connection the server had closed is retried once (see below). */
export async function httpJson (url: string, init: JsonRequest = {}): Promise<JsonAnswer> {
  try {
    return await once(url, init)
  } catch (error) {
    // A pooled connection the server closed as idle just as it was reused: the
    // request never reached the server, so sending it again is safe (the
    // retry Node's documentation recommends for keep-alive agents).
    if ((error as { reusedSocket?: boolean }).reusedSocket === true) return await once(url, init)
    throw error
  }
}

async function once (url: string, init: JsonRequest): Promise<JsonAnswer> {
  const payload = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body))
  const method = init.method ?? (payload === undefined ? 'GET' : 'POST')
  const timeoutMs = init.timeoutMs ?? 30_000
  const headers: Record<string, string | number> = payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
  return await new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      agent: keepAlive,
      headers: { ...headers, ...init.headers },
      timeout: timeoutMs
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)) })
    req.on('error', (error: NodeJS.ErrnoException) => {
      const stale = req.reusedSocket && (error.code === 'ECONNRESET' || error.message === 'socket hang up')
      reject(Object.assign(error, { reusedSocket: stale }))
    })
    req.end(payload)
  })
}

/** `GET /metrics` as `name{labels}` → value. */
export async function scrapeMetrics (api: string): Promise<Map<string, number>> {
  const { body } = await httpJson(`${api}/metrics`)
  const out = new Map<string, number>()
  for (const line of String(body).split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue
    const space = line.lastIndexOf(' ')
    out.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return out
}

export function closeHttp (): void {
  keepAlive.destroy()
}

/** One `GET /v1/events` stream; `onEvent` gets each event with the time it was read. */
export class EventStream {
  private req?: ClientRequest
  private res?: IncomingMessage
  private closed = false

  private constructor (readonly url: string, private readonly onEvent: (type: string, data: any, at: number) => void) {}

  static async open (api: string, onEvent: (type: string, data: any, at: number) => void, timeoutMs = 10_000): Promise<EventStream> {
    const stream = new EventStream(`${api}/v1/events`, onEvent)
    await stream.connect(timeoutMs)
    return stream
  }

  private async connect (timeoutMs: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      // Its own connection (no pooling agent): it stays open for the whole run.
      const req = request(this.url, { method: 'GET', headers: { accept: 'text/event-stream' } }, (res) => {
        this.res = res
        res.setEncoding('utf8')
        const parser = new SseParser()
        let helloSeen = false
        res.on('data', (chunk: string) => {
          const at = performance.now()
          for (const { event, data } of parser.push(chunk)) {
            if (event === 'hello' && !helloSeen) { helloSeen = true; resolve() }
            this.onEvent(event, data, at)
          }
        })
        res.on('error', () => {})
      })
      const timer = setTimeout(() => { req.destroy(); reject(new Error(`no hello from ${this.url} within ${timeoutMs} ms`)) }, timeoutMs)
      req.on('response', () => { clearTimeout(timer) })
      req.on('error', (e) => { clearTimeout(timer); if (!this.closed) reject(e) })
      req.end()
      this.req = req
    })
  }

  close (): void {
    this.closed = true
    this.res?.destroy()
    this.req?.destroy()
  }
}
