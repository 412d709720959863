/**
 * Interned verdict signatures (`status|final|code`). The agent remembers one
 * per verdict to emit an event only when a verdict changes; built fresh at
 * every resolution, each was a new string kept for every reservation ever
 * made (about 48 B each in a heap snapshot, docs/decisions.md "Heap
 * findings"). There are at most a few hundred distinct ones (statuses ×
 * final × reason codes), so one shared copy of each is kept instead.
 */
const table = new Map<string, string>()
/** Far above the real number of distinct signatures; a guard, never expected to be reached. */
const MAX_SIGNATURES = 4096

export function verdictSignature (status: string, final: boolean, code: string): string {
  const text = `${status}|${final ? 1 : 0}|${code}`
  const known = table.get(text)
  if (known !== undefined) return known
  if (table.size >= MAX_SIGNATURES) table.clear()
  table.set(text, text)
  return text
}
