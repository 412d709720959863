/**
 * Sizes in and out (docs/design.md "Interfaces"). Strict on purpose: users of
 * Nomad ("MB" that is really MiB) and Ray (GiB printed as "GB") were bitten by
 * loose units.
 *
 * Accepted: IEC `512KiB` `512MiB` `2GiB` `1TiB` `1PiB`; Kubernetes binary `512Ki`
 * `512Mi` `2Gi` `1Ti` `1Pi`; SI decimal `1.5kB` `1.5MB` `1.5GB` `1TB` `1PB` and the
 * Kubernetes decimal forms `k` `M` `G` `T` `P`; a bare integer (or `B`) is bytes.
 * Refused: empty, negative, fractional bytes, exponents, unknown units, and the
 * lowercase `m` (Kubernetes' milli, never meant for memory).
 */
import { SizeError } from './errors.ts'

const KIB = 1024
const MULTIPLIERS: Readonly<Record<string, bigint>> = {
  '': 1n,
  B: 1n,
  KiB: 1024n,
  MiB: 1024n ** 2n,
  GiB: 1024n ** 3n,
  TiB: 1024n ** 4n,
  PiB: 1024n ** 5n,
  Ki: 1024n,
  Mi: 1024n ** 2n,
  Gi: 1024n ** 3n,
  Ti: 1024n ** 4n,
  Pi: 1024n ** 5n,
  kB: 1000n,
  MB: 1000n ** 2n,
  GB: 1000n ** 3n,
  TB: 1000n ** 4n,
  PB: 1000n ** 5n,
  k: 1000n,
  M: 1000n ** 2n,
  G: 1000n ** 3n,
  T: 1000n ** 4n,
  P: 1000n ** 5n
}

/** Hints for near-misses people actually type. */
const HINTS: Readonly<Record<string, string>> = {
  m: "lowercase 'm' is Kubernetes' milli (1/1000 of a byte); write 'M' (10^6) or 'Mi' (2^20)",
  KB: "'KB' is ambiguous; write 'kB' (1000) or 'KiB' (1024)",
  K: "'K' is ambiguous; write 'k' (1000) or 'Ki' (1024)",
  b: "'b' means bits; memory sizes are in bytes ('B')"
}

/** The accepted forms, quoted in every refusal so the user can fix the input at once. */
export const ACCEPTED_SIZE_FORMS =
  "accepted: bytes as an integer ('1048576' or '1048576B'), IEC 'KiB' 'MiB' 'GiB' 'TiB' 'PiB', " +
  "Kubernetes 'Ki' 'Mi' 'Gi' 'Ti' 'Pi', SI decimal 'kB' 'MB' 'GB' 'TB' 'PB' (or 'k' 'M' 'G' 'T' 'P'); " +
  "e.g. '512MiB', '2Gi', '1.5GB'"

const SIZE_PATTERN = /^(\d+)(?:\.(\d+))?\s?([A-Za-z]*)$/

/**
 * Parse a size into integer bytes. Throws {@link SizeError} naming what was wrong
 * and listing the accepted forms.
 */
export function parseSize (text: string): number {
  if (typeof text !== 'string') {
    throw new SizeError(String(text), `size must be a string, got ${typeof text}; ${ACCEPTED_SIZE_FORMS}`)
  }
  const trimmed = text.trim()
  if (trimmed === '') {
    throw new SizeError(text, `empty size; ${ACCEPTED_SIZE_FORMS}`)
  }
  if (trimmed.startsWith('-')) {
    throw new SizeError(text, `negative size '${text}'; ${ACCEPTED_SIZE_FORMS}`)
  }
  const match = SIZE_PATTERN.exec(trimmed)
  if (match == null) {
    throw new SizeError(text, `malformed size '${text}'; ${ACCEPTED_SIZE_FORMS}`)
  }
  const [, whole, fraction = '', unit] = match
  // Own properties only: 'toString' is not a unit (found by the size fuzzer).
  const multiplier = Object.hasOwn(MULTIPLIERS, unit) ? MULTIPLIERS[unit] : undefined
  if (multiplier === undefined) {
    const hint = Object.hasOwn(HINTS, unit) ? HINTS[unit] : undefined
    throw new SizeError(text, `unknown unit '${unit}' in '${text}'${hint !== undefined ? ` (${hint})` : ''}; ${ACCEPTED_SIZE_FORMS}`)
  }
  // Exact decimal arithmetic: 1.5GB is 1500000000 bytes, 1.3KiB is 1331.2 and refused.
  const scale = 10n ** BigInt(fraction.length)
  const numerator = BigInt(whole + fraction) * multiplier
  if (numerator % scale !== 0n) {
    throw new SizeError(text, `'${text}' is a fractional number of bytes; ${ACCEPTED_SIZE_FORMS}`)
  }
  const bytes = numerator / scale
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SizeError(text, `'${text}' is too large (at most ${Number.MAX_SAFE_INTEGER} bytes)`)
  }
  return Number(bytes)
}

const IEC_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const

/**
 * Format integer bytes as IEC with two decimals (`11.77 MiB`); below 1 KiB as
 * plain bytes (`512 B`). Negative values (a deficit) keep their sign.
 */
export function formatSize (bytes: number): string {
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
