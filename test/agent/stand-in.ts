/**
 * A real agent on a stand-in transport, for tests of what it does with the
 * exact bytes a peer sends (beacons, relayed batches): the test plays members
 * A and B — A founded the cluster, admitted B and the agent, and reserved
 * `r1` on itself — and a stranger; the agent has a real data dir and real
 * HTTP. Shared by test/agent/beacons.test.ts and clock-relay.test.ts.
 */
import * as Y from 'yjs'
import { Agent } from '../../agent/agent.ts'
import { startApi, type ApiServer } from '../../agent/api.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import type { Network, NetworkHandlers } from '../../agent/types.ts'
import { encodeMessage, MSG_GOSSIP } from '../../agent/wire.ts'
import { LedgerWriter } from '../../crdt/index.ts'

const GiB = 1024 ** 3

/** Records what the agent publishes (and, with `direct`, sends to one peer); the agent sees `connected` as its peers. */
export class PeerStandIn implements Network {
  handlers!: NetworkHandlers
  readonly published: Uint8Array[] = []
  readonly sent: Array<{ to: string, bytes: Uint8Array }> = []
  readonly send?: (to: string, bytes: Uint8Array) => boolean

  constructor (readonly self: string, private readonly connected: string[], options: { direct?: boolean } = {}) {
    if (options.direct === true) this.send = (to, bytes) => { this.sent.push({ to, bytes }); return true }
  }

  async start (handlers: NetworkHandlers): Promise<void> { this.handlers = handlers }
  async stop (): Promise<void> {}
  async publish (data: Uint8Array): Promise<void> { this.published.push(data) }
  async request (): Promise<Uint8Array> { throw new Error('no sync in this test') }
  peers (): string[] { return this.connected }
  addresses (): string[] { return [] }
}

/** Start the agent on `net` with `dataDir` (again, for a restart), and its API. */
export async function startOnStandIn (net: PeerStandIn, dataDir: string, cluster: string): Promise<{ agent: Agent, api: ApiServer }> {
  const agent = await Agent.start({ network: net, probe: createFakeProbe({ totalBytes: 64 * GiB, availableBytes: 64 * GiB }), cluster, dataDir, fsync: false, expectsPeers: true, log: () => {} })
  return { agent, api: await startApi({ agent, listen: '127.0.0.1:0' }) }
}

/** Member A's side of the ledger: A founded the cluster, admitted B and `self`, and reserved `r1` on itself. */
export function ledgerOfA (a: string, b: string, self: string): { doc: Y.Doc, writer: LedgerWriter, update: () => Uint8Array } {
  const doc = new Y.Doc()
  const writer = new LedgerWriter(doc, a)
  const now = Date.now()
  writer.admit(a, 8 * GiB, now)
  writer.admit(b, 8 * GiB, now)
  writer.admit(self, 8 * GiB, now)
  writer.reserve({ id: 'r1', bytes: GiB, placement: { kind: 'node', node: a } }, now)
  return { doc, writer, update: () => encodeMessage({ type: MSG_GOSSIP, update: Y.encodeStateAsUpdate(doc) }) }
}

/** The agent's verdict on `id` after a refresh (throws when it has none). */
export function verdictOf (agent: Agent, id: string): { final: boolean, waitingOn?: string, waitsFor: string[] } {
  agent.refresh()
  const v = agent.resolution().verdicts.get(id)
  if (v === undefined) throw new Error(`no verdict for ${id}`)
  return v
}

/** One line of the agent's /metrics, by its full name (labels included). */
export async function metricAt (apiUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith(`${name} `))
  if (line === undefined) throw new Error(`no metric ${name} in /metrics`)
  return Number(line.split(' ')[1])
}
