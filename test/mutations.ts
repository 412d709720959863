/**
 * Mutation check of the core's tests: break the resolution and finality code
 * (and the pressure ladder's hysteresis) on purpose, one deliberate bug at a
 * time, run the suites that cover it, and list
 * which tests caught it. Every mutation must be caught. The source is
 * restored after each run (and on Ctrl-C).
 *
 *   npx tsx test/mutations.ts [--runs 100] [--only name,name]
 *
 * Prints a markdown table (mutation, caught or not, the first failing tests)
 * and exits 1 when a mutation survived.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'

const REPO = resolve(import.meta.dirname, '..')

/** `tests`: the suites that must catch it, space-separated (default `test/crdt`). */
interface Mutation { name: string, file: string, from: string, to: string, tests?: string }

export const MUTATIONS: Mutation[] = [
  { name: 'tie-break order reversed (best fit prefers the larger node id)', file: 'crdt/placement.ts', from: '(r === room && sorted[mid].id < id)', to: '(r === room && sorted[mid].id > id)' },
  { name: 'log sorted by wall time only (sort key without counter and node)', file: 'crdt/resolve.ts', from: 'log.sort((a, b) => compareHlc(a.hlc, b.hlc) || a.kind - b.kind', to: 'log.sort((a, b) => (hlcWallMs(a.hlc) - hlcWallMs(b.hlc)) || a.kind - b.kind' },
  { name: 'best fit reversed (worst fit: the most headroom)', file: 'crdt/placement.ts', from: 'const best = index.at(first)', to: 'const best = index.at(n - 1)' },
  { name: 'eviction order reversed (highest priority evicted first)', file: 'crdt/resolve.ts', from: '.sort((a, b) => a.priority - b.priority || compareHlc(b.hlc, a.hlc)', to: '.sort((a, b) => b.priority - a.priority || compareHlc(b.hlc, a.hlc)' },
  { name: 'exact fit refused', file: 'crdt/placement.ts', from: 'const first = index.lowerBound(bytes)', to: 'const first = index.lowerBound(bytes + 1)' },
  { name: 'finality one confirmation early (half the view instead of a strict majority)', file: 'crdt/resolve.ts', from: 'const need = Math.floor(view.members.length / 2) + 1', to: 'const need = Math.max(1, Math.floor(view.members.length / 2))' },
  { name: 'finality one tick early (a line one counter short counts as past t)', file: 'crdt/resolve.ts', from: 'if (seen !== undefined && t <= seen && majority !== undefined && t <= majority) {', to: 'if (seen !== undefined && t <= bump(seen) && majority !== undefined && t <= bump(majority)) {' },
  { name: 'finality on every clock alone (no majority announcement)', file: 'crdt/resolve.ts', from: 'if (seen !== undefined && t <= seen && majority !== undefined && t <= majority) {', to: 'if (seen !== undefined && t <= seen) {' },
  { name: 'a stale proposal completes (the latest eviction wins over a view change)', file: 'crdt/views.ts', from: '    if (o.digest !== current().digest) {\n      o.state.status = \'void\'\n      o.state.reason = \'the view changed before it completed\'\n      open.delete(o.state.key)\n      list(o)\n      continue\n    }', to: '' },
  { name: 'cut below an acknowledgement (the least position acknowledged)', file: 'crdt/views.ts', from: 'p.seq > best.seq', to: 'p.seq < best.seq' },
  { name: 'a minority completes an eviction (no strict majority needed)', file: 'crdt/views.ts', from: 'if (2 * o.state.acked.length <= o.state.viewMembers.length) {', to: 'if (o.state.acked.length === 0) {' },
  { name: 'an open eviction does not cap the acknowledged stream', file: 'crdt/resolve.ts', from: "if (!open.has(target) || cap >= (reach.get(target) ?? '')) continue", to: 'continue' },
  { name: 'a joiner\'s writes before its admission count', file: 'crdt/views.ts', from: 'if (interval.admitHlc >= hlc) continue', to: 'if (interval.admitHlc >= hlc && i > 0) continue' },
  { name: 'a beacon counts before its position is held (clock channel)', file: 'crdt/resolve.ts', from: 'if (held >= beacon.seq && beacon.hlc', to: 'if (beacon.hlc' },
  { name: 'a beacon counts under any name (clock channel)', file: 'crdt/resolve.ts', from: 'if (!beacon.hlc.endsWith(`:${node}`) || membership', to: 'if (membership' },
  { name: 'a relay forwards the oldest beacon of each member instead of the newest (clock channel relays)', file: 'agent/relay.ts', from: 'if (held === undefined || newer(beacon, held)) this.pending.set', to: 'if (held === undefined) this.pending.set', tests: 'test/agent/clock-relay.test.ts' },
  { name: 'an acknowledged proposal caps the line for ever (never expires)', file: 'crdt/resolve.ts', from: 'for (const [target, cap] of acknowledgedCaps(live, self)) {', to: 'for (const [target, cap] of acknowledgedCaps(membership.proposals.filter(p => p.status === \'open\'), self)) {' },
  { name: 'an acknowledgement after the deadline counts', file: 'crdt/views.ts', from: '    if (record.hlc > o.state.deadline) continue\n', to: '' },
  { name: 'a release ends the id whatever entry it names', file: 'crdt/resolve.ts', from: 'if (run === undefined || run.key !== key) {', to: 'if (run === undefined) {' },
  { name: 'shrink order reversed (highest priority shrunk first)', file: 'crdt/resolve.ts', from: 'return a.priority - b.priority || compareHlc(b.hlc, a.hlc) || (a.id < b.id ? -1 : 1)', to: 'return b.priority - a.priority || compareHlc(b.hlc, a.hlc) || (a.id < b.id ? -1 : 1)' },
  { name: 'shrink order: earliest first among equal priorities', file: 'crdt/resolve.ts', from: 'return a.priority - b.priority || compareHlc(b.hlc, a.hlc) || (a.id < b.id ? -1 : 1)', to: 'return a.priority - b.priority || compareHlc(a.hlc, b.hlc) || (a.id < b.id ? -1 : 1)' },
  { name: 'evict before shrinking (minimums ignored on capacity loss)', file: 'crdt/resolve.ts', from: "r.placement.kind !== 'all' && r.minBytes !== undefined && this.running", to: "r.placement.kind !== 'all' && r.minBytes === -1 && this.running" },
  { name: 'queue order reversed (last come, first served)', file: 'crdt/resolve.ts', from: 'for (const waiting of [...this.queue.values()]) {', to: 'for (const waiting of [...this.queue.values()].reverse()) {' },
  { name: 'a queued admission is final by its own stamp (not by the point that admitted it)', file: 'crdt/resolve.ts', from: 'const t = verdict.decidedHlc ?? verdict.hlc', to: 'const t = verdict.hlc' },
  { name: 'a queue timeout read from the end of the log (not a point of its own)', file: 'crdt/resolve.ts', from: 'case KIND_EXPIRE: replay.expire(event.key, event.hlc); break', to: 'case KIND_EXPIRE: break' },
  { name: 'a queue timeout takes effect before the document reaches it', file: 'crdt/resolve.ts', from: 'for (const expiry of expiries) if (expiry.hlc <= reached) log.push(expiry)', to: 'for (const expiry of expiries) log.push(expiry)' },
  { name: 'a cordoned node is vacated like a draining one', file: 'crdt/resolve.ts', from: "if (event.state === 'draining' || event.state === 'left') {", to: "if (event.state !== 'active') {" },
  { name: 'pressure ladder without hysteresis (a level is left at its own threshold)', file: 'agent/pressure.ts', from: 'const better = levelFor(availableBytes, t, t.marginBytes)', to: 'const better = levelFor(availableBytes, t, 0)', tests: 'test/agent/pressure.test.ts test/agent/pressure-agent.test.ts' },
  { name: 'pressure ladder without dwell (a level is left as soon as it clears)', file: 'agent/pressure.ts', from: '&& nowMs - state.sinceMs >= dwellMs', to: '', tests: 'test/agent/pressure.test.ts' }
]

