/**
 * A preload (`node --import tsx --import simulations/bench/gossip-probe.ts
 * cli/main.ts agent …`) that counts gossipsub traffic inside a benchmark agent
 * — the agent's own metrics count updates after gossipsub has dropped
 * duplicates, so the wire-level amplification is only visible here:
 *
 * - `received`: every message handed to gossipsub by a peer (first copies and
 *   duplicates), from `GossipSub.handleReceivedMessage`;
 * - `published`: messages this agent published;
 * - `ihave` / `iwant`: control entries received.
 *
 * It only counts; nothing the agent does changes. On SIGUSR2 it writes the
 * counters, with an increasing `seq`, to the file named by
 * `MEMGOSSIP_BENCH_PROBE`. Without that variable it does nothing.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const file = process.env.MEMGOSSIP_BENCH_PROBE ?? ''

if (file !== '') {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
  // The very module libp2p loads (same URL, so the same class object).
  const mod = await import(join(root, 'node_modules/@libp2p/gossipsub/dist/src/gossipsub.js')) as { GossipSub: { prototype: Record<string, unknown> } }
  const proto = mod.GossipSub.prototype as Record<string, (...args: any[]) => any>
  const counters = { seq: 0, received: 0, published: 0, ihave: 0, iwant: 0, rpcs: 0 }
  const handleReceivedMessage = proto.handleReceivedMessage
  proto.handleReceivedMessage = function (this: unknown, ...args: any[]) {
    counters.received++
    return handleReceivedMessage.apply(this, args)
  }
  const handleReceivedRpc = proto.handleReceivedRpc
  proto.handleReceivedRpc = function (this: unknown, ...args: any[]) {
    counters.rpcs++
    const control = args[1]?.control
    counters.ihave += control?.ihave?.length ?? 0
    counters.iwant += control?.iwant?.length ?? 0
    return handleReceivedRpc.apply(this, args)
  }
  const publish = proto.publish
  proto.publish = function (this: unknown, ...args: any[]) {
    counters.published++
    return publish.apply(this, args)
  }
  process.on('SIGUSR2', () => {
    counters.seq++
    try { writeFileSync(file, JSON.stringify(counters)) } catch {}
  })
}

export {}
