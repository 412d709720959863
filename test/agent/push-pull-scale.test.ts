/**
 * Work at rest paced like Serf's push-pull (agent/sync.ts `pushPullScale`):
 * memberlist's scale itself, the anti-entropy's backoff cap stretched by it,
 * and the node record's refresh stretched by it.
 */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { PublishGate } from '../../agent/probe.ts'
import { backoffSchedule, EMPTY_STATE_VECTOR, EMPTY_UPDATE, MAX_SYNC_BACKOFF, pushPullScale, SyncExchange } from '../../agent/sync.ts'
import { encodeMessage, MSG_SYNC_REPLY } from '../../agent/wire.ts'
import { VirtualClock } from '../../simulations/virtual/clock.ts'

const BASE_MS = 5000

/** A sync exchange whose one peer always holds what it holds (every round is quiet); the times of its rounds. */
function quietExchange (clock: VirtualClock): { sync: SyncExchange, rounds: number[] } {
  const rounds: number[] = []
  const doc = new Y.Doc()
  const sync = new SyncExchange({
    doc: () => doc,
    epoch: () => 0,
    later: () => {},
    network: {
      peers: () => ['peer-b'],
      request: async () => {
        rounds.push(clock.now())
        return encodeMessage({ type: MSG_SYNC_REPLY, update: EMPTY_UPDATE, stateVector: EMPTY_STATE_VECTOR, epoch: 0 })
      }
    },
    clock,
    random: () => 0,
    log: () => {},
    counters: { bytesIn: 0, bytesOut: 0, syncRounds: 0, syncFailures: 0, gapPulls: 0 },
    apply: () => true,
    ledgerChanges: () => 0,
    durable: async () => {},
    settled: async () => {},
    readOnly: () => false,
    stopped: () => false,
    afterRound: () => {},
    schedule: () => {}
  })
  return { sync, rounds }
}

describe('work at rest paced by the size of the view', () => {
  it("is memberlist's pushPullScale: 1 up to 32 members, then one more per doubling", () => {
    const scales = [1, 32, 33, 64, 65, 128, 129, 300, 1000, 1024, 1025, 5000].map(n => [n, pushPullScale(n)])
    expect(scales).toEqual([[1, 1], [32, 1], [33, 2], [64, 2], [65, 3], [128, 3], [129, 4], [300, 5], [1000, 6], [1024, 6], [1025, 7], [5000, 9]])
  })

  it.each([1, 3])('quiet periodic rounds back off to 12 × %i base intervals, from where backoffSchedule says', async (scale) => {
    const clock = new VirtualClock({ startMs: 1_700_000_000_000 })
    const { sync, rounds } = quietExchange(clock)
    const start = clock.now()
    for (let t = 0; t <= 40 * MAX_SYNC_BACKOFF * scale * BASE_MS; t += BASE_MS) {
      await sync.periodic(BASE_MS, scale)
      await clock.advance(BASE_MS)
    }
    const gaps = rounds.slice(1).map((at, i) => (at - rounds[i]) / BASE_MS)
    // 2, 4, 8, … base intervals between quiet rounds, then the cap for good.
    const cap = MAX_SYNC_BACKOFF * scale
    expect(gaps.slice(0, 3)).toEqual([2, 4, 8])
    expect(gaps.slice(-5)).toEqual([cap, cap, cap, cap, cap])
    expect(Math.max(...gaps)).toBe(cap)
    // The first round followed by the capped wait is where backoffSchedule says.
    const firstAtCap = rounds[gaps.indexOf(cap)]
    expect(firstAtCap - start).toBe(backoffSchedule(BASE_MS, scale).quietMs)
  })

  it("stretches the node record's refresh by the scale", () => {
    const gate = new PublishGate({ heartbeatIntervalMs: 600_000 })
    const figures = { totalBytes: 64 * 2 ** 30, availableBytes: 32 * 2 ** 30, allocatableBytes: 60 * 2 ** 30 }
    const t0 = 1_700_000_000_000
    gate.published(figures, t0)
    expect(gate.check(figures, t0 + 600_000)).toBe('heartbeat')
    expect(gate.check(figures, t0 + 600_000, pushPullScale(1000))).toBeUndefined()
    expect(gate.check(figures, t0 + 6 * 600_000 - 1, pushPullScale(1000))).toBeUndefined()
    expect(gate.check(figures, t0 + 6 * 600_000, pushPullScale(1000))).toBe('heartbeat')
  })
})
