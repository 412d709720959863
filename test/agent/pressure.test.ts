import { describe, expect, it } from 'vitest'
import {
  evictionAllocatable, INITIAL_PRESSURE, levelFor, pressureRank, pressureThresholds, resolvePressureConfig, stepPressure,
  type PressureLevel, type PressureState
} from '../../agent/pressure.ts'
import { UsageError } from '../../cli/args.ts'
import { agentOptionsFromArgs } from '../../cli/commands/agent.ts'

const MiB = 1024 * 1024
const FLOOR = 256 * MiB
const config = resolvePressureConfig()
const t = pressureThresholds(FLOOR, config)
const DWELL = config.dwellMs

describe('pressure thresholds (defaults)', () => {
  it('are 1.5, 1 and 0.5 × the floor, with a margin of a quarter floor', () => {
    expect(t).toEqual({ warnBelowBytes: 384 * MiB, refuseBelowBytes: 256 * MiB, evictBelowBytes: 128 * MiB, marginBytes: 64 * MiB })
  })

  it.each([
    [{ warnAtFloorRatio: 1, refuseAtFloorRatio: 1 }, /warn > refuse > evict/],
    [{ evictAtFloorRatio: -1 }, /evictAtFloorRatio must be a non-negative number/],
    [{ dwellMs: Number.NaN }, /dwellMs/]
  ])('refuses %o', (bad, message) => {
    expect(() => resolvePressureConfig(bad)).toThrow(message)
  })
})

describe('stepPressure: transitions with hysteresis', () => {
  // [from level, held for ms, available MiB, expected level]
  const cases: Array<[PressureLevel, number, number, PressureLevel, string]> = [
    ['ok', 0, 400, 'ok', 'above warn'],
    ['ok', 0, 383, 'warn', 'just under warn: entered at once'],
    ['ok', 0, 255, 'refuse', 'under the floor: straight to refuse'],
    ['ok', 0, 100, 'evict', 'under half the floor: straight to evict'],
    ['warn', 0, 250, 'refuse', 'worse: at once, dwell or not'],
    ['refuse', 0, 127, 'evict', 'worse: at once'],
    ['warn', DWELL, 400, 'warn', 'above warn but within the margin: stays'],
    ['warn', DWELL, 448, 'ok', 'warn threshold + margin cleared after the dwell'],
    ['warn', DWELL - 1, 1000, 'warn', 'cleared, but the dwell has not passed'],
    ['refuse', DWELL, 300, 'refuse', 'above the floor but within the margin: stays'],
    ['refuse', DWELL, 320, 'warn', 'floor + margin cleared: warn'],
    ['refuse', DWELL, 448, 'ok', 'everything cleared: straight to ok'],
    ['evict', DWELL, 150, 'evict', 'above evict but within the margin: stays'],
    ['evict', DWELL, 192, 'refuse', 'evict + margin cleared: refuse'],
    ['evict', DWELL - 1, 448, 'evict', 'dwell holds even a full recovery'],
    ['refuse', 0, 200, 'refuse', 'same level: nothing changes']
  ]
  it.each(cases)('%s held %i ms, %i MiB available → %s (%s)', (from, heldMs, availableMiB, expected) => {
    const now = 1_000_000
    const state: PressureState = { level: from, sinceMs: now - heldMs }
    const next = stepPressure(state, availableMiB * MiB, t, DWELL, now)
    expect(next.level).toBe(expected)
    if (expected === from) expect(next).toBe(state)
    else expect(next).toMatchObject({ sinceMs: now, enteredAtAvailableBytes: availableMiB * MiB })
  })

  it('levelFor with a raise is the recovery test', () => {
    expect(levelFor(300 * MiB, t)).toBe('warn')
    expect(levelFor(300 * MiB, t, t.marginBytes)).toBe('refuse')
  })
})

