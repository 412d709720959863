/**
 * Order statistics for the benchmark: medians, p99 and trial-by-trial ratios.
 * Percentiles are nearest-rank (the value of an actual trial, never an
 * interpolation), so "p99 of 20 trials" is simply the largest of them.
 */

export interface Summary {
  n: number
  min: number
  p50: number
  p99: number
  max: number
  mean: number
}

/** Nearest-rank percentile of `values` (unsorted is fine); NaN for none. */
export function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil(p * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

export function summarize (values: readonly number[]): Summary {
  const finite = values.filter(v => Number.isFinite(v))
  if (finite.length === 0) return { n: 0, min: Number.NaN, p50: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN }
  return {
    n: finite.length,
    min: Math.min(...finite),
    p50: percentile(finite, 0.5),
    p99: percentile(finite, 0.99),
    max: Math.max(...finite),
    mean: finite.reduce((a, b) => a + b, 0) / finite.length
  }
}

/**
 * Ratios a[i] / b[i] of paired trials (same index = run back to back in the
 * same run). Pairs where either side failed (NaN, Infinity) or b is 0 are left
 * out and counted.
 */
export function pairedRatios (a: readonly number[], b: readonly number[]): { ratios: number[], skipped: number } {
  const ratios: number[] = []
  let skipped = 0
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (Number.isFinite(a[i]) && Number.isFinite(b[i]) && b[i] > 0) ratios.push(a[i] / b[i])
    else skipped++
  }
  return { ratios, skipped: skipped + Math.abs(a.length - b.length) }
}

/** `12.3`, `0.456`, `1234` — three significant digits, no exponent. */
export function fmt (value: number, digits = 3): string {
  if (!Number.isFinite(value)) return '–'
  if (value === 0) return '0'
  const abs = Math.abs(value)
  if (abs >= 10 ** digits) return Math.round(value).toLocaleString('en-US')
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(abs)))
  return value.toFixed(Math.min(decimals, 6))
}

