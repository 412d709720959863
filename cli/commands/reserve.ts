/**
 * `memgossip reserve ID SIZE` (POST /v1/reservations) and `memgossip release
 * ID` (DELETE /v1/reservations/:id). With `--wait-final`, reserve follows the
 * event stream (GET /v1/events) and polls GET /v1/reservations/:id until the
 * agent says the verdict is final (docs/design.md "Finality").
 */
import { UsageError } from '../args.ts'
import type { ApiClient } from '../client.ts'
import { jsonText } from '../format.ts'
import { clientCommand, durationArg, idPath, PLACEMENT_FLAG, placementArg, priorityArg, sizeArg } from './common.ts'
import type { ErrorJson, ReserveAnswerJson, ReserveRequestIn, VerdictJson } from '../../agent/api/contract.ts'
import { renderFit, renderVerdict } from './print.ts'

/** How long `--wait-final` waits by default: several heartbeat intervals (default 5 s). */
export const DEFAULT_WAIT_FINAL_MS = 60_000
/** Poll GET /v1/reservations/:id this often while waiting, in case an event is missed. */
const POLL_MS = 1000

export const reserve = clientCommand({
  name: 'reserve',
  args: 'ID SIZE',
  summary: 'reserve SIZE for deployment ID; prints the verdict',
  description: `Reserve memory for deployment ID (POST /v1/reservations). The agent refuses to
write it when it does not fit in its view (the fit answer's reason and
histogram are printed, exit 1). Otherwise the verdict is printed: admitted
(exit 0) or rejected (exit 1), final or tentative. With --json both print the
agent's one answer shape: 'status' says admitted or rejected, 'written' whether
an entry was made.

--wait-final follows the event stream until the verdict is final (every member
has passed the reservation, docs/design.md "Finality") and prints that; on
timeout it exits 1 and names the members it still waits for.

ID: 1-128 of letters, digits and . _ : / - (starting with a letter or digit).
SIZE: 512MiB, 2GiB (IEC), 2Gi (Kubernetes), 1.5GB (SI decimal), or bytes.`,
  examples: [
    'memgossip reserve web-1 2GiB',
    'memgossip reserve web-1 2GiB --placement spread:2 --priority 10 --label team=web --wait-final --timeout 30s'
  ],
  flags: {
    placement: PLACEMENT_FLAG,
    priority: { type: 'string', help: 'integer; on capacity loss lower priorities are evicted first (default 0)' },
    label: { type: 'list', help: 'label k=v' },
    'wait-final': { type: 'boolean', help: 'wait until the verdict is final' },
    timeout: { type: 'string', help: `with --wait-final: give up after this long (default ${DEFAULT_WAIT_FINAL_MS / 1000}s), exit 1` }
  }
}, async ({ client, json, color, positionals, flags, out, err }) => {
  const [id, size] = positionals
  sizeArg(size)
  const placement = flags.placement as string | undefined
  await placementArg(placement)
  const priority = priorityArg(flags.priority as string | undefined)
  let labels: Record<string, string> | undefined
  for (const l of (flags.label as string[] | undefined) ?? []) {
    const eq = l.indexOf('=')
    if (eq <= 0) throw new UsageError(`--label: '${l}' is not k=v`)
    labels = { ...labels, [l.slice(0, eq)]: l.slice(eq + 1) }
  }
  const waitFinal = flags['wait-final'] === true
  if (flags.timeout !== undefined && !waitFinal) throw new UsageError('--timeout only applies with --wait-final')
  const timeoutMs = flags.timeout !== undefined ? durationArg(flags.timeout as string, '--timeout') : DEFAULT_WAIT_FINAL_MS

  const request: ReserveRequestIn = { id, size, placement, priority, labels }
  const answer = await client.post<ReserveAnswerJson | ErrorJson>('/v1/reservations', request, [409])
  if (answer.status === 409) {
    // 409 IdExists: input the user must change. --json prints the agent's error as where/release do.
    const body = answer.body as ErrorJson
    if (json) out(jsonText(body))
    err(`memgossip reserve: ${body.detail} [${body.error}]\n`)
    return 2
  }
  const made = answer.body as ReserveAnswerJson
  if (!made.written) {
    if (json) out(jsonText(made))
    else out(`${color.red(color.bold('rejected'))}: ${id} was not written\n${renderFit(made.answer, color)}`)
    return 1
  }
  let verdict = made.verdict
  let waitedMs: number | undefined
  let timedOut = false
  if (waitFinal && verdict !== undefined && !verdict.final) {
    if (!json) err(`waiting up to ${Math.round(timeoutMs / 1000)}s for the verdict of '${id}' to become final…\n`)
    const started = Date.now()
    const result = await waitForFinal(client, id, timeoutMs)
    waitedMs = Date.now() - started
    verdict = result.verdict ?? verdict
    timedOut = !result.final
  }
  if (json) {
    // After --wait-final the answer's status follows the verdict it waited for.
    const now = verdict !== undefined ? { status: verdict.status, code: verdict.code, reason: verdict.reason, final: verdict.final } : {}
    out(jsonText({ ...made, ...now, verdict, ...(waitFinal ? { waitedMs: waitedMs ?? 0, timedOut } : {}) }))
  } else {
    if (verdict !== undefined) out(renderVerdict(verdict, color))
    for (const w of made.warnings) out(color.yellow(`warning: ${w}\n`))
    if (made.ackedPeers !== undefined) out(`acknowledged by ${made.ackedPeers} peer(s)\n`)
    if (timedOut) out(color.yellow(`timed out after ${Math.round(timeoutMs / 1000)}s: not final yet, still waits for ${verdict?.waitsFor.join(', ') ?? '?'}\n`))
  }
  if (timedOut) return 1
  return verdict?.status === 'admitted' ? 0 : 1
})

