/**
 * The input guard (agent/input.ts): what a peer may send before anything
 * touches the agent. Budgets, sizes, decoding and the ledger's root types.
 */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { InputGuard, type DropCounters } from '../../agent/input.ts'
import type { Clock } from '../../agent/types.ts'
import { encodeMessage, MSG_GOSSIP } from '../../agent/wire.ts'

function guard (limits: Partial<ConstructorParameters<typeof InputGuard>[0]['limits']> = {}): { input: InputGuard, counters: DropCounters, lines: string[], tick: (ms: number) => void } {
  let now = 1_000_000
  const clock: Clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => {}, setInterval: () => 0, clearInterval: () => {} }
  const counters: DropCounters = { droppedOversized: 0, droppedInvalid: 0, droppedThrottled: 0 }
  const lines: string[] = []
  const input = new InputGuard({
    clock,
    log: (line) => { lines.push(line) },
    counters,
    limits: { maxUpdateBytes: 4096, maxUpdateEntries: 50, messagesPerSecond: 10, bytesPerSecond: 8192, ...limits }
  })
  return { input, counters, lines, tick: (ms) => { now += ms } }
}

const gossip = (update: Uint8Array): Uint8Array => encodeMessage({ type: MSG_GOSSIP, update })

function update (build: (doc: Y.Doc) => void): Uint8Array {
  const doc = new Y.Doc()
  build(doc)
  return Y.encodeStateAsUpdate(doc)
}

describe('input guard', () => {
  it('holds a peer to its message budget, refills with time, and keeps other peers apart', () => {
    const { input, counters, tick } = guard()
    const message = gossip(update(doc => { doc.getMap('reservations').set('a@n', { id: 'a' }) }))
    const admitted = Array.from({ length: 15 }, () => input.admit('P', message, Infinity, 'gossip message') !== undefined)
    expect(admitted.filter(Boolean)).toHaveLength(10) // one second of burst
    expect(counters.droppedThrottled).toBe(5)
    expect(input.admit('Q', message, Infinity, 'gossip message')).toBeDefined() // another peer's own bucket
    tick(500)
    expect(Array.from({ length: 8 }, () => input.admit('P', message, Infinity, 'gossip message') !== undefined).filter(Boolean)).toHaveLength(5)
  })

  it('drops an oversized or malformed message, counts it, and says so once per peer and kind', () => {
    const { input, counters, lines } = guard()
    const big = gossip(update(doc => { doc.getMap('nodes').set('n', 'x'.repeat(600)) }))
    expect(input.admit('P', big, 512, 'beacon')).toBeUndefined()
    expect(input.admit('P', big, 512, 'beacon')).toBeUndefined()
    expect(counters.droppedOversized).toBe(2)
    expect(input.admit('P', new Uint8Array([0xff, 1, 2]), 512, 'beacon')).toBeUndefined()
    expect(counters.droppedInvalid).toBe(1)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/dropped oversized input from .*beacon of \d+ bytes exceeds 512/)
    expect(lines[1]).toMatch(/dropped invalid input/)
  })

  it('accepts a ledger update and refuses one too large, with too many entries, undecodable, or writing another root', () => {
    const { input, counters } = guard()
    expect(input.acceptsUpdate('P', update(doc => { doc.getMap('nodes').set('n', { totalBytes: 1 }) }))).toBe(true)
    expect(input.acceptsUpdate('P', update(doc => { doc.getMap('reservations').set('big@n', 'x'.repeat(5000)) }))).toBe(false)
    expect(input.acceptsUpdate('P', update(doc => { for (let i = 0; i < 60; i++) doc.getMap('releases').set(`r${i}`, i) }))).toBe(false)
    expect(counters.droppedOversized).toBe(2)
    expect(input.acceptsUpdate('P', update(doc => { doc.getMap('elsewhere').set('k', 1) }))).toBe(false)
    expect(input.acceptsUpdate('P', new Uint8Array([1, 2, 3, 4, 5]))).toBe(false)
    expect(counters.droppedInvalid).toBe(2)
  })
})
