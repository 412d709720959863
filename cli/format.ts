/**
 * Printing helpers for the client commands: aligned tables, optional colour,
 * durations and percentages. Sizes always go through `formatSize` from crdt/
 * (IEC, two decimals) so every peer and every command prints them alike.
 */
export { formatSize } from '../crdt/size.ts'

/** ANSI colour, or identity functions when colour is off. */
export interface Paint {
  enabled: boolean
  bold: (s: string) => string
  dim: (s: string) => string
  red: (s: string) => string
  green: (s: string) => string
  yellow: (s: string) => string
  cyan: (s: string) => string
}

/**
 * Colour only for a terminal, and never when `NO_COLOR` is set to anything
 * non-empty (https://no-color.org).
 */
export function useColor (isTTY: boolean | undefined, env: Record<string, string | undefined>): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false
  return isTTY === true
}

export function paint (enabled: boolean): Paint {
  const wrap = (open: number, close: number) => (s: string): string => enabled ? `\x1b[${open}m${s}\x1b[${close}m` : s
  return { enabled, bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), green: wrap(32, 39), yellow: wrap(33, 39), cyan: wrap(36, 39) }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g

/** Printed width of a string: ANSI codes take no room. */
export function visibleLength (s: string): number {
  return [...s.replace(ANSI, '')].length
}

export interface TableOptions {
  /** Columns (by index) aligned right: numbers. */
  right?: number[]
  /** Render the header row through this (e.g. bold). */
  header?: (s: string) => string
}

/** Columns separated by two spaces, padded to the widest cell; no trailing blanks. */
export function table (headers: string[], rows: string[][], options: TableOptions = {}): string {
  const right = new Set(options.right ?? [])
  const widths = headers.map((h, i) => Math.max(visibleLength(h), ...rows.map(r => visibleLength(r[i] ?? ''))))
  const line = (cells: string[], isHeader: boolean): string => cells.map((cell, i) => {
    const pad = ' '.repeat(widths[i] - visibleLength(cell))
    const text = isHeader && options.header !== undefined ? options.header(cell) : cell
    if (i === cells.length - 1 && !right.has(i)) return text
    return right.has(i) ? pad + text : text + pad
  }).join('  ').replace(/\s+$/, '')
  return [line(headers, true), ...rows.map(r => line(r, false))].join('\n') + '\n'
}

/** `850ms`, `4.2s`, `3m04s`, `2h05m`. */
export function formatAge (ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const s = Math.floor(ms / 1000)
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/** `part` as a percentage of `whole` with one decimal; `-` when whole is 0. */
export function percent (part: number, whole: number): string {
  if (whole <= 0) return '-'
  return `${((part / whole) * 100).toFixed(1)}%`
}

/** ISO time to the second, for tables (`2026-11-21T05:56:49Z`). */
export function formatTime (ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** Pretty JSON for `--json` (one document, 2-space indent, trailing newline). */
export function jsonText (value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n'
}
