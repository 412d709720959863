// @ts-check
/**
 * The page's one way to the agent: the public HTTP API with the bearer token
 * the person typed (kept in this tab's sessionStorage, sent as
 * `Authorization: Bearer`, never in a URL), and the event stream read with
 * `fetch` (EventSource cannot send a header).
 */

/** @typedef {import('../api/contract.ts').ErrorJson} ErrorJson */
/** @typedef {import('../api/contract.ts').ApiEvent} ApiEvent */

const TOKEN_KEY = 'memgossip.token'

/** A refusal from the API, with its stable code and the text it gave for people. */
export class ApiRefusal extends Error {
  /**
   * @param {number} status
   * @param {string} code the contract's error code (`InvalidSize`, `Unauthorized`, …)
   * @param {string} detail the API's own words
   * @param {string | undefined} field
   * @param {string | undefined} sentToken the token the refused request carried
   */
  constructor (status, code, detail, field, sentToken) {
    super(detail)
    this.name = 'ApiRefusal'
    this.status = status
    this.code = code
    this.field = field
    this.sentToken = sentToken
  }

  /**
   * A refusal of the token still in use. One that answers a request sent
   * before the person typed a token (it can arrive after) says nothing
   * about the new one.
   */
  get refusesCurrentToken () {
    return this.status === 401 && this.sentToken === token()
  }
}

export function token () {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined
}

export function setToken (/** @type {string | undefined} */ value) {
  if (value === undefined || value === '') sessionStorage.removeItem(TOKEN_KEY)
  else sessionStorage.setItem(TOKEN_KEY, value)
}

/** @param {string | undefined} sent @param {Record<string, string>} extra */
function headers (sent, extra = {}) {
  return sent !== undefined ? { ...extra, Authorization: `Bearer ${sent}` } : extra
}

/**
 * A JSON answer, or an {@link ApiRefusal} carrying the API's error text. A
 * network failure becomes a refusal too (code `Unreachable`): the page shows
 * words, never a stack.
 * @template T
 * @param {string} path
 * @param {{ method?: string, body?: unknown }} [init]
 * @returns {Promise<T>}
 */
export async function call (path, init = {}) {
  const sent = token()
  let response
  try {
    response = await fetch(path, {
      method: init.method ?? 'GET',
      headers: headers(sent, init.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      cache: 'no-store'
    })
  } catch {
    throw new ApiRefusal(0, 'Unreachable', `the agent at ${location.host} cannot be reached`, undefined, sent)
  }
  const text = await response.text()
  let body
  try {
    body = JSON.parse(text)
  } catch {
    throw new ApiRefusal(response.status, 'NotJson', `the agent answered ${response.status} with something that is not JSON`, undefined, sent)
  }
  if (!response.ok) {
    const error = /** @type {Partial<ErrorJson>} */ (body)
    throw new ApiRefusal(response.status, String(error.error ?? response.status), String(error.detail ?? response.statusText), error.field, sent)
  }
  return body
}

/**
 * Follow `GET /v1/events` until `signal` aborts: each event is handed to
 * `onEvent` as the contract names it. Resolves when the stream ends (the
 * agent stopped, the network dropped); rejects with an {@link ApiRefusal}
 * when the agent refuses it (a wrong token).
 * @param {(event: ApiEvent) => void} onEvent
 * @param {AbortSignal} signal
 */
export async function followEvents (onEvent, signal) {
  const sent = token()
  let response
  try {
    response = await fetch('/v1/events', { headers: headers(sent, { Accept: 'text/event-stream' }), signal, cache: 'no-store' })
  } catch {
    return
  }
  if (!response.ok || response.body === null) {
    const body = await response.json().catch(() => ({}))
    throw new ApiRefusal(response.status, String(body.error ?? response.status), String(body.detail ?? response.statusText), undefined, sent)
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      buffer += value
      let end
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const event = parseEvent(block)
        if (event !== undefined) onEvent(event)
      }
    }
  } catch {
    // Aborted, or the connection dropped: the caller reconnects.
  } finally {
    reader.releaseLock()
  }
}

/**
 * One server-sent event block (`event:` and `data:` lines; `:` comments are
 * keep-alives), or undefined for a comment or a block that is not JSON.
 * @param {string} block
 * @returns {ApiEvent | undefined}
 */
export function parseEvent (block) {
  let name = 'message'
  const data = []
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') name = value
    else if (field === 'data') data.push(value)
  }
  if (data.length === 0) return undefined
  try {
    return /** @type {ApiEvent} */ ({ event: name, data: JSON.parse(data.join('\n')) })
  } catch {
    return undefined
  }
}
