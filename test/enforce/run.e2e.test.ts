/**
 * `memgossip run` end to end: a real agent (child process), the CLI as a real
 * process, and the host's real memory cgroups (the v1 memory controller on the
 * project's machine; v2 where the host has it). Needs a memory cgroup this
 * process may create children in (root, or a delegated scope); where none can
 * be made the cgroup tests are skipped with a message saying why.
 */
import { spawnSync } from 'node:child_process'
import { access } from 'node:fs/promises'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cgroupName, detectCgroupController } from '../../agent/cgroup.ts'
import { getJson, REPO, runCli, spawnCli, startChildAgent, stopAgents, waitFor, type ChildAgent } from '../cli/procs.ts'
import { whyNoCgroups } from './cgroups.ts'


const noCgroups = await whyNoCgroups('run')
if (noCgroups !== undefined) {
  console.log(`test/enforce/run.e2e: skipping the tests that need real cgroups, none can be created here (${noCgroups})`)
}

/** Fills 10 MiB buffers until 400 MiB: far beyond a 64 MiB reservation. */
const HOG = 'const a = []; for (let i = 0; i < 40; i++) a.push(Buffer.alloc(10 * 1024 * 1024, 1)); console.log("hog survived")'

let agent: ChildAgent
let cgroupParent: string | undefined

beforeAll(async () => {
  agent = await startChildAgent()
  if (noCgroups === undefined) cgroupParent = (await detectCgroupController()).parentDir
})
afterAll(async () => {
  await stopAgents([agent])
})

const verdictOf = async (id: string): Promise<any> => await getJson(`${agent.api}/v1/reservations/${encodeURIComponent(id)}`)
const gone = async (file: string): Promise<boolean> => await access(file).then(() => false, () => true)

describe.skipIf(noCgroups !== undefined)('memgossip run with real cgroups', () => {
  it('(a) a command that allocates beyond its reservation is OOM-killed in its cgroup, named the offender, and released', async () => {
    const r = await runCli(['run', 'e2e-oom', '64MiB', '--tentative-ok', '--api', agent.api, '--', process.execPath, '-e', HOG])
    expect(r.code, r.stderr).not.toBe(0)
    expect(r.code).toBe(137)
    expect(r.stdout).not.toContain('hog survived')
    expect(r.stderr).toMatch(/reservation e2e-oom exceeded its limit of 64\.00 MiB: OOM kill inside its cgroup, peak \d+\.\d\d [KMG]iB/)
    expect(r.stderr).toContain('offender')
    expect(r.stderr).toContain("released 'e2e-oom'")
    expect((await verdictOf('e2e-oom')).status).toBe('released')
    expect(await gone(path.join(cgroupParent!, cgroupName('e2e-oom')))).toBe(true)
  })

  it('(b) a command within its limit runs in the cgroup, streams its output, exits 0 and is released', async () => {
    const r = await runCli(['run', 'e2e-ok', '64MiB', '--min', '16MiB', '--tentative-ok', '--api', agent.api, '--',
      'sh', '-c', 'head -c 16M /dev/zero | wc -c; grep -E "memory|^0::" /proc/self/cgroup'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('16777216')
    // The command ran inside the reservation's own cgroup.
    expect(r.stdout).toContain(cgroupName('e2e-ok'))
    expect(r.stderr).toMatch(/the command exited 0; peak .* of 64\.00 MiB reserved/)
    expect(r.stderr).not.toContain('exceeded')
    expect((await verdictOf('e2e-ok')).status).toBe('released')
    expect(await gone(path.join(cgroupParent!, cgroupName('e2e-ok')))).toBe(true)
  })

  it('passes the exit code through', async () => {
    const r = await runCli(['run', 'e2e-exit', '64MiB', '--tentative-ok', '--api', agent.api, '--', 'sh', '-c', 'exit 7'])
    expect(r.code, r.stderr).toBe(7)
    expect((await verdictOf('e2e-exit')).status).toBe('released')
  })

  it('passes SIGTERM on; a command killed by a signal within its limit is not called the offender', async () => {
    const { proc, done } = spawnCli(['run', 'e2e-sig', '64MiB', '--tentative-ok', '--api', agent.api, '--', 'sh', '-c', 'echo started; exec sleep 30'])
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor('the command to start', () => out.includes('started'), 30_000)
    proc.kill('SIGTERM')
    const r = await done
    expect(r.code, r.stderr).toBe(143)
    expect(r.stderr).toMatch(/killed by SIGTERM while within its limit \(peak .* of 64\.00 MiB, no OOM kill inside its cgroup/)
    expect(r.stderr).not.toContain('offender')
    expect((await verdictOf('e2e-sig')).status).toBe('released')
  })

  it.skipIf(process.getuid?.() !== 0 || spawnSync('runuser', ['--help']).error !== undefined)(
    'refuses, as a user without a delegated cgroup, with PermissionDenied and the fix, exit 2, writing nothing', async () => {
      const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, '--import', 'tsx', 'cli/main.ts',
        'run', 'e2e-nobody', '64MiB', '--api', agent.api, '--', 'true'], { cwd: REPO, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } })
      expect(r.status, r.stderr).toBe(2)
      expect(r.stderr).toMatch(/cannot run 'e2e-nobody' under a memory limit \[PermissionDenied\]: .*not root.*systemd-run --user --scope -p Delegate=yes/)
      expect((await verdictOf('e2e-nobody')).error).toBe('NotFound')
    })

  it('when the agent goes away while the command runs: the command finishes, the release is retried and the message says what to do', async () => {
    const lonely = await startChildAgent()
    try {
      const { proc, done } = spawnCli(['run', 'e2e-orphan', '64MiB', '--tentative-ok', '--api', lonely.api, '--', 'sh', '-c', 'echo started; sleep 2; echo finished'])
      let out = ''
      proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
      await waitFor('the command to start', () => out.includes('started'), 30_000)
      await lonely.stop()
      const r = await done
      expect(r.code, r.stderr).toBe(0)
      expect(out).toContain('finished')
      expect(r.stderr).toContain('retrying the release of')
      expect(r.stderr).toMatch(/could not release 'e2e-orphan': the agent at .* did not answer after 4 attempts; its memory stays booked until you run 'memgossip release e2e-orphan'/)
      expect(await gone(path.join(cgroupParent!, cgroupName('e2e-orphan')))).toBe(true)
    } finally {
      await stopAgents([lonely])
    }
  })

  it('refuses a reservation that can never fit (NeverFits) with the fit answer and exit 1, writing nothing, --queue or not', async () => {
    for (const queue of [[], ['--queue']]) {
      const r = await runCli(['run', 'e2e-big', '9GiB', ...queue, '--api', agent.api, '--', 'true'])
      expect(r.code).toBe(1)
      expect(r.stderr).toContain("never fits: 'e2e-big' was not written")
      expect(r.stderr).toMatch(/never fits: needs 9\.00 GiB on node \S+, whose allocatable memory is 7\.60 GiB/)
      expect((await getJson(`${agent.api}/v1/reservations/e2e-big`)).error).toBe('NotFound')
    }
  })

  it('--queue: waits with its position while another run holds the memory, starts at that one\'s release, and is released in turn', async () => {
    const hold = spawnCli(['run', 'e2e-hold', '7GiB', '--tentative-ok', '--api', agent.api, '--', 'sh', '-c', 'echo holding; sleep 4'])
    let held = ''
    hold.proc.stdout!.on('data', (d: Buffer) => { held += d.toString() })
    await waitFor('the holder to start', () => held.includes('holding'), 30_000)
    const waiter = spawnCli(['run', 'e2e-waiter', '2GiB', '--queue', '--tentative-ok', '--api', agent.api, '--', 'sh', '-c', 'echo waiter ran'])
    let said = ''
    waiter.proc.stderr!.on('data', (d: Buffer) => { said += d.toString() })
    await waitFor('the waiter queued', () => said.includes("'e2e-waiter' is queued (position 1 of 1)"), 30_000)
    expect(await verdictOf('e2e-waiter')).toMatchObject({ status: 'queued', queuePosition: 1 })
    expect((await hold.done).code).toBe(0)
    const w = await waiter.done
    expect(w.code, w.stderr).toBe(0)
    expect(w.stdout).toContain('waiter ran')
    const v = await verdictOf('e2e-waiter')
    expect(v).toMatchObject({ status: 'released', decision: 'admitted' })
    expect(v.admittedHlc).toBe((await verdictOf('e2e-hold')).endedHlc)
  })
})

