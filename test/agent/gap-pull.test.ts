/**
 * A missed gossip message is pulled as soon as the next update from the same
 * writer shows the gap (Yjs holds that update back), not at the next periodic
 * sync. Two agents on the in-memory network with real timers; heartbeats and
 * periodic syncs are a minute apart, so only the gap pull can deliver in time.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { Agent } from '../../agent/agent.ts'
import { MemoryNetworkHub } from '../../agent/net/memory.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import type { Clock, Network, NetworkHandlers } from '../../agent/types.ts'

const GiB = 1024 ** 3
const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => { clearTimeout(h as NodeJS.Timeout) },
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => { clearInterval(h as NodeJS.Timeout) }
}

/** `inner`, except that gossip for which `drop` says yes never reaches the agent. */
function lossy (inner: Network, drop: (from: string) => boolean): Network {
  return new Proxy(inner, {
    get (target, key) {
      if (key === 'start') {
        return async (handlers: NetworkHandlers) => {
          await target.start({ ...handlers, onGossip: (from, data) => { if (!drop(from)) handlers.onGossip(from, data) } })
        }
      }
      const value = Reflect.get(target, key, target) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

async function until (what: string, ok: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now()
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  return Date.now() - t0
}

const started: Agent[] = []
afterEach(async () => { await Promise.all(started.splice(0).map(async a => { await a.stop() })) })

describe('gap pull', () => {
  it('a reservation whose gossip was lost arrives with the writer\'s next update, long before the periodic sync', async () => {
    const hub = new MemoryNetworkHub({ clock: realClock, random: Math.random, latencyMs: { min: 1, max: 3 } })
    const timers = { heartbeatIntervalMs: 60_000, syncIntervalMs: 60_000 }
    const probe = (): ReturnType<typeof createFakeProbe> => createFakeProbe({ totalBytes: 64 * GiB, availableBytes: 60 * GiB })
    const a = await Agent.start({ network: hub.createNetwork('A'), probe: probe(), cluster: 't', env: {}, ...timers, log: () => {} })
    started.push(a)
    let dropping = false
    let dropped = 0
    const b = await Agent.start({
      network: lossy(hub.createNetwork('B'), from => { if (dropping && from === 'A') { dropping = false; dropped++; return true } return false }),
      probe: probe(),
      cluster: 't',
      env: {},
      expectsPeers: true,
      ...timers,
      log: () => {}
    })
    started.push(b)
    hub.connect('A', 'B')
    await until('B to join through A', () => b.state().joined, 10_000)
    await until('the joining syncs to finish', () => b.metrics.syncRounds > 0 && a.metrics.syncRounds > 0, 10_000)
    const pullsBefore = b.metrics.gapPulls

    dropping = true
    await a.reserve({ id: 'lost', bytes: GiB, placement: { kind: 'any' } })
    await until('the gossip of "lost" to be dropped', () => dropped === 1, 5000)
    expect(b.verdict('lost')).toBeUndefined()

    await a.reserve({ id: 'next', bytes: GiB, placement: { kind: 'any' } })
    const ms = await until('B to hold "lost"', () => b.verdict('lost') !== undefined && b.verdict('next') !== undefined, 5000)
    console.log(`gap pull: "lost" reached B ${ms} ms after "next" was written (periodic sync every ${timers.syncIntervalMs / 1000} s)`)
    expect(b.metrics.gapPulls).toBe(pullsBefore + 1)
    expect(b.verdict('lost')?.status).toBe('admitted')
    expect(b.resolution().digest).toBe(a.resolution().digest)
  })
})
