/**
 * Traffic at rest (docs/simulations.md "What is measured"): after the
 * scenario has settled, the cluster runs on with nothing written for
 * `warmMs` (anti-entropy backs off while its rounds bring nothing, so the
 * first minutes after a write are not "rest"), then the network's counters
 * are read over `windowMs`. Figures are per running node per second of
 * scenario time, payload bytes (no transport framing, no gossipsub control
 * traffic: the virtual network does not model them).
 */
import type { NodeTraffic, Tier } from './types.ts'

export interface RestOptions {
  /** Quiet time before the window. */
  warmMs: number
  /** Length of the measured window. */
  windowMs: number
}

export interface RestTraffic {
  warmMs: number
  windowMs: number
  nodes: number
  /** Messages received per node per second: gossip copies + direct messages + requests served + responses received. */
  messagesInPerNodePerS: number
  /** Of which: gossip copies (beacons, node records, suspicions), direct messages (failure-detector calls and replies), sync requests served. */
  gossipInPerNodePerS: number
  directInPerNodePerS: number
  requestsInPerNodePerS: number
  /** Payload bytes received / sent per node per second. */
  bytesInPerNodePerS: number
  bytesOutPerNodePerS: number
}

/** Run `tier` quietly for `warmMs`, then measure its traffic over `windowMs`. */
export async function measureRest (tier: Tier, options: RestOptions): Promise<RestTraffic> {
  const quiet = (): boolean => tier.errors.length > 0
  await tier.runUntil(tier.now() + options.warmMs, quiet)
  const before = new Map(tier.nodes.map(x => [x.id, tier.traffic(x)]))
  const from = tier.now()
  await tier.runUntil(from + options.windowMs, quiet)
  const seconds = Math.max(1e-9, (tier.now() - from) / 1000)
  const running = tier.nodes.filter(x => x.state === 'running')
  const sum = { gossipIn: 0, directIn: 0, requestsIn: 0, requestsOut: 0, bytesIn: 0, bytesOut: 0 }
  for (const node of running) {
    const now = tier.traffic(node)
    const was = before.get(node.id)
    for (const key of Object.keys(sum) as Array<keyof typeof sum>) sum[key] += delta(now, was, key)
  }
  const n = Math.max(1, running.length)
  const rate = (v: number): number => Number((v / n / seconds).toFixed(3))
  return {
    warmMs: options.warmMs,
    windowMs: options.windowMs,
    nodes: running.length,
    messagesInPerNodePerS: rate(sum.gossipIn + sum.directIn + sum.requestsIn + sum.requestsOut),
    gossipInPerNodePerS: rate(sum.gossipIn),
    directInPerNodePerS: rate(sum.directIn),
    requestsInPerNodePerS: rate(sum.requestsIn),
    bytesInPerNodePerS: rate(sum.bytesIn),
    bytesOutPerNodePerS: rate(sum.bytesOut)
  }
}

function delta (now: NodeTraffic, was: NodeTraffic | undefined, key: 'gossipIn' | 'directIn' | 'requestsIn' | 'requestsOut' | 'bytesIn' | 'bytesOut'): number {
  return (now[key] ?? 0) - (was?.[key] ?? 0)
}
