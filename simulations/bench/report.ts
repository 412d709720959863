/**
 * Turning a benchmark run into docs/benchmarks.md, docs/bench-*.svg and the
 * summary printed on stdout; and judging each target met or missed.
 */
import type { BenchResults, PropagationResult, TrafficResult, VirtualRun } from './results.ts'
import { pushPullScale } from '../../agent/sync.ts'
import type { BenchVirtualResult } from './tiers.ts'
import { fmt, percentile, type Summary } from './stats.ts'
import { barChart } from '../support/svg.ts'
import { probeComplete, type TrafficWindow } from './clusters.ts'
import { explainMissed } from './findings.ts'
import { trafficMedians } from './traffic.ts'
import { CLI_TARGET_MS } from './cli-timing.ts'

export type Target = BenchResults['targets'][number] & { id?: string }

const MiB = 1024 ** 2
const ms = (v: number | undefined): string => v === undefined || !Number.isFinite(v) ? '–' : v >= 1000 ? `${fmt(v / 1000)} s` : `${fmt(v)} ms`
const pair = (s: Summary | undefined, f: (v: number) => string = ms): string => s === undefined || s.n === 0 ? '–' : `${f(s.p50)} / ${f(s.p99)}`
const ratio = (s: Summary | undefined): string => s === undefined || s.n === 0 ? '–' : `${fmt(s.p50, 2)} / ${fmt(s.p99, 2)}`
const bytes = (v: number | undefined): string => v === undefined || !Number.isFinite(v) ? '–' : v >= 10 * 1024 ? `${fmt(v / 1024)} KiB` : `${fmt(v)} B`

function largest<T extends { nodes: number }> (xs: T[]): T | undefined {
  return [...xs].sort((a, b) => b.nodes - a.nodes)[0]
}


/** Record one target: its id (findings.ts explains it by id when missed), what and how it is judged, the figure, met or not (undefined: not judged). */
type AddTarget = (id: string, name: string, target: string, value: string, met: boolean | undefined, note?: string) => void

const virtualFields = (v: VirtualRun): Partial<BenchVirtualResult> => v.result ?? {}

/**
 * Issue 12's virtual-tier targets: final within 1 s of virtual time and the
 * `fleet` scenario within 15 minutes of wall time at 1,000 peers, and traffic
 * at rest growing from 100 to 1,000 peers no faster than Serf's push-pull
 * (each node exchanges the full state with one peer every 30 s × the
 * push-pull scale of N: bytes per node ∝ N / scale(N); its probes keep the
 * messages per node flat).
 */
function evaluateVirtualScale (r: BenchResults, add: AddTarget): void {
  if (!r.virtual.available) return
  const done = r.virtual.runs.filter(v => v.error === undefined && virtualFields(v).passed !== undefined).sort((a, b) => a.nodes - b.nodes)
  const at1000 = r.virtual.runs.find(v => v.nodes === 1000)
  const top = done.at(-1)
  const missing1000 = at1000 === undefined
    ? `not run at 1,000${top !== undefined ? `; the largest size run, N = ${top.nodes.toLocaleString('en-US')}, took ${fmt(top.wallMs / 60_000, 2)} min with its at-rest window` : ': no smaller size finished'}`
    : at1000.error !== undefined ? `no result at 1,000: ${at1000.error}` : ''
  const wall = (v: VirtualRun): string => `${fmt((virtualFields(v).wallMs ?? Number.NaN) / 60_000, 2)} min`
  const perPeer = (v: VirtualRun): string => `${fmt((virtualFields(v).rssPerPeerBytes ?? Number.NaN) / MiB)} MiB RSS, ${fmt((virtualFields(v).heapPerPeerBytes ?? Number.NaN) / MiB, 2)} MiB heap per peer`
  const sizes = done.map(v => `N = ${v.nodes.toLocaleString('en-US')}: ${virtualFields(v).passed === true ? 'every invariant held' : '**invariants failed**'}, ${wall(v)} (${perPeer(v)})`).join('; ')
  const ok1000 = at1000 !== undefined && at1000.error === undefined ? at1000 : undefined
  add('virtual-fleet-1000', 'virtual tier: `fleet` at N = 1,000 with every invariant (2,000 and 5,000 tried)', '≤ 15 min of wall time', [sizes, missing1000].filter(x => x !== '').join('; '),
    ok1000 !== undefined ? virtualFields(ok1000).passed === true && (virtualFields(ok1000).wallMs ?? Infinity) <= 15 * 60_000 : false, 'wall time of the scenario: formation, timeline and settling, not the at-rest window after it')
  const finalOf = (v: VirtualRun): string => {
    const w = virtualFields(v).finality?.whole
    return w === undefined ? 'no finality figures' : `p50 ${ms(w.allP50Ms ?? Number.NaN)}, p99 ${ms(w.allP99Ms ?? Number.NaN)}, max ${ms(w.allMaxMs ?? Number.NaN)}${w.neverFinal > 0 ? ` (${w.neverFinal} never final)` : ''}`
  }
  const withFinal = done.filter(v => virtualFields(v).finality !== undefined)
  if (ok1000 !== undefined) {
    const w = virtualFields(ok1000).finality?.whole
    add('virtual-final-1000', 'reservation → final on every peer, N = 1,000 virtual peers (`fleet`, links 2–40 ms)', '≤ 1 s of virtual time', finalOf(ok1000), w !== undefined && w.neverFinal === 0 && w.allP99Ms !== null && w.allP99Ms <= 1000)
  } else {
    add('virtual-final-1000', 'reservation → final on every peer, N = 1,000 virtual peers (`fleet`, links 2–40 ms)', '≤ 1 s of virtual time', `${missing1000}${withFinal.length > 0 ? `; ${withFinal.map(v => `N = ${v.nodes.toLocaleString('en-US')}: ${finalOf(v)}`).join('; ')}` : ''}`, false, 'reservations written on a whole network, in virtual time')
  }
  const rests = done.filter(v => virtualFields(v).rest != null)
  if (rests.length >= 2) {
    const low = rests[0]
    const high = rests.at(-1)!
    const restOf = (v: VirtualRun): { bytes: number, messages: number } => {
      const rest = virtualFields(v).rest!
      return { bytes: rest.bytesInPerNodePerS + rest.bytesOutPerNodePerS, messages: rest.messagesInPerNodePerS }
    }
    const a = restOf(low)
    const b = restOf(high)
    const model = (n: number): number => n / pushPullScale(n)
    const modelGrowth = model(high.nodes) / model(low.nodes)
    const bytesGrowth = b.bytes / a.bytes
    const messagesGrowth = b.messages / a.messages
    const within = bytesGrowth <= modelGrowth && messagesGrowth <= 1.05
    add('virtual-growth', `growth of traffic per node at rest, N = ${low.nodes.toLocaleString('en-US')} → ${high.nodes.toLocaleString('en-US')} virtual peers`, 'no steeper than Serf\'s push-pull from 100 to 1,000 (bytes per node ∝ N / push-pull scale, messages flat within 5 %)',
      `bytes in + out per node ${fmt(a.bytes)} → ${fmt(b.bytes)} B/s (×${fmt(bytesGrowth, 2)}; the model ×${fmt(modelGrowth, 2)}); messages in per node ${fmt(a.messages, 3)} → ${fmt(b.messages, 3)}/s (×${fmt(messagesGrowth, 3)})`,
      high.nodes >= 1000 ? within : undefined, high.nodes >= 1000 ? '' : `${within ? 'within the model' : '**steeper than the model**'} over the range measured; no figures at 1,000`)
  }
}

