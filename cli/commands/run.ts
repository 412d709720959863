/**
 * `memgossip run ID SIZE [--min SIZE] -- CMD [ARGS…]` (docs/design.md
 * "Enforcement"): reserve SIZE on this node, wait until the verdict is final
 * (unless --tentative-ok), run CMD in a memory cgroup of its own whose hard
 * limit is the reservation, release when it exits, and exit with its exit code.
 *
 * The order is chosen so that a refusal writes nothing: arguments, the command's
 * executable and the cgroup are all checked before the reservation is written.
 * memgossip's own lines go to stderr; stdout is the command's.
 *
 * The cgroup work is agent/cgroup.ts; every ledger decision is the agent's.
 */
import { spawn } from 'node:child_process'
import { constants as fsConstants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { CgroupError, detectCgroupController, type CgroupUsage, type MemoryCgroup } from '../../agent/cgroup.ts'
import { LimitFollower } from '../../agent/limit.ts'
import { oomKillsSince } from '../../agent/usage.ts'
import { formatSize, RESERVATION_ID_PATTERN } from '../../crdt/index.ts'
import { UsageError } from '../args.ts'
import { ClientError, type ApiClient } from '../client.ts'
import type { Command } from '../io.ts'
import { clientCommand, durationArg, helpText, idPath, PLACEMENT_FLAG, placementArg, priorityArg, sizeArg, type Context } from './common.ts'
import type { ErrorJson, ReserveAnswerJson, ReserveRequestIn, UsageReadingJson, UsageRequestIn, VerdictJson } from '../../agent/api/contract.ts'
import { readableReason, renderFit, renderVerdict } from './print.ts'
import { queueTimeoutArg } from './reserve.ts'

/** How long to wait for a final verdict by default (as `reserve --wait-final`). */
export const DEFAULT_RUN_WAIT_MS = 60_000
/** Poll GET /v1/reservations/:id this often while waiting for finality. */
const FINAL_POLL_MS = 250
/** Release attempts when the agent does not answer, and the pause before each retry. */
export const RELEASE_RETRY_DELAYS_MS = [1000, 2000, 4000]
/** Signals passed on to the command. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']
/** How long an evicted command has after SIGTERM before SIGKILL. */
const EVICT_GRACE_MS = 10_000

/**
 * Joins the cgroup before anything of CMD runs: the shell writes its own pid
 * into `cgroup.procs`, says so on fd 3, closes it, then execs CMD in place (same
 * pid), so even CMD's first allocation is charged to the reservation.
 */
const JOIN_SCRIPT = 'echo $$ > "$1" || exit 125; echo joined >&3; exec 3>&-; shift; exec "$@"'

const SPEC = {
  name: 'run',
  args: 'ID SIZE',
  summary: 'run a command under a reservation, in a memory cgroup limited to it',
  description: `Reserve SIZE for ID on this node (POST /v1/reservations, placement node:<this
node> unless --placement says otherwise), wait until the verdict is final
(GET /v1/reservations/ID; --tentative-ok skips the wait), then run CMD in a
memory cgroup of its own: hard limit SIZE (cgroup v2 memory.max, v1
memory.limit_in_bytes), protected minimum --min (v2 memory.min, v1
memory.soft_limit_in_bytes). The minimum is also the reservation's own (the
ledger's): when this node loses memory, the reservation may be shrunk toward it
before anything is evicted, and run lowers the cgroup's hard limit to the limit
in force. With --queue, a reservation that does not fit now waits in the log
(its position is shown) and CMD starts once it is admitted and final;
--queue-timeout D gives up after D. Its output is streamed as is; SIGINT, SIGTERM,
SIGHUP and SIGQUIT are passed on. When CMD exits, what is left in the cgroup is
killed, the cgroup removed and the reservation released (DELETE
/v1/reservations/ID, retried while the agent does not answer).

The agent reads the cgroup's usage, peak and OOM kills while CMD runs (run names
the cgroup to it: POST /v1/reservations/ID/usage), so 'memgossip reservations'
shows used vs reserved. An OOM kill inside the cgroup while its own limit ran
out is reported — here and by the agent (event, log, metric) — as the
reservation exceeding its limit (the offender), distinct from a process the
kernel killed while within its limit, or a command killed by a signal.
memgossip's lines go to stderr (--json: one JSON object).

Exit codes: CMD's exit code (128+N when killed by signal N); 1 the reservation
does not fit (or never can: NeverFits), is rejected, timed out in the queue, is not on this node, or is not final in time;
2 input error, a command that cannot start, or no memory cgroup can be made
here (the message says why and how to fix it); 3 agent unreachable before CMD
started. Nothing is written when run refuses.`,
  examples: [
    'memgossip run batch-7 2GiB -- ./nightly-import --full',
    'memgossip run web-1 512MiB --min 256MiB --priority 10 --tentative-ok -- node server.js',
    'memgossip run batch-8 4GiB --queue --queue-timeout 30m -- ./train'
  ],
  flags: {
    min: { type: 'string' as const, help: 'minimum, at most SIZE: the least the reservation may be shrunk to on capacity loss, and protected (cgroup v2 memory.min, v1 soft limit); default none' },
    queue: { type: 'boolean' as const, help: 'when it does not fit now, wait in the queue until it is admitted' },
    'queue-timeout': { type: 'string' as const, help: 'with --queue: give up after this long (e.g. 30m), by the ledger\'s stamps' },
    placement: { ...PLACEMENT_FLAG, help: `${PLACEMENT_FLAG.help ?? ''}; default node:<this node>. The command runs here, so the verdict must include this node` },
    priority: { type: 'string' as const, help: 'integer; on capacity loss lower priorities are evicted first (default 0)' },
    'tentative-ok': { type: 'boolean' as const, help: 'start CMD as soon as the verdict is admitted, final or not' },
    timeout: { type: 'string' as const, help: `wait this long for a final verdict (default ${DEFAULT_RUN_WAIT_MS / 1000}s), then release and exit 1` }
  }
}

/** The `run` entry of the command table. `--` separates run's arguments from CMD. */
export const run: { run: Command, summary: string } = {
  summary: SPEC.summary,
  run: async (argv, io) => {
    const sep = argv.indexOf('--')
    const own = sep < 0 ? argv : argv.slice(0, sep)
    const command = sep < 0 ? [] : argv.slice(sep + 1)
    if (own.includes('--help')) {
      io.stdout(helpText(SPEC).replace('[flags]', '[flags] -- CMD [ARGS…]').replace('--min VALUE', '--min SIZE'))
      return 0
    }
    if (sep < 0) {
      throw new UsageError("missing '-- CMD [ARGS…]' (usage: memgossip run ID SIZE [flags] -- CMD [ARGS…]; see --help)")
    }
    if (command.length === 0) throw new UsageError("missing CMD after '--'")
    return await clientCommand(SPEC, async (ctx) => await runUnderReservation(ctx, command)).run(own, io)
  }
}

interface RunInput {
  id: string
  /** SIZE as typed: the agent parses it with the same rules and echoes it in its answers. */
  sizeText: string
  bytes: number
  minBytes?: number
  placement?: string
  priority?: number
  queue: boolean
  queueTimeoutMs?: number
  tentativeOk: boolean
  timeoutMs: number
  argv: string[]
}

/** Check every input before anything is written; throws {@link UsageError}. */
async function checkInput (ctx: Context, command: string[]): Promise<RunInput> {
  const { positionals, flags, env } = ctx
  const [id, size] = positionals
  if (!RESERVATION_ID_PATTERN.test(id)) throw new UsageError(`ID: '${id}' must be 1-128 of letters, digits and . _ : / - (starting with a letter or digit)`)
  const bytes = sizeArg(size)
  if (bytes === 0) throw new UsageError('SIZE: a reservation of 0 bytes cannot hold a command')
  let minBytes: number | undefined
  if (flags.min !== undefined) {
    minBytes = sizeArg(flags.min as string, '--min')
    if (minBytes === 0) throw new UsageError('--min must be greater than zero')
    if (minBytes > bytes) throw new UsageError(`--min ${formatSize(minBytes)} is above SIZE ${formatSize(bytes)}: the minimum must be at most the limit`)
  }
  const queue = flags.queue === true
  if (flags['queue-timeout'] !== undefined && !queue) throw new UsageError('--queue-timeout only applies with --queue')
  const queueTimeoutMs = flags['queue-timeout'] !== undefined ? queueTimeoutArg(flags['queue-timeout'] as string) : undefined
  const placement = flags.placement as string | undefined
  await placementArg(placement)
  const priority = priorityArg(flags.priority as string | undefined)
  const tentativeOk = flags['tentative-ok'] === true
  if (flags.timeout !== undefined && tentativeOk) throw new UsageError('--timeout is the wait for a final verdict; it does not apply with --tentative-ok')
  const timeoutMs = flags.timeout !== undefined ? durationArg(flags.timeout as string, '--timeout') : DEFAULT_RUN_WAIT_MS
  await checkExecutable(command[0], env.PATH ?? process.env.PATH ?? '')
  return { id, sizeText: size, bytes, minBytes, placement, priority, queue, queueTimeoutMs, tentativeOk, timeoutMs, argv: command }
}

/**
 * The command must be startable before anything is reserved: the shell that
 * joins the cgroup would otherwise report "not found" as exit 127, which is
 * also an exit code a command may return.
 */
async function checkExecutable (name: string, searchPath: string): Promise<void> {
  const candidates = name.includes('/') ? [name] : searchPath.split(':').filter(d => d !== '').map(d => path.join(d, name))
  for (const file of candidates) {
    try {
      if (!(await stat(file)).isFile()) continue
      await access(file, fsConstants.X_OK)
      return
    } catch {}
  }
  throw new UsageError(name.includes('/')
    ? `cannot start '${name}': no such executable file`
    : `cannot start '${name}': not found in PATH (or not executable)`)
}

async function runUnderReservation (ctx: Context, command: string[]): Promise<number> {
  const { client, json, color, err } = ctx
  const input = await checkInput(ctx, command)
  const { id } = input

  // The cgroup first: a host that cannot enforce refuses before the ledger is touched.
  let cgroup: MemoryCgroup
  try {
    cgroup = await (await detectCgroupController()).create(id)
  } catch (error) {
    if (error instanceof CgroupError) {
      err(`memgossip run: cannot run '${id}' under a memory limit [${error.failure}]: ${error.message}\n`)
      return 2
    }
    throw error
  }

  let reserved = false
  const interrupt = new Interrupt()
  try {
    const health = await client.get<{ self: string }>('/healthz', [503])
    const self = health.body.self
    const placement = input.placement ?? `node:${self}`
    const bounds = { minBytes: input.minBytes, ...(input.queue ? { queue: true, queueTimeoutMs: input.queueTimeoutMs } : {}) }
    const request: ReserveRequestIn = { id, size: input.sizeText, placement, priority: input.priority, ...bounds }
    const answer = await client.post<ReserveAnswerJson | ErrorJson>('/v1/reservations', request, [409])
    if (answer.status === 409) {
      // 409 IdExists: input the user must change.
      const body = answer.body as ErrorJson
      err(`memgossip run: ${body.detail} [${body.error}]\n`)
      return 2
    }
    const made = answer.body as ReserveAnswerJson
    if (!made.written) {
      const head = made.code === 'NeverFits' ? 'never fits' : 'does not fit'
      err(json ? JSON.stringify(made) + '\n' : `${color.red(color.bold(head))}: '${id}' was not written, the command did not run\n${renderFit(made.answer, color)}`)
      return 1
    }
    reserved = true
    let verdict = made.verdict
    if (verdict === undefined) verdict = (await client.get<VerdictJson>(`/v1/reservations/${idPath(id)}`)).body

    if (verdict.status === 'queued') {
      // The queue: wait until the ledger admits it (or its queue timeout, or a withdrawal, decides otherwise).
      if (!json) err(`${renderVerdict(verdict, color)}memgossip run: '${id}' is queued (position ${verdict.queuePosition ?? '?'} of ${verdict.queueLength ?? '?'}); waiting for room${input.queueTimeoutMs !== undefined ? ` up to ${Math.round(input.queueTimeoutMs / 1000)}s` : ''} (Ctrl-C withdraws it)…\n`)
      verdict = await pollWhile(client, id, v => v.status === 'queued', Infinity, interrupt) ?? verdict
      if (interrupt.signal !== undefined) {
        err(`memgossip run: ${interrupt.signal} while queued; the command did not run\n`)
        return 128 + signalNumber(interrupt.signal)
      }
    }
    if (verdict.status === 'admitted' && !verdict.final && !input.tentativeOk) {
      if (!json) err(`memgossip run: waiting up to ${Math.round(input.timeoutMs / 1000)}s for the verdict of '${id}' to become final (--tentative-ok skips this)…\n`)
      verdict = await pollWhile(client, id, v => !v.final, input.timeoutMs, interrupt) ?? verdict
      if (interrupt.signal !== undefined) {
        err(`memgossip run: ${interrupt.signal} while waiting; the command did not run\n`)
        return 128 + signalNumber(interrupt.signal)
      }
      if (!verdict.final) {
        err(`${renderVerdict(verdict, color)}memgossip run: not final after ${Math.round(input.timeoutMs / 1000)}s (waits for ${verdict.waitsFor.join(', ')}); releasing it, the command did not run\n`)
        return 1
      }
    }
    if (verdict.status !== 'admitted') {
      err(`${renderVerdict(verdict, color)}memgossip run: '${id}' is ${verdict.status}; the command did not run\n`)
      return 1
    }
    if (!verdict.nodes.includes(self)) {
      err(`memgossip run: '${id}' was admitted on ${verdict.nodes.join(', ')}, not on this node (${self}); the command runs here, so it did not run (use the default placement, or node:${self})\n`)
      return 1
    }

    if (interrupt.signal !== undefined) {
      err(`memgossip run: ${interrupt.signal} before the command started; it did not run\n`)
      return 128 + signalNumber(interrupt.signal)
    }
    await cgroup.setLimits({ maxBytes: input.bytes, minBytes: input.minBytes })
    if (!json) {
      err(`memgossip run: '${id}' ${verdict.final ? 'admitted (final)' : 'admitted (tentative)'}: ${formatSize(input.bytes)}` +
        `${input.minBytes !== undefined ? `, minimum ${formatSize(input.minBytes)}` : ''}, cgroup v${cgroup.version} ${cgroup.dir}\n`)
    }
    // --- the ledger while CMD runs: it may shrink the reservation toward
    // --min (lower the cgroup's limit to match), or evict it (capacity loss,
    // the node's pressure ladder, the node evicted): once that is final the
    // memory is no longer CMD's, so CMD is stopped (docs/design.md "Enforcement").
    let evicted: VerdictJson | undefined
    const follower = new LimitFollower({
      initialBytes: input.bytes,
      minBytes: input.minBytes,
      read: async () => {
        const verdict = (await client.get<VerdictJson>(`/v1/reservations/${idPath(id)}`, [404])).body
        if (verdict?.status === 'evicted' && verdict.final && evicted === undefined) {
          evicted = verdict
          err(`memgossip run: '${id}' was evicted by the ledger (final): ${readableReason(verdict.reason)} [${verdict.code}]; stopping the command (SIGTERM, SIGKILL after ${EVICT_GRACE_MS / 1000} s)\n`)
          interrupt.stop(EVICT_GRACE_MS)
        }
        return verdict?.effectiveBytes
      },
      apply: async (limits) => { await cgroup.setLimits(limits) },
      onShrink: (from, to) => { err(`memgossip run: '${id}' was shrunk by the ledger (capacity loss on this node): cgroup limit ${formatSize(from)} → ${formatSize(to)}\n`) },
      onError: (error) => { err(`memgossip run: warning: could not follow the limit of '${id}': ${error.message}\n`) }
    })
    follower.start()
    // The agent reads the cgroup's usage and OOM kills from now on (docs/design.md "Enforcement").
    const outcome = await spawnInCgroup(cgroup, input.argv, interrupt, () => { void nameCgroup(client, id, cgroup.dir, err, json) }).finally(async () => { await follower.stop() })
    // ---
    if (outcome === 'not-joined') {
      err(`memgossip run: could not place the command in cgroup ${cgroup.dir} (see the shell's message above); it did not run\n`)
      return 2
    }
    const usage = await cgroup.usage()
    // A last reading by the agent before the cgroup goes, so an OOM kill at the very end is reported there too.
    await nameCgroup(client, id, cgroup.dir, err, json)
    const code = outcome.code ?? 128 + signalNumber(outcome.signal ?? 'SIGKILL')
    if (evicted !== undefined && !json) err(`memgossip run: the command of '${id}' was stopped because the reservation was evicted: ${readableReason(evicted.reason)}\n`)
    err(json ? JSON.stringify({ ...reportJson(id, input, outcome, usage, code), ...(evicted !== undefined ? { evicted: { code: evicted.code, reason: evicted.reason } } : {}) }) + '\n' : report(id, input.bytes, outcome, usage, code))
    return code
  } finally {
    interrupt.dispose()
    // Remove first: it kills what the command left behind, so the memory is
    // really free by the time the ledger says so.
    try {
      await cgroup.remove()
    } catch (error) {
      err(`memgossip run: warning: ${(error as Error).message}\n`)
    }
    if (reserved) await releaseWithRetries(client, id, err, json)
  }
}

type Outcome = { code: number | null, signal: NodeJS.Signals | null }

/** Spawn the joining shell with stdio inherited; resolves with how CMD ended, or 'not-joined'. */
async function spawnInCgroup (cgroup: MemoryCgroup, argv: string[], interrupt: Interrupt, joined: () => void): Promise<Outcome | 'not-joined'> {
  const child = spawn('/bin/sh', ['-c', JOIN_SCRIPT, 'memgossip-run', cgroup.procsFile, ...argv], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'] })
  const exited = new Promise<Outcome>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  let said = ''
  const status = child.stdio[3] as NodeJS.ReadableStream
  status.on('data', (d: Buffer) => { said += d.toString() })
  await new Promise<void>(resolve => { status.once('close', resolve); status.once('end', resolve) })
  if (!said.includes('joined')) {
    await exited.catch(() => {})
    return 'not-joined'
  }
  interrupt.forwardTo(child.pid)
  joined()
  return await exited
}

/**
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT while run is in charge: before CMD starts they
 * end the wait (and run cleans up); once it runs they are passed to it, and run
 * stays until it exits, to report and release. A Ctrl-C on a terminal reaches
 * CMD from the terminal too (same process group); it may see SIGINT twice.
 */
class Interrupt {
  signal?: NodeJS.Signals
  private pid?: number
  private killTimer?: ReturnType<typeof setTimeout>
  private readonly handlers = new Map<NodeJS.Signals, () => void>()

  constructor () {
    for (const s of FORWARDED) {
      const handler = (): void => {
        this.signal ??= s
        if (this.pid !== undefined) {
          try { process.kill(this.pid, s) } catch {}
        }
      }
      this.handlers.set(s, handler)
      process.on(s, handler)
    }
  }

  /** From now on pass signals to `pid`; one that came while it was starting is passed at once. */
  forwardTo (pid: number | undefined): void {
    this.pid = pid
    if (pid !== undefined && this.signal !== undefined) {
      try { process.kill(pid, this.signal) } catch {}
    }
  }

  /** Stop the command: SIGTERM now, SIGKILL after `graceMs` if it is still running. */
  stop (graceMs: number): void {
    const pid = this.pid
    if (pid === undefined) return
    try { process.kill(pid, 'SIGTERM') } catch {}
    this.killTimer = setTimeout(() => { try { process.kill(pid, 'SIGKILL') } catch {} }, graceMs)
    this.killTimer.unref()
  }

  dispose (): void {
    if (this.killTimer !== undefined) clearTimeout(this.killTimer)
    for (const [s, handler] of this.handlers) process.off(s, handler)
  }
}

/** GET /v1/reservations/:id while `waiting(verdict)`, until the deadline or a signal; the last verdict seen. */
async function pollWhile (client: ApiClient, id: string, waiting: (v: VerdictJson) => boolean, timeoutMs: number, interrupt: Interrupt): Promise<VerdictJson | undefined> {
  const deadline = Date.now() + timeoutMs
  let latest: VerdictJson | undefined
  for (;;) {
    const { status, body } = await client.get<VerdictJson>(`/v1/reservations/${idPath(id)}`, [404])
    if (status === 200) latest = body
    if ((latest !== undefined && !waiting(latest)) || interrupt.signal !== undefined || Date.now() >= deadline) return latest
    await new Promise(resolve => setTimeout(resolve, Math.min(FINAL_POLL_MS, Math.max(0, deadline - Date.now()))))
  }
}

/**
 * POST /v1/reservations/:id/usage: name the cgroup to the agent, which reads
 * it now and at every sample. Enforcement does not depend on it, so a failure
 * is a warning only.
 */
async function nameCgroup (client: ApiClient, id: string, dir: string, err: (s: string) => void, quiet: boolean): Promise<void> {
  try {
    const request: UsageRequestIn = { cgroup: dir }
    const answer = await client.post<UsageReadingJson | ErrorJson>(`/v1/reservations/${idPath(id)}/usage`, request, [400, 404])
    if (answer.status !== 200 && !quiet) err(`memgossip run: warning: the agent does not watch the usage of '${id}': ${(answer.body as ErrorJson).detail}\n`)
  } catch (error) {
    if (!quiet) err(`memgossip run: warning: could not name the cgroup of '${id}' to the agent: ${(error as Error).message}\n`)
  }
}

/**
 * DELETE /v1/reservations/:id, retried while the agent does not answer. The
 * command has ended either way; an unreleased reservation keeps its memory
 * booked, so say so plainly with the command that fixes it.
 */
async function releaseWithRetries (client: ApiClient, id: string, err: (s: string) => void, quiet: boolean): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      const { status } = await client.delete(`/v1/reservations/${idPath(id)}`, [404])
      if (status === 404) err(`memgossip run: '${id}' was already gone from the agent's ledger\n`)
      else if (!quiet) err(`memgossip run: released '${id}'\n`)
      return true
    } catch (error) {
      if (!(error instanceof ClientError) || error.exitCode !== 3) {
        err(`memgossip run: could not release '${id}': ${(error as Error).message}; run 'memgossip release ${id}'\n`)
        return false
      }
      if (attempt >= RELEASE_RETRY_DELAYS_MS.length) {
        err(`memgossip run: could not release '${id}': the agent at ${client.api} did not answer after ${attempt + 1} attempts; ` +
          `its memory stays booked until you run 'memgossip release ${id}' once the agent is back\n`)
        return false
      }
      err(`memgossip run: the agent at ${client.api} does not answer; retrying the release of '${id}' in ${RELEASE_RETRY_DELAYS_MS[attempt] / 1000}s\n`)
      await new Promise(resolve => setTimeout(resolve, RELEASE_RETRY_DELAYS_MS[attempt]))
    }
  }
}

