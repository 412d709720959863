import type { VerdictStatus } from '../crdt/index.ts'

/**
 * Verdict signatures: what the agent remembers of each verdict (status,
 * final, reason code) to emit an event only when one of them changes.
 *
 * A signature is a small integer, so remembering one costs a map slot and
 * nothing else. Strings built fresh at every resolution were a new string
 * kept for every reservation ever made (docs/decisions.md "Heap findings");
 * interned strings were still built and hashed once per verdict per
 * resolution, a fifth of a refresh at 360 reservations (docs/decisions.md
 * "Verdict events without a walk of every verdict").
 */
const STATUS_BITS: Record<VerdictStatus, number> = { admitted: 0, rejected: 1, evicted: 2, released: 3, invalid: 4, queued: 5 }
/** Reason codes are the project's own few dozen constants; each gets a number the first time it is seen. */
const codes = new Map<string, number>()
/** Far above the real number of distinct codes; a guard, never expected to be reached. */
const MAX_CODES = 4096

export function verdictSignature (status: VerdictStatus, final: boolean, code: string): number {
  let id = codes.get(code)
  if (id === undefined) {
    // Numbers restart: at worst one change goes unreported, or one is reported twice.
    if (codes.size >= MAX_CODES) codes.clear()
    id = codes.size
    codes.set(code, id)
  }
  return id * 16 + STATUS_BITS[status] * 2 + (final ? 1 : 0)
}
