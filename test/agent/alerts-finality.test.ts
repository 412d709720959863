/**
 * computeAlerts (agent/alerts.ts) for finality: a verdict still tentative a
 * set time after it was stamped raises FinalityStalled, naming the oldest
 * such verdict and whom it waits for; a verdict that became final, or one
 * younger than the threshold, raises nothing.
 */
import { describe, expect, it } from 'vitest'
import { computeAlerts, type AlertInputs } from '../../agent/alerts.ts'
import { hlcWallMs, resolve, type Resolution } from '../../crdt/index.ts'
import { GiB, TestLedger, nodeId } from '../crdt/helpers.ts'

const A = nodeId(1)
const B = nodeId(2)
const STALL_MS = 60_000

function inputs (res: Resolution, nowMs: number): AlertInputs {
  return {
    self: A, res, floorBytes: 0, floorRule: 'default', systemReservedBytes: 0, committedRatio: 0.99,
    clockBehindMs: 0, maxOffsetMs: 500, peersAhead: [], joined: true, nowMs, finalityStallMs: STALL_MS
  }
}

function stampOf (res: Resolution, id: string): number {
  return hlcWallMs(res.verdicts.get(id)!.hlc!)
}

describe('finality stalled alert', () => {
  it('is raised once the oldest tentative verdict is older than the threshold, naming it and whom it waits for', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.reserve(A, 'older', GiB)
    l.reserve(B, 'newer', GiB)
    const res = resolve(l.doc)
    expect(res.verdicts.get('older')!.final).toBe(false)
    const stamped = stampOf(res, 'older')
    expect(computeAlerts(inputs(res, stamped + STALL_MS - 1)).get(`finality/${A}`)).toBeUndefined()
    const alert = computeAlerts(inputs(res, stamped + STALL_MS + 1)).get(`finality/${A}`)
    expect(alert).toMatchObject({ kind: 'FinalityStalled', node: A })
    expect(alert!.message).toMatch(/^finality has stalled on 12D3KooWnode001: older, written over 60\.0 s ago, is still tentative here, waiting on the (clocks|confirmations) /)
    for (const id of res.verdicts.get('older')!.waitsFor) expect(alert!.message).toContain(id.slice(0, 12))
  })

  it('the message does not move while the stall lasts (one event, not one per refresh)', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.reserve(A, 'web', GiB)
    const res = resolve(l.doc)
    const stamped = stampOf(res, 'web')
    const early = computeAlerts(inputs(res, stamped + STALL_MS + 1)).get(`finality/${A}`)!
    const later = computeAlerts(inputs(res, stamped + 10 * STALL_MS)).get(`finality/${A}`)!
    expect(later.message).toBe(early.message)
  })

  it('is not raised once every verdict is final, however old', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.reserve(A, 'web', GiB)
    l.heartbeatAll()
    const res = resolve(l.doc)
    expect(res.verdicts.get('web')!.final).toBe(true)
    expect(res.pending).toBe(0)
    expect(computeAlerts(inputs(res, stampOf(res, 'web') + 100 * STALL_MS)).get(`finality/${A}`)).toBeUndefined()
  })

  it('counts only what is still tentative: an older final verdict does not raise it', () => {
    const l = new TestLedger({ [A]: 8 * GiB, [B]: 8 * GiB })
    l.reserve(A, 'done', GiB)
    l.heartbeatAll()
    l.wallMs += STALL_MS / 2
    l.reserve(B, 'waiting', GiB)
    const res = resolve(l.doc)
    expect([res.verdicts.get('done')!.final, res.verdicts.get('waiting')!.final]).toEqual([true, false])
    expect(computeAlerts(inputs(res, stampOf(res, 'done') + STALL_MS + 1)).get(`finality/${A}`)).toBeUndefined()
    expect(computeAlerts(inputs(res, stampOf(res, 'waiting') + STALL_MS + 1)).get(`finality/${A}`)?.message).toContain(': waiting, written over')
  })
})
