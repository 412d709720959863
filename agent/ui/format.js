// @ts-check
/**
 * Sizes, ids and ages as the CLI prints them (crdt/size.ts formatSize,
 * crdt/placement.ts shortId, cli/format.ts formatAge), so the page and
 * `memgossip status` show the same text. test/ui/format.test.ts checks the
 * copies against the originals.
 */

const KIB = 1024
const IEC_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** `7.60 GiB`, `0 B`. */
export function formatSize (/** @type {number} */ bytes) {
  if (!Number.isFinite(bytes)) return String(bytes)
  const sign = bytes < 0 ? '-' : ''
  let value = Math.abs(bytes)
  if (value < KIB) return `${sign}${Math.round(value)} B`
  let unit = -1
  while (value >= KIB && unit < IEC_UNITS.length - 1) {
    value /= KIB
    unit++
  }
  return `${sign}${value.toFixed(2)} ${IEC_UNITS[unit]}`
}

/** `12D3KooW…abcd` for a long id. */
export function shortId (/** @type {string} */ id) {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id
}

/** `350ms`, `2.5s`, `3m05s`, `1h02m`; `-` when unknown. */
export function formatAge (/** @type {number | undefined} */ ms) {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const s = Math.floor(ms / 1000)
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/** `42.0%`; `-` for nothing to divide by. */
export function percent (/** @type {number} */ part, /** @type {number} */ whole) {
  if (whole <= 0) return '-'
  return `${((part / whole) * 100).toFixed(1)}%`
}

const HLC_IN_TEXT = /\b(\d{15}):\d{6}:[1-9A-HJ-NP-Za-km-z]+/g
const PEER_ID_IN_TEXT = /\b12D3KooW[1-9A-HJ-NP-Za-km-z]{44}\b/g

/**
 * A reason as `memgossip` prints it (cli/commands/print.ts readableReason):
 * stamps become UTC times, peer ids are shortened.
 */
export function readableReason (/** @type {string} */ reason) {
  return reason
    .replace(HLC_IN_TEXT, (_stamp, /** @type {string} */ wallMs) => new Date(Number(wallMs)).toISOString())
    .replace(PEER_ID_IN_TEXT, id => shortId(id))
}
