/**
 * Crash loop (docs/design.md "Durability": a crash at any point, kill -9, loses
 * nothing that was acknowledged, and the persisted file is never left
 * unreadable).
 *
 *   npx tsx simulations/reliability/crash-loop.ts --kills K [--seed S] [--nodes 3] [--keep]
 *
 * With --keep, the data dirs stay, and each agent start's output is in
 * `agent-<i>.<n>.log` beside them.
 *
 * Starts N agents as child processes (real libp2p over TCP on 127.0.0.1, real
 * data dirs with fsync, `--fake-memory`), then K times: fires a burst of
 * reservations at agent 1 (8 in flight), SIGKILLs it at a seeded random moment
 * of the burst, and restarts it from its data dir. Every id answered 201 is
 * recorded. At the end the cluster must converge (equal verdictsDigest on every
 * agent) and every acknowledged id must be admitted on every agent.
 *
 * With `--compact-after N` (docs/design.md "Compaction: epochs") the agents
 * move to a new epoch every N ended reservations, the burst releases most of
 * what it reserved, and each kill lands 0–20 ms after agent 1 logs that it
 * moved to an epoch — while it writes the new epoch's snapshot and starts its
 * log — or, when no move comes within 30 s (MOVE_WAIT_MS), then. Then, besides every acknowledged reservation admitted on
 * every agent, every acknowledged release must stay released.
 *
 * Prints progress on stderr and one JSON summary on stdout:
 *   { kills, acknowledged, checked, lost, restartFailures, seed, ... }
 * Exit code 1 when anything acknowledged was lost or a restart failed (the data
 * dir did not load); a failing run is reproduced with its --seed.
 *
 * Agents are started by the shared launcher (simulations/support/agent-process.ts)
 * as `node --import tsx cli/main.ts agent …` rather than `npx tsx …`: `tsx`
 * and `npx` are wrapper processes, and a SIGKILL sent to a wrapper cannot be
 * relayed, so it would not kill the agent.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { numberFlag, parseArgs, UsageError, type FlagSpec } from '../../cli/args.ts'
import { startAgentProcess, type AgentProcess } from '../support/agent-process.ts'
import { httpJson, scrapeMetrics } from '../support/http.ts'
import { seededRandom } from '../support/random.ts'
import { sleep } from '../support/wait.ts'

/** Reservations in flight at once during a burst. */
const CONCURRENCY = 8
/** How long an agent may take to write agent.json and answer /healthz. */
const START_TIMEOUT_MS = 45_000
/** How long the cluster may take to agree after the last restart. */
const CONVERGE_TIMEOUT_MS = 45_000
/** Each reservation is small against the fake 256 GiB hosts: admission never says no. */
const RESERVATION_BYTES = 1024 * 1024
/**
 * With compaction, how long a round waits for the victim's next move to an
 * epoch before killing it anyway. A move takes 2–5 s on a quiet machine
 * (proposal, stable cut, move); under the full test suite on 2 cores two
 * rounds of one run took over 15 s.
 */
const MOVE_WAIT_MS = 30_000

export interface CrashLoopOptions {
  kills: number
  seed: number
  nodes: number
  keep?: boolean
  /** Move to a new epoch every this many ended reservations, and kill during the moves. */
  compactAfter?: number
  log?: (line: string) => void
}

export interface CrashLoopSummary {
  kills: number
  acknowledged: number
  /** (acknowledged ids) × (agents) lookups made at the end. */
  checked: number
  /** Acknowledged ids missing, or not admitted, on at least one agent. */
  lost: number
  restartFailures: number
  seed: number
  nodes: number
  /** Requests sent to agent 1 (answered or cut by a kill). */
  attempted: number
  /** Requests cut by a kill (connection reset, refused): never acknowledged. */
  cut: number
  /** Restarts whose log reported a torn log tail cut away (expected after kill -9). */
  tornTails: number
  convergedMs: number
  durationMs: number
  lostIds: string[]
  /** With `compactAfter`: releases acknowledged, kills that landed right after an epoch line, epochs at the end per agent, released ids found admitted. */
  releasesAcknowledged?: number
  killsDuringMoves?: number
  epochs?: number[]
  revived?: number
}

interface Child extends AgentProcess {
  index: number
}

class CrashLoopError extends Error {
  override readonly name = 'CrashLoopError'
}

