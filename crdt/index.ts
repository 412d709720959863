/**
 * The ledger core: the CRDT schema over Yjs, the hybrid logical clock, sizes,
 * and the pure functions every peer must compute identically — `resolve()`,
 * `fit()` and rent. No I/O, no timers, no randomness (docs/design.md "Layout").
 */
export * from './errors.ts'
export * from './size.ts'
export * from './hlc.ts'
export * from './schema.ts'
export * from './placement.ts'
export * from './resolve.ts'
export * from './fit.ts'
export * from './rent.ts'
export * from './checkpoint.ts'
export { fingerprint } from './digest.ts'
export * from './writer.ts'
export { PROPOSAL_TTL_MS, proposalDeadline, viewAt, type View, type ProposalState } from './views.ts'
export * from './epoch.ts'
