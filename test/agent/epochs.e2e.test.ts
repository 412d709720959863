/**
 * Compaction by epochs with real agents (docs/design.md "Compaction:
 * epochs"): three in-process agents over real libp2p TCP with data dirs.
 * Churn past the threshold moves every agent to a new epoch whose document
 * holds what is live, not what ended; verdicts of what is live and the
 * verdict digest do not change; a restarted agent comes back in its epoch;
 * an agent that was down during a move fetches the new epoch and keeps its
 * own writes; a proposal whose checkpoint digest differs is alerted and
 * removes nothing.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Agent } from '../../agent/agent.ts'
import { GiB, startAgent, startCluster, stopAll, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'

let agents: TestAgent[] = []
afterEach(async () => {
  await stopAll(agents)
  agents = []
})

const agentOf = (a: TestAgent): Agent => a.daemon.agent
const epochOf = (a: TestAgent): number => agentOf(a).metrics.epoch
const liveIds = (a: TestAgent): string[] => [...agentOf(a).resolution().verdicts.values()].filter(v => v.status === 'admitted').map(v => v.id).sort()

/** Reserve `n` small entries on `a` (ids `prefix-i`), wait for each to be final there. */
async function reserveMany (a: TestAgent, prefix: string, n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const id = `${prefix}-${i}`
    // A restarted agent holds the write until its clock passes the lease of its last run (about a second).
    const { written } = await agentOf(a).reserve({ id, bytes: 64 * 1024 ** 2, placement: { kind: 'any' } })
    expect(written, id).toBe(true)
    ids.push(id)
  }
  return ids
}

async function settled (cluster: TestAgent[], what: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(what, () => new Set(cluster.map(a => agentOf(a).resolution().digest)).size === 1 && cluster.every(a => agentOf(a).resolution().pending === 0), timeoutMs)
}

