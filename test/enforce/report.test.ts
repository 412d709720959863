/**
 * The closing report of `memgossip run` (cli/commands/run.ts `report`): an OOM
 * kill counted inside the reservation's cgroup while its own limit ran out names
 * it the offender; one without (the host's OOM killer) and a signal do not.
 */
import { describe, expect, it } from 'vitest'
import type { CgroupUsage } from '../../agent/cgroup.ts'
import { report } from '../../cli/commands/run.ts'

const MIB = 1024 * 1024
const usage = (over: Partial<CgroupUsage> = {}): CgroupUsage => ({ currentBytes: 0, peakBytes: 12 * MIB, limitBytes: 64 * MIB, limitHits: 0, oomKills: 0, ...over })

describe('report', () => {
  it.each([
    ['OOM-killed command: the offender',
      { code: null, signal: 'SIGKILL' as const }, usage({ peakBytes: 64 * MIB, oomKills: 1, limitHits: 9 }), 137,
      [/reservation job exceeded its limit of 64\.00 MiB: OOM kill inside its cgroup, peak 64\.00 MiB, 1 process\(es\) killed, limit hit 9 time\(s\); the command was killed by SIGKILL \(exit 137\)/, /offender/]],
    ['a child OOM-killed, the command carried on: still the offender',
      { code: 0, signal: null }, usage({ peakBytes: 64 * MIB, oomKills: 1, limitHits: 3 }), 0,
      [/exceeded its limit of 64\.00 MiB/, /the command exited 0 after a process of it was OOM-killed \(exit 0\)/]],
    ['v2: an OOM kill with an OOM of its own limit: the offender',
      { code: null, signal: 'SIGKILL' as const }, usage({ peakBytes: 64 * MIB, oomKills: 1, limitOoms: 1 }), 137,
      [/exceeded its limit of 64\.00 MiB/, /offender/]],
    ['an OOM kill while its own limit never ran out: the host\'s OOM killer, a bystander',
      { code: null, signal: 'SIGKILL' as const }, usage({ oomKills: 1, limitOoms: 0 }), 137,
      [/1 process\(es\) of reservation job were OOM-killed while within its limit of 64\.00 MiB \(peak 12\.00 MiB, its own limit never ran out\)/, /bystander/]],
    ['v1, no failcnt: an OOM kill with the peak well below the limit: a bystander',
      { code: null, signal: 'SIGKILL' as const }, usage({ oomKills: 1 }), 137,
      [/were OOM-killed while within its limit of 64\.00 MiB \(peak 12\.00 MiB, its own limit never ran out\)/]],
    ['SIGTERM within the limit: not the offender',
      { code: null, signal: 'SIGTERM' as const }, usage(), 143,
      [/the command was killed by SIGTERM while within its limit \(peak 12\.00 MiB of 64\.00 MiB, no OOM kill inside its cgroup; exit 143\)\.\n$/]],
    ['SIGKILL within the limit: a possible bystander',
      { code: null, signal: 'SIGKILL' as const }, usage(), 137,
      [/killed by SIGKILL while within its limit/, /host or a parent cgroup ran out of memory: this reservation was a bystander/]],
    ['a clean exit shows the peak against the reservation',
      { code: 3, signal: null }, usage(), 3,
      [/^memgossip run: the command exited 3; peak 12\.00 MiB of 64\.00 MiB reserved\n$/]],
    ['a kernel without memory.peak says so',
      { code: 0, signal: null }, usage({ peakBytes: undefined }), 0,
      [/^memgossip run: the command exited 0; 64\.00 MiB reserved \(this kernel reports no peak\)\n$/]]
  ])('%s', (_name, outcome, u, code, patterns) => {
    const text = report('job', 64 * MIB, outcome, u, code)
    for (const p of patterns) expect(text).toMatch(p)
    if (u.oomKills === 0 || u.limitOoms === 0 || (u.peakBytes ?? 0) < 60 * MIB) expect(text).not.toContain('offender')
  })
})
