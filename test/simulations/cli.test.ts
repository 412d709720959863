/**
 * `memgossip simulate` (simulations/cli.ts): usage and scenario errors exit 2,
 * a run whose invariants hold exits 0 and writes its report and picture, a run
 * that fails one exits 1 and prints the seed.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runSimulate } from '../../simulations/cli.ts'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'memgossip-simcli-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

async function simulate (...argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await runSimulate(argv, { stdout: (s) => { stdout += s }, stderr: (s) => { stderr += s } })
  return { code, stdout, stderr }
}

describe('memgossip simulate', () => {
  it('--help prints the usage', async () => {
    const r = await simulate('--help')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/--scenario NAME\|FILE/)
    expect(r.stdout).toMatch(/--tier real\|virtual/)
  })

  it('--list names the shipped scenarios', async () => {
    const r = await simulate('--list')
    expect(r.code).toBe(0)
    for (const name of ['yz-race', 'partition-heal-storm', 'node-loss', 'churn', 'replicated-all-placement', 'fleet']) expect(r.stdout).toContain(name)
  })

  it.each([
    [[], /--scenario is required/],
    [['--scenario', 'yz-race', '--tier', 'quantum'], /--tier must be 'real' or 'virtual'/],
    [['--scenario', 'yz-race', '--nodes', 'many'], /--nodes must be an integer/],
    [['--scenario', 'yz-race', '--tier', 'virtual', '--transport', 'tcp'], /--transport applies to the real tier/],
    [['--scenario', 'yz-race', '--frobnicate'], /unknown flag --frobnicate/],
    [['--scenario', 'no-such-scenario'], /no scenario named 'no-such-scenario'; shipped scenarios: .*yz-race/]
  ])('refuses %j with exit 2', async (argv, message) => {
    const r = await simulate(...argv as string[])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(message)
  })

  it('a malformed scenario file exits 2 naming the field and the line', async () => {
    const file = join(dir, 'broken.json')
    await writeFile(file, '{\n  "name": "broken",\n  "timeline": [\n    { "at": "1s", "do": "reserve", "from": "all", "id": "x", "size": "2 gigs" }\n  ]\n}\n')
    const r = await simulate('--scenario', file, '--tier', 'virtual')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/broken\.json:4: timeline\[0\]\.size: /)
    expect(r.stderr).toMatch(/accepted: /)
  })

  it('a passing run exits 0 with a summary, the JSON report and the SVG next to it', async () => {
    const report = join(dir, 'out', 'yz.json')
    const r = await simulate('--scenario', 'yz-race', '--tier', 'virtual', '--nodes', '8', '--seed', '5', '--report', report)
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toMatch(/yz-race \(virtual tier, memory-sim, 8 peers, seed 5\)\s+PASS/)
    expect(r.stdout).toMatch(/convergence\s+every running peer holds one digest/)
    expect(r.stdout).toMatch(/ok {3}no over-commitment/)
    const json = JSON.parse(await readFile(report, 'utf8'))
    expect(json).toMatchObject({ scenario: 'yz-race', tier: 'virtual', seed: 5, nodes: 8, passed: true })
    const svg = await readFile(join(dir, 'out', 'yz.svg'), 'utf8')
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
    expect(svg).toContain('partition left:4 | right:4')
    expect(svg).not.toMatch(/<script|href=/)
  })

  it('--json prints the report on stdout', async () => {
    const r = await simulate('--scenario', 'replicated-all-placement', '--tier', 'virtual', '--nodes', '6', '--seed', '2', '--json', '--svg', join(dir, 'r.svg'))
    expect(r.code, r.stderr).toBe(0)
    const json = JSON.parse(r.stdout)
    expect(json.passed).toBe(true)
    expect(json.overCommit.afterConvergence).toBe(0)
  })

  it('a run that fails an invariant exits 1 and prints the seed to reproduce it', async () => {
    // Writes on both sides of a partition that never heals: the peers cannot agree.
    const file = join(dir, 'split-forever.json')
    await writeFile(file, JSON.stringify({
      name: 'split-forever',
      nodes: 4,
      groups: { a: { fraction: [0, 0.5] }, b: { fraction: [0.5, 1] } },
      timeline: [
        { at: '200ms', do: 'partition', groups: ['a', 'b'] },
        { at: '500ms', do: 'reserve', from: 'a', id: 'left', size: '1GiB' },
        { at: '500ms', do: 'reserve', from: 'b', id: 'right', size: '1GiB' }
      ],
      settle: '3s'
    }))
    const r = await simulate('--scenario', file, '--tier', 'virtual', '--seed', '42', '--no-svg')
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/FAIL converged: peers still disagree/)
    expect(r.stderr).toMatch(/FAIL \(seed 42\): converged/)
    expect(r.stderr).toMatch(/reproduce: memgossip simulate --scenario .*split-forever\.json --nodes 4 --tier virtual --seed 42/)
  })
})
