/**
 * The pressure ladder in a real agent (docs/design.md "Pressure ladder"): a
 * fake probe drives it to warn, refuse and back without flapping — the
 * capacity events in the ledger, fit/reserve on the node refused with the
 * reason, warnings on every answer — and to evict, where `resolve()` evicts
 * by the Capacity-loss rule. Real agent, libp2p, data dir and HTTP; only the
 * memory probe is fake.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { AgentEvent } from '../../agent/agent.ts'
import { api, GiB, startAgent, startCluster, stopAll, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'

const MiB = 1024 ** 2
const started: TestAgent[] = []
afterEach(async () => { await stopAll(started.splice(0)) })

/** Capacity events this node wrote, in order. */
function ownCapacity (t: TestAgent): Array<{ allocatableBytes: number, state: string, seq: number }> {
  const self = t.daemon.agent.self
  return t.daemon.agent.ledger.entries('capacity').map(([, value]) => value)
    .map(v => v as { node: string, allocatableBytes: number, state: string, seq: number })
    .filter(v => v.node === self)
    .sort((a, b) => a.seq - b.seq)
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function start (): Promise<{ t: TestAgent, levels: string[] }> {
  // Floor 1 GiB: warn below 1.5 GiB, refuse below 1 GiB, evict below 512 MiB, margin 256 MiB.
  const t = await startAgent({ totalBytes: 16 * GiB, floor: '1GiB', pressure: { dwellMs: 2000 } })
  started.push(t)
  await waitFor('joined', () => t.daemon.agent.state().joined)
  const levels: string[] = []
  t.daemon.agent.on('event', (e: AgentEvent) => { if (e.type === 'pressure') levels.push(e.level) })
  return { t, levels }
}

describe('pressure ladder in the agent', () => {
  it('warn → refuse → ok without flapping: a cordoning capacity event, fit/reserve refused with the reason, warnings on every answer', async () => {
    const { t, levels } = await start()
    const self = t.daemon.agent.self
    expect((await api(t, '/v1/reservations', { method: 'POST', body: { id: 'before', size: '2GiB', placement: `node:${self}` } })).status).toBe(201)
    const baseline = ownCapacity(t).length

    t.probe.set({ availableBytes: 1400 * MiB })
    await waitFor('warn', () => t.daemon.agent.pressureLevel() === 'warn')
    const warned = await api(t, '/v1/fit', { method: 'POST', body: { size: '1GiB', placement: `node:${self}` } })
    expect(warned.body.fits).toBe(true)
    expect(warned.body.warnings.join('\n')).toMatch(/memory pressure 'warn': 1\.37 GiB available, under 1\.50 GiB \(floor 1\.00 GiB\)/)
    expect(ownCapacity(t)).toHaveLength(baseline) // warn writes no capacity event

    t.probe.set({ availableBytes: 900 * MiB })
    await waitFor('refuse', () => t.daemon.agent.pressureLevel() === 'refuse')
    await waitFor('cordoned in the ledger', () => ownCapacity(t).at(-1)?.state === 'cordoned')
    expect(ownCapacity(t)).toHaveLength(baseline + 1)
    expect(t.daemon.agent.resolution().nodes.get(self)).toMatchObject({ state: 'cordoned', committedBytes: 2 * GiB })
    const fit = await api(t, '/v1/fit', { method: 'POST', body: { size: '1GiB', placement: `node:${self}` } })
    expect(fit.body).toMatchObject({ fits: false, code: 'NodeNotActive' })
    expect(fit.body.reason).toMatch(/is cordoned and takes no new reservations \(memory pressure 'refuse': 900\.00 MiB available, under 1\.00 GiB \(floor 1\.00 GiB\); it refuses new placements\)/)
    const before = t.daemon.agent.ledger.size('reservations')
    const reserve = await api(t, '/v1/reservations', { method: 'POST', body: { id: 'refused', size: '1GiB', placement: `node:${self}` } })
    // Did not fit here: 200, the one answer shape, rejected and not written.
    expect(reserve.status).toBe(200)
    expect(reserve.body).toMatchObject({ written: false, status: 'rejected', code: 'NodeNotActive' })
    expect(reserve.body.reason).toMatch(/cordoned.*memory pressure 'refuse'/)
    expect(t.daemon.agent.ledger.size('reservations')).toBe(before) // nothing written
    expect((await api(t, '/v1/reservations/before')).body).toMatchObject({ status: 'admitted' }) // what runs stays
    expect(t.daemon.agent.alerts().filter(a => a.kind === 'PressureLevel').map(a => a.message).join()).toMatch(/memory pressure 'refuse'/)

    // Wobble around the floor, within the margin, for longer than the dwell: no new level, no new capacity event.
    // Each value held 1.5 s against 1 s samples, so every value is sampled (no aliasing).
    for (let i = 0; i < 5; i++) {
      t.probe.set({ availableBytes: (i % 2 === 0 ? 1100 : 950) * MiB })
      await sleep(1500)
    }
    expect(t.daemon.agent.pressureLevel()).toBe('refuse')
    expect(ownCapacity(t)).toHaveLength(baseline + 1)

    t.probe.set({ availableBytes: 4 * GiB })
    await waitFor('ok', () => t.daemon.agent.pressureLevel() === 'ok')
    await waitFor('active in the ledger', () => ownCapacity(t).at(-1)?.state === 'active')
    expect(ownCapacity(t)).toHaveLength(baseline + 2)
    expect(levels).toEqual(['warn', 'refuse', 'ok'])
    const again = await api(t, '/v1/reservations', { method: 'POST', body: { id: 'after', size: '1GiB', placement: `node:${self}` } })
    expect(again.status).toBe(201)
    expect(again.body.warnings.join('\n')).not.toMatch(/memory pressure/)
    await waitFor('alert cleared', () => t.daemon.agent.alerts().every(a => a.kind !== 'PressureLevel'))

    // At rest: no record, no capacity event.
    const heartbeats = t.daemon.agent.metrics.heartbeats
    const capacity = ownCapacity(t).length
    await sleep(2500)
    expect(t.daemon.agent.metrics.heartbeats).toBe(heartbeats)
    expect(ownCapacity(t)).toHaveLength(capacity)
    const metrics = await fetch(`${t.daemon.api.url}/metrics`).then(async r => await r.text())
    expect(metrics).toMatch(/^memgossip_pressure_level 0$/m)
  }, 60_000)

  it('evict: the node shrinks its allocatable, and resolve() evicts lowest priority, latest first', async () => {
    const { t, levels } = await start()
    const self = t.daemon.agent.self
    for (const [id, priority] of [['keep', 5], ['old', 0], ['new', 0]] as const) {
      expect((await api(t, '/v1/reservations', { method: 'POST', body: { id, size: '1GiB', placement: `node:${self}`, priority } })).status).toBe(201)
    }
    // 300 MiB available: 724 MiB short of the floor, so reservations worth at least that go.
    t.probe.set({ availableBytes: 300 * MiB })
    await waitFor('evict', () => t.daemon.agent.pressureLevel() === 'evict')
    await waitFor('shrunk in the ledger', () => ownCapacity(t).at(-1)?.allocatableBytes === 3 * GiB - 724 * MiB)
    expect(ownCapacity(t).at(-1)).toMatchObject({ state: 'cordoned' })
    expect(levels).toEqual(['evict'])
    const res = t.daemon.agent.resolution()
    expect(res.verdicts.get('new')).toMatchObject({ status: 'evicted', code: 'CapacityLost' })
    expect(res.verdicts.get('old')!.status).toBe('admitted')
    expect(res.verdicts.get('keep')!.status).toBe('admitted')
    expect(t.daemon.agent.alerts().find(a => a.kind === 'PressureLevel')?.message).toMatch(/memory pressure 'evict': 300\.00 MiB available, under 512\.00 MiB \(floor 1\.00 GiB\); it shrinks its allocatable memory so that reservations are evicted to 2\.29 GiB/)
  }, 60_000)

  it('every peer sees it: another peer warns about a node at warn and refuses placements on it at refuse', async () => {
    const [a, b] = await startCluster(2, { totalBytes: 16 * GiB, floor: '1GiB', pressure: { dwellMs: 2000 } })
    started.push(a, b)
    const B = b.daemon.agent.self
    await waitFor('two members on both', () => [a, b].every(t => t.daemon.agent.state().members.length === 2))
    b.probe.set({ availableBytes: 1400 * MiB })
    await waitFor("B's record says warn on A", () => a.daemon.agent.resolution().nodes.get(B)?.heartbeat?.pressure === 'warn')
    const warned = await api(a, '/v1/fit', { method: 'POST', body: { size: '1GiB', placement: `node:${B}` } })
    expect(warned.body.fits).toBe(true)
    expect(warned.body.warnings.join('\n')).toMatch(/node 12D3KooW…\w{4} reports memory pressure 'warn'/)
    expect(warned.body.warnings.join('\n')).not.toMatch(/this node/) // A itself is fine
    b.probe.set({ availableBytes: 900 * MiB })
    await waitFor('B cordoned on A', () => a.daemon.agent.resolution().nodes.get(B)?.state === 'cordoned')
    const refused = await api(a, '/v1/reservations', { method: 'POST', body: { id: 'to-b', size: '1GiB', placement: `node:${B}` } })
    expect(refused.status).toBe(200)
    expect(refused.body).toMatchObject({ written: false, status: 'rejected' })
    expect(refused.body.reason).toMatch(/is cordoned and takes no new reservations/)
    const elsewhere = await api(a, '/v1/reservations', { method: 'POST', body: { id: 'anywhere', size: '1GiB', placement: 'any' } })
    expect(elsewhere.status).toBe(201)
    expect(elsewhere.body.verdict.nodes).toEqual([a.daemon.agent.self])
    expect((await api(a, '/v1/nodes')).body.nodes.find((n: { id: string }) => n.id === B)).toMatchObject({ state: 'cordoned', pressure: 'refuse' })
  }, 60_000)
})