export function evaluateTargets (r: BenchResults): Target[] {
  const out: Target[] = []
  const add: AddTarget = (id, name, target, value, met, note = '') => { out.push({ id, name, target, value, met, note }) }
  for (const origin of ['seed', 'leaf'] as const) {
    const p = largest(r.propagation.filter(x => x.origin === origin))
    const label = origin === 'seed' ? 'change on node 0, the node every agent joined' : 'change on a leaf node'
    if (p === undefined) add(`propagation-${origin}`, `propagation p99 (${label})`, '≤ Serf user event p99, same run, N = 50', 'not measured', undefined)
    else if (p.memgossipFailed !== undefined) {
      const ok = largest(r.propagation.filter(x => x.origin === origin && x.memgossipFailed === undefined && x.serfEvent !== undefined))
      add(`propagation-${origin}`, `propagation p99 at N = ${p.nodes} (${label})`, '≤ Serf user event p99, same run, N = 50', `memgossip: no cluster of ${p.nodes} agents formed on this machine (see section 1); Serf ${ms(p.serfEvent?.p99)}`, false, ok !== undefined ? `at N = ${ok.nodes}: memgossip ${ms(ok.memgossip.p99)} vs Serf ${ms(ok.serfEvent?.p99)}` : '')
    } else if (p.serfEvent === undefined) add(`propagation-${origin}`, `propagation p99 at N = ${p.nodes} (${label})`, '≤ Serf user event p99, same run, N = 50', `memgossip ${ms(p.memgossip.p99)}; Serf not run`, undefined, r.serf.note)
    else {
      const ok = Number.isFinite(p.memgossip.p99) && p.missed.memgossip === 0 && p.memgossip.p99 <= p.serfEvent.p99
      add(`propagation-${origin}`, `propagation p99 at N = ${p.nodes} (${label})`, '≤ Serf user event p99, same run, N = 50', `memgossip ${ms(p.memgossip.p99)} vs Serf ${ms(p.serfEvent.p99)}${p.missed.memgossip > 0 ? ` (${p.missed.memgossip} memgossip trials timed out)` : ''}`, ok, p.nodes !== 50 ? `measured at N = ${p.nodes} (${r.mode} run)` : '')
    }
  }
  for (const p of r.propagation.filter(x => x.origin === 'leaf' && x.memgossipFinal !== undefined)) {
    const f = p.memgossipFinal!
    const goal = p.nodes <= 25 ? '≤ 250 ms p99 at N = 25 processes' : '≤ 250 ms p99 (N = 25 target; reported)'
    add(`final-${p.nodes}`, `reservation → final on every agent, N = ${p.nodes} processes`, goal, `p50 ${ms(f.p50)}, p99 ${ms(f.p99)} over ${f.n} trials`, p.nodes === 25 ? f.n > 0 && f.p99 <= 250 : undefined)
  }
  for (const f of r.finalInproc ?? []) {
    const goal = '≤ 1 s p99 at N = 100 in-process agents'
    if ('error' in f) { add(`final-inproc-${f.nodes}`, `reservation → final on every agent, N = ${f.nodes} in-process agents (libp2p TCP)`, goal, `no result: ${f.error.slice(0, 200)}`, f.nodes === 100 ? false : undefined); continue }
    add(`final-inproc-${f.nodes}`, `reservation → final on every agent, N = ${f.nodes} in-process agents (libp2p TCP)`, goal, `p50 ${ms(f.allP50Ms ?? Number.NaN)}, p99 ${ms(f.allP99Ms ?? Number.NaN)} over ${f.reservations} reservations${f.notFinal > 0 ? ` (${f.notFinal} not final within 15 s)` : ''}; process CPU ${fmt(f.cpuCores)} cores, event-loop delay p99 ${ms(f.loopDelayP99Ms)}${f.restCpuCores !== undefined ? ` (at rest before the writes ${fmt(f.restCpuCores)} cores, delay p99 ${ms(f.restLoopDelayP99Ms)})` : ''}, RSS ${fmt(f.rssBytes / MiB)} MiB`, f.nodes === 100 ? f.notFinal === 0 && f.allP99Ms !== null && f.allP99Ms <= 1000 : undefined)
  }
  for (const l of r.liveness ?? []) {
    add(`liveness-${l.nodes}`, `failure detection, N = ${l.nodes} processes (one agent killed with SIGKILL)`, 'suspected ≤ 5 s, dead ≤ 15 s on every survivor; 0 false suspicions', `suspected by every survivor after ${ms(l.suspectAllMs)} (first ${ms(l.suspectFirstMs)}), dead after ${ms(l.deadAllMs)} (first ${ms(l.deadFirstMs)}); ${l.falseSuspicions} suspicions${l.suspectedMembers !== undefined ? ` (of ${l.suspectedMembers} members)` : ''} in ${fmt(l.windowS)} s of traffic windows${l.suspicionsBefore !== undefined ? `, ${l.suspicionsBefore} before them (propagation trials)` : ''}`, l.nodes === 50 ? l.suspectAllMs <= 5000 && l.deadAllMs <= 15000 && l.falseSuspicions === 0 : undefined)
  }
  const measured = r.traffic.filter(x => x.windows.some(w => Number.isFinite(w.memgossip.socketBytesPerNodeSec))).sort((a, b) => a.nodes - b.nodes)
  if (measured.length === 0) add('bandwidth', 'bandwidth per node', '≤ Serf', 'not measured', undefined)
  for (const t of measured) {
    const rest = trafficMedians(t, 'rest')
    const load = trafficMedians(t, 'load')
    if (!Number.isFinite(rest.serfPayload)) {
      add(`bandwidth-${t.nodes}`, `bandwidth per node at N = ${t.nodes}`, '≤ Serf', `memgossip ${bytes(rest.mgSocket)}/s at rest, ${bytes(load.mgSocket)}/s under load; Serf not run`, undefined)
      continue
    }
    add(`rest-bytes-${t.nodes}`, `socket bytes per node at rest, N = ${t.nodes}`, '≤ Serf\'s (N = 10, 25 and 50)', `${bytes(rest.mgSocket)}/s vs Serf ${bytes(rest.serfPayload)}/s (×${fmt(rest.ratioSocket, 2)})`, rest.ratioSocket <= 1)
    add(`load-bytes-${t.nodes}`, `socket bytes per node under 1 change/s, N = ${t.nodes}`, '≤ 2× Serf\'s at N = 25 and 50', `${bytes(load.mgSocket)}/s vs Serf ${bytes(load.serfPayload)}/s (×${fmt(load.ratioSocket, 2)})`, t.nodes >= 25 ? load.ratioSocket <= 2 : undefined)
    if (Number.isFinite(rest.ratioCpu)) add(`rest-cpu-${t.nodes}`, `CPU of all agents together at rest, N = ${t.nodes}`, '≤ 2× Serf\'s at N = 50', `${fmt(rest.mgCpu * t.nodes, 2)} cores vs Serf ${fmt(rest.serfCpu * t.nodes, 2)} cores (×${fmt(rest.ratioCpu, 2)}, window by window)`, t.nodes === 50 ? rest.ratioCpu <= 2 : undefined)
  }
  if (measured.length > 0) {
    // Duplicates need gossip to have reached every node: where it did not (fewer
    // than one copy per node per message: agents starved of CPU, the rest came
    // by anti-entropy), the size says nothing about amplification.
    const reached = largest(r.traffic.filter(x => x.windows.length > 0 && x.windows.every(probeComplete)))
    const skipped = r.traffic.filter(x => x.nodes > (reached?.nodes ?? 0) && x.windows.some(w => Number.isFinite(w.memgossip.gossipCopiesPerNodePerMessage))).map(x => x.nodes)
    const copies = reached !== undefined ? trafficMedians(reached, 'load').copies : Number.NaN
    const dup = copies - 1
    const note = skipped.length > 0 ? `; not at N = ${skipped.join(', ')}: there gossipsub delivered fewer than one copy per node per message in some windows (agents waiting for CPU; anti-entropy delivered the rest), so amplification cannot be read off` : ''
    add('duplicates', `duplicate deliveries per update at N = ${reached?.nodes ?? '?'}`, '≤ 3 per node', Number.isFinite(dup) ? `${fmt(dup, 2)} duplicates per node (${fmt(copies, 2)} copies received per node per gossip message)${note}` : `not measured${note}`, Number.isFinite(dup) ? dup <= 3 : undefined)
  }
  if (r.heal === undefined) add('heal', 'partition heal', '≤ 2 s after links return', 'not measured', undefined)
  else add('heal', `partition heal, ${r.heal.nodes} agents, ${r.heal.trials.length} trials`, '≤ 2 s after links return (p99)', `median ${ms(r.heal.summary.p50)}, p99 ${ms(r.heal.summary.p99)}${r.heal.trials.some(x => !Number.isFinite(x.healMs)) ? ' (some trials did not converge within 30 s)' : ''}`, r.heal.summary.n === r.heal.trials.length && r.heal.summary.p99 <= 2000 && r.heal.trials.every(x => x.consistent))
  const v1000 = r.virtual.runs.find(x => x.nodes === 1000)
  if (!r.virtual.available) add('virtual', 'virtual tier convergence p99 at N = 1,000', '≤ 0.5 s virtual time', r.virtual.note === '' ? 'not measured' : r.virtual.note, undefined)
  else if (v1000 === undefined || v1000.error !== undefined) {
    // Convergence does not get faster with more peers: a miss at a smaller size is a miss at 1,000;
    // a run at 1,000 that gave no result is a miss whatever the smaller sizes did.
    const smaller = r.virtual.runs.filter(x => x.error === undefined && x.convergenceP99 !== undefined && x.nodes < 1000).sort((a, b) => b.nodes - a.nodes)[0]
    const at1000 = v1000?.error !== undefined ? `no result at 1,000: ${v1000.error}` : 'not run at 1,000'
    add('virtual', 'virtual tier convergence p99 at N = 1,000', '≤ 0.5 s virtual time', smaller !== undefined ? `${at1000}; at N = ${smaller.nodes.toLocaleString('en-US')}: p50 ${ms(smaller.convergenceP50 ?? Number.NaN)}, p99 ${ms(smaller.convergenceP99!)}` : at1000, v1000 !== undefined || (smaller !== undefined && smaller.convergenceP99! > 500) ? false : undefined)
  }
  else add('virtual', 'virtual tier convergence p99 at N = 1,000', '≤ 0.5 s virtual time', v1000.convergenceP99 !== undefined ? ms(v1000.convergenceP99) : 'no p99 field in the result', v1000.convergenceP99 !== undefined ? v1000.convergenceP99 <= 500 : undefined, 'assumes benchVirtual reports milliseconds of virtual time')
  evaluateVirtualScale(r, add)
  const fitBig = r.crdt?.fit.find(f => f.nodes === 1000)
  // The target is fit()'s own cost: the dedicated run (fit-cpu.ts: 4,000 calls on
  // one resolution) when there is one; runCrdtBench times fit() between full
  // resolve() runs, whose garbage the collector reclaims during the fit() calls.
  if (r.fitCpu !== undefined) {
    add('fit', 'fit() p99 in process, 1,000 nodes × 10,000 reservations', '≤ 1 ms', `${ms(r.fitCpu.wallMs.p99)} wall (p50 ${ms(r.fitCpu.wallMs.p50)}, ${r.fitCpu.calls.toLocaleString('en-US')} calls on one resolution); CPU time per call p99 ${ms(r.fitCpu.cpuMs.p99)}${fitBig !== undefined ? `; timed between resolve() runs: p99 ${ms(fitBig.p99Ms)}` : ''}`, r.fitCpu.wallMs.p99 <= 1)
  } else {
    add('fit', 'fit() p99 in process, 1,000 nodes × 10,000 reservations', '≤ 1 ms', fitBig !== undefined ? `${ms(fitBig.p99Ms)} wall (p50 ${ms(fitBig.p50Ms)}, ${fitBig.runs} calls)` : 'not measured', fitBig !== undefined ? fitBig.p99Ms <= 1 : undefined)
  }
  add('http', 'HTTP POST /v1/fit throughput, 10 connections', `≥ 5,000 requests/s on ${r.machine.cores} cores`, r.httpFit !== undefined ? `${fmt(r.httpFit.requestsPerSec)} requests/s, p99 ${ms(r.httpFit.latencyP99Ms)}` : 'not measured', r.httpFit !== undefined ? r.httpFit.requestsPerSec >= 5000 : undefined)
  const cli = r.cliTiming
  add('cli', '`memgossip fit 1GiB` wall time, median, against a running agent', `≤ ${CLI_TARGET_MS} ms`, cli !== undefined ? `${ms(cli.installed.p50)} installed (p99 ${ms(cli.installed.p99)}); ${ms(cli.tsx.p50)} through tsx; curl ${ms(cli.curl?.p50)}; node -e 0 ${ms(cli.nodeStart.p50)} (${cli.runs} runs each)` : 'not measured', cli !== undefined ? cli.installed.p50 <= CLI_TARGET_MS : undefined)
  add('ledger', `ledger growth under heartbeats (${r.crdt?.heartbeats.heartbeats.toLocaleString('en-US') ?? '?'} from ${r.crdt?.heartbeats.nodes ?? '?'} nodes)`, '≤ 100 B per node', r.crdt !== undefined ? `${fmt(r.crdt.heartbeats.bytesPerNode)} B per node` : 'not measured', r.crdt !== undefined ? r.crdt.heartbeats.bytesPerNode <= 100 : undefined)
  add('idle', 'RSS of an idle agent process', '≤ 80 MB', r.idle !== undefined ? `${fmt(r.idle.rssBytes / 1e6)} MB after ${fmt(r.idle.idleS)} s` : 'not measured', r.idle !== undefined ? r.idle.rssBytes <= 80e6 : undefined)
  add('peer', `RSS per in-process peer at ${r.realTier?.nodes ?? 100} peers`, '≤ 15 MB', r.realTier?.rssPerPeerBytes !== undefined ? `${fmt(r.realTier.rssPerPeerBytes / 1e6)} MB` : 'not measured', r.realTier?.rssPerPeerBytes !== undefined ? r.realTier.rssPerPeerBytes <= 15e6 : undefined)
  return out
}

