/**
 * A node's record is one key of the ledger's node map, and copies of it are
 * carried over into each new epoch by every peer (crdt/epoch.ts carryOver).
 * A copy that spreads late (its peer was killed right after its move, or cut
 * off) is a set concurrent with the node's newer record, and Yjs may let it
 * win. Peers then hold the node's stream short of the position its beacons
 * name, count none of them, and finality stops everywhere. The node must
 * write its record again (docs/decisions.md "Finality stalled after a kill
 * right after a move").
 */
import * as Y from 'yjs'
import { afterEach, describe, expect, it } from 'vitest'
import { Agent } from '../../agent/agent.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import { memoryLogger } from '../../agent/log.ts'
import { encodeMessage, MSG_GOSSIP } from '../../agent/wire.ts'
import { MAP_NODES } from '../../crdt/index.ts'
import { waitFor } from '../../simulations/support/wait.ts'
import { PeerStandIn } from './stand-in.ts'

const GiB = 1024 ** 3
const started: Agent[] = []
afterEach(async () => { await Promise.all(started.splice(0).map(async a => { await a.stop() })) })

describe('a stale copy of a node\'s record', () => {
  it('that wins over its newer record makes the node write its record again, past every position it holds', async () => {
    const network = new PeerStandIn('A', [])
    const probe = createFakeProbe({ totalBytes: 16 * GiB, availableBytes: 16 * GiB })
    const log = memoryLogger()
    const agent = await Agent.start({ network, probe, cluster: 't', env: {}, sampleIntervalMs: 100, heartbeatIntervalMs: 0, syncIntervalMs: 60_000, log })
    started.push(agent)
    const recordSeq = (): number => (agent.ledger.entries(MAP_NODES).find(([key]) => key === agent.self)?.[1] as { seq: number } | undefined)?.seq ?? 0
    await waitFor('the first record', () => recordSeq() > 0, 10_000)

    // A peer's copy of the record as it is now…
    const peer = new Y.Doc()
    Y.applyUpdate(peer, agent.ledger.encode())
    const copy = peer.getMap(MAP_NODES).get(agent.self) as { seq: number }
    // …then the node's figures move and it writes a newer record, its latest write.
    probe.set({ availableBytes: 4 * GiB })
    await waitFor('a newer record', () => recordSeq() > copy.seq, 10_000)
    const newer = recordSeq()

    // The peer writes its copy again, concurrently (it never saw the newer
    // record), under the highest client id: Yjs lets the higher id win.
    peer.clientID = 0xffffffff
    const before = Y.encodeStateVector(peer)
    peer.getMap(MAP_NODES).set(agent.self, { ...copy })
    network.handlers.onGossip('12D3KooWpeer', encodeMessage({ type: MSG_GOSSIP, update: Y.encodeStateAsUpdate(peer, before) }))
    expect(recordSeq(), 'the stale copy won the key').toBe(copy.seq)

    // The node writes its record again, past the newer one.
    await waitFor('the record written again', () => recordSeq() > newer, 5_000)
    expect(log.records.some(r => r.message.includes('writing it again'))).toBe(true)
    const self = agent.nodes().find(n => n.id === agent.self)
    expect(self?.lastSeq).toBe(recordSeq())
  })
})