/** Start one agent (simulations/support/agent-process.ts); resolves once it wrote agent.json and /healthz answers 200. */
let starts = 0
/** With `logs`, each start's output goes to `<dataDir>.<n>.log` beside the data dir (kept with --keep). */
async function startChild (index: number, dataDir: string, bootstrap: string[], compactAfter?: number, logs = false): Promise<Child> {
  const extraArgs = compactAfter !== undefined ? ['--compact-after', String(compactAfter)] : []
  const logFile = logs ? `${dataDir}.${++starts}.log` : undefined
  const agent = await startAgentProcess({ dataDir, cluster: 'crash', fakeMemory: '256GiB', bootstrap, healthy: true, timeoutMs: START_TIMEOUT_MS, extraArgs, logFile })
  return Object.assign(agent, { index })
}

/**
 * Where finality stands on each agent, for a round that saw no move to an
 * epoch (a move needs a stable cut, and so final verdicts): each agent's
 * completeness line and watermark, and the first verdicts still tentative
 * there with the members they wait for.
 */
async function finalityLines (children: Child[]): Promise<string[]> {
  const lines: string[] = []
  for (const child of children) {
    const state = await httpJson(`${child.api}/v1/state`, { timeoutMs: 5000 }).catch(() => undefined)
    const list = await httpJson(`${child.api}/v1/reservations`, { timeoutMs: 5000 }).catch(() => undefined)
    const tentative = ((list?.body?.reservations ?? []) as Array<{ id: string, status: string, final: boolean, waitingOn?: string, waitsFor?: string[] }>).filter(v => !v.final)
    lines.push(`crash-loop:   agent ${child.index} (${String(state?.body?.self).slice(-6)}): seen ${state?.body?.seen}, watermark ${state?.body?.watermark}, ${tentative.length} tentative` +
      tentative.slice(0, 2).map(v => `; ${v.id} ${v.status} waits on ${v.waitingOn} of ${(v.waitsFor ?? []).map(n => n.slice(-6)).join(', ')}`).join(''))
  }
  return lines
}

/**
 * Reservations at `api`, CONCURRENCY in flight, until `stop()` is true or the
 * agent stops answering. Returns the ids answered 201 and how many were cut.
 */
async function burst (api: string, prefix: string, stop: () => boolean, churn?: { released: string[] }): Promise<{ acked: string[], attempted: number, cut: number, other: Map<number, number> }> {
  const acked: string[] = []
  const other = new Map<number, number>()
  let attempted = 0
  let cut = 0
  let n = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (!stop()) {
      const id = `${prefix}-${n++}`
      attempted++
      try {
        const response = await httpJson(`${api}/v1/reservations`, { body: { id, bytes: RESERVATION_BYTES, placement: 'any' }, timeoutMs: 10_000 })
        if (response.status === 201) acked.push(id)
        else other.set(response.status, (other.get(response.status) ?? 0) + 1)
        // Churn: release most of what was reserved, so epochs come.
        if (churn !== undefined && acked.length > 4) {
          const victim = acked.splice(Math.floor(acked.length / 2), 1)[0]
          const released = await httpJson(`${api}/v1/reservations/${encodeURIComponent(victim)}`, { method: 'DELETE', timeoutMs: 10_000 })
          if (released.status === 200) churn.released.push(victim)
          else acked.push(victim)
        }
      } catch {
        // Connection reset or refused: the kill landed. Not acknowledged.
        cut++
        return
      }
    }
  }))
  return { acked, attempted, cut, other }
}

async function digestsOf (children: Child[]): Promise<string[]> {
  return await Promise.all(children.map(async c => {
    try {
      const r = await httpJson(`${c.api}/v1/state`, { timeoutMs: 5000 })
      return r.status === 200 ? String(r.body.verdictsDigest) : `status ${r.status}`
    } catch (error) {
      return `unreachable: ${(error as Error).message}`
    }
  }))
}

