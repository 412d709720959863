/**
 * The API contract on its own (agent/api/contract.ts): the request schemas
 * parse size and placement once and name the field that was wrong; the route
 * table is what the OpenAPI document and the README's table list; and the
 * checked-in docs/openapi.json is exactly what the contract generates (run
 * `npm run openapi` after changing the contract). The served copy and the
 * answers of a running agent are checked against the same schemas in
 * api.test.ts.
 */
import { readFileSync } from 'node:fs'
import { Validator } from '@seriousme/openapi-schema-validator'
import { describe, expect, it } from 'vitest'
import {
  ApiError, ERROR_STATUS, EvictRequest, FitRequest, ListQuery, RentQuery, ReserveRequest, ROUTES, toApiError, UsageRequest,
  type RouteSpec
} from '../../agent/api/contract.ts'
import { OPENAPI_PATH, openApiDocument, openApiText } from '../../agent/api/openapi.ts'

const GiB = 1024 ** 3

/** Parse as the server does: the value, or the ApiError the first issue becomes. */
function check (schema: { safeParse: (v: unknown) => any }, value: unknown, where: 'body' | 'query' = 'body'): unknown {
  const r = schema.safeParse(value)
  return r.success ? r.data : toApiError(r.error, where)
}

describe('request schemas: size and placement parsed once, on the way in', () => {
  it.each([
    [{ size: '2GiB' }, { bytes: 2 * GiB, placement: { kind: 'any' } }],
    [{ size: '1.5GB', placement: 'spread:2' }, { bytes: 1_500_000_000, placement: { kind: 'spread', count: 2 } }],
    [{ bytes: 1024, placement: 'all' }, { bytes: 1024, placement: { kind: 'all' } }],
    [{ size: '512Mi', placement: 'node:12D3KooWX' }, { bytes: 512 * 1024 ** 2, placement: { kind: 'node', node: '12D3KooWX' } }]
  ])('fit %j → %j', (body, expected) => {
    expect(check(FitRequest, body)).toEqual(expected)
  })

  it('a reservation gets its defaults: priority 0, no labels', () => {
    expect(check(ReserveRequest, { id: 'web-1', size: '1GiB' })).toEqual({ id: 'web-1', bytes: GiB, placement: { kind: 'any' }, priority: 0, labels: {} })
  })

  it('a minimum as text or bytes becomes minBytes; queue and its timeout pass through', () => {
    expect(check(ReserveRequest, { id: 'b', size: '1GiB', min: '256MiB', queue: true, queueTimeoutMs: 60_000 }))
      .toEqual({ id: 'b', bytes: GiB, placement: { kind: 'any' }, priority: 0, labels: {}, minBytes: 256 * 1024 ** 2, queue: true, queueTimeoutMs: 60_000 })
    expect(check(ReserveRequest, { id: 'b', bytes: 2048, minBytes: 2048 })).toEqual({ id: 'b', bytes: 2048, placement: { kind: 'any' }, priority: 0, labels: {}, minBytes: 2048 })
  })

  it.each<[string, unknown, string, string | undefined]>([
    ['size as a number', { size: 5 }, 'InvalidSize', 'size'],
    ['an unknown unit', { size: '12XB' }, 'InvalidSize', 'size'],
    ['size zero', { size: '0' }, 'InvalidSize', 'size'],
    ['bytes zero', { bytes: 0 }, 'InvalidSize', 'bytes'],
    ['bytes beyond 2^53', { bytes: 2 ** 60 }, 'InvalidSize', 'bytes'],
    ['both size and bytes', { size: '1GiB', bytes: 5 }, 'InvalidSize', 'size'],
    ['neither', {}, 'InvalidSize', 'size'],
    ['placement moon', { size: '1GiB', placement: 'moon' }, 'InvalidPlacement', 'placement'],
    ['placement as an array', { size: '1GiB', placement: ['all'] }, 'InvalidPlacement', 'placement'],
    ['a misspelt field', { size: '1GiB', placment: 'all' }, 'UnknownField', 'placment']
  ])('fit: %s → %s naming %s', (_name, body, code, field) => {
    const e = check(FitRequest, body) as ApiError
    expect(e).toBeInstanceOf(ApiError)
    expect({ code: e.code, field: e.field, status: e.status }).toEqual({ code, field, status: 400 })
    expect(e.message.length).toBeGreaterThan(0)
  })

  it('the size message is the parser\'s, listing the accepted forms', () => {
    expect((check(FitRequest, { size: '512m' }) as ApiError).message).toMatch(/milli/)
  })

  it.each<[string, unknown, string, string]>([
    ['id first: a bad id with a bad size', { id: 42, size: 5 }, 'InvalidId', 'id'],
    ['priority 1.5', { id: 'x', size: '1GiB', priority: 1.5 }, 'InvalidPriority', 'priority'],
    ['labels with a number', { id: 'x', size: '1GiB', labels: { team: 7 } }, 'InvalidLabels', 'labels'],
    ['33 labels', { id: 'x', size: '1GiB', labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }, 'InvalidLabels', 'labels'],
    ['a field this agent does not know', { id: 'x', size: '1GiB', gpus: 1 }, 'UnknownField', 'gpus'],
    // Bounds and the queue (docs/design.md "Bounds and the queue").
    ['min above the size', { id: 'x', size: '1GiB', min: '2GiB' }, 'InvalidMin', 'min'],
    ['minBytes above bytes', { id: 'x', bytes: 1024, minBytes: 2048 }, 'InvalidMin', 'minBytes'],
    ['queueTimeoutMs without queue', { id: 'x', size: '1GiB', queueTimeoutMs: 5 }, 'InvalidQueueTimeout', 'queueTimeoutMs'],
    ['queueTimeoutMs beyond 30 days', { id: 'x', size: '1GiB', queue: true, queueTimeoutMs: 31 * 86_400_000 }, 'InvalidQueueTimeout', 'queueTimeoutMs']
  ])('reserve: %s → %s', (_name, body, code, field) => {
    const e = check(ReserveRequest, body) as ApiError
    expect({ code: e.code, field: e.field }).toEqual({ code, field })
  })

  it('evict, list and rent inputs', () => {
    expect(check(EvictRequest, { node: 'n1' })).toEqual({ node: 'n1', force: false })
    expect((check(EvictRequest, { node: 'n1', force: 'yes' }) as ApiError).code).toBe('InvalidForce')
    expect((check(ListQuery, { status: 'running' }, 'query') as ApiError).code).toBe('InvalidStatus')
    expect((check(ListQuery, { stauts: 'admitted' }, 'query') as ApiError).message).toBe("unknown query parameter 'stauts'")
    expect(check(RentQuery, { since: '1000', pricePerGiBHour: '0.5' }, 'query')).toEqual({ since: 1000, pricePerGiBHour: 0.5 })
    expect((check(RentQuery, { pricePerGiBHour: 'Infinity' }, 'query') as ApiError).code).toBe('InvalidPrice')
    expect((check(RentQuery, { since: 'yesterday' }, 'query') as ApiError).code).toBe('InvalidSince')
  })

  it.each<[string, unknown, string, string | undefined]>([
    ['no cgroup', {}, 'InvalidCgroup', 'cgroup'],
    ['cgroup as a number', { cgroup: 7 }, 'InvalidCgroup', 'cgroup'],
    ['an empty cgroup', { cgroup: '' }, 'InvalidCgroup', 'cgroup'],
    ['a field the usage route does not take', { cgroup: '/sys/fs/cgroup/memgossip-x', usedBytes: 5 }, 'UnknownField', 'usedBytes']
  ])('usage: %s → %s naming %s', (_name, body, code, field) => {
    const e = check(UsageRequest, body) as ApiError
    expect({ code: e.code, field: e.field, status: e.status }).toEqual({ code, field, status: 400 })
  })

  it('usage: a path is taken as given (the agent checks it against the reservation)', () => {
    expect(check(UsageRequest, { cgroup: '/sys/fs/cgroup/memgossip-x' })).toEqual({ cgroup: '/sys/fs/cgroup/memgossip-x' })
  })
})

