/**
 * `memgossip watch`: live lines from the agent's event stream (GET /v1/events,
 * server-sent events): verdict changes, alerts raised and cleared, peers,
 * joins. Ctrl-C exits 0.
 */
import { anySignal } from 'any-signal'
import type { ApiEvent } from '../../agent/api/contract.ts'
import { shortId } from '../../crdt/placement.ts'
import type { SseEvent } from '../client.ts'
import type { Paint } from '../format.ts'
import { clientCommand } from './common.ts'
import { readableReason, statusColor } from './print.ts'

export const watch = clientCommand({
  name: 'watch',
  args: '',
  summary: 'follow the event stream: verdicts, alerts, peers (Ctrl-C to stop)',
  description: `Print the asked agent's events as they happen (GET /v1/events): verdict
changes (status, final or tentative, reason), alerts raised and cleared, peers
connecting and disconnecting, and this agent joining. The first line says
which agent answered and its active alerts. --json prints one JSON object per
line: the event's data with its name in 'type'. Ctrl-C exits 0; exit 3 when the
agent cannot be reached or closes the stream.`,
  examples: ['memgossip watch', 'memgossip watch --json | jq -c "select(.type == \\"alert\\")"']
}, async ({ client, json, color, io, out, err }) => {
  const stop = new AbortController()
  const onSignal = (): void => { stop.abort() }
  if (io.signal?.aborted === true) return 0
  if (io.signal === undefined) {
    // Kept until the process exits: a Ctrl-C reaches npx/npm too, which
    // forwards it, so a second SIGINT arrives while watch is ending. Without a
    // listener it would kill the process (exit 130 where the help says 0).
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  }
  const signal = anySignal([io.signal, stop.signal])
  try {
    for await (const event of client.events(signal)) {
      out(json ? JSON.stringify({ ...(event.data as object), type: event.event }) + '\n' : renderEvent(event, color, new Date()))
    }
  } finally {
    signal.clear()
  }
  if (signal.aborted) return 0
  err(`memgossip watch: the agent at ${client.api} closed the event stream\n`)
  return 3
})

/** One human line per event: local time, kind, what changed. */
export function renderEvent (e: SseEvent, c: Paint, at: Date): string {
  const time = c.dim(at.toTimeString().slice(0, 8))
  const kind = e.event.padEnd(7)
  // The agent's events are the contract's; anything else is printed as it came.
  const known = e as ApiEvent
  switch (known.event) {
    case 'hello': {
      const d = known.data
      return `${time}  ${kind}  agent ${d.self}, ${d.alerts?.length ?? 0} active alert(s), verdicts digest ${d.verdictsDigest}\n`
    }
    case 'verdict': {
      const d = known.data
      const nodes = d.nodes ?? []
      return `${time}  ${kind}  ${d.id} ${statusColor(c, d.status)(d.status)} ${d.final ? 'final' : c.yellow('tentative')}${nodes.length > 0 ? ` on ${nodes.map(shortId).join(',')}` : ''}: ${readableReason(d.reason)} [${d.code}]\n`
    }
    case 'alert': {
      const { alert, state } = known.data
      const raised = state === 'raised'
      return `${time}  ${kind}  ${raised ? c.red('raised') : c.green('cleared')} ${alert?.kind}: ${alert?.message}${raised ? ` (setting: ${alert?.setting})` : ''}\n`
    }
    case 'peer':
      return `${time}  ${kind}  ${known.data.state} ${known.data.peer}\n`
    case 'joined':
      return `${time}  ${kind}  joined the cluster through ${known.data.sponsor}\n`
    default:
      return `${time}  ${kind}  ${JSON.stringify(e.data)}\n`
  }
}
