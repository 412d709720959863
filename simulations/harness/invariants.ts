/**
 * The invariants every run is held to (docs/simulations.md "What is
 * measured"): the peers converge, no node is over-committed, a final verdict
 * never changes (unless the scenario changes membership), with
 * `expect.finalAtEnd` nothing is left tentative, and no agent handler threw.
 */
import { formatSize } from '../../crdt/index.ts'
import type { Scenario } from '../scenario/schema.ts'
import type { overCommitted, Recorder } from './recorder.ts'
import type { Invariant } from './report.ts'

export interface InvariantInput {
  scenario: Scenario
  /** Running peers at the end. */
  running: number
  /** The last write or heal, which convergence is measured from. */
  reference: { atMs: number, label: string }
  /** When every running peer agreed for good, if they did. */
  allAgreeAt: number | undefined
  /** Peers off the majority digest at the last sample. */
  disagreeAtEnd: number | undefined
  overs: ReturnType<typeof overCommitted>
  recorder: Recorder
  /** Tentative verdicts summed over the running peers at the end. */
  pendingAtEnd: number
  /** What agent handlers threw. */
  errors: string[]
}

export function checkInvariants (input: InvariantInput): Invariant[] {
  const { scenario, reference, allAgreeAt, overs, recorder, pendingAtEnd, errors } = input
  const agreeing = allAgreeAt !== undefined
  const invariants: Invariant[] = []
  invariants.push({
    name: 'converged',
    passed: agreeing,
    detail: agreeing
      ? `all ${input.running} running peers hold one verdict digest, ${allAgreeAt! - reference.atMs} ms after the ${reference.label}`
      : `peers still disagree at the end (${input.disagreeAtEnd ?? '?'} of ${input.running} off the majority digest) after ${scenario.settleMs} ms of settling`
  })
  invariants.push({
    name: 'no over-commitment',
    passed: overs.length === 0,
    detail: overs.length === 0 ? 'no node is committed beyond its allocatable memory in any peer\'s view' : `${overs.length} over-committed node views, e.g. ${overs[0].node} at ${formatSize(overs[0].committedBytes)} of ${formatSize(overs[0].allocatableBytes)} (seen by ${overs[0].peer})`
  })
  invariants.push({
    name: 'final verdicts never change',
    passed: recorder.changedFinalsCount === 0,
    detail: recorder.changedFinalsCount === 0
      ? `${recorder.finalsTracked} final decisions tracked, none changed`
      : `${recorder.changedFinalsCount} final decisions changed (listed in the report), e.g. ${recorder.changedFinals[0].id} on ${recorder.changedFinals[0].node}: ${recorder.changedFinals[0].before} → ${recorder.changedFinals[0].after}`
  })
  if (scenario.expect.finalAtEnd) {
    invariants.push({
      name: 'every verdict final at the end',
      passed: pendingAtEnd === 0,
      detail: pendingAtEnd === 0 ? 'no tentative verdict on any running peer' : `${pendingAtEnd} tentative verdicts (summed over running peers) at the end`
    })
  }
  invariants.push({
    name: 'no agent errors',
    passed: errors.length === 0,
    detail: errors.length === 0 ? 'no handler threw' : errors[0].split('\n')[0]
  })
  return invariants
}
