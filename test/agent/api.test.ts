/**
 * The HTTP API of one in-process agent (docs/design.md "Interfaces"): every
 * endpoint's bad input gets the documented 4xx with `{ error, detail }` naming
 * the field and nothing written; the positive shapes; and a disk failure that
 * turns the agent read-only. Real agent, real libp2p, real data dir; fake
 * memory probe.
 */
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as contract from '../../agent/api/contract.ts'
import { openApiDocument } from '../../agent/api/openapi.ts'
import { StoreError } from '../../agent/store.ts'
import { memoryLogger, SILENT } from '../../agent/log.ts'
import { decodeMessage, encodeMessage, MSG_SYNC_REPLY, MSG_SYNC_REQUEST } from '../../agent/wire.ts'
import { api, GiB, startAgent, startCluster, stopAll, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'

let a: TestAgent
const started: TestAgent[] = []

beforeAll(async () => {
  a = await startAgent({ totalBytes: 64 * GiB })
  started.push(a)
  await waitFor('joined', () => a.daemon.agent.state().joined)
})
afterAll(async () => { await stopAll(started) })

/** Entries in the replicated reservations map: what "nothing written" is measured by. */
const ledgerReservations = (t: TestAgent = a): number => t.daemon.agent.ledger.size('reservations')

/** Assert the documented error shape: status, stable code, a detail, and the field it names. */
function expectError (r: { status: number, body: any }, status: number, error: string, field?: string): void {
  expect(r.status, JSON.stringify(r.body)).toBe(status)
  expect(r.body).toMatchObject({ error })
  expect(typeof r.body.detail).toBe('string')
  expect(r.body.detail.length).toBeGreaterThan(0)
  if (field !== undefined) expect(r.body.field).toBe(field)
}

/** A raw request, for what fetch will not send (malformed paths, chunked bodies). */
async function raw (method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number, body: any }> {
  const url = new URL(a.daemon.api.url)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers }, res => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => {
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
    })
    req.on('error', reject)
    if (body !== undefined) req.write(body)
    req.end()
  })
}

