/**
 * Direct calls (agent/calls.ts): small exchanges over the direct stream,
 * here over the simulator's memory network on a virtual clock.
 */
import { describe, expect, it } from 'vitest'
import { DirectCalls } from '../../agent/calls.ts'
import { MemoryNetworkHub, type MemoryNetwork } from '../../simulations/virtual/network.ts'
import { decodeMessage, encodeMessage, MSG_CALL, MSG_REPLY } from '../../agent/wire.ts'
import { seededRandom } from '../../simulations/support/random.ts'
import { VirtualClock } from '../../simulations/virtual/clock.ts'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

async function pair (answer: (body: string) => string | undefined): Promise<{ clock: VirtualClock, hub: MemoryNetworkHub, calls: DirectCalls, a: MemoryNetwork }> {
  const clock = new VirtualClock({ startMs: 0 })
  const hub = new MemoryNetworkHub({ clock, random: seededRandom(7), latencyMs: { min: 2, max: 2 } })
  const a = hub.createNetwork('a')
  const b = hub.createNetwork('b')
  hub.createNetwork('c')
  const calls = new DirectCalls({ clock, send: (peer, bytes) => a.send(peer, bytes) })
  const idle = { onGossip: () => {}, onRequest: async (_: string, d: Uint8Array) => d, onPeerConnected: () => {}, onPeerDisconnected: () => {} }
  await a.start({ ...idle, onMessage: (from, data) => { const m = decodeMessage(data); if (m.type === MSG_REPLY) calls.replied(from, m.id, m.body) } })
  await b.start({
    ...idle,
    onMessage: (from, data) => {
      const m = decodeMessage(data)
      if (m.type !== MSG_CALL) return
      const reply = answer(decoder.decode(m.body))
      if (reply !== undefined) b.send(from, encodeMessage({ type: MSG_REPLY, id: m.id, body: encoder.encode(reply) }))
    }
  })
  hub.connect('a', 'b')
  await clock.advance(10)
  return { clock, hub, calls, a }
}

describe('direct calls', () => {
  it('matches each reply to its call, one round trip later', async () => {
    const { clock, calls } = await pair(body => `pong ${body}`)
    const first = calls.call('b', encoder.encode('1'), 100)
    const second = calls.call('b', encoder.encode('2'), 100)
    expect(first).toBeDefined()
    await clock.advance(5)
    expect(decoder.decode((await second)!)).toBe('pong 2')
    expect(decoder.decode((await first)!)).toBe('pong 1')
  })

  it('gives no answer when none comes in time, is not made without a connection, and stop ends what is open', async () => {
    const { clock, calls } = await pair(() => undefined)
    const silent = calls.call('b', encoder.encode('hello'), 50)
    await clock.advance(60)
    expect(await silent).toBeUndefined()
    // Not connected to c: the caller must use a request stream instead.
    expect(calls.call('c', encoder.encode('hello'), 50)).toBeUndefined()
    const open = calls.call('b', encoder.encode('again'), 10_000)
    calls.stop()
    expect(await open).toBeUndefined()
  })

  it('ignores a reply from anyone but the peer called, and a late one', async () => {
    const { clock, calls } = await pair(() => undefined)
    const pending = calls.call('b', encoder.encode('x'), 50)!
    // Ids start at 1: a forged reply of the same id from another peer does not answer it.
    expect(calls.replied('c', 1, encoder.encode('forged'))).toBe(false)
    await clock.advance(60)
    expect(await pending).toBeUndefined()
    expect(calls.replied('b', 1, encoder.encode('late'))).toBe(false)
  })
})
