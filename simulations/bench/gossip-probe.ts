/**
 * A preload (`node --import dist/simulations/bench/gossip-probe.js
 * dist/cli/main.js agent …`, compiled by `npm run build`) that counts gossipsub traffic inside a benchmark agent
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
import { join } from 'node:path'

const file = process.env.MEMGOSSIP_BENCH_PROBE ?? ''

if (file !== '') {
  // The very module libp2p loads (same URL, so the same class object); the
  // benchmark starts agents in the repository root.
  const mod = await import(join(process.cwd(), 'node_modules/@libp2p/gossipsub/dist/src/gossipsub.js')) as { GossipSub: { prototype: Record<string, unknown> } }
  const proto = mod.GossipSub.prototype as Record<string, (...args: any[]) => any>
  const rpcCodec = (await import(join(process.cwd(), 'node_modules/@libp2p/gossipsub/dist/src/message/rpc.js')) as { RPC: { encode: (rpc: unknown) => Uint8Array } }).RPC
  const counters = { seq: 0, received: 0, published: 0, ihave: 0, iwant: 0, rpcs: 0, sentRpcs: 0, sentMessageBytes: 0, sentControlBytes: 0 }
  // Bytes gossipsub hands its streams, split into RPCs that carry messages and
  // control-only ones (IHAVE/IWANT/GRAFT/PRUNE/IDONTWANT); a message RPC may
  // carry piggybacked control too. Framing below gossipsub is not included.
  const countSent = (rpc: { messages?: unknown[] }, bytes: number, copies: number): void => {
    counters.sentRpcs += copies
    if ((rpc.messages?.length ?? 0) > 0) counters.sentMessageBytes += bytes * copies
    else counters.sentControlBytes += bytes * copies
  }
  const sendRpc = proto.sendRpc
  proto.sendRpc = function (this: unknown, ...args: any[]) {
    const sent = sendRpc.apply(this, args)
    if (sent === true) countSent(args[1], rpcCodec.encode(args[1]).length, 1)
    return sent
  }
  const sendRpcInBatch = proto.sendRpcInBatch
  proto.sendRpcInBatch = function (this: unknown, ...args: any[]) {
    const result = sendRpcInBatch.apply(this, args)
    countSent(args[1], rpcCodec.encode(args[1]).length, (args[0] as Set<string>).size)
    return result
  }
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