/** Text for a Markdown table cell: a `|` in it (a child's last stderr lines, joined by ' | ') would end the cell. */
const cell = (text: string): string => text.replaceAll('|', '\\|')

const mark = (met: boolean | undefined): string => met === undefined ? 'n/a' : met ? 'met' : '**MISSED**'

export function summaryTable (r: BenchResults): string {
  const lines = [`memgossip benchmark (${r.mode} run, ${new Date(r.date).toISOString().slice(0, 16).replace('T', ' ')} UTC)`, '', '| target | goal | this run | |', '| --- | --- | --- | --- |']
  for (const t of r.targets) lines.push(`| ${cell(t.name)} | ${cell(t.target)} | ${cell(t.value)} | ${mark(t.met)} |`)
  if (r.propagation.length > 0) {
    lines.push('', '| N | change on | memgossip p50 / p99 | Serf event p50 / p99 | ratio p50 / p99 | Serf tag p50 / p99 |', '| --- | --- | --- | --- | --- | --- |')
    for (const p of r.propagation) lines.push(`| ${p.nodes} | ${p.origin} | ${pair(p.memgossip)} | ${pair(p.serfEvent)} | ${ratio(p.ratioEvent)} | ${pair(p.serfTag)} |`)
  }
  return lines.join('\n')
}

