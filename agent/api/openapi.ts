/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the contract
 * (contract.ts) and nothing else: served at `GET /v1/openapi.json` and checked
 * in as docs/openapi.json, where a test fails when the two differ.
 *
 * Regenerate the checked-in copy with `npm run openapi`.
 */
import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { COMMON_ERRORS, ERROR_STATUS, EVENTS, ROUTES, SCHEMAS, type ErrorCode, type RouteSpec } from './contract.ts'

/** The checked-in copy. */
export const OPENAPI_PATH = fileURLToPath(new URL('../../docs/openapi.json', import.meta.url))

type JsonSchema = Record<string, unknown>

const REF = (id: string): string => `#/components/schemas/${id}`

/** The named schemas as JSON Schema, with references between them; requests as clients send them, answers as the agent writes them. */
function components (): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {}
  for (const [io, named] of [['input', SCHEMAS.requests], ['output', SCHEMAS.responses]] as const) {
    const registry = z.registry<{ id: string }>()
    for (const [id, schema] of Object.entries(named)) registry.add(schema as z.ZodType, { id })
    const { schemas } = z.toJSONSchema(registry, { io, target: 'draft-2020-12', uri: REF, unrepresentable: 'any' })
    for (const [id, schema] of Object.entries(schemas)) {
      const { $schema: _s, $id: _i, ...rest } = schema as JsonSchema
      out[id] = rest
    }
  }
  return out
}

/** A schema used inline (query parameters, path parameters): its JSON Schema, or a reference when it is a named component. */
function schemaOf (schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  for (const named of [SCHEMAS.requests, SCHEMAS.responses]) {
    for (const [id, s] of Object.entries(named)) if (s === schema) return { $ref: REF(id) }
  }
  const { $schema: _s, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as JsonSchema
  return rest
}

function parameters (route: RouteSpec): JsonSchema[] {
  const out: JsonSchema[] = []
  for (const [where, schema] of [['path', route.params], ['query', route.query]] as const) {
    if (schema === undefined) continue
    const object = schemaOf(schema, 'input') as { properties?: Record<string, JsonSchema>, required?: string[] }
    for (const [name, property] of Object.entries(object.properties ?? {})) {
      const { description, ...rest } = property
      out.push({
        name,
        in: where,
        required: where === 'path' || (object.required ?? []).includes(name),
        ...(description !== undefined ? { description } : {}),
        // Query values arrive as text; a parameter parsed from text is described as a string.
        schema: where === 'query' && rest.type === undefined ? { type: 'string' } : rest
      })
    }
  }
  return out
}

const REASON: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 400: 'Bad input: the field named in `field`', 401: 'Bearer token missing or wrong',
  403: 'Host or Origin refused', 404: 'Not found', 405: 'Method not allowed', 409: 'Conflict', 413: 'Body too large',
  415: 'Body is not JSON', 500: 'Internal error (logged)', 503: 'The agent cannot serve now', 504: 'Timed out'
}

function responses (route: RouteSpec): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = {}
  if (route.produces === 'text/event-stream') {
    // OpenAPI 3.1 has no schema for an event stream: the text is described, and each event's data is named by `x-events`.
    out['200'] = {
      description: 'A stream of `event: <name>` / `data: <JSON>` pairs; the data of each event is the schema named in `x-events`.',
      content: { [route.produces]: { schema: { type: 'string' } } },
      'x-events': Object.fromEntries(Object.keys(EVENTS).map(name => [name, { $ref: REF(`${name[0].toUpperCase()}${name.slice(1)}Event`) }]))
    }
  } else if (route.produces !== undefined) {
    const types: readonly string[] = typeof route.produces === 'string' ? [route.produces] : route.produces
    out['200'] = { description: REASON[200], content: Object.fromEntries(types.map(type => [type, { schema: { type: 'string' } }])) }
  }
  for (const [status, schema] of Object.entries(route.responses ?? {})) {
    out[status] = { description: REASON[Number(status)] ?? String(status), content: { 'application/json': { schema: schemaOf(schema, 'output') } } }
  }
  const errors: ErrorCode[] = [...(route.errors ?? []), ...COMMON_ERRORS]
  const byStatus = new Map<number, ErrorCode[]>()
  for (const code of errors) {
    if (route.public === true && code === 'Unauthorized') continue
    if (route.body === undefined && (code === 'UnsupportedMediaType' || code === 'BodyTooLarge')) continue
    const status = ERROR_STATUS[code]
    byStatus.set(status, [...(byStatus.get(status) ?? []), code])
  }
  for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    if (out[String(status)] !== undefined) continue
    out[String(status)] = {
      description: `${REASON[status] ?? String(status)}: ${codes.join(', ')}`,
      content: { 'application/json': { schema: { $ref: REF('Error') } } }
    }
  }
  return out
}

/** The whole document. Deterministic: the same contract gives the same bytes. */
export function openApiDocument (): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {}
  for (const [name, route] of Object.entries(ROUTES) as Array<[string, RouteSpec]>) {
    const operation: JsonSchema = { operationId: name, summary: route.summary }
    const params = parameters(route)
    if (params.length > 0) operation.parameters = params
    if (route.body !== undefined) {
      operation.requestBody = { required: true, content: { 'application/json': { schema: schemaOf(route.body, 'input') } } }
    }
    operation.responses = responses(route)
    if (route.public === true) operation.security = []
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'memgossip agent API',
      version: '1',
      description: 'JSON over HTTP on each agent (docs/design.md "Interfaces"). Loopback by default; with --api-token every route but /healthz and the files of the page at /ui needs `Authorization: Bearer <token>`. Bad input gets a 4xx `{ error, detail, field }` and nothing is written. Generated from agent/api/contract.ts.'
    },
    components: {
      schemas: components(),
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }
    },
    security: [{ bearer: [] }],
    paths
  }
}

/** The document as checked in: two-space JSON with a trailing newline. */
export function openApiText (): string {
  return JSON.stringify(openApiDocument(), null, 2) + '\n'
}

// `npm run openapi`: regenerate the checked-in copy (only from the source
// file: in the bundle this module shares a file with others, tools/bundle.mjs).
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1]) && import.meta.url.endsWith('/agent/api/openapi.ts')) {
  writeFileSync(OPENAPI_PATH, openApiText())
  process.stdout.write(`wrote ${OPENAPI_PATH}\n`)
}
