/**
 * POST/GET /v1/reservations/:id/usage (agent/api.ts, agent/usage.ts): bad
 * input gets a 4xx naming what was wrong, and nothing is watched; usage on
 * verdicts is empty until measured. Real agent, libp2p, HTTP; fake probe.
 * A real cgroup is read in test/enforce/usage.e2e.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { api, GiB, startAgent, stopAll, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'

let a: TestAgent
beforeAll(async () => {
  a = await startAgent({ totalBytes: 16 * GiB })
  await waitFor('joined', () => a.daemon.agent.state().joined)
  expect((await api(a, '/v1/reservations', { method: 'POST', body: { id: 'here', size: '1GiB', placement: `node:${a.daemon.agent.self}` } })).status).toBe(201)
  expect((await api(a, '/v1/reservations', { method: 'POST', body: { id: 'gone', size: '1GiB' } })).status).toBe(201)
  expect((await api(a, '/v1/reservations/gone', { method: 'DELETE' })).status).toBe(200)
})
afterAll(async () => { await stopAll([a]) })

describe('POST /v1/reservations/:id/usage', () => {
  it.each([
    ['no cgroup', 'here', {}, 400, 'InvalidCgroup', 'cgroup', /'cgroup' must be the absolute path/],
    ['cgroup as a number', 'here', { cgroup: 7 }, 400, 'InvalidCgroup', 'cgroup', /'cgroup' must be/],
    ['a relative path', 'here', { cgroup: 'memgossip-here' }, 400, 'BadRequest', 'cgroup', /must be an absolute, normalized path/],
    ['a path with ..', 'here', { cgroup: '/sys/fs/cgroup/memory/../memgossip-here' }, 400, 'BadRequest', 'cgroup', /absolute, normalized/],
    ['outside the cgroup mounts', 'here', { cgroup: '/tmp/memgossip-here' }, 400, 'BadRequest', 'cgroup', /is not below the cgroup root \/sys\/fs\/cgroup/],
    ['another reservation\'s cgroup', 'here', { cgroup: '/sys/fs/cgroup/memory/memgossip-other' }, 400, 'BadRequest', 'cgroup', /is not the cgroup of 'here' \(its name would be memgossip-here\)/],
    ['no such cgroup', 'here', { cgroup: '/sys/fs/cgroup/memory/nowhere/memgossip-here' }, 400, 'BadRequest', 'cgroup', /is not a memory cgroup/],
    ['an unknown reservation', 'nope', { cgroup: '/sys/fs/cgroup/memory/memgossip-nope' }, 404, 'NotFound', undefined, /no reservation 'nope'/],
    ['a released reservation', 'gone', { cgroup: '/sys/fs/cgroup/memory/memgossip-gone' }, 400, 'BadRequest', 'id', /is released, not running on this node/]
  ])('%s → %i %s', async (_name, id, body, status, error, field, detail) => {
    const r = await api(a, `/v1/reservations/${id}/usage`, { method: 'POST', body })
    expect(r.status, JSON.stringify(r.body)).toBe(status)
    expect(r.body).toMatchObject({ error })
    if (field !== undefined) expect(r.body.field).toBe(field)
    expect(r.body.detail).toMatch(detail)
    expect((await api(a, `/v1/reservations/${id}/usage`)).body).toEqual({ id, usage: [] })
  })

  it('a bad id and a wrong method', async () => {
    expect((await api(a, '/v1/reservations/bad%24id/usage', { method: 'POST', body: { cgroup: '/x' } })).body).toMatchObject({ error: 'InvalidId', field: 'id' })
    const r = await api(a, '/v1/reservations/here/usage', { method: 'DELETE' })
    expect(r.status).toBe(405)
  })

  it('verdicts carry an empty usage until a cgroup is measured', async () => {
    expect((await api(a, '/v1/reservations/here')).body).toMatchObject({ status: 'admitted', usage: [] })
    const list = (await api(a, '/v1/reservations')).body.reservations as Array<{ id: string, usage: unknown[] }>
    expect(list.every(v => Array.isArray(v.usage) && v.usage.length === 0)).toBe(true)
  })
})
