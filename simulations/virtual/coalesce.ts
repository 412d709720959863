/**
 * Gossip coalescing for the virtual tier: every gossip message that reaches an
 * agent within one virtual instant (one millisecond) is handed to it as one
 * merged message at the end of that instant.
 *
 * Why: every Yjs transaction costs O(number of writers) (it snapshots the
 * state vector before and after), so applying one heartbeat is O(N) and a
 * heartbeat round of N peers costs O(N³) across a simulated cluster. A real
 * host pays only its own O(N²) share; one process simulating all of them pays
 * it N times over. Merging what lands in the same millisecond (Yjs updates
 * commute and merge losslessly, `Y.mergeUpdates`) brings a round of 1,000
 * peers from minutes to seconds of wall time.
 *
 * What it changes, and what it does not: the agent applies the same updates
 * through the same code path (`onGossip` → decode → limits → applyUpdate), at
 * the same virtual millisecond, only in fewer transactions. The network-level
 * counters (messages, bytes, duplicates) are the hub's, counted per copy before
 * coalescing; the agent's own `updatesIn` counts merged messages. Anything that
 * is not a well-formed gossip message is passed through untouched, so the
 * agent's own validation still sees it. Turn it off (`coalesce: false`) to run
 * the exact per-message path; tests compare both.
 */
import * as Y from 'yjs'
import { decodeMessage, encodeMessage, MSG_GOSSIP } from '../../agent/wire.ts'
import type { Network, NetworkHandlers, PeerIdStr } from '../../agent/types.ts'

interface Pending {
  handlers: NetworkHandlers
  isLive: () => boolean
  messages: Array<{ from: PeerIdStr, data: Uint8Array }>
}

/** Buffers gossip per receiving network until `flush()` (called after each instant). */
export class GossipCoalescer {
  private readonly pending = new Map<object, Pending>()
  /** Messages received and messages handed over (a cost figure for reports). */
  received = 0
  delivered = 0

  /**
   * Wrap `network` so its `onGossip` goes through this coalescer. `isLive`
   * tells whether the agent behind it is still running when the flush comes.
   */
  wrap<N extends Network> (network: N): N {
    const coalescer = this
    const key = {}
    const start = network.start.bind(network)
    network.start = async (handlers: NetworkHandlers): Promise<void> => {
      let live = true
      const wrapped: NetworkHandlers = {
        ...handlers,
        onGossip: (from, data) => { coalescer.push(key, handlers, () => live, from, data) }
      }
      const stop = network.stop.bind(network)
      network.stop = async () => { live = false; await stop() }
      await start(wrapped)
    }
    return network
  }

  /** Deliver everything buffered, receivers in first-arrival order. */
  flush (): void {
    if (this.pending.size === 0) return
    const batches = [...this.pending.values()]
    this.pending.clear()
    for (const batch of batches) {
      if (!batch.isLive()) continue
      for (const message of merge(batch.messages)) {
        this.delivered++
        batch.handlers.onGossip(message.from, message.data)
      }
    }
  }

  private push (key: object, handlers: NetworkHandlers, isLive: () => boolean, from: PeerIdStr, data: Uint8Array): void {
    this.received++
    let batch = this.pending.get(key)
    if (batch === undefined) {
      batch = { handlers, isLive, messages: [] }
      this.pending.set(key, batch)
    }
    batch.messages.push({ from, data })
  }
}

/**
 * Merge the well-formed ledger updates into one (attributed to the first
 * sender: a ledger update carries its writers inside); anything else — a
 * beacon, a suspicion, a malformed message — passes through as it is, from its
 * own sender, since the agent checks who published those.
 */
function merge (messages: Array<{ from: PeerIdStr, data: Uint8Array }>): Array<{ from: PeerIdStr, data: Uint8Array }> {
  if (messages.length === 1) return messages
  const updates: Uint8Array[] = []
  let first: PeerIdStr | undefined
  const other: Array<{ from: PeerIdStr, data: Uint8Array }> = []
  for (const message of messages) {
    try {
      const decoded = decodeMessage(message.data)
      if (decoded.type === MSG_GOSSIP) {
        updates.push(decoded.update)
        first ??= message.from
      } else other.push(message)
    } catch {
      other.push(message)
    }
  }
  if (updates.length <= 1) return messages
  let merged: Uint8Array
  try {
    merged = Y.mergeUpdates(updates)
  } catch {
    // A malformed update must reach the agent on its own, to be refused and counted there.
    return messages
  }
  return [{ from: first!, data: encodeMessage({ type: MSG_GOSSIP, update: merged }) }, ...other]
}
