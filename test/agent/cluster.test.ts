/**
 * Integration: real agents, real libp2p over TCP on 127.0.0.1, real data dirs
 * and HTTP; fake memory probes only.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { api, converged, GiB, startAgent, startCluster, stopAll, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'

let agents: TestAgent[] = []
afterEach(async () => { await stopAll(agents); agents = [] })

describe('a five-agent cluster', () => {
  it('converges to one capacity map and one verdict digest', async () => {
    agents = await startCluster(5)
    await waitFor('all five members on every agent', () => agents.every(a => a.daemon.agent.resolution().members.length === 5))
    await waitFor('identical digests', () => converged(agents))
    // A node record written while the mesh forms reaches a member that is not
    // connected to its writer yet when they connect (sync on connect), not
    // with the verdicts: wait for the figures, then check them.
    // Through the API, as a client reads them (the record in the ledger can be there a moment before the answer shows it).
    let body: { nodes: Array<{ totalBytes: number }> } = { nodes: [] }
    await waitFor('every node\'s figures on agent 3', async () => {
      body = (await api(agents[3], '/v1/nodes')).body
      return body.nodes.length === 5 && body.nodes.every(n => n.totalBytes > 0)
    }, 30_000)
    expect(body.nodes).toHaveLength(5)
    for (const n of body.nodes) expect(n).toMatchObject({ member: true, state: 'active', totalBytes: 16 * GiB })
    expect(agents[3].daemon.agent.resolution().issues.filter(i => i.map === 'nodes')).toEqual([])
    // A reservation made on one agent appears, with the same verdict, on all.
    const made = await api(agents[2], '/v1/reservations', { body: { id: 'web-1', size: '3GiB' } })
    expect(made.status).toBe(201)
    expect(made.body.verdict).toMatchObject({ id: 'web-1', status: 'admitted', bytes: 3 * GiB })
    await waitFor('web-1 everywhere', () => agents.every(a => a.daemon.agent.verdict('web-1')?.status === 'admitted'))
    await waitFor('web-1 final everywhere', () => agents.every(a => a.daemon.agent.verdict('web-1')?.final === true))
    expect(converged(agents)).toBe(true)
    // At rest only beacons arrive (slow ones every second here, beside the
    // ledger): they advance finality but never re-run the replay.
    const replays = agents.map(a => a.daemon.agent.metrics.resolutions)
    const heard = agents.map(a => a.daemon.agent.metrics.beaconsAccepted)
    await new Promise(resolve => setTimeout(resolve, 2500))
    for (const [i, a] of agents.entries()) {
      a.daemon.agent.nodes()
      expect(a.daemon.agent.metrics.beaconsAccepted).toBeGreaterThan(heard[i])
      expect(a.daemon.agent.metrics.resolutions).toBe(replays[i])
    }
  })

  it('resolves the y/z race made on two different agents identically on all five', async () => {
    agents = await startCluster(5)
    await waitFor('members', () => agents.every(a => a.daemon.agent.resolution().members.length === 5) && converged(agents))
    const target = agents[0].daemon.agent.self
    // Both fit alone on a 16 GiB node with 2 GiB floor... use most of it: y + z do not fit together.
    const allocatable = agents[0].daemon.agent.resolution().nodes.get(target)!.allocatableBytes
    const y = Math.floor(allocatable * 0.6)
    const z = Math.floor(allocatable * 0.5)
    const [ry, rz] = await Promise.all([
      api(agents[1], '/v1/reservations', { body: { id: 'y', bytes: y, placement: `node:${target}` } }),
      api(agents[4], '/v1/reservations', { body: { id: 'z', bytes: z, placement: `node:${target}` } })
    ])
    // Each may be admitted locally (201, written) or refused if the other arrived first (200, written: false): never both in the end.
    expect([ry, rz].every(r => (r.status === 201 && r.body.written === true) || (r.status === 200 && r.body.written === false && r.body.status === 'rejected'))).toBe(true)
    await waitFor('one digest', () => converged(agents) && agents.every(a => a.daemon.agent.verdict('y') !== undefined || !ry.body.written))
    const statuses = agents.map(a => [a.daemon.agent.verdict('y')?.status, a.daemon.agent.verdict('z')?.status].join('/'))
    expect(new Set(statuses).size).toBe(1)
    const admitted = [agents[0].daemon.agent.verdict('y'), agents[0].daemon.agent.verdict('z')].filter(v => v?.status === 'admitted')
    expect(admitted).toHaveLength(1)
    const loser = [agents[0].daemon.agent.verdict('y'), agents[0].daemon.agent.verdict('z')].find(v => v !== undefined && v.status === 'rejected')
    if (loser !== undefined) expect(loser.code).toBe('LostConcurrentConflict')
  })

  it('heals a partition with conflicting reservations on both sides, with no operator action', async () => {
    agents = await startCluster(4)
    await waitFor('members', () => agents.every(a => a.daemon.agent.resolution().members.length === 4) && converged(agents))
    const left = agents.slice(0, 2)
    const right = agents.slice(2)
    const ids = (group: TestAgent[]): string[] => group.map(a => a.daemon.agent.self)
    await Promise.all([
      ...left.map(async a => { await a.daemon.network.block(ids(right)) }),
      ...right.map(async a => { await a.daemon.network.block(ids(left)) })
    ])
    await waitFor('cut', () => left.every(a => a.daemon.network.peers().every(p => !ids(right).includes(p))))
    const target = agents[0].daemon.agent.self
    const allocatable = agents[0].daemon.agent.resolution().nodes.get(target)!.allocatableBytes
    const a = await api(left[1], '/v1/reservations', { body: { id: 'left-big', bytes: Math.floor(allocatable * 0.7), placement: `node:${target}` } })
    const b = await api(right[0], '/v1/reservations', { body: { id: 'right-big', bytes: Math.floor(allocatable * 0.7), placement: `node:${target}` } })
    expect([a.status, b.status]).toEqual([201, 201]) // each side admits its own
    expect(converged(agents)).toBe(false)
    await Promise.all(agents.map(async x => { await x.daemon.network.unblock() }))
    const healMs = await waitFor('one digest after heal', () => converged(agents) && agents.every(x => x.daemon.agent.verdict('left-big') !== undefined && x.daemon.agent.verdict('right-big') !== undefined), 30_000)
    const v = agents.map(x => [x.daemon.agent.verdict('left-big')!.status, x.daemon.agent.verdict('right-big')!.status].join('/'))
    expect(new Set(v).size).toBe(1)
    expect(v[0].split('/').sort()).toEqual(['admitted', 'rejected'])
    console.log(`partition healed to one digest in ${healMs} ms after links returned`)
  })
})

describe('one id reserved on both sides of a partition', () => {
  it('the loser sees IdTaken, and releasing through it cannot end the winner', async () => {
    agents = await startCluster(2, { pricePerGiBHour: 2 })
    await waitFor('members', () => agents.every(a => a.daemon.agent.resolution().members.length === 2))
    const [a, b] = agents
    await a.daemon.network.block([b.daemon.agent.self])
    await b.daemon.network.block([a.daemon.agent.self])
    await waitFor('cut', () => a.daemon.network.peers().length === 0 && b.daemon.network.peers().length === 0)
    expect((await api(a, '/v1/reservations', { body: { id: 'same', size: '1GiB' } })).status).toBe(201)
    await new Promise(resolve => setTimeout(resolve, 5)) // b's entry sorts later
    expect((await api(b, '/v1/reservations', { body: { id: 'same', size: '2GiB' } })).status).toBe(201)
    await a.daemon.network.unblock()
    await b.daemon.network.unblock()
    await waitFor('merged', () => converged(agents) && a.daemon.agent.resolution().conflicts.length === 1, 20_000)
    const mine = await api(b, '/v1/reservations/same')
    expect(mine.body).toMatchObject({ status: 'rejected', code: 'IdTaken', creator: b.daemon.agent.self })
    const release = await api(b, '/v1/reservations/same', { method: 'DELETE' })
    expect(release.status).toBe(409)
    expect(release.body.detail).toMatch(/lost the id/)
    expect(a.daemon.agent.verdict('same')).toMatchObject({ status: 'admitted', creator: a.daemon.agent.self })
    // Rent is priced from the agent's config when the client names no price.
    const rent = await api(a, '/v1/rent')
    expect(rent.body.pricePerGiBHour).toBe(2)
  })
})

describe('the mesh beyond bootstrap peers', () => {
  it('a cluster bootstrapped as a star survives the loss of its bootstrap node', async () => {
    agents = await startCluster(5) // every agent bootstraps from agents[0] only
    await waitFor('members', () => agents.every(a => a.daemon.agent.resolution().members.length === 5), 30_000)
    // Agents dial members they learn of from the ledger until they hold a few connections.
    await waitFor('a mesh, not a star', () => agents.slice(1).every(a => a.daemon.network.peers().length >= 3), 30_000)
    const [hub, ...rest] = agents
    await hub.daemon.stop()
    agents = rest
    const made = await api(rest[0], '/v1/reservations', { body: { id: 'after-hub-died', size: '1GiB' } })
    expect(made.status).toBe(201)
    await waitFor('reservation on every survivor', () => rest.every(a => a.daemon.agent.verdict('after-hub-died')?.status === 'admitted'), 20_000)
    await stopAll([hub])
  })

  it('a member that joins after a record was rewritten still learns every address and connects to every member', async () => {
    agents = await startCluster(2, { recordRefreshMs: 250 })
    const [a, b] = agents
    await waitFor('members', () => b.daemon.agent.resolution().members.length === 2, 20_000)
    // Records of `a` rewritten (every 250 ms here) after the first: each one carries the addresses.
    const seen = new Map<number, boolean>()
    await waitFor('4 more node records of a seen by b', () => {
      const record = b.daemon.agent.ledger.get('nodes', a.daemon.info.peerId) as { seq: number, addrs?: string[] } | undefined
      if (record !== undefined) seen.set(record.seq, record.addrs !== undefined && record.addrs.length > 0)
      return seen.size >= 5
    }, 30_000, 20)
    expect([...seen.values()].every(Boolean)).toBe(true)
    // A joiner that knows only b reads a's newest record, and dials a by it.
    const c = await startAgent({ bootstrap: b.daemon.info.multiaddrs })
    agents.push(c)
    await waitFor('c connected to a', () => c.daemon.network.peers().includes(a.daemon.info.peerId), 30_000)
  })
})

describe('updates straight to members', () => {
  it('a member connected to every other sends its ledger updates straight to each, and every peer holds them', async () => {
    agents = await startCluster(3)
    await waitFor('members', () => agents.every(a => a.daemon.agent.resolution().members.length === 3), 20_000)
    await waitFor('every agent connected to the other two', () => agents.every(a => a.daemon.network.peers().length === 2), 30_000)
    const [writer] = agents
    const before = { direct: writer.daemon.agent.metrics.updatesDirect }
    expect((await api(writer, '/v1/reservations', { body: { id: 'direct-1', size: '1GiB' } })).status).toBe(201)
    await waitFor('direct-1 final on every agent', () => agents.every(a => a.daemon.agent.verdict('direct-1')?.final === true), 20_000)
    expect(writer.daemon.agent.metrics.updatesDirect).toBeGreaterThan(before.direct)
  })
})

describe('one agent', () => {
  it('restarted from its data dir keeps its peer id and every acknowledged reservation', async () => {
    const first = await startAgent({ totalBytes: 64 * GiB })
    agents = [first]
    const acked: string[] = []
    for (let i = 0; i < 20; i++) {
      const r = await api(first, '/v1/reservations', { body: { id: `job-${i}`, size: '1GiB' } })
      if (r.status === 201) acked.push(`job-${i}`)
    }
    expect(acked).toHaveLength(20)
    const id = first.daemon.agent.self
    const digest = first.daemon.agent.resolution().digest
    await first.daemon.stop()
    const again = await startAgent({ dataDir: first.dataDir, totalBytes: 64 * GiB })
    agents = [again]
    expect(again.daemon.agent.self).toBe(id)
    for (const rid of acked) expect(again.daemon.agent.verdict(rid)?.status).toBe('admitted')
    expect(again.daemon.agent.resolution().digest).toBe(digest)
    // It keeps writing after the restart: its stream continues, nothing is refused as a duplicate.
    expect((await api(again, '/v1/reservations', { body: { id: 'after-restart', size: '1GiB' } })).status).toBe(201)
  })

  it('drops and counts a corrupt or oversized update and keeps serving', async () => {
    agents = await startCluster(2)
    await waitFor('joined', () => converged(agents) && agents[1].daemon.agent.resolution().members.length === 2)
    const victim = agents[0].daemon.agent
    const before = { ...victim.metrics }
    // Straight through the network's gossip path of the other agent.
    await agents[1].daemon.network.publish(new Uint8Array([0x01, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]))
    await agents[1].daemon.network.publish(new Uint8Array([0x01, 0x03, 0x00, 0x01, 0x02]))
    await waitFor('counted', () => victim.metrics.droppedInvalid >= before.droppedInvalid + 2, 10_000)
    const health = await api(agents[0], '/healthz')
    expect(health.status).toBe(200)
    const metrics = await api(agents[0], '/metrics')
    expect(metrics.body).toMatch(/memgossip_dropped_total\{reason="invalid"\} [1-9]/)
    expect((await api(agents[0], '/v1/reservations', { body: { id: 'still-works', size: '1GiB' } })).status).toBe(201)
  })
})
