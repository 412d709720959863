/**
 * Verdict events (the `verdict` events of /v1/events and `memgossip watch`):
 * one event per change of a verdict's status, finality or reason, none
 * repeated, whatever the number of resolutions and refreshes in between; and
 * what the agent remembers to tell a change apart does not outlive the
 * verdicts (docs/decisions.md "Verdict events without a walk of every
 * verdict"). Real agents over real libp2p TCP.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Agent, AgentEvent } from '../../agent/agent.ts'
import { GiB, sleep, startCluster, stopAll, waitFor, type TestAgent } from '../../simulations/support/cluster.ts'

type VerdictEvent = Extract<AgentEvent, { type: 'verdict' }>

let agents: TestAgent[] = []
afterEach(async () => {
  await stopAll(agents)
  agents = []
})

const agentOf = (a: TestAgent): Agent => a.daemon.agent

function recordVerdicts (agent: Agent): VerdictEvent[] {
  const events: VerdictEvent[] = []
  agent.on('event', (e: AgentEvent) => { if (e.type === 'verdict') events.push(e) })
  return events
}

const of = (events: VerdictEvent[], id: string): string[] => events.filter(e => e.id === id).map(e => `${e.status}/${e.final ? 'final' : 'tentative'}/${e.code}`)

describe('verdict events', () => {
  it('one event per change: tentative, then final, then released; nothing repeated across refreshes and other writes', async () => {
    agents = await startCluster(2, { totalBytes: 16 * GiB })
    await waitFor('two members', () => agents.every(a => agentOf(a).resolution().members.length === 2), 30_000)
    const [a, b] = agents.map(agentOf)
    const onB = recordVerdicts(b)
    await a.reserve({ id: 'ev-1', bytes: GiB, placement: { kind: 'any' } })
    await waitFor('ev-1 final on b', () => b.verdict('ev-1')?.final === true, 15_000)
    // Refreshes with nothing new, and other writes (each a new resolution), change nothing of ev-1.
    for (let i = 0; i < 5; i++) b.refresh()
    for (let i = 0; i < 3; i++) await a.reserve({ id: `other-${i}`, bytes: GiB, placement: { kind: 'any' } })
    await waitFor('the others final on b', () => [0, 1, 2].every(i => b.verdict(`other-${i}`)?.final === true), 15_000)
    await sleep(300)
    const admitted = of(onB, 'ev-1')
    expect(admitted.at(-1)).toBe('admitted/final/Fits')
    // At most a tentative event before it (none when it was final at once), and no event twice in a row.
    expect(admitted.length, admitted.join(' → ')).toBeLessThanOrEqual(2)
    expect(new Set(admitted).size, admitted.join(' → ')).toBe(admitted.length)
    for (let i = 0; i < 3; i++) expect(of(onB, `other-${i}`).filter(s => s === 'admitted/final/Fits')).toHaveLength(1)

    await a.release('ev-1')
    await waitFor('ev-1 released and final on b', () => b.verdict('ev-1')?.status === 'released' && b.verdict('ev-1')?.final === true, 15_000)
    for (let i = 0; i < 5; i++) b.refresh()
    await sleep(300)
    const all = of(onB, 'ev-1')
    expect(all.slice(admitted.length).at(-1)).toMatch(/^released\/final\//)
    expect(all.filter(s => s.startsWith('released/final/'))).toHaveLength(1)
  })

  it('what is remembered of each verdict goes with the verdicts folded into a checkpoint', async () => {
    agents = await startCluster(3, { compactAfterEnded: 30, totalBytes: 64 * GiB })
    await waitFor('three members', () => agents.every(a => agentOf(a).resolution().members.length === 3), 30_000)
    const a = agentOf(agents[0])
    for (let i = 0; i < 40; i++) await a.reserve({ id: `churn-${i}`, bytes: 64 * 1024 ** 2, placement: { kind: 'any' } })
    for (let i = 0; i < 40; i++) await a.release(`churn-${i}`)
    await a.reserve({ id: 'kept', bytes: 64 * 1024 ** 2, placement: { kind: 'any' } })
    const remembered = (x: TestAgent): number => (agentOf(x) as unknown as { verdictSignatures: Map<string, number> }).verdictSignatures.size
    await waitFor('every agent in epoch 1', () => agents.every(x => agentOf(x).metrics.epoch >= 1), 40_000)
    const verdicts = (x: TestAgent): number => agentOf(x).resolution().verdicts.size + agentOf(x).resolution().conflicts.length
    // Signatures are brought up to date at the next refresh (within a second).
    await waitFor('as many signatures as verdicts after the move', () => agents.every(x => remembered(x) === verdicts(x)), 10_000)
    for (const x of agents) expect(verdicts(x), 'verdicts after the move').toBeLessThan(10)
  })
})