export function renderCharts (r: BenchResults): Record<string, string> {
  const charts: Record<string, string> = {}
  if (r.propagation.length > 0) {
    const withSerf = r.propagation.some(p => p.serfEvent !== undefined)
    charts['bench-propagation.svg'] = barChart({
      title: 'Propagation: change on one node until every other node has it',
      unit: 'ms',
      log: true,
      series: [
        { name: 'memgossip reservation', color: '#2b6cb0' },
        ...(withSerf ? [{ name: 'Serf user event', color: '#dd6b20' }, { name: 'Serf tag change', color: '#c69c3c' }] : [])
      ],
      groups: r.propagation.map(p => ({
        label: `N = ${p.nodes}\n${p.origin === 'seed' ? 'on node 0' : 'on a leaf'}`,
        values: [
          { p50: p.memgossip.p50, p99: p.memgossip.p99 },
          ...(withSerf ? [p.serfEvent !== undefined ? { p50: p.serfEvent.p50, p99: p.serfEvent.p99 } : undefined, p.serfTag !== undefined ? { p50: p.serfTag.p50, p99: p.serfTag.p99 } : undefined] : [])
        ]
      }))
    })
  }
  if (r.traffic.length > 0) {
    const withSerf = r.traffic.some(t => t.windows.some(w => w.serf !== undefined))
    charts['bench-bandwidth.svg'] = barChart({
      title: 'Traffic per node (sent + received)',
      unit: 'bytes per second',
      log: true,
      series: [
        { name: 'memgossip (TCP socket bytes)', color: '#2b6cb0' },
        { name: 'memgossip (protocol payload)', color: '#90cdf4' },
        ...(withSerf ? [{ name: 'Serf (memberlist UDP+TCP payload)', color: '#dd6b20' }] : [])
      ],
      groups: r.traffic.flatMap(t => (['rest', 'load'] as const).map(kind => {
        const ws = t.windows.filter(w => w.kind === kind)
        const s = (f: (w: TrafficWindow) => number | undefined): { p50: number, p99: number } => {
          const xs = ws.map(w => f(w) ?? Number.NaN).filter(x => Number.isFinite(x))
          return { p50: percentile(xs, 0.5), p99: percentile(xs, 0.99) }
        }
        return {
          label: `N = ${t.nodes}\n${kind === 'rest' ? 'at rest' : '1 change/s'}`,
          values: [s(w => w.memgossip.socketBytesPerNodeSec), s(w => w.memgossip.payloadBytesPerNodeSec), ...(withSerf ? [s(w => w.serf?.payloadBytesPerNodeSec)] : [])]
        }
      }))
    })
  }
  if (r.heal !== undefined) {
    charts['bench-heal.svg'] = barChart({
      title: `Partition heal: ${r.heal.nodes} agents, time after links return`,
      unit: 'ms',
      series: [{ name: 'identical verdict digests', color: '#2b6cb0' }, { name: 'both reservations everywhere', color: '#90cdf4' }],
      groups: r.heal.trials.map(t => ({ label: `trial ${t.trial + 1}`, values: [{ p50: t.healMs }, { p50: t.bothSeenMs }] })),
      line: { value: 2000, label: 'target 2 s' }
    })
  }
  return charts
}

