/**
 * One node id is one Yjs client id, forever (docs/design.md "State"). Yjs
 * silently takes a new client id when it receives structs carrying its own —
 * what a data dir copied to a second host looks like from the first. The
 * agent must notice, refuse to write (503 on the API), and raise an alert,
 * never write on under a second id.
 */
import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { Agent, systemClock } from '../../agent/agent.ts'
import { MemoryNetworkHub } from '../../simulations/virtual/network.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import { memoryLogger } from '../../agent/log.ts'
import { encodeMessage, MSG_GOSSIP } from '../../agent/wire.ts'
import { LedgerWriter } from '../../crdt/index.ts'

const GiB = 1024 ** 3
const started: Agent[] = []
afterEach(async () => { await Promise.all(started.splice(0).map(async a => { await a.stop() })) })

describe('identity', () => {
  it('an update carrying this node\'s own client id (a cloned data dir) makes the agent refuse every write, with an alert', async () => {
    const hub = new MemoryNetworkHub({ clock: systemClock, random: Math.random, latencyMs: { min: 1, max: 2 } })
    const network = hub.createNetwork('A')
    let deliver: ((from: string, data: Uint8Array) => void) | undefined
    const tapped = new Proxy(network, {
      get (target, key) {
        if (key === 'start') return async (handlers: Parameters<typeof network.start>[0]) => { deliver = handlers.onGossip; await target.start(handlers) }
        const value = Reflect.get(target, key, target) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
    const log = memoryLogger()
    const agent = await Agent.start({ network: tapped, probe: createFakeProbe({ totalBytes: 16 * GiB, availableBytes: 16 * GiB }), cluster: 't', env: {}, heartbeatIntervalMs: 60_000, syncIntervalMs: 60_000, log })
    started.push(agent)
    expect((await agent.reserve({ id: 'before', bytes: GiB, placement: { kind: 'any' } })).written).toBe(true)

    // A clone of this node's data dir, on another host, writes under the same client id (past what this one wrote).
    const clone = new Y.Doc()
    Y.applyUpdate(clone, agent.ledger.encode())
    clone.clientID = agent.ledger.clientId()
    const before = Y.encodeStateVector(clone)
    new LedgerWriter(clone, agent.self).reserve({ id: 'from-the-clone', bytes: GiB, placement: { kind: 'any' } }, Date.now())
    deliver!('12D3KooWclone', encodeMessage({ type: MSG_GOSSIP, update: Y.encodeStateAsUpdate(clone, before) }))

    expect(agent.ledger.clientId()).not.toBe(clone.clientID) // Yjs re-rolled it…
    const alert = agent.alerts().find(a => a.kind === 'IdentityConflict')
    expect(alert?.message).toMatch(/another process is writing as/)
    expect(agent.state().writesRefused).toMatch(/refuses to write/)
    await expect(agent.reserve({ id: 'after', bytes: GiB, placement: { kind: 'any' } })).rejects.toThrow(/refuses to write/)
    await expect(agent.release('before')).rejects.toThrow(/refuses to write/)
    // …and nothing was written under the new id.
    const writtenByNewId = agent.ledger.entries('reservations').map(([key]) => key).filter(k => k.startsWith('after'))
    expect(writtenByNewId).toEqual([])
    expect(Y.decodeStateVector(agent.ledger.stateVector()).has(agent.ledger.clientId())).toBe(false)
    expect(log.records.some(r => r.level === 'error' && r.message.includes('client id'))).toBe(true)
  })
})