describe('memgossip run input errors (exit 2, nothing written)', () => {
  it.each([
    ['no --', ['run', 'e-1', '64MiB'], /missing '-- CMD/],
    ['nothing after --', ['run', 'e-1', '64MiB', '--'], /missing CMD/],
    ['bad size', ['run', 'e-1', '64Mb', '--', 'true'], /SIZE: unknown unit 'Mb'/],
    ['min above size', ['run', 'e-1', '64MiB', '--min', '128MiB', '--', 'true'], /--min 128\.00 MiB is above SIZE 64\.00 MiB/],
    ['queue timeout without --queue', ['run', 'e-1', '64MiB', '--queue-timeout', '1m', '--', 'true'], /--queue-timeout only applies with --queue/],
    ['queue timeout without a unit', ['run', 'e-1', '64MiB', '--queue', '--queue-timeout', '60', '--', 'true'], /--queue-timeout: '60' is not a duration with a unit/],
    ['unknown flag', ['run', 'e-1', '64MiB', '--memory', '1GiB', '--', 'true'], /unknown flag --memory/],
    ['a command that cannot start', ['run', 'e-1', '64MiB', '--', 'no-such-command-xyz'], /cannot start 'no-such-command-xyz'/],
    ['bad priority', ['run', 'e-1', '64MiB', '--priority', 'high', '--', 'true'], /--priority: 'high' is not an integer/],
    ['bad id', ['run', 'bad$id', '64MiB', '--', 'true'], /ID: 'bad\$id' must be/],
    // The shared parser (cli/args.ts) takes a flag-looking ID for a flag, and names it.
    ['an id that looks like a flag', ['run', '-x', '64MiB', '--', 'true'], /unknown flag -x/]
  ])('%s', async (_name, argv, message) => {
    const r = await runCli([...argv.slice(0, 3), '--api', agent.api, ...argv.slice(3)])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toMatch(message)
    expect(r.stdout).toBe('')
    const list = await getJson(`${agent.api}/v1/reservations`)
    expect(list.reservations.map((v: { id: string }) => v.id)).not.toContain('e-1')
  })
})
