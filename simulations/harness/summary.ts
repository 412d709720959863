/**
 * The readable summary of a run (what `memgossip simulate` prints without
 * `--json`), and the progress bar drawn on a terminal while it runs.
 */
import { formatSize } from '../../crdt/index.ts'
import type { Progress } from './run.ts'
import type { RunReport } from './report.ts'

export function formatSummary (r: RunReport, files: { svg?: string, report?: string } = {}): string {
  const lines: string[] = []
  const a = r.settings.agent
  const head = `memgossip simulate — ${r.scenario} (${r.tier} tier, ${r.transport}, ${r.nodes} peers${r.nodesTotal !== r.nodes ? ` + ${r.nodesTotal - r.nodes} joined` : ''}, seed ${r.seed})`
  lines.push(`${head}   ${r.passed ? 'PASS' : 'FAIL'}`)
  let settings = `  agents: ${a.heartbeatMs > 0 ? `slow beacons every ${ms(a.heartbeatMs)}` : "no slow beacons (failure detector)"}, sync ${ms(a.syncMs)}, probe ${ms(a.probeMs)}${a.evictAfterMs !== undefined ? `, evict after ${ms(a.evictAfterMs)}` : ''}`
  if (r.settings.network !== undefined) {
    const n = r.settings.network
    settings += ` · network: latency ${n.latencyMs[0]}–${n.latencyMs[1]} ms, loss ${pct(n.loss)}, duplicates ${pct(n.duplicate)}, degree ${n.degree}${n.coalesce ? ', gossip coalesced per ms' : ''}`
  } else if (r.settings.realDegree !== undefined) {
    settings += ` · libp2p ${r.transport}, ${r.settings.realDegree} bootstrap peers each`
  }
  lines.push(settings)
  lines.push('')

  const c = r.convergence
  const rows: Array<[string, string]> = [
    ['cluster formed', `after ${ms(r.time.formedAfterMs)}`],
    ['events', `${r.events.length}, the last at ${ms(r.time.lastEventMs)}; ${r.partitions.length} partition${r.partitions.length === 1 ? '' : 's'}; run ended at ${ms(r.time.endMs)}${r.time.endedEarly ? ' (agreement held)' : ' (settle limit)'}`],
    ['convergence', c.allAgreeAfterMs === null ? 'NOT converged' : `every running peer holds one digest ${ms(c.allAgreeAfterMs)} after the ${c.referenceEvent}`],
    ['  per peer', `p50 ${ms(c.peerP50Ms)} · p99 ${ms(c.peerP99Ms)} · max ${ms(c.peerMaxMs)} (sampled every ${ms(c.resolutionMs)})`],
    ['disagreement', `at most ${r.disagreement.maxPeers} peer${r.disagreement.maxPeers === 1 ? '' : 's'} off the majority digest`],
    ['over-commitment', `${r.overCommit.afterConvergence} after convergence (largest in any one view during the run: ${r.overCommit.maxSeenDuringRun})`],
    ['final verdicts', `${r.finals.tracked} tracked, ${r.finals.changed} changed${r.finals.changed > 0 ? ' (listed in the JSON report)' : ''}`],
    ['writes', `reservations ${r.writes.reservations.written}/${r.writes.reservations.attempted} written (${r.writes.reservations.refusedNoFit} did not fit, ${r.writes.reservations.failed} failed); releases ${r.writes.releases.written}/${r.writes.releases.attempted}`]
  ]
  const races = r.writes.races
  if (races.pairs > 0) rows.push(['y/z races', `${races.pairs} pairs, ${races.bothWritten} with both written: ${races.oneAdmitted} one winner (${races.loserLostConcurrentConflict} LostConcurrentConflict), ${races.bothRejected} both rejected, ${races.bothAdmitted} both fit after the merge`])
  const f = r.finality
  if (f !== undefined && f.whole.writes + f.partitioned.writes > 0) {
    rows.push(['final everywhere', `${f.whole.writes} reservations on a whole network: write → final on every peer p50 ${ms(f.whole.allP50Ms)} · p99 ${ms(f.whole.allP99Ms)} · max ${ms(f.whole.allMaxMs)}; per peer p50 ${ms(f.whole.peerP50Ms)} · p99 ${ms(f.whole.peerP99Ms)}${f.whole.neverFinal > 0 ? `; ${f.whole.neverFinal} (reservation, peer) never final` : ''}${f.whole.compacted > 0 ? `; ${f.whole.compacted} ended before the checkpoint a peer started from` : ''}`])
    if (f.partitioned.writes > 0) rows.push(['  across a cut', `${f.partitioned.writes} written during a partition: final on every peer p50 ${ms(f.partitioned.allP50Ms)} · p99 ${ms(f.partitioned.allP99Ms)} (includes waiting for the heal)`])
  }
  if (r.rest !== undefined) rows.push(['at rest', `${r.rest.messagesInPerNodePerS} messages and ${formatSize(Math.round(r.rest.bytesInPerNodePerS))} in / ${formatSize(Math.round(r.rest.bytesOutPerNodePerS))} out per node per second (payload; ${ms(r.rest.windowMs)} after ${ms(r.rest.warmMs)} quiet)`])
  rows.push(['outcome', `${Object.entries(r.outcome.verdicts).filter(([, v]) => v > 0).map(([k, v]) => `${v} ${k}`).join(', ') || 'no verdicts'} · ${r.outcome.members} members · digest ${r.outcome.digest ?? '—'}${r.outcome.epochs[1] > 0 ? ` · epoch ${r.outcome.epochs[0] === r.outcome.epochs[1] ? r.outcome.epochs[0] : r.outcome.epochs.join('–')}` : ''}`])
  const t = r.traffic
  rows.push(['traffic per peer', `gossip ${t.gossipInPerPeer} in / ${t.gossipOutPerPeer} out, ${t.requestsOutPerPeer} sync requests, ${formatSize(t.bytesInPerPeer)} in / ${formatSize(t.bytesOutPerPeer)} out (timeline only)`])
  rows.push(['per update', `${t.updatesPublished} published, ${t.deliveriesPerUpdate} deliveries each, ${t.duplicateDeliveriesPerUpdate} duplicates each${r.tier === 'virtual' ? `, ${t.droppedPerPeer} dropped per peer` : ''}`])
  rows.push(['memory', `RSS ${formatSize(r.memory.rssPeakBytes)} at peak, ${formatSize(r.memory.rssPerPeerBytes)} per peer (RSS after forming minus the baseline, over ${r.nodes})`])
  rows.push(['wall time', `${ms(r.wall.totalMs)} (forming ${ms(r.wall.formMs)}, timeline ${ms(r.wall.timelineMs)}; ${r.wall.speed}× scenario time), CPU ${ms(r.wall.cpuMs)}`])
  const width = Math.max(...rows.map(([k]) => k.length))
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(width)}  ${v}`)

  if (c.episodes.length > 0) {
    lines.push('')
    lines.push('  episodes (time until every peer agreed again, before the next event)')
    for (const e of c.episodes) lines.push(`    ${ms(e.atMs).padStart(9)}  ${e.event.padEnd(22)} ${e.agreeAfterMs === null ? '— (next event came first)' : ms(e.agreeAfterMs)}`)
  }
  lines.push('')
  lines.push('  invariants')
  for (const inv of r.invariants) lines.push(`    ${inv.passed ? 'ok  ' : 'FAIL'} ${inv.name}: ${inv.detail}`)
  if (r.writes.failures.length > 0) {
    lines.push('')
    lines.push(`  write failures (first ${Math.min(5, r.writes.failures.length)}):`)
    for (const f of r.writes.failures.slice(0, 5)) lines.push(`    ${f}`)
  }
  if (r.errors.length > 0) {
    lines.push('')
    lines.push('  errors:')
    for (const e of r.errors.slice(0, 5)) lines.push(`    ${e.split('\n')[0]}`)
  }
  if (files.svg !== undefined || files.report !== undefined) {
    lines.push('')
    if (files.report !== undefined) lines.push(`  report:  ${files.report}`)
    if (files.svg !== undefined) lines.push(`  picture: ${files.svg}`)
  }
  return lines.join('\n') + '\n'
}

/** A one-line progress bar for stderr (redrawn with `\r`). */
export function formatProgress (p: Progress, nodes: number, columns = 80): string {
  const phase = p.phase === 'forming' ? 'forming' : p.phase === 'timeline' ? 'timeline' : 'settling'
  const fraction = p.phase === 'forming' ? 0 : Math.max(0, Math.min(1, p.tMs / Math.max(1, p.endMs)))
  const text = ` ${phase} t=${(p.tMs / 1000).toFixed(1)}s/${(p.endMs / 1000).toFixed(0)}s ${p.running}/${nodes} up, ${p.disagree} disagree`
  const barWidth = Math.max(10, Math.min(40, columns - text.length - 8))
  const filled = Math.round(fraction * barWidth)
  return `\r[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}%${text}`.slice(0, columns - 1)
}

function ms (v: number | null | undefined): string {
  if (v === null || v === undefined) return '—'
  if (Math.abs(v) >= 60_000) return `${(v / 60_000).toFixed(1)} min`
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(2)} s`
  return `${Math.round(v)} ms`
}

function pct (v: number): string {
  return `${(v * 100).toFixed(v < 0.01 && v > 0 ? 1 : 0)}%`
}