describe('no flapping', () => {
  it('a node oscillating around a threshold changes level at most twice per dwell', () => {
    const seed = Number(process.env.SEED ?? Date.now() % 100_000)
    let x = seed
    const random = (): number => { x = (x * 1103515245 + 12345) % 2 ** 31; return x / 2 ** 31 }
    let state = INITIAL_PRESSURE
    let changes = 0
    const durationMs = 10 * 60_000
    for (let now = 0; now < durationMs; now += 1000) {
      // ±40 MiB around the floor: within the margin of 64 MiB, a sample a second.
      const available = FLOOR + Math.round((random() * 2 - 1) * 40 * MiB)
      const next = stepPressure(state, available, t, DWELL, now)
      if (next.level !== state.level) changes++
      state = next
    }
    // Within the margin, once at refuse it never leaves; without hysteresis it would change about every other sample.
    expect(changes, `seed ${seed}`).toBeLessThanOrEqual(2)
    expect(state.level, `seed ${seed}`).toBe('refuse')
  })

  it('wider swings that do clear the margin step down no faster than the dwell allows', () => {
    const seed = Number(process.env.SEED ?? Date.now() % 100_000)
    let x = seed
    const random = (): number => { x = (x * 1103515245 + 12345) % 2 ** 31; return x / 2 ** 31 }
    let state = INITIAL_PRESSURE
    const stepDowns: number[] = []
    for (let now = 0; now < 10 * 60_000; now += 1000) {
      const available = FLOOR + Math.round((random() * 2 - 1) * 200 * MiB)
      const next = stepPressure(state, available, t, DWELL, now)
      if (pressureRank(next.level) < pressureRank(state.level)) stepDowns.push(now)
      state = next
    }
    expect(stepDowns.length, `seed ${seed}`).toBeGreaterThan(0)
    for (let i = 1; i < stepDowns.length; i++) expect(stepDowns[i] - stepDowns[i - 1], `seed ${seed}`).toBeGreaterThanOrEqual(DWELL)
  })
})

describe('evictionAllocatable', () => {
  it.each([
    // allocatable, committed, available → written allocatable
    [8192, 4096, 100, 4096 - 156, 'frees what the node lacks to get back to the floor'],
    [8192, 100, 0, 0, 'never below zero'],
    [2048, 4096, 200, 2048, 'never above what it has'],
    [8192, 4096, 300, 4096, 'lacks nothing: evicts nothing']
  ])('allocatable %i MiB, committed %i MiB, available %i MiB → %i MiB (%s)', (allocatable, committed, available, expected) => {
    expect(evictionAllocatable({ allocatableBytes: allocatable * MiB, committedBytes: committed * MiB, availableBytes: available * MiB, thresholds: t })).toBe(expected * MiB)
  })
})

describe('agent flags (memgossip agent --pressure-* --near-limit)', () => {
  it('set the ladder and the near-limit share', () => {
    expect(agentOptionsFromArgs(['--pressure-warn', '2', '--pressure-refuse', '1.2', '--pressure-evict', '0.6', '--pressure-margin', '0.1', '--pressure-dwell', '10s', '--near-limit', '80%']))
      .toMatchObject({ pressure: { warnAtFloorRatio: 2, refuseAtFloorRatio: 1.2, evictAtFloorRatio: 0.6, marginFloorRatio: 0.1, dwellMs: 10_000 }, nearLimitRatio: 0.8 })
    expect(agentOptionsFromArgs([]).pressure).toBeUndefined()
  })

  it.each([
    [['--pressure-warn', 'high'], /--pressure-warn: 'high' is not a non-negative multiple of the floor/],
    [['--pressure-evict', '-1'], /--pressure-evict: '-1' is not a non-negative multiple/],
    [['--pressure-refuse', '2'], /--pressure-\*: pressure thresholds must be in order warn > refuse > evict/],
    [['--pressure-dwell', '0'], /--pressure-dwell: '0' must be longer than 0/],
    [['--near-limit', '0'], /--near-limit: '0' is not a percentage above 0 and at most 100/],
    [['--near-limit', '120%'], /--near-limit: '120%' is not a percentage/]
  ])('%j is a usage error (exit 2)', (argv, message) => {
    expect(() => agentOptionsFromArgs(argv)).toThrow(UsageError)
    expect(() => agentOptionsFromArgs(argv)).toThrow(message)
  })
})