/** For the "one tick early" mutation: the stamp one counter after `hlc`. */
const BUMP = `
function bump (hlc: string): string {
  const counter = Number(hlc.slice(16, 22)) + 1
  return hlc.slice(0, 16) + String(counter).padStart(6, '0') + hlc.slice(22)
}
`

/** The source to put back if the run is interrupted mid-mutation. */
let pendingRestore: (() => void) | undefined
process.on('SIGINT', () => { pendingRestore?.(); process.exit(130) })

function main (): number {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '100' }, only: { type: 'string' } }, strict: true })
  const only = values.only?.split(',')
  const chosen = MUTATIONS.filter((m, i) => only === undefined || only.includes(String(i + 1)) || only.some(o => m.name.includes(o)))
  const rows: string[] = ['| # | mutation | caught | by (first failing tests) |', '| --- | --- | --- | --- |']
  let survived = 0
  for (const [i, m] of chosen.entries()) {
    const path = resolve(REPO, m.file)
    const original = readFileSync(path, 'utf8')
    const count = original.split(m.from).length - 1
    if (count !== 1) throw new Error(`mutation '${m.name}': expected the text once in ${m.file}, found it ${count} times`)
    let mutated = original.replace(m.from, m.to)
    if (m.to.includes('bump(')) mutated += BUMP
    const restore = (): void => { writeFileSync(path, original) }
    pendingRestore = restore
    writeFileSync(path, mutated)
    process.stderr.write(`[${i + 1}/${chosen.length}] ${m.name}… `)
    let failing: string[] = []
    try {
      const run = spawnSync('npx', ['vitest', 'run', ...(m.tests ?? 'test/crdt').split(' '), '--reporter=verbose'], {
        cwd: REPO,
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1', MEMGOSSIP_PROPERTY_RUNS: values.runs },
        maxBuffer: 64 * 1024 * 1024
      })
      failing = (run.stdout + run.stderr).split('\n').filter(l => /^\s+×/.test(l)).map(l => l.replace(/^\s+×\s*/, '').replace(/\s+\d+ms$/, '').trim())
      if (run.status !== 0 && failing.length === 0) failing = ['(the suite failed to run: compile error)']
    } finally {
      restore()
      pendingRestore = undefined
    }
    process.stderr.write(failing.length > 0 ? `caught by ${failing.length}\n` : 'SURVIVED\n')
    if (failing.length === 0) survived++
    rows.push(`| ${MUTATIONS.indexOf(m) + 1} | ${m.name} | ${failing.length > 0 ? 'yes' : '**no**'} | ${failing.slice(0, 3).map(f => f.replace(/\|/g, '\\|')).join('; ')}${failing.length > 3 ? `; … (${failing.length} in all)` : ''} |`)
  }
  process.stdout.write(`${rows.join('\n')}\n`)
  return survived > 0 ? 1 : 0
}

process.exitCode = main()