describe('bad input to POST /v1/reservations', () => {
  const cases: Array<[string, unknown, string, string]> = [
    ['size as a number', { id: 'x1', size: 1024 }, 'InvalidSize', 'size'],
    ['bytes as a string', { id: 'x1', bytes: '1024' }, 'InvalidSize', 'bytes'],
    ['bytes negative', { id: 'x1', bytes: -1 }, 'InvalidSize', 'bytes'],
    ['bytes fractional', { id: 'x1', bytes: 1.5 }, 'InvalidSize', 'bytes'],
    ['bytes zero', { id: 'x1', bytes: 0 }, 'InvalidSize', 'bytes'],
    ['bytes beyond 2^53', { id: 'x1', bytes: 2 ** 60 }, 'InvalidSize', 'bytes'],
    ['both size and bytes', { id: 'x1', size: '1GiB', bytes: 1024 }, 'InvalidSize', 'size'],
    ['neither size nor bytes', { id: 'x1' }, 'InvalidSize', 'size'],
    ['placement as an object', { id: 'x1', size: '1GiB', placement: { kind: 'any' } }, 'InvalidPlacement', 'placement'],
    ['unknown placement moon', { id: 'x1', size: '1GiB', placement: 'moon' }, 'InvalidPlacement', 'placement'],
    ['spread:0', { id: 'x1', size: '1GiB', placement: 'spread:0' }, 'InvalidPlacement', 'placement'],
    ['node: without an id', { id: 'x1', size: '1GiB', placement: 'node:' }, 'InvalidPlacement', 'placement'],
    ['priority 1.5', { id: 'x1', size: '1GiB', priority: 1.5 }, 'InvalidPriority', 'priority'],
    ['priority as a string', { id: 'x1', size: '1GiB', priority: '1' }, 'InvalidPriority', 'priority'],
    ['labels as an array', { id: 'x1', size: '1GiB', labels: ['a=b'] }, 'InvalidLabels', 'labels'],
    ['labels with a number value', { id: 'x1', size: '1GiB', labels: { team: 7 } }, 'InvalidLabels', 'labels'],
    ['missing id', { size: '1GiB' }, 'InvalidId', 'id'],
    ['id as a number', { id: 42, size: '1GiB' }, 'InvalidId', 'id'],
    ['empty id', { id: '', size: '1GiB' }, 'InvalidId', 'id'],
    ['id with a space', { id: 'web 1', size: '1GiB' }, 'InvalidId', 'id'],
    ['id with a bad character', { id: 'web$1', size: '1GiB' }, 'InvalidId', 'id'],
    ['id starting with a dash', { id: '-web', size: '1GiB' }, 'InvalidId', 'id'],
    ['id of 129 characters', { id: 'a'.repeat(129), size: '1GiB' }, 'InvalidId', 'id'],
    // Bounds and the queue (docs/design.md "Bounds and the queue").
    ['min above the size', { id: 'x1', size: '1GiB', min: '2GiB' }, 'InvalidMin', 'min'],
    ['min not a size', { id: 'x1', size: '1GiB', min: '12XB' }, 'InvalidMin', 'min'],
    ['min as a number', { id: 'x1', size: '1GiB', min: 5 }, 'InvalidMin', 'min'],
    ['min zero', { id: 'x1', size: '1GiB', min: '0' }, 'InvalidMin', 'min'],
    ['minBytes zero', { id: 'x1', size: '1GiB', minBytes: 0 }, 'InvalidMin', 'minBytes'],
    ['minBytes above bytes', { id: 'x1', bytes: 1024, minBytes: 1025 }, 'InvalidMin', 'minBytes'],
    ['both min and minBytes', { id: 'x1', size: '1GiB', min: '1MiB', minBytes: 1024 }, 'InvalidMin', 'min'],
    ['queue as a string', { id: 'x1', size: '1GiB', queue: 'yes' }, 'InvalidQueue', 'queue'],
    ['queueTimeoutMs without queue', { id: 'x1', size: '1GiB', queueTimeoutMs: 1000 }, 'InvalidQueueTimeout', 'queueTimeoutMs'],
    ['queueTimeoutMs zero', { id: 'x1', size: '1GiB', queue: true, queueTimeoutMs: 0 }, 'InvalidQueueTimeout', 'queueTimeoutMs'],
    ['queueTimeoutMs as a string', { id: 'x1', size: '1GiB', queue: true, queueTimeoutMs: '10m' }, 'InvalidQueueTimeout', 'queueTimeoutMs']
  ]
  it.each(cases)('%s → 400 %s naming %s, nothing written', async (_name, body, error, field) => {
    const before = ledgerReservations()
    expectError(await api(a, '/v1/reservations', { body }), 400, error, field)
    expect(ledgerReservations()).toBe(before)
  })

  it('accepts an id of exactly 128 characters (the boundary)', async () => {
    const id = 'b'.repeat(128)
    expect((await api(a, '/v1/reservations', { body: { id, size: '1MiB' } })).status).toBe(201)
    expect((await api(a, `/v1/reservations/${id}`)).status).toBe(200)
  })

  it.each(['12XB', '-1GiB', '1.5', '512m', '', '1e9', 'GiB', '1.3KiB'])('size %j → 400 InvalidSize that lists the accepted forms', async (size) => {
    const before = ledgerReservations()
    const r = await api(a, '/v1/reservations', { body: { id: 'bad-size', size } })
    expectError(r, 400, 'InvalidSize', 'size')
    expect(r.body.detail).toMatch(/accepted/)
    expect(r.body.detail).toMatch(/MiB/)
    expect(ledgerReservations()).toBe(before)
  })

  it("lowercase 'm' is refused with the Kubernetes-milli hint", async () => {
    const r = await api(a, '/v1/reservations', { body: { id: 'bad-size', size: '512m' } })
    expect(r.body.detail).toMatch(/milli/)
  })

  it.each([
    ['invalid JSON', '{"id": "x",'],
    ['an empty body', ''],
    ['whitespace only', '   \n'],
    ['a JSON array', '[{"id":"x","size":"1GiB"}]'],
    ['JSON null', 'null'],
    ['a JSON string', '"x"']
  ])('%s → 400 InvalidJson', async (_name, text) => {
    const before = ledgerReservations()
    expectError(await api(a, '/v1/reservations', { raw: text, method: 'POST' }), 400, 'InvalidJson')
    expect(ledgerReservations()).toBe(before)
  })

  it('a body over 64 KiB → 413, with and without Content-Length, and the agent keeps serving', async () => {
    const huge = JSON.stringify({ id: 'huge', size: '1GiB', labels: { pad: 'x'.repeat(70 * 1024) } })
    expectError(await api(a, '/v1/reservations', { raw: huge, method: 'POST' }), 413, 'BodyTooLarge')
    // Chunked: no declared length, the limit is enforced while reading.
    const chunked = await raw('POST', '/v1/reservations', huge, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
    expectError(chunked, 413, 'BodyTooLarge')
    expect(a.daemon.agent.verdict('huge')).toBeUndefined()
    expect((await api(a, '/healthz')).status).toBe(200)
  })

  it('a duplicate id → 409 IdExists with nothing written', async () => {
    expect((await api(a, '/v1/reservations', { body: { id: 'dup', size: '1GiB' } })).status).toBe(201)
    const before = ledgerReservations()
    const again = await api(a, '/v1/reservations', { body: { id: 'dup', size: '2GiB' } })
    expectError(again, 409, 'IdExists', 'id')
    expect(ledgerReservations()).toBe(before)
    expect(a.daemon.agent.verdict('dup')?.bytes).toBe(GiB)
  })

  it('an id this node wrote before, gone from the ledger but named by a release still in it (after compaction) → 409 IdExists with nothing written', async () => {
    // Its own agent: the ledger is made to look like an epoch's document (a
    // seed marker) holding a release of this node's entry 'gone', carried
    // over, the entry itself left behind. The agent is stopped, not restarted.
    const b = await startAgent({ totalBytes: 64 * GiB })
    started.push(b)
    await waitFor('joined', () => b.daemon.agent.state().joined)
    const doc = (b.daemon.agent as unknown as { doc: Y.Doc }).doc
    const other = '12D3KooWother'
    doc.getMap('epoch').set('seed', { marker: 'test' })
    doc.getMap('releases').set(`gone@${b.daemon.agent.self}@${other}`, { id: 'gone', creator: b.daemon.agent.self, by: other, hlc: `000000000000001:000000:${other}`, seq: 1 })
    const before = ledgerReservations(b)
    const r = await api(b, '/v1/reservations', { body: { id: 'gone', size: '1GiB' } })
    expectError(r, 409, 'IdExists', 'id')
    expect(r.body.detail).toMatch(/still holds a release of that entry/)
    expect(ledgerReservations(b)).toBe(before)
    await b.daemon.stop()
  })

  it('does not fit now → 200, the one answer shape saying rejected and not written, with the fit answer (histogram, per-node numbers); nothing written', async () => {
    expect((await api(a, '/v1/reservations', { body: { id: 'dnf-filler', size: '1GiB' } })).status).toBe(201)
    const self = a.daemon.agent.resolution().nodes.get(a.daemon.agent.self)!
    const bytes = self.allocatableBytes - self.committedBytes + 1 // more than the headroom, not more than the node
    const before = ledgerReservations()
    const countBefore = (await api(a, '/v1/reservations')).body.reservations.length
    const r = await api(a, '/v1/reservations', { body: { id: 'too-big', bytes } })
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    expect(r.body).toMatchObject({ id: 'too-big', written: false, status: 'rejected', code: 'NoNodeFits', final: true })
    expect(r.body.verdict).toBeUndefined()
    expect(r.body.answer).toMatchObject({ fits: false, bytes, code: 'NoNodeFits' })
    expect(r.body.answer.histogram).toMatch(/^0\/1 nodes fit: 1 InsufficientMemory/)
    expect(r.body.answer.perNode).toHaveLength(1)
    expect(r.body.answer.perNode[0]).toMatchObject({ node: a.daemon.agent.self, fit: 'InsufficientMemory' })
    expect(typeof r.body.answer.perNode[0].headroomBytes).toBe('number')
    expect(r.body.reason).toMatch(/GiB/) // the reason names numbers
    expect(r.body.reason).toBe(r.body.answer.reason)
    expect(ledgerReservations()).toBe(before)
    expect((await api(a, '/v1/reservations')).body.reservations.length).toBe(countBefore)
    expect((await api(a, '/v1/reservations/too-big')).status).toBe(404)
  })
})

describe('bounds, the queue and NeverFits on POST /v1/reservations', () => {
  it('never fits (larger than every member) → 200 not written, code NeverFits with the numbers, queued or not; nothing written', async () => {
    const before = ledgerReservations()
    for (const queue of [false, true]) {
      const r = await api(a, '/v1/reservations', { body: { id: 'never', size: '1TiB', queue } })
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      expect(r.body).toMatchObject({ id: 'never', written: false, status: 'rejected', code: 'NeverFits', final: true })
      expect(r.body.answer).toMatchObject({ fits: false, code: 'NeverFits', bytes: 1024 * GiB })
      expect(r.body.reason).toMatch(/^never fits: needs 1\.00 TiB, more than any member's allocatable memory \(largest: [\d.]+ GiB on node /)
      conformsTo(contract.ReserveAnswer, r.body)
    }
    expect(ledgerReservations()).toBe(before)
    expect((await api(a, '/v1/reservations/never')).status).toBe(404)
  })

  it('a queued request that does not fit now is written and waits: position, ?status=queued, withdrawn by DELETE', async () => {
    expect((await api(a, '/v1/reservations', { body: { id: 'queue-filler', size: '1GiB' } })).status).toBe(201)
    const self = a.daemon.agent.resolution().nodes.get(a.daemon.agent.self)!
    const bytes = self.allocatableBytes - self.committedBytes + 1
    expect(bytes).toBeLessThanOrEqual(self.allocatableBytes) // not NeverFits: something is committed
    const r = await api(a, '/v1/reservations', { body: { id: 'waits', bytes, queue: true, queueTimeoutMs: 3_600_000, min: '1MiB' } })
    expect(r.status, JSON.stringify(r.body)).toBe(201)
    conformsTo(contract.ReserveAnswer, r.body)
    expect(r.body).toMatchObject({ written: true, status: 'queued', code: 'Queued', final: false })
    expect(r.body.verdict).toMatchObject({ id: 'waits', status: 'queued', decision: 'queued', code: 'Queued', queue: true, queuePosition: 1, queueLength: 1, final: false, waitingOn: 'capacity', minBytes: 1024 * 1024, effectiveBytes: bytes })
    expect(r.body.verdict.reason).toMatch(/^queued: needs .* largest headroom is /)
    expect(typeof r.body.verdict.queueExpiresHlc).toBe('string')
    const queued = await api(a, '/v1/reservations?status=queued')
    conformsTo(contract.ReservationList, queued.body)
    expect(queued.body.reservations.map((v: any) => v.id)).toEqual(['waits'])
    const gone = await api(a, '/v1/reservations/waits', { method: 'DELETE' })
    expect(gone.body).toMatchObject({ status: 'rejected', code: 'Withdrawn' })
    expect((await api(a, '/v1/reservations?status=queued')).body.reservations).toEqual([])
  })

  it('a queued request times out in a quiet cluster: the agent withdraws it past its timeout, and it is rejected QueueTimeout at that point', async () => {
    expect((await api(a, '/v1/reservations', { body: { id: 'timeout-filler', size: '1GiB' } })).status).toBe(201)
    const self = a.daemon.agent.resolution().nodes.get(a.daemon.agent.self)!
    const bytes = self.allocatableBytes - self.committedBytes + 1
    const r = await api(a, '/v1/reservations', { body: { id: 'short-wait', bytes, queue: true, queueTimeoutMs: 200 } })
    expect(r.body.verdict).toMatchObject({ status: 'queued' })
    await waitFor('the queue timeout', () => a.daemon.agent.verdict('short-wait')?.code === 'QueueTimeout', 10_000)
    const v = (await api(a, '/v1/reservations/short-wait')).body
    expect(v).toMatchObject({ status: 'rejected', decisionCode: 'QueueTimeout', decidedHlc: v.queueExpiresHlc })
  })

  it('a queued request that fits now is admitted at once, carrying its minimum', async () => {
    const r = await api(a, '/v1/reservations', { body: { id: 'fits-queued', size: '1MiB', queue: true, minBytes: 1024 } })
    expect(r.status).toBe(201)
    expect(r.body.verdict).toMatchObject({ status: 'admitted', minBytes: 1024, effectiveBytes: 1024 * 1024 })
  })
})

/** The body matches the contract's schema, field for field. */
function conformsTo (schema: { parse: (v: unknown) => unknown }, body: unknown): void {
  expect(schema.parse(body)).toEqual(body)
}

describe('bad input to the other endpoints', () => {
  it('POST /v1/fit: the same size and placement checks, 400 naming the field', async () => {
    expectError(await api(a, '/v1/fit', { body: { size: 5 } }), 400, 'InvalidSize', 'size')
    expectError(await api(a, '/v1/fit', { body: { size: '12XB' } }), 400, 'InvalidSize', 'size')
    expectError(await api(a, '/v1/fit', { body: { bytes: '5' } }), 400, 'InvalidSize', 'bytes')
    expectError(await api(a, '/v1/fit', { body: { size: '1GiB', placement: 'moon' } }), 400, 'InvalidPlacement', 'placement')
    expectError(await api(a, '/v1/fit', { body: { size: '1GiB', placement: ['all'] } }), 400, 'InvalidPlacement', 'placement')
    expectError(await api(a, '/v1/fit', { raw: '{', method: 'POST' }), 400, 'InvalidJson')
    expectError(await api(a, '/v1/fit', { raw: '', method: 'POST' }), 400, 'InvalidJson')
  })

  it('GET and DELETE of an unknown id → 404 naming the id', async () => {
    const releasesBefore = a.daemon.agent.ledger.size('releases')
    expectError(await api(a, '/v1/reservations/no-such-thing'), 404, 'NotFound')
    const before = ledgerReservations()
    const del = await api(a, '/v1/reservations/no-such-thing', { method: 'DELETE' })
    expectError(del, 404, 'NotFound')
    expect(del.body.detail).toMatch(/no-such-thing/)
    expect(a.daemon.agent.ledger.size('releases')).toBe(releasesBefore)
    expect(ledgerReservations()).toBe(before)
  })

  it('bad percent-encoding or a malformed id in the path → 400 InvalidId', async () => {
    expectError(await raw('GET', '/v1/reservations/%E0%A4%A'), 400, 'InvalidId', 'id')
    expectError(await raw('DELETE', '/v1/reservations/%ZZ'), 400, 'InvalidId', 'id')
    expectError(await raw('GET', '/v1/reservations/-dash'), 400, 'InvalidId', 'id')
    expectError(await raw('GET', `/v1/reservations/${'a'.repeat(129)}`), 400, 'InvalidId', 'id')
  })

  it('an id with a slash is reachable percent-encoded', async () => {
    expect((await api(a, '/v1/reservations', { body: { id: 'team/web-1', size: '1MiB' } })).status).toBe(201)
    const r = await api(a, `/v1/reservations/${encodeURIComponent('team/web-1')}`)
    expect(r.status).toBe(200)
    expect(r.body.id).toBe('team/web-1')
  })

  it('an unknown route → 404; a known route with the wrong method → 405', async () => {
    expectError(await api(a, '/v2/nodes'), 404, 'NotFound')
    expectError(await api(a, '/v1/nope'), 404, 'NotFound')
    expectError(await api(a, '/v1/reservations/x/y'), 404, 'NotFound')
    expectError(await api(a, '/v1/reservations/dup', { method: 'PUT', body: {} }), 405, 'MethodNotAllowed')
    expectError(await api(a, '/v1/reservations/dup', { method: 'POST', body: {} }), 405, 'MethodNotAllowed')
    expectError(await api(a, '/v1/nodes', { method: 'DELETE' }), 405, 'MethodNotAllowed')
    expectError(await api(a, '/v1/fit'), 405, 'MethodNotAllowed')
    expectError(await api(a, '/v1/reservations', { method: 'PUT', body: {} }), 405, 'MethodNotAllowed')
    expectError(await api(a, '/healthz', { method: 'POST', body: {} }), 405, 'MethodNotAllowed')
    const r = await raw('DELETE', '/v1/state')
    expect(r.status).toBe(405)
    const allow = await fetch(`${a.daemon.api.url}/v1/reservations`, { method: 'PATCH' })
    expect(allow.status).toBe(405)
    expect(allow.headers.get('allow')).toBe('GET, POST')
    // The reservation survived the wrong-method calls.
    expect(a.daemon.agent.verdict('dup')?.status).toBe('admitted')
  })

  it('a bad status filter → 400 InvalidStatus', async () => {
    const r = await api(a, '/v1/reservations?status=running')
    expectError(r, 400, 'InvalidStatus', 'status')
    expect(r.body.detail).toMatch(/admitted/)
  })

  it('bad rent parameters → 400 naming the parameter', async () => {
    expectError(await api(a, '/v1/rent?since=yesterday'), 400, 'InvalidSince', 'since')
    expectError(await api(a, '/v1/rent?since='), 400, 'InvalidSince', 'since')
    expectError(await api(a, '/v1/rent?pricePerGiBHour=-1'), 400, 'InvalidPrice', 'pricePerGiBHour')
    expectError(await api(a, '/v1/rent?pricePerGiBHour=cheap'), 400, 'InvalidPrice', 'pricePerGiBHour')
    expectError(await api(a, '/v1/rent?pricePerGiBHour=Infinity'), 400, 'InvalidPrice', 'pricePerGiBHour')
  })

  it('evict: a bad body → 400, an unknown node → 404, itself → 400; nothing written', async () => {
    const membership = (): number => a.daemon.agent.ledger.size('membership')
    const before = membership()
    expectError(await api(a, '/v1/evict', { body: {} }), 400, 'InvalidNode', 'node')
    expectError(await api(a, '/v1/evict', { body: { node: 7 } }), 400, 'InvalidNode', 'node')
    expectError(await api(a, '/v1/evict', { body: { node: '12D3KooWNoSuchNode' } }), 404, 'NotFound')
    expectError(await api(a, '/v1/evict', { body: { node: a.daemon.agent.self } }), 400, 'BadRequest', 'node')
    expect(membership()).toBe(before)
    expect(a.daemon.agent.state().members).toEqual([a.daemon.agent.self])
  })
})

describe('positive shapes', () => {
  it('/healthz and /v1/state', async () => {
    const h = await api(a, '/healthz')
    expect(h.status).toBe(200)
    expect(h.body).toMatchObject({ ok: true, self: a.daemon.agent.self, joined: true })
    const s = await api(a, '/v1/state')
    expect(s.status).toBe(200)
    expect(s.body).toMatchObject({ self: a.daemon.agent.self, cluster: 'test', joined: true, members: [a.daemon.agent.self] })
    expect(s.body.verdictsDigest).toMatch(/\S/)
    expect(s.body.verdictsDigest).toBe(a.daemon.agent.resolution().digest)
    expect(s.body.readOnly).toBeUndefined()
  })

  it('/v1/nodes carries the documented fields as integers', async () => {
    const { status, body } = await api(a, '/v1/nodes')
    expect(status).toBe(200)
    expect(body.nodes).toHaveLength(1)
    const n = body.nodes[0]
    expect(n).toMatchObject({ id: a.daemon.agent.self, totalBytes: 64 * GiB, state: 'active', liveness: 'self', heartbeatAgeMs: 0 })
    for (const f of ['totalBytes', 'allocatableBytes', 'committedBytes', 'availableBytes']) expect(Number.isSafeInteger(n[f]), f).toBe(true)
    expect(n.allocatableBytes).toBeLessThan(n.totalBytes)
    expect(n.committedBytes).toBeGreaterThan(0) // dup and the others above
  })

  it('/v1/capacity sums the members', async () => {
    const { status, body } = await api(a, '/v1/capacity')
    expect(status).toBe(200)
    expect(body).toMatchObject({ members: 1, totalBytes: 64 * GiB })
    expect(body.headroomBytes).toBe(body.allocatableBytes - body.committedBytes)
    expect(body.verdictsDigest).toBe(a.daemon.agent.resolution().digest)
    expect(body.nodes).toHaveLength(1)
  })

  it('/v1/fit answers like a dry-run plan, and writes nothing', async () => {
    const before = ledgerReservations()
    const yes = await api(a, '/v1/fit', { body: { size: '2GiB' } })
    expect(yes.status).toBe(200)
    expect(yes.body).toMatchObject({ fits: true, bytes: 2 * GiB, nodes: [a.daemon.agent.self], placement: 'any', size: '2.00 GiB' })
    for (const f of ['histogram', 'perNode', 'final', 'waitsFor']) expect(yes.body, f).toHaveProperty(f)
    expect(yes.body.perNode[0]).toMatchObject({ chosen: true })
    expect(yes.body.perNode[0].headroomAfterBytes).toBe(yes.body.perNode[0].headroomBytes - 2 * GiB)
    const no = await api(a, '/v1/fit', { body: { bytes: 1024 * GiB, placement: 'all' } })
    expect(no.status).toBe(200)
    expect(no.body.fits).toBe(false)
    expect(no.body.histogram).toMatch(/^0\/1 nodes fit/)
    expect(ledgerReservations()).toBe(before)
  })

  it('/v1/reservations lists with ?status= and ?node= filters; DELETE releases', async () => {
    expect((await api(a, '/v1/reservations', { body: { id: 'list-1', size: '1GiB', labels: { team: 'web' }, priority: 3 } })).status).toBe(201)
    expect((await api(a, '/v1/reservations', { body: { id: 'list-2', bytes: GiB, placement: `node:${a.daemon.agent.self}` } })).status).toBe(201)
    const rel = await api(a, '/v1/reservations/list-2', { method: 'DELETE' })
    expect(rel.status).toBe(200)
    expect(rel.body).toMatchObject({ id: 'list-2', status: 'released' })

    const all = await api(a, '/v1/reservations')
    expect(all.status).toBe(200)
    expect(all.body.verdictsDigest).toBe(a.daemon.agent.resolution().digest)
    const ids = all.body.reservations.map((r: any) => r.id)
    expect(ids).toEqual(expect.arrayContaining(['dup', 'list-1', 'list-2']))
    const one = all.body.reservations.find((r: any) => r.id === 'list-1')
    expect(one).toMatchObject({ status: 'admitted', bytes: GiB, size: '1.00 GiB', placement: 'any', priority: 3, labels: { team: 'web' }, creator: a.daemon.agent.self, nodes: [a.daemon.agent.self] })

    const admitted = await api(a, '/v1/reservations?status=admitted')
    expect(admitted.body.reservations.every((r: any) => r.status === 'admitted')).toBe(true)
    expect(admitted.body.reservations.map((r: any) => r.id)).not.toContain('list-2')
    const released = await api(a, '/v1/reservations?status=released')
    expect(released.body.reservations.map((r: any) => r.id)).toEqual(['list-2'])
    const onSelf = await api(a, `/v1/reservations?node=${a.daemon.agent.self}`)
    expect(onSelf.body.reservations.map((r: any) => r.id)).toContain('list-1')
    const elsewhere = await api(a, '/v1/reservations?node=12D3KooWElsewhere')
    expect(elsewhere.body.reservations).toEqual([])
  })

  it('/v1/rent bills admitted reservations', async () => {
    const r = await api(a, '/v1/rent?pricePerGiBHour=0.5')
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ pricePerGiBHour: 0.5 })
    expect(Array.isArray(r.body.lines)).toBe(true)
    expect(r.body.lines.map((l: any) => l.id)).toContain('list-1')
    expect(typeof r.body.totalCost).toBe('number')
    const since = await api(a, `/v1/rent?since=${new Date(Date.now() + 3_600_000).toISOString()}`)
    expect(since.status).toBe(200)
  })

  it('/metrics is Prometheus text with the documented names', async () => {
    const response = await fetch(`${a.daemon.api.url}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/)
    const text = await response.text()
    for (const name of [
      'memgossip_peers', 'memgossip_members', 'memgossip_heartbeats_total', 'memgossip_updates_in_total',
      'memgossip_updates_out_total', 'memgossip_bytes_in_total', 'memgossip_bytes_out_total',
      'memgossip_sync_rounds_total', 'memgossip_sync_failures_total', 'memgossip_dropped_total',
      'memgossip_verdicts', 'memgossip_verdicts_pending', 'memgossip_ledger_bytes',
      'memgossip_allocatable_bytes', 'memgossip_floor_bytes', 'memgossip_http_requests_total',
      'memgossip_http_errors_total', 'memgossip_read_only', 'memgossip_gap_pulls_total', 'memgossip_beacon_pulls_total'
    ]) {
      expect(text, name).toMatch(new RegExp(`^# TYPE ${name} (counter|gauge)$`, 'm'))
    }
    expect(text).toMatch(/^memgossip_members 1$/m)
    expect(text).toMatch(/^memgossip_verdicts\{status="admitted"\} [1-9]/m)
    expect(text).toMatch(/^memgossip_http_errors_total\{class="4xx"\} [1-9]/m)
    expect(text).toMatch(/^memgossip_read_only 0$/m)
    // Every sample line is `name{labels} number`.
    for (const line of text.trim().split('\n').filter(l => !l.startsWith('#'))) expect(line).toMatch(/^[a-z_]+(\{[^}]*\})? -?\d+(\.\d+)?(e[+-]?\d+)?$/)
  })

  it('/v1/events streams a hello, then a verdict event after a reservation', async () => {
    const controller = new AbortController()
    const response = await fetch(`${a.daemon.api.url}/v1/events`, { signal: controller.signal })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    let text = ''
    const readUntil = async (pattern: RegExp): Promise<void> => {
      const deadline = Date.now() + 10_000
      while (!pattern.test(text)) {
        if (Date.now() > deadline) throw new Error(`no ${String(pattern)} in the event stream: ${text}`)
        const { value, done } = await reader.read()
        if (done === true) throw new Error(`stream ended: ${text}`)
        text += decoder.decode(value, { stream: true })
      }
    }
    try {
      await readUntil(/event: hello\ndata: .*\n\n/)
      expect((await api(a, '/v1/reservations', { body: { id: 'sse-1', size: '1GiB' } })).status).toBe(201)
      await readUntil(/event: verdict\ndata: \{[^\n]*"id":"sse-1"[^\n]*\}\n\n/)
      const line = /event: verdict\ndata: (\{[^\n]*"id":"sse-1"[^\n]*\})\n\n/.exec(text)![1]
      expect(JSON.parse(line)).toMatchObject({ type: 'verdict', id: 'sse-1', status: 'admitted', nodes: [a.daemon.agent.self] })
      // The events are the contract's, field for field.
      expect(contract.EVENTS.verdict.parse(JSON.parse(line))).toEqual(JSON.parse(line))
      const hello = JSON.parse(/event: hello\ndata: (.*)\n\n/.exec(text)![1])
      expect(contract.EVENTS.hello.parse(hello)).toEqual(hello)
    } finally {
      controller.abort()
      await reader.cancel().catch(() => {})
    }
    // The stream's listener is gone once the client hung up.
    await waitFor('listener removed', () => a.daemon.agent.listenerCount('event') === 0, 5_000)
  })
})

