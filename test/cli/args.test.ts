/**
 * The one argument parser (cli/args.ts, node:util parseArgs underneath): a
 * table of what it accepts and how it refuses, and every script that uses it
 * refusing an unknown flag with exit 2 and the flag's name.
 */
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { numberFlag, parseArgs, UsageError, type FlagSpec } from '../../cli/args.ts'
import { REPO } from './procs.ts'

const SPEC: Record<string, FlagSpec> = {
  api: { type: 'string' },
  json: { type: 'boolean' },
  label: { type: 'list' },
  priority: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
}

describe('parseArgs', () => {
  it.each([
    [['ID', '--api', 'http://x', '--json'], { positionals: ['ID'], flags: { api: 'http://x', json: true } }],
    [['--api=http://x'], { positionals: [], flags: { api: 'http://x' } }],
    [['--label', 'a=1', '--label=b=2'], { positionals: [], flags: { label: ['a=1', 'b=2'] } }],
    [['--priority', '-5'], { positionals: [], flags: { priority: '-5' } }],
    [['-h'], { positionals: [], flags: { help: true } }],
    [['a', '--', '--json', '-x'], { positionals: ['a', '--json', '-x'], flags: {} }],
    [['-'], { positionals: ['-'], flags: {} }]
  ])('accepts %j', (argv, expected) => {
    const parsed = parseArgs(argv, SPEC)
    expect(parsed.positionals).toEqual(expected.positionals)
    expect({ ...parsed.flags }).toEqual(expected.flags)
  })

  it.each([
    [['--bogus'], 'unknown flag --bogus'],
    [['-x'], 'unknown flag -x'],
    [['--json=yes'], '--json takes no value'],
    [['--api'], '--api needs a value'],
    [['--api', '--json'], "--api needs a value (got the flag '--json'; write --api=--json if that is the value)"]
  ])('refuses %j: %s', (argv, message) => {
    expect(() => parseArgs(argv, SPEC)).toThrow(new UsageError(message))
  })

  it('numberFlag names the flag and the bound', () => {
    expect(numberFlag({ n: '3' }, 'n', { integer: true })).toBe(3)
    expect(numberFlag({}, 'n')).toBeUndefined()
    expect(() => numberFlag({ n: 'many' }, 'n')).toThrow("--n: 'many' is not a number")
    expect(() => numberFlag({ n: '1.5' }, 'n', { integer: true })).toThrow("--n: '1.5' is not an integer")
    expect(() => numberFlag({ n: '1' }, 'n', { min: 2 })).toThrow('--n: 1 is below the minimum 2')
  })
})

describe('every script refuses an unknown flag (exit 2, naming it)', () => {
  it.each([
    ['simulations/reliability/soak.ts', []],
    ['simulations/reliability/crash-loop.ts', []],
    ['simulations/reliability/bounded.ts', []],
    ['simulations/bench/million.ts', []],
    ['simulations/bench/run.ts', []],
    ['simulations/bench/crdt.ts', []],
    ['simulations/bench/tiers.ts', []],
    ['simulations/bench/sim-child.ts', ['virtual', '3']],
    ['simulations/cli.ts', []],
    ['cli/main.ts', ['agent']],
    ['cli/main.ts', ['fit', '1GiB']]
  ])('%s %j', (script: string, args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...args, '--frobnicate'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 })
    expect(r.status, r.stderr).toBe(2)
    expect(r.stderr).toContain('unknown flag --frobnicate')
    expect(r.stdout).toBe('')
  })
})