/**
 * Wait until GET /v1/reservations/:id says final. The event stream is only a
 * trigger to look again (an event names the id, not the entry), the poll the
 * fallback; the verdict printed is always the one the agent returned.
 */
export async function waitForFinal (client: ApiClient, id: string, timeoutMs: number): Promise<{ final: boolean, verdict?: VerdictJson }> {
  const controller = new AbortController()
  const deadline = Date.now() + timeoutMs
  let latest: VerdictJson | undefined
  let wake: (() => void) | undefined
  const check = async (): Promise<boolean> => {
    const { status, body } = await client.get<VerdictJson>(`/v1/reservations/${idPath(id)}`, [404])
    if (status === 200) latest = body
    return latest?.final === true
  }
  // Subscribe first, then look once, so no change between the two is missed.
  const stream = (async () => {
    try {
      for await (const event of client.events(controller.signal)) {
        if (event.event === 'verdict' && (event.data as { id?: unknown } | undefined)?.id === id) wake?.()
      }
    } catch {
      // The stream is an optimisation; polling carries on without it.
    }
  })()
  try {
    if (await check()) return { final: true, verdict: latest }
    while (Date.now() < deadline) {
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.min(POLL_MS, Math.max(0, deadline - Date.now())))
        wake = () => { clearTimeout(timer); resolve() }
      })
      wake = undefined
      if (await check()) return { final: true, verdict: latest }
    }
    return { final: false, verdict: latest }
  } finally {
    controller.abort()
    await stream
  }
}

export const release = clientCommand({
  name: 'release',
  args: 'ID',
  summary: 'release reservation ID (its memory is free for what comes after)',
  description: `Release deployment ID (DELETE /v1/reservations/:id). The release is its own
ledger entry; the memory is free for reservations that come after it in the
log. Exit 0 released, 1 no such reservation.`,
  examples: ['memgossip release web-1']
}, async ({ client, json, color, positionals, out, err }) => {
  const id = positionals[0]
  const { status, body } = await client.delete<VerdictJson | ErrorJson>(`/v1/reservations/${idPath(id)}`, [404])
  if (status === 404) {
    if (json) out(jsonText(body))
    err(`memgossip release: ${(body as ErrorJson).detail ?? `no reservation '${id}'`}\n`)
    return 1
  }
  out(json ? jsonText(body) : renderVerdict(body as VerdictJson, color))
  return 0
})