function signalNumber (signal: NodeJS.Signals): number {
  return os.constants.signals[signal] ?? 0
}

function peakText (usage: CgroupUsage): string {
  return usage.peakBytes !== undefined ? `peak ${formatSize(usage.peakBytes)}` : 'peak unknown (not reported by this kernel)'
}

/** `peak 12.00 MiB of 64.00 MiB`, or the limit alone when the kernel reports no peak. */
function peakOf (usage: CgroupUsage, limit: string): string {
  return usage.peakBytes !== undefined ? `peak ${formatSize(usage.peakBytes)} of ${limit}` : `limit ${limit}, peak not reported by this kernel`
}

/**
 * The closing lines. An OOM kill counted inside the reservation's own cgroup
 * makes the reservation the offender; a signal without one is not its doing.
 */
export function report (id: string, limitBytes: number, outcome: Outcome, usage: CgroupUsage, code: number): string {
  const limit = formatSize(limitBytes)
  const how = outcome.signal !== null ? `killed by ${outcome.signal}` : `exited ${outcome.code ?? '?'}`
  const ended = outcome.signal !== null ? `was ${how}` : `${how} after a process of it was OOM-killed`
  // The same rule the agent reports OOM kills by (agent/usage.ts).
  const oom = oomKillsSince(undefined, usage)
  if (oom?.cause === 'host') {
    return `memgossip run: ${usage.oomKills} process(es) of reservation ${id} were OOM-killed while within its limit of ${limit} ` +
      `(${peakText(usage)}, its own limit never ran out): the host or a parent cgroup ran out of memory; this reservation was a bystander. ` +
      `The command ${ended} (exit ${code}).\n`
  }
  if (oom?.cause === 'limit') {
    return `memgossip run: reservation ${id} exceeded its limit of ${limit}: OOM kill inside its cgroup, ${peakText(usage)}, ` +
      `${usage.oomKills} process(es) killed${usage.limitHits > 0 ? `, limit hit ${usage.limitHits} time(s)` : ''}; the command ${ended} (exit ${code}). ` +
      `It is the offender: reserve more (memgossip run ${id} SIZE) or make it use less.\n`
  }
  if (outcome.signal !== null) {
    const bystander = outcome.signal === 'SIGKILL'
      ? ' If the kernel\'s OOM killer sent it, the host or a parent cgroup ran out of memory: this reservation was a bystander.'
      : ''
    return `memgossip run: the command was ${how} while within its limit (${peakOf(usage, limit)}, no OOM kill inside its cgroup; exit ${code}).${bystander}\n`
  }
  return usage.peakBytes !== undefined
    ? `memgossip run: the command ${how}; peak ${formatSize(usage.peakBytes)} of ${limit} reserved\n`
    : `memgossip run: the command ${how}; ${limit} reserved (this kernel reports no peak)\n`
}

function reportJson (id: string, input: RunInput, outcome: Outcome, usage: CgroupUsage, code: number): Record<string, unknown> {
  return {
    id,
    limitBytes: input.bytes,
    minBytes: input.minBytes,
    exitCode: code,
    signal: outcome.signal ?? undefined,
    exceededLimit: oomKillsSince(undefined, usage)?.cause === 'limit',
    usage
  }
}
