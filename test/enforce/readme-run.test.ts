/**
 * README.md's "Run a command under a reservation" section, run as written (its
 * scratch directory moved to a temp dir, its ports to free ones) and checked
 * against what the text says. Needs real memory cgroups; skipped with a
 * message where none can be created.
 */
import { spawn } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { freePort, REPO, tempDir } from '../cli/procs.ts'
import { whyNoCgroups } from './cgroups.ts'

const HEADING = '## Run a command under a reservation'


const noCgroups = await whyNoCgroups('readme')
if (noCgroups !== undefined) console.log(`test/enforce/readme-run: skipped, no memory cgroup can be created here (${noCgroups})`)

function shellBlocks (readme: string): string[] {
  const start = readme.indexOf(`\n${HEADING}\n`)
  if (start < 0) throw new Error(`README.md has no section '${HEADING}'`)
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map(m => m[1])
}

it.skipIf(noCgroups !== undefined)('README: run under a reservation, within the limit and beyond it, as the text shows', async () => {
  const blocks = shellBlocks(await readFile(join(REPO, 'README.md'), 'utf8'))
  expect(blocks).toHaveLength(3)
  const scratch = await tempDir('memgossip-readme-run-')
  const [p2p, http] = [await freePort(), await freePort()]
  const script = blocks.join('\n')
    .replaceAll('./.memgossip/run', join(scratch, 'run'))
    .replaceAll('.memgossip/run', join(scratch, 'run'))
    .replaceAll('7720', String(p2p))
    .replaceAll('7721', String(http))
  const proc = spawn('bash', ['-c', script], { cwd: REPO, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>(resolve => proc.once('close', resolve))
  // The last block stops the agent; if the script failed before it, stop it here.
  try {
    const { pid } = JSON.parse(await readFile(join(scratch, 'run', 'agent', 'agent.json'), 'utf8')) as { pid: number }
    process.kill(pid, 'SIGTERM')
  } catch {}
  await rm(scratch, { recursive: true, force: true })
  const context = `\n--- stdout\n${stdout}\n--- stderr\n${stderr}`
  expect(code, context).toBe(0)
  expect(stdout).toMatch(/holding 100 MiB\nexit code: 0\nexit code: 137\n/)
  expect(stdout).not.toContain('holding 400 MiB')
  expect(stderr, context).toMatch(/'import-1' admitted \(final\): 256\.00 MiB, minimum 64\.00 MiB, cgroup v[12] /)
  expect(stderr).toMatch(/the command exited 0; peak \d+\.\d\d MiB of 256\.00 MiB reserved/)
  expect(stderr).toMatch(/reservation import-2 exceeded its limit of 256\.00 MiB: OOM kill inside its cgroup, peak \d+\.\d\d MiB/)
  expect(stderr).toContain("released 'import-1'")
  expect(stderr).toContain("released 'import-2'")
  // the agent's side: usage while import-3 runs, the OOM report of import-2, its counter
  expect(stdout, context).toMatch(/^import-3\s+256\.00 MiB\s+admitted\s+1\d\d\.\d\d MiB \(\d+%\)\s+yes/m)
  expect(stderr).toMatch(/the command exited 0; peak \d+\.\d\d MiB of 256\.00 MiB reserved\n[^]*released 'import-3'/)
  expect(stdout).toMatch(/^\S+ WARN +OOM offender: reservation import-2 exceeded its limit of 256\.00 MiB: 1 process\(es\) OOM-killed inside its cgroup/m)
  expect(stdout).toMatch(/^memgossip_oom_kills_total\{cause="limit"\} 1$/m)
  expect(stdout).toMatch(/^memgossip_oom_kills_total\{cause="host"\} 0$/m)
}, 120_000)
