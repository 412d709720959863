/**
 * computeAlerts (agent/alerts.ts) for enforcement: a reservation near its
 * limit, the pressure ladder's level — each with its numbers — and nothing
 * when neither applies. Table-driven over the pure function.
 */
import { describe, expect, it } from 'vitest'
import { computeAlerts, type AlertInputs } from '../../agent/alerts.ts'
import { resolve } from '../../crdt/index.ts'
import { TestLedger, nodeId } from '../crdt/helpers.ts'

const MiB = 1024 ** 2
const A = nodeId(1)

function inputs (over: Partial<AlertInputs>): AlertInputs {
  const l = new TestLedger({ [A]: 8 * 1024 * MiB })
  return {
    self: A, res: resolve(l.doc), floorBytes: 256 * MiB, floorRule: 'default', systemReservedBytes: 0, committedRatio: 0.9,
    clockBehindMs: 0, maxOffsetMs: 500, peersAhead: [], joined: true, ...over
  }
}

describe('near-limit alerts', () => {
  it.each([
    [57 * MiB, 64 * MiB, undefined, undefined],
    [58 * MiB, 64 * MiB, undefined, /reservation web uses 90% of its limit on 12D3KooWnode001 \(about 57\.60 MiB of 64\.00 MiB, alert at 90%\): the kernel OOM-kills it at the limit/],
    [64 * MiB, 64 * MiB, undefined, /uses 100% of its limit/],
    [40 * MiB, 64 * MiB, 0.5, /uses 62% of its limit .* alert at 50%/]
  ])('%i of %i bytes (ratio %s)', (used, reserved, ratio, message) => {
    const alerts = computeAlerts(inputs({ usage: [{ id: 'web', usedBytes: used, reservedBytes: reserved }], nearLimitRatio: ratio }))
    const alert = alerts.get('near-limit/web')
    if (message === undefined) expect(alert).toBeUndefined()
    else expect(alert).toMatchObject({ kind: 'ReservationNearLimit', node: A, message: expect.stringMatching(message) })
  })

  it('a message that moves only when the whole percent does (no event per byte)', () => {
    const a = computeAlerts(inputs({ usage: [{ id: 'web', usedBytes: 60 * MiB, reservedBytes: 64 * MiB }] })).get('near-limit/web')!
    const b = computeAlerts(inputs({ usage: [{ id: 'web', usedBytes: 60 * MiB + 4096, reservedBytes: 64 * MiB }] })).get('near-limit/web')!
    expect(b.message).toBe(a.message)
  })
})

describe('pressure ladder alert', () => {
  it('is raised with the step\'s numbers while not ok, and absent at ok', () => {
    const raised = computeAlerts(inputs({ pressure: { level: 'refuse', message: "memory pressure 'refuse': 200.00 MiB available, under 256.00 MiB (floor 256.00 MiB); it refuses new placements" } }))
    expect(raised.get(`ladder/${A}`)).toMatchObject({ kind: 'PressureLevel', message: expect.stringContaining("memory pressure 'refuse': 200.00 MiB available") })
    expect(computeAlerts(inputs({})).get(`ladder/${A}`)).toBeUndefined()
  })
})