function propagationTable (ps: PropagationResult[]): string[] {
  const lines = [
    '| N | change on | memgossip p50 / p99 | Serf user event p50 / p99 | memgossip ÷ Serf event, trial by trial, p50 / p99 | Serf tag change p50 / p99 | memgossip ÷ Serf tag p50 / p99 | Serf `member-update` handler event p50 / p99 | memgossip POST answered p50 / p99 | memgossip final on every agent p50 / p99 | trials (timeouts mg / event / tag) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'
  ]
  for (const p of ps) {
    lines.push(`| ${p.nodes} | ${p.origin === 'seed' ? 'node 0 (seed)' : `node ${p.originIndex} (leaf)`} | ${p.memgossipFailed !== undefined ? 'no cluster formed' : pair(p.memgossip)} | ${pair(p.serfEvent)} | ${ratio(p.ratioEvent)} | ${pair(p.serfTag)} | ${ratio(p.ratioTag)} | ${pair(p.serfTagAgent)} | ${pair(p.memgossipAck)} | ${p.memgossipFinal !== undefined ? pair(p.memgossipFinal) : '—'} | ${p.trials.length} (${p.missed.memgossip} / ${p.missed.serfEvent} / ${p.missed.serfTag}) |`)
  }
  return lines
}

export function trafficTables (ts: TrafficResult[]): string[] {
  const lines = [
    '| N | window | memgossip protocol payload | memgossip TCP socket bytes | memgossip est. on the wire | Serf memberlist payload | Serf est. on the wire | memgossip ÷ Serf (socket ÷ payload) | memgossip ÷ Serf (wire) | busiest node: memgossip / Serf |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'
  ]
  for (const t of ts) {
    for (const kind of ['rest', 'load'] as const) {
      const m = trafficMedians(t, kind)
      lines.push(`| ${t.nodes} | ${kind === 'rest' ? 'at rest' : '1 change/s'} | ${bytes(m.mgPayload)}/s | ${bytes(m.mgSocket)}/s | ${bytes(m.mgWire)}/s | ${bytes(m.serfPayload)}/s | ${bytes(m.serfWire)}/s | ${fmt(m.ratioSocket, 2)} | ${fmt(m.ratioWire, 2)} | ${bytes(m.mgBusiest)}/s / ${bytes(m.serfBusiest)}/s |`)
    }
  }
  lines.push('', 'Per node per second, sent + received, median over the windows.', '')
  const cpu = (x: number): string => Number.isFinite(x) ? `${fmt(x * 100, 2)}%` : '–'
  lines.push('CPU used by the agent processes over the same windows (CPU seconds per second, from /proc/<pid>/stat; 100% = one core):', '')
  lines.push('| N | window | memgossip per agent (mean) | memgossip node 0 | Serf per agent (mean) | Serf node 0 | all memgossip agents together | all Serf agents together |', '| --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const t of ts) {
    for (const kind of ['rest', 'load'] as const) {
      const m = trafficMedians(t, kind)
      lines.push(`| ${t.nodes} | ${kind === 'rest' ? 'at rest' : '1 change/s'} | ${cpu(m.mgCpu)} | ${cpu(m.mgCpuHub)} | ${cpu(m.serfCpu)} | ${cpu(m.serfCpuHub)} | ${Number.isFinite(m.mgCpu) ? `${fmt(m.mgCpu * t.nodes, 2)} cores` : '–'} | ${Number.isFinite(m.serfCpu) ? `${fmt(m.serfCpu * t.nodes, 2)} cores` : '–'} |`)
    }
  }
  lines.push('')
  lines.push('| N | window | gossip messages published | copies gossipsub received per node per message | duplicates per node per message | IHAVE / IWANT entries per node per s | ledger updates applied per node per message | of which brought nothing new | sync rounds per node per s | gossipsub sent per node per s: messages / control |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const t of ts) {
    for (const kind of ['rest', 'load'] as const) {
      const m = trafficMedians(t, kind)
      if (!t.windows.filter(w => w.kind === kind).every(probeComplete)) {
        // Nothing published: no copies to count (updates and beacons go on direct streams). Fewer than none: a counter read before its agent wrote it.
        const published = m.published < 0 ? '–' : m.published
        const copies = m.published === 0 ? 'none published' : 'counters incomplete'
        lines.push(`| ${t.nodes} | ${kind === 'rest' ? 'at rest' : '1 change/s'} | ${published} | ${copies} | – | – | ${fmt(m.applied, 3)} | ${Number.isFinite(m.redundant) ? `${fmt(m.redundant * 100, 3)}%` : '–'} | ${fmt(m.sync, 3)} | – |`)
        continue
      }
      lines.push(`| ${t.nodes} | ${kind === 'rest' ? 'at rest' : '1 change/s'} | ${m.published} | ${fmt(m.copies, 3)} | ${fmt(m.copies - 1, 3)} | ${fmt(m.ihave, 3)} / ${fmt(m.iwant, 3)} | ${fmt(m.applied, 3)} | ${Number.isFinite(m.redundant) ? `${fmt(m.redundant * 100, 3)}%` : '–'} | ${fmt(m.sync, 3)} | ${bytes(m.gsMessages)} / ${bytes(m.gsControl)} |`)
    }
  }
  return lines
}