describe('the contract (agent/api/contract.ts)', () => {
  /** The answer matches its schema and carries nothing the schema does not list (the object parsers drop unknown keys). */
  const conforms = (schema: { parse: (v: unknown) => unknown }, body: unknown, what: string): void => {
    expect(schema.parse(body), what).toEqual(body)
  }

  it('every JSON answer of a running agent is the contract\'s shape, field for field', async () => {
    const made = await api(a, '/v1/reservations', { body: { id: 'shape-1', size: '1GiB', labels: { team: 'web' } } })
    expect(made.status).toBe(201)
    conforms(contract.ReserveAnswer, made.body, 'POST /v1/reservations 201')
    expect(made.body).toMatchObject({ id: 'shape-1', written: true, status: 'admitted', code: 'Fits', verdict: { id: 'shape-1', status: 'admitted' }, answer: { fits: true } })
    expect(made.body.final).toBe(made.body.verdict.final)
    const refused = await api(a, '/v1/reservations', { body: { id: 'shape-2', size: '1TiB' } })
    conforms(contract.ReserveAnswer, refused.body, 'POST /v1/reservations 200')
    conforms(contract.FitAnswer, (await api(a, '/v1/fit', { body: { size: '1GiB' } })).body, 'POST /v1/fit')
    const released = await api(a, '/v1/reservations/shape-1', { method: 'DELETE' })
    conforms(contract.Verdict, released.body, 'DELETE /v1/reservations/{id}')
    expect(released.body.endedHlc).toMatch(/\S/)
    for (const [path, schema] of [
      ['/healthz', contract.Health],
      ['/v1/state', contract.State],
      ['/v1/nodes', contract.NodeList],
      ['/v1/capacity', contract.Capacity],
      ['/v1/alerts', contract.AlertList],
      ['/v1/rent', contract.Rent],
      ['/v1/reservations', contract.ReservationList],
      ['/v1/reservations/shape-1', contract.Verdict],
      ['/v1/reservations/shape-1/usage', contract.UsageList]
    ] as const) {
      const r = await api(a, path)
      expect(r.status, path).toBe(200)
      conforms(schema, r.body, path)
    }
    const error = await api(a, '/v1/reservations/nope')
    conforms(contract.ErrorBody, error.body, 'an error')
  })

  it('405 names the methods the route table has for that path', async () => {
    for (const [path, method, allow] of [['/v1/reservations/x', 'PUT', 'GET, DELETE'], ['/v1/reservations/x/usage', 'DELETE', 'GET, POST'], ['/v1/fit', 'GET', 'POST'], ['/v1/openapi.json', 'DELETE', 'GET']]) {
      const r = await fetch(`${a.daemon.api.url}${path}`, { method })
      expect(r.status, path).toBe(405)
      expect(r.headers.get('allow'), path).toBe(allow)
      expect(((await r.json()) as { detail: string }).detail).toBe(`${method} is not allowed on ${path}; use ${allow.split(', ').join(' or ')}`)
    }
  })

  it('GET /v1/openapi.json serves the document generated from the contract', async () => {
    const r = await api(a, '/v1/openapi.json')
    expect(r.status).toBe(200)
    expect(r.body).toEqual(openApiDocument())
    expect(r.body.openapi).toBe('3.1.0')
  })

  it('node:<id> of a node this agent does not know → 400 UnknownNode naming it (fit and reserve), nothing written', async () => {
    const before = ledgerReservations()
    const fit = await api(a, '/v1/fit', { body: { size: '1GiB', placement: 'node:12D3KooWNoSuchNode' } })
    expectError(fit, 400, 'UnknownNode', 'placement')
    expect(fit.body.detail).toContain("no node '12D3KooWNoSuchNode' in this agent's view")
    const made = await api(a, '/v1/reservations', { body: { id: 'pinned-nowhere', size: '1GiB', placement: 'node:12D3KooWNoSuchNode' } })
    expectError(made, 400, 'UnknownNode', 'placement')
    expect(ledgerReservations()).toBe(before)
    // A known node is a plain answer.
    expect((await api(a, '/v1/fit', { body: { size: '1GiB', placement: `node:${a.daemon.agent.self}` } })).body.fits).toBe(true)
  })

  it('a body field or query parameter the route does not take → 400 UnknownField naming it, nothing written', async () => {
    const before = ledgerReservations()
    const r = await api(a, '/v1/reservations', { body: { id: 'typo', size: '1GiB', prority: 5 } })
    expectError(r, 400, 'UnknownField', 'prority')
    expect(r.body.detail).toBe("unknown field 'prority'")
    expect(ledgerReservations()).toBe(before)
    expectError(await api(a, '/v1/reservations?stauts=admitted'), 400, 'UnknownField', 'stauts')
    expectError(await api(a, '/v1/fit', { body: { size: '1GiB', force: true } }), 400, 'UnknownField', 'force')
  })
})