export async function runCrashLoop (options: CrashLoopOptions): Promise<CrashLoopSummary> {
  const log = options.log ?? ((line: string) => { process.stderr.write(`${line}\n`) })
  const random = seededRandom(options.seed)
  const started = Date.now()
  const base = await mkdtemp(join(tmpdir(), 'memgossip-crash-'))
  const dirs = Array.from({ length: options.nodes }, (_, i) => join(base, `agent-${i + 1}`))
  const children: Child[] = []
  const acknowledged: string[] = []
  let attempted = 0
  let cut = 0
  let restartFailures = 0
  let tornTails = 0
  let kills = 0
  let killsDuringMoves = 0
  const released: string[] = []
  log(`crash-loop: seed ${options.seed} (replay: --seed ${options.seed}), ${options.nodes} agents, ${options.kills} kills, data under ${base}`)
  try {
    const compactAfter = options.compactAfter
    children.push(await startChild(1, dirs[0], [], compactAfter, options.keep))
    children.push(...await Promise.all(dirs.slice(1).map(async (dir, i) => await startChild(i + 2, dir, children[0].multiaddrs, compactAfter, options.keep))))
    // Writes on agent 1 need it joined; the others join through it.
    const joinDeadline = Date.now() + START_TIMEOUT_MS
    while ((await Promise.all(children.map(async c => (await httpJson(`${c.api}/v1/state`, { timeoutMs: 5000 })).body.joined === true))).includes(false)) {
      if (Date.now() > joinDeadline) throw new CrashLoopError('agents did not all join within the start timeout')
      await sleep(200)
    }
    log(`crash-loop: ${children.length} agents up and joined (${Date.now() - started} ms)`)

    for (let round = 1; round <= options.kills; round++) {
      const victim = children[0]
      // Kill somewhere in the first 50–1500 ms of the burst: mid-append, mid-fsync, mid-reply.
      // With compaction: 0–20 ms after the victim logs a move to an epoch.
      let killAfterMs = 50 + Math.floor(random() * 1450)
      let killed = false
      const roundStart = Date.now()
      const linesBefore = victim.log.length
      const killer = compactAfter === undefined
        ? sleep(killAfterMs).then(() => { victim.child.kill('SIGKILL'); killed = true })
        : (async () => {
            const deadline = Date.now() + MOVE_WAIT_MS
            while (Date.now() < deadline && !victim.log.slice(linesBefore).some(l => /epoch: moved to epoch/.test(l))) await sleep(2)
            if (Date.now() < deadline) killsDuringMoves++
            else {
              log(`crash-loop: round ${round}: no move to an epoch within ${MOVE_WAIT_MS / 1000} s; killing anyway`)
              for (const line of await finalityLines(children)) log(line)
            }
            await sleep(Math.floor(random() * 20))
            killAfterMs = Date.now() - roundStart
            victim.child.kill('SIGKILL')
            killed = true
          })()
      const result = await burst(victim.api, `crash-${options.seed}-r${round}`, () => killed, compactAfter !== undefined ? { released } : undefined)
      await killer
      await victim.exited
      kills++
      attempted += result.attempted
      cut += result.cut
      acknowledged.push(...result.acked)
      const others = [...result.other].map(([s, n]) => `${n}×${s}`).join(', ')
      log(`crash-loop: kill ${round}/${options.kills} after ${killAfterMs} ms: ${result.acked.length} acknowledged, ${result.cut} cut${others !== '' ? `, other answers ${others}` : ''} (total acknowledged ${acknowledged.length})`)

      // Restart from the same data dir, bootstrapping from the survivors (its port changes).
      const peers = children.slice(1).flatMap(c => c.multiaddrs)
      let restarted: Child | undefined
      for (let attempt = 1; attempt <= 2 && restarted === undefined; attempt++) {
        try {
          restarted = await startChild(1, victim.dataDir, peers, compactAfter, options.keep)
        } catch (error) {
          restartFailures++
          log(`crash-loop: RESTART FAILED (attempt ${attempt}): ${(error as Error).message}`)
        }
      }
      if (restarted === undefined) throw new CrashLoopError(`agent 1 could not be restarted from ${victim.dataDir} after kill ${round}`)
      children[0] = restarted
      if (restarted.log.some(l => /torn tail/.test(l))) tornTails++
      const unreadable = restarted.log.filter(l => /unreadable record/.test(l))
      if (unreadable.length > 0) log(`crash-loop: WARNING restart logged ${unreadable.length} unreadable record(s): ${unreadable[0]}`)
    }

    // Convergence: every agent holds the same verdicts.
    const convergeStart = Date.now()
    let digests = await digestsOf(children)
    while (new Set(digests).size !== 1) {
      if (Date.now() - convergeStart > CONVERGE_TIMEOUT_MS) {
        log(`crash-loop: agents did not converge within ${CONVERGE_TIMEOUT_MS} ms: ${digests.join(' ')}`)
        break
      }
      await sleep(250)
      digests = await digestsOf(children)
    }
    const convergedMs = Date.now() - convergeStart
    log(`crash-loop: ${new Set(digests).size === 1 ? `converged in ${convergedMs} ms` : 'NOT converged'}; checking ${acknowledged.length} acknowledged ids on ${children.length} agents`)

    // Every acknowledged id, on every agent: present and admitted.
    let checked = 0
    const lostIds = new Set<string>()
    for (const child of children) {
      for (let i = 0; i < acknowledged.length; i += 16) {
        await Promise.all(acknowledged.slice(i, i + 16).map(async id => {
          checked++
          const r = await httpJson(`${child.api}/v1/reservations/${encodeURIComponent(id)}`, { timeoutMs: 5000 }).catch(() => ({ status: 0, body: undefined }))
          if (r.status !== 200 || r.body?.status !== 'admitted') {
            log(`crash-loop: LOST ${id} on agent ${child.index}: ${r.status} ${JSON.stringify(r.body)?.slice(0, 200)}`)
            lostIds.add(id)
          }
        }))
      }
    }
    // Every acknowledged release, on every agent: not admitted again.
    let revived = 0
    for (const child of options.compactAfter !== undefined ? children : []) {
      for (let i = 0; i < released.length; i += 16) {
        await Promise.all(released.slice(i, i + 16).map(async id => {
          const r = await httpJson(`${child.api}/v1/reservations/${encodeURIComponent(id)}`, { timeoutMs: 5000 }).catch(() => ({ status: 0, body: undefined }))
          if (r.status === 200 && r.body?.status === 'admitted') {
            revived++
            log(`crash-loop: RELEASED ${id} is admitted again on agent ${child.index}`)
          }
        }))
      }
    }
    const epochs = options.compactAfter !== undefined
      ? await Promise.all(children.map(async c => (await scrapeMetrics(c.api)).get('memgossip_epoch') ?? NaN))
      : undefined
    return {
      ...(options.compactAfter !== undefined ? { releasesAcknowledged: released.length, killsDuringMoves, epochs, revived } : {}),
      kills,
      acknowledged: acknowledged.length,
      checked,
      lost: lostIds.size,
      restartFailures,
      seed: options.seed,
      nodes: options.nodes,
      attempted,
      cut,
      tornTails,
      convergedMs: new Set(digests).size === 1 ? convergedMs : -1,
      durationMs: Date.now() - started,
      lostIds: [...lostIds].slice(0, 50)
    }
  } finally {
    await Promise.all(children.map(async c => { await c.stop('SIGTERM', 10_000) }))
    if (options.keep !== true) await rm(base, { recursive: true, force: true })
    else log(`crash-loop: data kept in ${base}`)
  }
}