export function renderMarkdown (r: BenchResults, charts: string[], jsonRel: string): string {
  const L: string[] = []
  const when = new Date(r.date).toISOString().slice(0, 16).replace('T', ' ')
  L.push('# Benchmarks', '')
  L.push(`Generated by \`npm run bench${r.mode === 'full' ? '' : ` -- --${r.mode}`}\` on ${when} UTC (${r.mode} run, ${fmt(r.durationS / 60)} min). Raw figures: [${jsonRel.split('/').pop()}](${jsonRel}).`, '')
  L.push(`Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Linux ${r.machine.kernel}, Node ${r.machine.node}; ${r.serf.available ? `Serf ${r.serf.version ?? ''}` : 'no Serf'}. Load average (1/5/15 min) ${r.machine.loadBefore.join(' / ')} at the start, ${r.machine.loadAfter.join(' / ')} at the end.`, '')
  if (r.mode !== 'full') L.push(`> This is a **${r.mode}** run: fewer sizes and trials than \`npm run bench\`; treat its figures as indicative.`, '')
  L.push('Medians and p99 are nearest-rank over the trials (with 20 trials the p99 is the slowest trial). Ratios memgossip ÷ Serf are computed trial by trial — the two products ran back to back, alternating which went first — and then summarised.', '')

  L.push('## Targets', '', '| target | goal | this run | |', '| --- | --- | --- | --- |')
  for (const t of r.targets) L.push(`| ${cell(t.name)} | ${cell(t.target)} | ${cell(t.value)}${t.note !== '' ? ` (${cell(t.note)})` : ''} | ${mark(t.met)} |`)
  L.push('')
  const missed = r.targets.filter(t => t.met === false)
  if (missed.length > 0) {
    L.push('### Why the missed targets are missed', '')
    // Targets that share a finding (bytes at rest at several sizes) print it once.
    const explained = new Set<string>()
    for (const t of missed) {
      const lines = explainMissed(t.id ?? '', r)
      const key = lines.join('\n')
      if (explained.has(key)) continue
      explained.add(key)
      L.push(...lines, '')
    }
  }

  L.push('## 1. Propagation', '')
  L.push(`Separate processes on 127.0.0.1, every node joining node 0, for both products. memgossip: \`POST /v1/reservations\` (1 MiB, placement any) on one agent; arrival = the first \`verdict\` event for that id on each other agent's \`GET /v1/events\` stream, timestamped by the benchmark as read. Serf: a user event with a ${r.payloadBytes}-byte payload (the size of the gossip message one reservation becomes) sent over Serf's RPC with \`Coalesce: false\` (what \`serf event -coalesce=false\` sends; the RPC is used directly so the clock starts when the request is written, not after a CLI process started), arrival = \`Received event: user-event: <name>\` on each agent's stdout; and a tag change (\`serf tags -set\` over RPC), arrival = the serf library's \`EventMemberUpdate: <node>\` line (the member list has the new tags). The agent's own \`Received event: member-update\` (what an event handler would see) comes later by design — the agent coalesces member events (1 s quiet period, 3 s cap) — and is shown separately. Time = from the request being written until the last other node has it; a trial that has not arrived everywhere after 15 s (memgossip) / 10 s (Serf) counts as a timeout and is left out of the percentiles.`, '')
  L.push(...propagationTable(r.propagation), '')
  for (const f of r.sizeFailures ?? []) L.push(`**N = ${f.nodes}, ${f.product}: could not be measured on this machine.** ${f.reason.split('\n')[0]}`, '')
  if (charts.includes('bench-propagation.svg')) L.push('![propagation](bench-propagation.svg)', '')

  L.push('## 2. Bandwidth and 3. gossip amplification', '')
  L.push('At each size, the memgossip and the Serf cluster were measured over the same windows of time: at rest, then with one change per second (the k-th change made on node k mod N: a reservation for memgossip, a user event of the same size for Serf).', '')
  L.push(...trafficTables(r.traffic), '')
  if (charts.includes('bench-bandwidth.svg')) L.push('![bandwidth](bench-bandwidth.svg)', '')
  L.push('What each number counts:', '')
  L.push('- **memgossip protocol payload**: the agent\'s own counters (`memgossip_bytes_in_total` + `memgossip_bytes_out_total` in `/metrics`): the bodies of gossip messages (Yjs updates) and of anti-entropy requests and replies. It leaves out everything libp2p adds.')
  L.push('- **memgossip TCP socket bytes**: the kernel\'s `bytes_sent` + `bytes_received` of every TCP socket the agent process owns except its HTTP API port (`ss -tinp`), i.e. all libp2p traffic: Noise encryption, yamux framing, gossipsub data and control (IHAVE/IWANT/GRAFT/PRUNE), identify, ping and the sync protocol. This is the number compared with Serf.')
  L.push('- **Serf memberlist payload**: Serf\'s own telemetry, sent to a statsd socket per agent: `memberlist.udp.sent` + `memberlist.udp.received` (every gossip/probe/ack packet, as handed to the socket) + 2 × `memberlist.tcp.sent` (push/pull state exchanges; memberlist counts TCP only when sending, and on a closed cluster every byte sent is received by a member). `/proc/<pid>/io` is not used: Go sends UDP with sendto()/recvfrom(), which rchar/wchar do not count (it shows only the TCP and log writes; kept in the JSON as `procIoBytesPerNodeSec`).')
  L.push('- **on the wire (estimate)**: the above plus IPv4+TCP headers (52 B per segment, from `segs_out`/`segs_in`) for memgossip; plus 28 B per UDP packet and about 10 segments × 52 B per push/pull connection for Serf.')
  L.push('- **Topology**: every node joined node 0, but a memgossip agent does not stay a leaf of a star: it dials members whose addresses arrive in their heartbeats until it holds about 6 connections, and gossipsub builds its mesh (degree D = 3, at most Dhi = 5) over those. A node receives about one copy of each message per mesh peer, less the one it got it from first.')
  L.push('- **gossipsub messages / control sent**: from the same preload: the size of every RPC gossipsub hands its streams, per copy, split into RPCs that carry messages and control-only ones (IHAVE/IWANT/GRAFT/PRUNE/IDONTWANT), before yamux and Noise framing. A byte one agent sends another receives, so these appear twice in the socket bytes.')
  L.push('- **counters incomplete**: the preload writes its counters when the benchmark asks (SIGUSR2); an agent starved of CPU may write them after the benchmark read them, and the window\'s differences are then meaningless. Such windows are marked instead of shown. **none published**: no message went through gossipsub in the window (an update goes to each connected peer on a direct stream, a beacon to its relay and the relay\'s batch to every peer the same way; gossipsub carries suspicions, and what a direct send could not deliver), so there are no copies to count.')
  L.push('- **gossip copies per node per message**: from a counting preload (`simulations/bench/gossip-probe.ts`, loaded only into the benchmark\'s agents) that counts every message gossipsub is handed by a peer, first copies and duplicates, divided by (messages published × (N − 1)). 1.0 means every node got each message exactly once; duplicates = copies − 1. gossipsub drops duplicates before the agent sees them; **ledger updates applied** counts what reached the agent (`memgossip_updates_in_total`, gossip and sync), and **brought nothing new** is `memgossip_redundant_updates_total` over it.')
  L.push('')

  L.push('## 4. Partition heal', '')
  if (r.heal === undefined) L.push('Not run.', '')
  else {
    L.push(`${r.heal.nodes} agents in one process (real libp2p over TCP on 127.0.0.1, real data dirs with fsync, default timers; ${r.heal.topology}). Each trial: every node blocks the other half with the connection gater (\`network.block\`) and hangs up; one agent on each side reserves 40 GiB pinned to the same node (about 60.8 GiB allocatable, so only one can be admitted); after 1.5 s every node lifts its blocks at once (\`network.unblock\`, which redials); time until every agent's verdict digest is identical.`, '')
    L.push('| trial | identical digests | both reservations on every agent | on the median agent | unblock calls returned | winner | verdicts consistent |', '| --- | --- | --- | --- | --- | --- | --- |')
    for (const t of r.heal.trials) L.push(`| ${t.trial + 1} | ${ms(t.healMs)} | ${ms(t.bothSeenMs)} | ${ms(percentile(t.perNodeMs ?? [], 0.5))} | ${ms(t.unblockMs)} | ${t.winner} | ${t.consistent ? 'yes' : '**no**'} |`)
    L.push('', `Median ${ms(r.heal.summary.p50)}, p99 ${ms(r.heal.summary.p99)}.`, '')
    if (charts.includes('bench-heal.svg')) L.push('![heal](bench-heal.svg)', '')
  }

  L.push('## 5. Virtual tier', '')
  if (!r.virtual.available) L.push(`> **MISSING — virtual tier figures.** ${r.virtual.note}`, '')
  else {
    L.push(`From \`benchVirtual\` (${r.virtual.file}), one process per size; convergence is in virtual time.`, '', '| N | convergence p50 | convergence p99 | peak RSS | RSS per peer | scenario invariants | largest N that would fit in 85% of memory (peak RSS × (N′/N)²) | wall time | |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for (const v of r.virtual.runs) {
      const res = virtualFields(v)
      L.push(`| ${v.nodes.toLocaleString('en-US')} | ${ms(v.convergenceP50)} | ${ms(v.convergenceP99)} | ${v.memoryBytes !== undefined ? `${fmt(v.memoryBytes / MiB)} MiB` : '–'} | ${typeof res.rssPerPeerBytes === 'number' ? `${fmt(res.rssPerPeerBytes / MiB)} MiB` : '–'} | ${res.passed === undefined ? '–' : res.passed ? 'passed' : '**failed**'} | ${v.memoryBytes !== undefined ? Math.floor(v.nodes * Math.sqrt(0.85 * r.machine.memoryGiB * 1024 ** 3 / v.memoryBytes)).toLocaleString('en-US') : '–'} | ${ms(v.wallMs)} | ${cell(v.error ?? '')} |`)
    }
    const finals = r.virtual.runs.filter(v => virtualFields(v).finality !== undefined)
    if (finals.length > 0) {
      L.push('', 'Reservation → final on every peer (virtual time, reservations written on a whole network; those written during a partition wait for the heal), and traffic at rest after the run (payload bytes, per node per second):', '', '| N | final everywhere p50 / p99 / max | per peer p50 / p99 | never final | at rest: messages in | bytes in / out | CPU | wall per virtual s |', '| --- | --- | --- | --- | --- | --- | --- | --- |')
      for (const v of finals) {
        const res = virtualFields(v)
        const w = res.finality!.whole
        L.push(`| ${v.nodes.toLocaleString('en-US')} | ${ms(w.allP50Ms ?? Number.NaN)} / ${ms(w.allP99Ms ?? Number.NaN)} / ${ms(w.allMaxMs ?? Number.NaN)} | ${ms(w.peerP50Ms ?? Number.NaN)} / ${ms(w.peerP99Ms ?? Number.NaN)} | ${w.neverFinal} | ${res.rest != null ? fmt(res.rest.messagesInPerNodePerS) : '–'} | ${res.rest != null ? `${fmt(res.rest.bytesInPerNodePerS)} / ${fmt(res.rest.bytesOutPerNodePerS)} B/s` : '–'} | ${res.cpuMs !== undefined ? ms(res.cpuMs) : '–'} | ${res.wallMsPerVirtualS !== undefined ? ms(res.wallMsPerVirtualS) : '–'} |`)
      }
    }
    const ok = r.virtual.runs.filter(v => v.error === undefined)
    if (ok.length > 0) L.push('', `Largest N run: ${Math.max(...ok.map(v => v.nodes)).toLocaleString('en-US')}. Memory grows as N² (every virtual peer holds a replica of the whole ledger), hence the estimate. The \`fleet\` scenario runs its agents with anti-entropy every 10 s (the agent's default is 5 s) and loses 1 % of gossip copies per path; each peer's copy of a message travels 3 paths, as over gossipsub's mesh of degree 3 (docs/simulations.md, "Mesh paths"). Full results in the JSON.`)
    L.push('')
  }

  L.push('## 6. Answers', '')
  if (r.crdt !== undefined) {
    L.push('In process (`runCrdtBench`, simulations/bench/crdt.ts): `resolve()` rebuilds all verdicts from the ledger; `fit()` answers from a resolution.', '', '| ledger | resolve() p50 / p99 | fit() p50 / p99 | fit() calls |', '| --- | --- | --- | --- |')
    for (let i = 0; i < r.crdt.fit.length; i++) {
      const f = r.crdt.fit[i]
      const rs = r.crdt.resolve[i]
      L.push(`| ${f.nodes.toLocaleString('en-US')} nodes × ${f.reservations.toLocaleString('en-US')} reservations | ${ms(rs?.p50Ms)} / ${ms(rs?.p99Ms)} | ${ms(f.p50Ms)} / ${ms(f.p99Ms)} | ${f.runs} |`)
    }
    L.push('')
    if (r.fitCpu !== undefined) {
      const f = r.fitCpu
      L.push(`The same fit() mix timed again with wall and CPU time per call (simulations/bench/fit-cpu.ts, ${f.calls.toLocaleString('en-US')} calls at ${f.nodes.toLocaleString('en-US')} × ${f.reservations.toLocaleString('en-US')}${f.warmup !== undefined ? `, in a process of its own, after ${f.warmup} untimed calls${f.collectedFirst === true ? ' and one full collection of the garbage of building the ledger' : ''}` : ''}): wall p50 ${ms(f.wallMs.p50)}, p99 ${ms(f.wallMs.p99)}; CPU p50 ${ms(f.cpuMs.p50)}, p99 ${ms(f.cpuMs.p99)}. ${f.slowCalls} calls took over 1 ms of wall time: ${f.slowWithGc} of them overlapped a garbage collection (${f.gcCount} collections, longest ${ms(f.gcMaxMs)}), ${f.slowWithCpu} used over 1 ms of CPU (a collection's time is charged to the thread it pauses)${f.slowWaiting !== undefined ? `, and ${f.slowWaiting} neither — the thread was waiting for a core` : ''}.`, '')
    }
  }
  if (r.httpFit !== undefined) {
    const h = r.httpFit
    L.push(`Over HTTP: autocannon (programmatic) against one agent in its own process (no peers, ${h.reservationsInLedger} reservations in its ledger), \`POST /v1/fit {"size":"1GiB","placement":"any"}\`, ${h.connections} connections, pipelining ${h.pipelining}, ${fmt(h.durationS)} s, on ${r.machine.cores} cores shared by autocannon and the agent.`, '')
    L.push('| requests/s | latency p50 | p99 | max | 2xx | errors / non-2xx | agent CPU | agent RSS |', '| --- | --- | --- | --- | --- | --- | --- | --- |')
    L.push(`| ${fmt(h.requestsPerSec)} | ${ms(h.latencyP50Ms)} | ${ms(h.latencyP99Ms)} | ${ms(h.latencyMaxMs)} | ${h.requests2xx.toLocaleString('en-US')} | ${h.errors} / ${h.non2xx} | ${fmt(h.agentCpuShare * 100)}% of a core | ${fmt(h.agentRssBytes / MiB)} MiB |`, '')
    if (h.profile !== undefined) {
      L.push('CPU profile of the agent under this load (`--profile`), self time:', '', '| function | where | share |', '| --- | --- | --- |')
      for (const f of h.profile.functions.slice(0, 12)) L.push(`| ${f.name} | ${f.where} | ${fmt(f.share * 100)}% |`)
      L.push('', `By package: ${h.profile.byPackage.map(p => `${p.pkg} ${fmt(p.share * 100)}%`).join(', ')}.`, '')
    }
  }

  L.push('## 7. Ledger size', '')
  if (r.crdt !== undefined) {
    const hb = r.crdt.heartbeats
    const ch = r.crdt.churn
    L.push('| measure | value |', '| --- | --- |')
    L.push(`| ${hb.heartbeats.toLocaleString('en-US')} heartbeats from ${hb.nodes} nodes: encoded ledger | ${bytes(hb.encodedBytes)} |`)
    L.push(`| growth per node beyond one live heartbeat each | ${fmt(hb.bytesPerNode)} B |`)
    L.push(`| time per heartbeat write | ${fmt(hb.usPerHeartbeat)} µs |`)
    L.push(`| ${ch.reservations.toLocaleString('en-US')} reservations made and released: bytes kept per reservation | ${fmt(ch.bytesPerReservation)} B |`, '')
  } else L.push('Not run.', '')

  L.push('## 8. Memory', '')
  L.push('| measure | value |', '| --- | --- |')
  if (r.idle !== undefined) L.push(`| idle agent process (no peers, after ${fmt(r.idle.idleS)} s), VmRSS | ${fmt(r.idle.rssBytes / 1e6)} MB (${fmt(r.idle.rssBytes / MiB)} MiB): ${fmt(r.idle.rssAnonBytes / MiB)} MiB anonymous, ${fmt(r.idle.rssFileBytes / MiB)} MiB file-backed (the node binary and libraries), ${r.idle.threads} threads |`)
  if (r.realTier !== undefined) {
    const res = r.realTier.result as { baselineRssBytes?: number, rssBytes?: number, heapUsedPerPeerBytes?: number, transport?: string, scenario?: string, heartbeatMs?: number, syncMs?: number, formMs?: number } | undefined
    L.push(`| RSS per in-process peer at ${r.realTier.nodes} peers (${r.realTier.source}) | ${r.realTier.rssPerPeerBytes !== undefined ? `${fmt(r.realTier.rssPerPeerBytes / 1e6)} MB` : '–'}${res?.baselineRssBytes !== undefined ? ` (process ${fmt(res.baselineRssBytes / MiB)} MiB with the code loaded and no agent, ${fmt((res.rssBytes ?? 0) / MiB)} MiB with ${r.realTier.nodes}; JS heap ${fmt((res.heapUsedPerPeerBytes ?? 0) / MiB)} MiB per peer; scenario ${res.scenario ?? '?'} over the ${res.transport ?? '?'} transport, heartbeats every ${fmt((res.heartbeatMs ?? Number.NaN) / 1000)} s and syncs every ${fmt((res.syncMs ?? Number.NaN) / 1000)} s${res.formMs !== undefined ? `, formed in ${fmt(res.formMs / 1000)} s` : ''})` : ''} |`)
  }
  L.push('')

  L.push('## Settings', '')
  for (const s of r.settings) L.push(`- ${s}`)
  L.push('')
  if (r.notes.length > 0) {
    L.push('## Notes', '')
    for (const n of r.notes) L.push(`- ${n}`)
    L.push('')
  }
  L.push('Reproduce: `npm run bench` (about 26 minutes, plus about 14 for the virtual tier at 100, 200 and 300 peers, each with its at-rest window, and up to 30 more for 1,000, tried when 300 took under 10 minutes; `--skip virtual` leaves the tier out), `npm run bench -- --quick` (under 3 minutes), `npm run bench -- --help` for the flags; `npx tsx simulations/bench/rest-profile.ts --nodes 25` CPU-profiles one idle agent of a cluster of separate agent processes. Serf is installed with `apt-get install -y serf` when it is missing and the run is root; otherwise the comparison is skipped and the report says so.', '')
  return L.join('\n')
}