describe('a disk-write failure', () => {
  // Simulated by making the store's append reject the way a full disk does (a
  // StoreError with code ENOSPC): running as root, chmod cannot stop writes, and
  // a tmpfs cannot be mounted without privileges.
  it('turns the agent read-only: writes → 503 with a clear detail, /healthz 503, reads still work', async () => {
    const b = await startAgent({ totalBytes: 16 * GiB })
    started.push(b)
    await waitFor('joined', () => b.daemon.agent.state().joined)
    expect((await api(b, '/v1/reservations', { body: { id: 'before-failure', size: '1GiB' } })).status).toBe(201)
    const log = memoryLogger()
    ;(b.daemon.agent as any).log = log
    const store = (b.daemon.agent as any).store
    store.append = async () => { throw new StoreError('ENOSPC', 'ENOSPC: no space left on device, write', { file: 'ledger.log' }) }

    const failed = await api(b, '/v1/reservations', { body: { id: 'during-failure', size: '1GiB' } })
    expectError(failed, 503, 'Unavailable')
    expect(failed.body.detail).toMatch(/ENOSPC|no space/)
    const next = await api(b, '/v1/reservations', { body: { id: 'after-failure', size: '1GiB' } })
    expectError(next, 503, 'Unavailable')
    expect(next.body.detail).toMatch(/read-only/)
    expect(next.body.detail).toMatch(/no space/)
    expect(b.daemon.agent.verdict('after-failure')).toBeUndefined()
    // The refused write is not shown either: a client told 503 must not read it back as admitted.
    expectError(await api(b, '/v1/reservations/during-failure'), 404, 'NotFound')
    expect((await api(b, '/v1/reservations')).body.reservations.map((r: any) => r.id)).toEqual(['before-failure'])
    expectError(await api(b, '/v1/reservations/before-failure', { method: 'DELETE' }), 503, 'Unavailable')
    expect((await api(b, '/v1/reservations/before-failure')).body.status).toBe('admitted')
    expectError(await api(b, '/v1/evict', { body: { node: '12D3KooWNoSuchNode' } }), 503, 'Unavailable')

    const health = await api(b, '/healthz')
    expect(health.status).toBe(503)
    expect(health.body).toMatchObject({ ok: false })
    expect(health.body.readOnly).toMatch(/no space/)

    // Reads keep working from what the agent holds.
    const got = await api(b, '/v1/reservations/before-failure')
    expect(got.status).toBe(200)
    expect(got.body.status).toBe('admitted')
    expect((await api(b, '/v1/nodes')).status).toBe(200)
    expect((await api(b, '/v1/fit', { body: { size: '1GiB' } })).status).toBe(200)
    const state = await api(b, '/v1/state')
    expect(state.status).toBe(200)
    expect(state.body.readOnly).toMatch(/no space/)
    const metrics = await api(b, '/metrics')
    expect(metrics.body).toMatch(/^memgossip_read_only 1$/m)
    expect(metrics.body).toMatch(/memgossip_alert\{kind="StorageFailed"/)
    const alerts = await api(b, '/v1/alerts')
    expect(alerts.body.alerts.map((x: any) => x.kind)).toContain('StorageFailed')
    // The operator is told once, with what to do.
    const errors = log.records.filter(r => r.level === 'error')
    expect(errors.length).toBe(1)
    expect(errors[0]!.message).toMatch(/read-only until restarted/)
  })
})

describe('a disk-write failure on a release', () => {
  it('→ 503, and the reservation still reads as admitted (the refused release is not shown)', async () => {
    const c = await startAgent({ totalBytes: 16 * GiB })
    started.push(c)
    await waitFor('joined', () => c.daemon.agent.state().joined)
    expect((await api(c, '/v1/reservations', { body: { id: 'kept', size: '1GiB' } })).status).toBe(201)
    ;(c.daemon.agent as any).log = SILENT
    ;(c.daemon.agent as any).store.append = async () => { throw new StoreError('ENOSPC', 'ENOSPC: no space left on device, write', { file: 'ledger.log' }) }
    const r = await api(c, '/v1/reservations/kept', { method: 'DELETE' })
    expectError(r, 503, 'Unavailable')
    expect(r.body.detail).toMatch(/no space/)
    const got = await api(c, '/v1/reservations/kept')
    expect(got.status).toBe(200)
    expect(got.body.status).toBe('admitted')
    expect(c.daemon.agent.ledger.size('releases')).toBe(0)
  })
})

describe('a disk-write failure on an eviction', () => {
  it('→ 503, and the node is still a member (the refused eviction is not shown)', async () => {
    const [x, y] = await startCluster(2)
    started.push(x, y)
    await waitFor('two members', () => [x, y].every(t => t.daemon.agent.resolution().members.length === 2))
    ;(x.daemon.agent as any).log = SILENT
    ;(x.daemon.agent as any).store.append = async () => { throw new StoreError('ENOSPC', 'ENOSPC: no space left on device, write', { file: 'ledger.log' }) }
    const membership = x.daemon.agent.ledger.size('membership')
    const r = await api(x, '/v1/evict', { body: { node: y.daemon.agent.self } })
    expectError(r, 503, 'Unavailable')
    expect(x.daemon.agent.ledger.size('membership')).toBe(membership)
    expect(x.daemon.agent.resolution().members).toContain(y.daemon.agent.self)
    const nodes = (await api(x, '/v1/nodes')).body.nodes
    expect(nodes.find((n: any) => n.id === y.daemon.agent.self)).toMatchObject({ member: true, state: 'active' })
  })
})

describe('durable before shared (docs/design.md "Durability")', () => {
  // A sync reply must never carry a local write that is not yet fsynced: after
  // a kill -9 the restarted agent would reuse that write's Yjs clock for a
  // different write, and the peer holding the first one would never converge.
  it('a sync request answered during a burst waits for writes made while it waited', async () => {
    const d = await startAgent({ totalBytes: 16 * GiB, heartbeatIntervalMs: 600_000 })
    started.push(d)
    await waitFor('joined', () => d.daemon.agent.state().joined)
    const agent = d.daemon.agent as any
    const store = agent.store
    const original = store.append.bind(store)
    const held: Array<() => void> = []
    store.append = async (update: Uint8Array, options: { durable: boolean }) => {
      if (options.durable) await new Promise<void>(resolve => { held.push(resolve) })
      return await original(update, options)
    }
    const first = api(d, '/v1/reservations', { body: { id: 'burst-1', size: '1GiB' } })
    await waitFor('first append held', () => held.length === 1, 5_000, 5)
    let answered = false
    const reply = (agent.onRequest('12D3KooWSyncingPeer', encodeMessage({ type: MSG_SYNC_REQUEST, stateVector: Y.encodeStateVector(new Y.Doc()) })) as Promise<Uint8Array>)
      .then(bytes => { answered = true; return bytes })
    const second = api(d, '/v1/reservations', { body: { id: 'burst-2', size: '1GiB' } })
    await waitFor('second append held', () => held.length === 2, 5_000, 5)
    held[0]() // burst-1 becomes durable; burst-2 is still in memory only
    expect((await first).status).toBe(201)
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(answered).toBe(false)
    held[1]()
    expect((await second).status).toBe(201)
    const message = decodeMessage(await reply)
    expect(message.type).toBe(MSG_SYNC_REPLY)
    const peerDoc = new Y.Doc()
    Y.applyUpdate(peerDoc, (message as { update: Uint8Array }).update)
    const ids = [...peerDoc.getMap('reservations').values()].map((r: any) => r.id).sort()
    expect(ids).toEqual(['burst-1', 'burst-2'])
    store.append = original
  })
})