const CRASH_LOOP_USAGE = 'Usage: npx tsx simulations/reliability/crash-loop.ts --kills K [--seed S] [--nodes 3] [--compact-after N] [--keep]\n'

const CRASH_LOOP_FLAGS: Record<string, FlagSpec> = {
  kills: { type: 'string' },
  seed: { type: 'string' },
  nodes: { type: 'string' },
  'compact-after': { type: 'string' },
  keep: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
}

async function main (argv: string[]): Promise<number> {
  let kills: number, seed: number, nodes: number, keep: boolean, compactAfter: number | undefined
  try {
    const { positionals, flags } = parseArgs(argv, CRASH_LOOP_FLAGS)
    if (flags.help === true) {
      process.stdout.write(CRASH_LOOP_USAGE)
      return 0
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
    kills = numberFlag(flags, 'kills', { integer: true, min: 1 }) ?? 5
    seed = numberFlag(flags, 'seed', { integer: true }) ?? Date.now() % 2 ** 31
    nodes = numberFlag(flags, 'nodes', { integer: true, min: 2 }) ?? 3
    keep = flags.keep === true
    compactAfter = numberFlag(flags, 'compact-after', { integer: true, min: 1 })
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`crash-loop: ${error.message}\n${CRASH_LOOP_USAGE}`)
    return 2
  }
  const summary = await runCrashLoop({ kills, seed, nodes, keep, compactAfter })
  process.stdout.write(JSON.stringify(summary) + '\n')
  if (summary.lost > 0 || summary.restartFailures > 0 || (summary.revived ?? 0) > 0) {
    process.stderr.write(`crash-loop: FAILED (lost ${summary.lost}, restart failures ${summary.restartFailures}); replay with --seed ${summary.seed}\n`)
    return 1
  }
  return 0
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, (error: unknown) => {
    process.stderr.write(`crash-loop: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  })
}
