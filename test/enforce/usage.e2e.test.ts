/**
 * Usage per reservation end to end (docs/design.md "Enforcement"): a real
 * agent (child process), `memgossip run` as a real process, and the host's
 * real memory cgroups (the v1 memory controller on the project's machine).
 * A command within its limit shows its usage in `memgossip reservations` and
 * `where`; one allocating past its limit is reported by the agent as the OOM
 * offender — an event on /v1/events, a log line and a /metrics counter.
 * Needs a memory cgroup this process may create children in (root, or a
 * delegated scope); skipped with a message saying why where none can be made.
 */
import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli, spawnCli, startChildAgent, stopAgents, waitFor, type ChildAgent } from '../cli/procs.ts'
import { EventStream } from '../../simulations/support/http.ts'
import { whyNoCgroups } from './cgroups.ts'


const noCgroups = await whyNoCgroups('usage')
if (noCgroups !== undefined) console.log(`test/enforce/usage.e2e: skipped, no memory cgroup can be created here (${noCgroups})`)

/** Holds 48 MiB (touched), says so, and keeps it for 8 s. */
const HOLD = 'const b = Buffer.alloc(48 * 2 ** 20, 1); console.log(`holding ${b.length >> 20} MiB`); setTimeout(() => { b[0] = 2 }, 8000)'
/** Fills 10 MiB buffers until 400 MiB: far beyond a 64 MiB reservation. */
const HOG = 'const a = []; for (let i = 0; i < 40; i++) a.push(Buffer.alloc(10 * 1024 * 1024, 1)); console.log("hog survived")'

let agent: ChildAgent
const events: Array<{ type: string, data: any }> = []
let stream: EventStream | undefined

beforeAll(async () => {
  agent = await startChildAgent()
  // Follow /v1/events for the whole file.
  stream = await EventStream.open(agent.api, (type, data) => { events.push({ type, data }) })
}, 60_000)
afterAll(async () => {
  stream?.close()
  await stopAgents([agent])
})

describe.skipIf(noCgroups !== undefined)('usage per reservation with real cgroups', () => {
  it('a command within its limit shows its usage in `reservations` and `where`', async () => {
    const { proc, done } = spawnCli(['run', 'e2e-use', '128MiB', '--tentative-ok', '--api', agent.api, '--', process.execPath, '-e', HOLD])
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor('the command to hold its memory', () => out.includes('holding 48 MiB'), 30_000)
    let row: string | undefined
    await waitFor('usage in memgossip reservations', async () => {
      const r = await runCli(['reservations', '--api', agent.api])
      row = r.stdout.split('\n').find(l => l.startsWith('e2e-use '))
      // The first reading is taken as the command starts; the agent re-reads at every sample.
      const m = row !== undefined ? /admitted\s+(\d+\.\d\d) MiB \(\d+%\)/.exec(row) : null
      return m !== null && Number(m[1]) >= 48

    }, 7_000, 250)
    // USED is what the cgroup holds: the 48 MiB buffer and node itself, within the 128 MiB reserved.
    const used = /admitted\s+(\d+\.\d\d) MiB \((\d+)%\)/.exec(row!)
    expect(used, row).not.toBeNull()
    expect(Number(used![1])).toBeGreaterThanOrEqual(48)
    expect(Number(used![1])).toBeLessThan(128)
    const where = await runCli(['where', 'e2e-use', '--api', agent.api])
    expect(where.stdout).toMatch(/ {2}used: \d+\.\d\d MiB of 128\.00 MiB \(\d+%\), peak \d+\.\d\d MiB on 12D3KooW\w+\n/)
    const r = await done
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toContain('warning')
    expect(events.some(e => e.type === 'oom' && e.data.id === 'e2e-use')).toBe(false)
  }, 90_000)

  it('a command allocating past its limit is reported by the agent as the OOM offender: event, log line, metric', async () => {
    const r = await runCli(['run', 'e2e-hog', '64MiB', '--tentative-ok', '--api', agent.api, '--', process.execPath, '-e', HOG])
    expect(r.code, r.stderr).toBe(137)
    expect(r.stderr).toContain('offender')
    await waitFor('the oom event', () => events.some(e => e.type === 'oom' && e.data.id === 'e2e-hog'), 10_000)
    const oom = events.filter(e => e.type === 'oom' && e.data.id === 'e2e-hog')
    expect(oom, JSON.stringify(oom)).toHaveLength(1) // read at the last sample and once more at the end: counted once
    expect(oom[0].data).toMatchObject({ cause: 'limit', kills: 1, reservedBytes: 64 * 1024 * 1024 })
    expect(oom[0].data.message).toMatch(/^reservation e2e-hog exceeded its limit of 64\.00 MiB: 1 process\(es\) OOM-killed inside its cgroup \(peak \d+\.\d\d MiB\); it is the offender/)
    const metrics = await fetch(`${agent.api}/metrics`).then(async res => await res.text())
    expect(metrics).toMatch(/^memgossip_oom_kills_total\{cause="limit"\} 1$/m)
    expect(metrics).toMatch(/^memgossip_oom_kills_total\{cause="host"\} 0$/m)
    await waitFor('the log line', async () => (await readFile(agent.log, 'utf8')).includes('OOM offender: reservation e2e-hog exceeded its limit of 64.00 MiB'), 10_000)
  }, 90_000)
})
