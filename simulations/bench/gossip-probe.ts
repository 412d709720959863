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
import '../../agent/shim.ts'
import { writeFileSync } from 'node:fs'

const file = process.env.MEMGOSSIP_BENCH_PROBE ?? ''

if (file !== '') {
  // The package's public entry points, resolved as libp2p resolves them, so
  // the class patched below is the one the agent's gossipsub is made of. The
  // class itself is not exported: its prototype is reached through a
  // throwaway instance from the exported factory (the constructor only needs
  // a logger and starts nothing). The methods wrapped (sendRpc,
  // sendRpcInBatch, handleReceivedMessage, handleReceivedRpc, publish) are
  // internals of @libp2p/gossipsub 17: should an upgrade rename one, the
  // preload stops the agent at start-up naming it, rather than count nothing.
  const { gossipsub } = await import('@libp2p/gossipsub')
  const { RPC: rpcCodec } = await import('@libp2p/gossipsub/message')
  const noop = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false })
  const instance = gossipsub()({ logger: { forComponent: () => noop } } as unknown as Parameters<ReturnType<typeof gossipsub>>[0])
  const proto = Object.getPrototypeOf(instance) as Record<string, (...args: any[]) => any>
  for (const method of ['sendRpc', 'sendRpcInBatch', 'handleReceivedMessage', 'handleReceivedRpc', 'publish']) {
    if (typeof proto[method] !== 'function') throw new Error(`gossip-probe: @libp2p/gossipsub has no ${method}() any more; update simulations/bench/gossip-probe.ts`)
  }
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
    if (sent === true) countSent(args[1], rpcCodec.encode(args[1] as Parameters<typeof rpcCodec.encode>[0]).length, 1)
    return sent
  }
  const sendRpcInBatch = proto.sendRpcInBatch
  proto.sendRpcInBatch = function (this: unknown, ...args: any[]) {
    const result = sendRpcInBatch.apply(this, args)
    countSent(args[1], rpcCodec.encode(args[1] as Parameters<typeof rpcCodec.encode>[0]).length, (args[0] as Set<string>).size)
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