describe('compaction by epochs', () => {
  it('churn moves every agent to a new epoch holding what is live; verdicts, digest and rent carry across; a restart resumes in it', async () => {
    agents = await startCluster(3, { compactAfterEnded: 30, totalBytes: 64 * GiB })
    await waitFor('three members', () => agents.every(a => agentOf(a).resolution().members.length === 3), 30_000)
    const kept = await reserveMany(agents[1], 'kept', 5)
    const churn = await reserveMany(agents[0], 'churn', 40)
    for (const id of churn) await agentOf(agents[0]).release(id)
    await settled(agents, 'the churn settled')
    const before = agentOf(agents[2]).resolution()
    const rentBefore = agentOf(agents[2]).rent().totalByteSeconds
    await waitFor('every agent in epoch 1', () => agents.every(a => epochOf(a) >= 1), 40_000)
    await settled(agents, 'settled in epoch 1')
    for (const a of agents) {
      expect(liveIds(a)).toEqual(kept)
      // What ended before the cut left the document: the 40 released entries are gone.
      expect(agentOf(a).ledger.size('reservations'), 'entries in the new epoch').toBeLessThanOrEqual(kept.length + 2)
      expect(agentOf(a).ledger.size('releases')).toBeLessThanOrEqual(2)
      expect(agentOf(a).metrics.epochMismatches).toBe(0)
    }
    const after = agentOf(agents[2]).resolution()
    expect(after.counts.released).toBe(before.counts.released)
    for (const id of kept) expect(after.verdicts.get(id)?.final, id).toBe(true)
    // Rent accrued before the cut is in the checkpoint's totals.
    expect(agentOf(agents[2]).rent().totalByteSeconds).toBeGreaterThanOrEqual(rentBefore)

    // Writes go on in the new epoch, and reach every agent.
    const later = await reserveMany(agents[2], 'later', 3)
    await settled(agents, 'writes in epoch 1')
    for (const a of agents) for (const id of later) expect(agentOf(a).verdict(id)?.status, id).toBe('admitted')

    // A restart from the data dir comes back in epoch 1 with the same verdicts.
    const digest = agentOf(agents[0]).resolution().digest
    const restarted = agents[0]
    await restarted.daemon.stop()
    agents[0] = await startAgent({ ...restarted.options, bootstrap: agents[1].daemon.info.multiaddrs })
    expect(epochOf(agents[0])).toBe(1)
    await settled(agents, 'after the restart')
    expect(agentOf(agents[0]).resolution().digest).toBe(digest)
    // It writes on past the stream position its checkpointed writes reached
    // (the document no longer shows them): its new writes become final.
    const resumed = await reserveMany(agents[0], 'resumed', 2)
    await settled(agents, 'writes after the restart')
    const metrics = await fetch(`${agents[0].daemon.api.url}/metrics`)
    expect(await metrics.text()).toMatch(/^memgossip_epoch 1$/m)

    // A joiner after the move starts in epoch 0, learns of epoch 1 from its
    // first sync, fetches it whole and is admitted in it.
    const lines: string[] = []
    agents.push(await startAgent({ ...agents[1].options, dataDir: undefined, probe: undefined, bootstrap: agents[1].daemon.info.multiaddrs, log: (line: string) => { lines.push(line) } }))
    await waitFor('the joiner admitted in epoch 1', () => agents.every(a => agentOf(a).resolution().members.length === 4 && epochOf(a) === 1), 40_000)
    expect(lines.join('\n')).toMatch(/moved to epoch 1 \(fetched/)
    const joined = await reserveMany(agents[3], 'joiner', 2)
    await settled(agents, 'the joiner\'s writes')
    for (const a of agents) {
      expect(liveIds(a)).toEqual([...kept, ...later, ...resumed, ...joined].sort())
      expect(agentOf(a).resolution().digest).toBe(agentOf(agents[0]).resolution().digest)
    }
  }, 120_000)

  it('an agent restarted while the cluster churns comes back, moves with it, and keeps what it wrote', async () => {
    agents = await startCluster(3, { compactAfterEnded: 30, totalBytes: 64 * GiB })
    await waitFor('three members', () => agents.every(a => agentOf(a).resolution().members.length === 3), 30_000)
    const mine = await reserveMany(agents[2], 'mine', 3)
    await settled(agents, 'before the stop')
    const down = agents[2]
    await down.daemon.stop()
    // Its beacons hold the others' stable cut back while it is down (it is
    // still a member), so the move happens around its return: it builds the
    // epoch itself or fetches it from a peer that moved first.
    const churn = await reserveMany(agents[0], 'churn', 40)
    for (const id of churn) await agentOf(agents[0]).release(id)
    agents[2] = await startAgent({ ...down.options, bootstrap: agents[0].daemon.info.multiaddrs })
    await waitFor('every agent in epoch 1', () => agents.every(a => epochOf(a) >= 1), 60_000)
    await settled(agents, 'settled after the move')
    for (const a of agents) for (const id of mine) expect(agentOf(a).verdict(id)?.status, id).toBe('admitted')
  }, 120_000)

  it('an agent stopped as soon as it moved (before it writes again) resumes its stream past what the checkpoint holds of it', async () => {
    agents = await startCluster(3, { compactAfterEnded: 30, totalBytes: 64 * GiB })
    await waitFor('three members', () => agents.every(a => agentOf(a).resolution().members.length === 3), 30_000)
    const churn = await reserveMany(agents[0], 'churn', 40)
    for (const id of churn) await agentOf(agents[0]).release(id)
    const writer = agentOf(agents[0]) as unknown as { writer: { lastSeq: number } }
    await waitFor('agent 0 in epoch 1', () => epochOf(agents[0]) >= 1, 40_000, 5)
    const seqBefore = writer.writer.lastSeq
    const stopped = agents[0]
    await stopped.daemon.stop()
    agents[0] = await startAgent({ ...stopped.options, bootstrap: agents[1].daemon.info.multiaddrs })
    expect((agentOf(agents[0]) as unknown as { writer: { lastSeq: number } }).writer.lastSeq, 'stream position after the restart').toBeGreaterThanOrEqual(seqBefore)
    await waitFor('every agent in epoch 1', () => agents.every(a => epochOf(a) >= 1), 40_000)
    const ids = await reserveMany(agents[0], 'after', 2)
    await settled(agents, 'its writes after the restart')
    for (const a of agents) for (const id of ids) expect(agentOf(a).verdict(id)?.final, id).toBe(true)
  }, 120_000)

  it('a member partitioned away across several moves is evicted, and when the partition heals it fetches the current epoch and is admitted again', async () => {
    agents = await startCluster(3, { compactAfterEnded: 20, totalBytes: 64 * GiB, evictAfterMs: 3000 })
    await waitFor('three members', () => agents.every(a => agentOf(a).resolution().members.length === 3), 30_000)
    const [a, b, away] = agents
    await a.daemon.network.block([away.daemon.agent.self])
    await b.daemon.network.block([away.daemon.agent.self])
    await away.daemon.network.block([a.daemon.agent.self, b.daemon.agent.self])
    await waitFor('the partitioned member evicted', () => agentOf(a).resolution().members.length === 2 && agentOf(b).resolution().members.length === 2, 60_000)
    for (let round = 0; round < 2; round++) {
      const churn = await reserveMany(a, `churn${round}`, 25)
      for (const id of churn) await agentOf(a).release(id)
      await waitFor(`the majority in epoch ${round + 1}`, () => epochOf(a) >= round + 1 && epochOf(b) >= round + 1, 40_000)
    }
    const kept = await reserveMany(b, 'kept', 3)
    expect(epochOf(away), 'the partitioned member cannot move on its own').toBe(0)
    await away.daemon.network.unblock()
    await a.daemon.network.unblock()
    await b.daemon.network.unblock()
    await waitFor('the member back in the current epoch and admitted again', () => epochOf(away) === epochOf(a) && agents.every(x => agentOf(x).resolution().members.length === 3), 60_000)
    await settled(agents, 'after the heal')
    for (const id of kept) expect(agentOf(away).verdict(id)?.final, id).toBe(true)
  }, 150_000)

  it('a settled proposal whose checkpoint digest differs is alerted on every agent and removes nothing', async () => {
    agents = await startCluster(3, { compactAfterEnded: 1_000_000, totalBytes: 64 * GiB })
    await waitFor('three members', () => agents.every(a => agentOf(a).resolution().members.length === 3), 30_000)
    const churn = await reserveMany(agents[0], 'churn', 10)
    for (const id of churn) await agentOf(agents[0]).release(id)
    await settled(agents, 'the churn settled')
    const entries = agentOf(agents[1]).ledger.size('reservations')
    // A member with a bug: it proposes a checkpoint nobody else computes.
    const proposer = agentOf(agents[0]) as unknown as { writer: { proposeEpoch: (e: number, cut: string, digest: string, wallMs: number) => void }, resolution: () => { watermark?: string } }
    const cut = proposer.resolution().watermark!
    proposer.writer.proposeEpoch(1, cut, 'not-the-digest', Date.now())
    await waitFor('the mismatch seen everywhere', () => agents.every(a => agentOf(a).metrics.epochMismatches === 1), 30_000)
    for (const a of agents) {
      expect(agentOf(a).alerts().map(alert => alert.kind)).toContain('CheckpointMismatch')
      expect(epochOf(a)).toBe(0)
      expect(agentOf(a).ledger.size('reservations')).toBe(entries)
    }
  }, 90_000)
})