describe('errors', () => {
  it('every error code maps to a 4xx or 5xx, and an ApiError carries its code\'s status', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(status, code).toBeGreaterThanOrEqual(400)
      expect(new ApiError(code as keyof typeof ERROR_STATUS, 'x').status).toBe(status)
    }
  })
})

describe('the OpenAPI document', () => {
  it('the checked-in docs/openapi.json is what the contract generates (run `npm run openapi` after changing it)', () => {
    const checkedIn = readFileSync(OPENAPI_PATH, 'utf8')
    expect(checkedIn, 'docs/openapi.json is stale: run `npm run openapi`').toBe(openApiText())
  })

  it('is a valid OpenAPI 3.1 document whose references all resolve', async () => {
    const validator = new Validator()
    const result = await validator.validate(openApiDocument())
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([])
    expect(result.valid).toBe(true)
    expect(validator.version).toBe('3.1')
  })

  it("README's HTTP API table names every route of the table, and nothing else", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const section = readme.slice(readme.indexOf('## HTTP API'))
    const rows = [...section.matchAll(/^\| `(GET|POST|DELETE) ([^`]+)` \|/gm)].map(m => `${m[1]} ${m[2]}`)
    const table = Object.values(ROUTES as Record<string, RouteSpec>).map(r => `${r.method} ${r.path.replace(/\{(\w+)\}/g, ':$1')}`)
    expect(rows.sort()).toEqual(table.sort())
  })

  it('lists every route of the table with its method, and nothing else', () => {
    const doc = openApiDocument() as { paths: Record<string, Record<string, { operationId: string }>> }
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => `${method.toUpperCase()} ${path} ${op.operationId}`))
    const table = Object.entries(ROUTES as Record<string, RouteSpec>).map(([name, r]) => `${r.method} ${r.path} ${name}`)
    expect(listed.sort()).toEqual(table.sort())
  })
})
