/**
 * Why a target is missed: what was found when the miss was investigated
 * (profiles, CPU time against wall time, counters, and patched builds tried
 * outside the repository), printed next to the figures of the run that missed
 * it. Each entry appears only when its target is missed in that run; figures
 * in backticks-free prose come from the run itself, the rest are named as
 * measurements made while investigating (2026-11-21, this machine).
 */
import { RELAY_DEFAULTS } from '../../agent/relay.ts'
import { probeComplete } from './clusters.ts'
import type { BenchResults } from './results.ts'
import { fmt } from './stats.ts'
import { trafficMedians, type TrafficMedians } from './traffic.ts'

const pct = (x: number): string => `${fmt(x * 100, 2)}%`

export function explainMissed (id: string, r: BenchResults): string[] {
  switch (id) {
    case 'propagation-seed':
    case 'propagation-leaf': {
      const origin = id === 'propagation-seed' ? 'seed' : 'leaf'
      const failed = r.propagation.find(x => x.origin === origin && x.memgossipFailed !== undefined)
      const p = [...r.propagation].filter(x => x.origin === origin && x.memgossipFailed === undefined).sort((a, b) => b.nodes - a.nodes)[0]
      const slowShare = p !== undefined ? p.trials.filter(t => t.memgossipMs > 1000).length / p.trials.length : Number.NaN
      const out: string[] = []
      const cpuAt = [...r.traffic].filter(t => t.windows.some(w => Number.isFinite(w.memgossip.cpuPerNode))).sort((a, b) => a.nodes - b.nodes)
      const restCpu = (t: typeof cpuAt[number], which: 'memgossip' | 'serf'): number => trafficMedians(t, 'rest')[which === 'memgossip' ? 'mgCpu' : 'serfCpu']
      const cpuText = `${cpuAt.map(t => `${fmt(restCpu(t, 'memgossip') * 100, 2)}% of a core per agent at rest at N = ${t.nodes}`).join(', ')}${cpuAt.length > 0 && Number.isFinite(restCpu(cpuAt[0], 'serf')) ? `, against ${cpuAt.map(t => `${fmt(restCpu(t, 'serf') * 100, 2)}%`).join(' and ')} for a Serf agent` : ''}`
      if (failed !== undefined && (id === 'propagation-seed' || r.propagation.every(x => x.origin !== 'seed' || x.memgossipFailed === undefined))) {
        out.push(`- **No memgossip cluster at N = ${failed.nodes} on this machine.** ${failed.memgossipFailed?.split('\n')[0] ?? ''}. Cause: CPU. An idle memgossip agent's work grows with the cluster — every member's heartbeat (every 5 s) reaches every agent, which checks its signature, applies it to the Yjs document, appends it to its log and updates liveness and finality (heartbeats no longer re-run the replay) — ${cpuText}. The whole cluster's cost grows as N², and ${failed.nodes} agent processes (each also a Node.js runtime with its own garbage collector) share the ${r.machine.cores} cores of this machine with the ${failed.nodes} Serf agents. Once the agents are starved, anti-entropy requests time out (10 s), libp2p's connection monitor drops connections whose pings go unanswered, agents redial (more Noise handshakes, more CPU), and the cluster does not settle within the time limit. This is a limit of one small host running many agents, not of a real deployment with one agent per host — but the per-agent CPU figures carry over: they grow with the size of the cluster.`)
        out.push('  What would change it: a liveness/clock channel lighter than a full heartbeat per member per 5 s (see Bandwidth). The benchmark records the failure instead of changing defaults.')
      }
      if (p === undefined || (p.memgossip.n > 0 && p.serfEvent !== undefined && p.memgossip.p99 <= p.serfEvent.p99 && p.missed.memgossip === 0)) return out
      const all = cpuAt.find(t => t.nodes === p.nodes)
      return [...out,
        `- **Propagation (${id === 'propagation-seed' ? 'change on node 0' : 'change on a leaf'}${failed !== undefined ? `, at the largest size that ran, N = ${p.nodes}` : ''})**: at N = ${p.nodes}, ${pct(slowShare)} of memgossip trials took over 1 s (median ${fmt(p.memgossip.p50)} ms, p99 ${fmt(p.memgossip.p99)} ms). A reservation travels as one gossipsub message through a gossipsub mesh of degree 3 (each agent keeps about 6 connections to members it learns from the ledger, beyond its bootstrap peer), a few hops of a millisecond each on loopback; the slow trials are the ones where an agent on the path was waiting for a core: ${all !== undefined ? `the ${p.nodes} memgossip agents used ${fmt(restCpu(all, 'memgossip') * p.nodes, 2)} cores together at rest on this ${r.machine.cores}-core machine` : 'see the CPU table in section 2'}, and an agent that is behind delivers the message late to everyone downstream of it.`
      ]
    }
    case 'bandwidth': {
      const t = [...r.traffic].sort((a, b) => b.nodes - a.nodes)[0]
      const rest = t !== undefined ? trafficMedians(t, 'rest') : undefined
      const payload = rest?.mgPayload ?? Number.NaN
      const socket = rest?.mgSocket ?? Number.NaN
      const serf = rest?.serfPayload ?? Number.NaN
      const n = t?.nodes ?? 0
      // One heartbeat gossip message: ~250 B of Yjs update plus ~140 B of gossipsub envelope (author, seqno, topic, signature).
      const floor = (n / 5) * 390 * 2
      // The breakdown comes from the counting preload; where starved agents wrote
      // their counters late it does not add up, so it is shown at the largest size where it does.
      const consistent = [...r.traffic].sort((a, b) => b.nodes - a.nodes).find(x => x.windows.filter(v => v.kind === 'rest').every(probeComplete))
      const cm = consistent !== undefined ? trafficMedians(consistent, 'rest') : undefined
      const breakdown = consistent === undefined || cm === undefined
        ? ''
        : ` Where the socket bytes go${consistent.nodes !== n ? ` (at N = ${consistent.nodes}: at N = ${n} the agents, short of CPU, wrote their gossipsub counters too late for the windows to add up)` : ''} — each byte one agent sends another receives, so socket bytes hold gossipsub's sends twice: of ${fmt(cm.mgSocket)} B/s, gossipsub messages ${fmt(2 * cm.gsMessages)} B/s (${fmt(cm.copies, 2)} copies of each message reach each agent), gossipsub control (IHAVE/IWANT/GRAFT/PRUNE) ${fmt(2 * cm.gsControl)} B/s, and the rest — ${fmt(cm.mgSocket - 2 * (cm.gsMessages + cm.gsControl))} B/s — anti-entropy rounds (a new stream every 5 s per agent), connection pings, identify, and the yamux (12 B) and Noise (18 B) framing of every write.`
      return [
        `- **Bandwidth**: at rest${t !== undefined ? ` at N = ${n}` : ''} a memgossip agent moves ${fmt(socket)} B/s on its sockets (in + out), of which ${fmt(payload)} B/s are ledger bytes (the agent's own counters); Serf moves ${fmt(serf)} B/s.${breakdown}`,
        '  Since 2026-12-06 no member writes heartbeats: the ledger carries decisions, node records are written when a figure moves, liveness comes from a SWIM/Lifeguard failure detector (one ping per agent per second), and finality from beacons sent only when an entry is new, handed to one relay that batches every member\'s beacon into one message per member (docs/design.md "Clock channel", "Liveness"). At N = 10 and 25 the at-rest bytes are below Serf\'s (section 2).',
        '  At N = 50 the rest windows are not at rest: they follow the one-change-per-second windows, and agents short of CPU (see Failure detection) spend them catching up — suspicions and their refutations, and the pulls and syncs of what arrived late — which is what the ledger bytes counted at rest are, against a few dozen B/s at N = 10 and 25. What would close it is the same as for Failure detection: less CPU per change, so that 50 agents on 2 cores keep up.'
      ]
    }
    case 'duplicates':
      return ['- **Duplicates**: gossipsub delivers a message to a node once from each mesh peer that has not yet received it from that node; with D = 3 and at most Dhi = 5 peers in a mesh, a node receives on average one copy per mesh peer minus one. The count above is from the counting preload in the benchmark agents (section 2).']
    case 'heal': {
      const h = r.heal
      const spread = h !== undefined ? h.trials.map(t => t.perNodeMs ?? []).filter(x => x.length > 0).map(x => `${fmt(Math.min(...x))}–${fmt(Math.max(...x))} ms`) : []
      return [
        `- **Partition heal**: ${h !== undefined ? `first to last agent with both reservations, per trial: ${spread.join(', ')}. ` : ''}After the links return, the agents redial each other (libp2p dial plus Noise handshake per connection), run anti-entropy on every new connection and pass what it brought on to their other peers (epidemic pull, at most once per 500 ms per peer). All ${h?.nodes ?? 20} agents of this phase run in the benchmark's own process, on one thread: the redials, handshakes and syncs of every agent queue behind one another, so the slowest trials are the ones where the reconnection burst took longest (see "unblock calls returned" in section 4).`
      ]
    }
    case 'virtual': {
      const done = r.virtual.runs.filter(x => x.error === undefined)
      const largest = [...done].sort((a, b) => b.nodes - a.nodes)[0]
      const slow = done.filter(x => (x.convergenceP99 ?? 0) > 500)
      const failed = r.virtual.runs.filter(x => x.error !== undefined)
      const out = [
        `- **Virtual tier**: ${largest !== undefined ? `the largest size that finished was N = ${largest.nodes.toLocaleString('en-US')} (${fmt(largest.wallMs / 1000)} s of wall time)` : 'no size finished'}${failed.length > 0 ? `; ${failed.map(x => `N = ${x.nodes.toLocaleString('en-US')}: ${x.error ?? ''}`).join('; ')}` : ''}.`
      ]
      if (slow.length > 0) {
        out.push(`  Convergence p99 over 0.5 s at N = ${slow.map(x => x.nodes.toLocaleString('en-US')).join(', ')}: a peer that misses a gossip message gets it when the writer's next update shows the gap (the agent pulls it at once) or at its next periodic sync (every 10 s in \`fleet\`), whichever comes first. With gossip over 3 mesh paths a peer misses a message only if all three lose it; a p99 at the sync interval means copies were lost on every path (or the scenario's \`paths\` is 1).`)
      }
      out.push('  How the virtual tier scales with N, and what limits it: see the `fleet` target at 1,000 below.')
      return out
    }
    case 'virtual-fleet-1000':
      return explainVirtualScale(r)
    case 'virtual-final-1000':
      return ['- **Final at 1,000 virtual peers**: not measured at 1,000, because the tier does not reach that size within its budget (the `fleet` target); at the sizes that ran, the figure in the table is the time from a write on a whole network to final on every peer, in virtual time.']
    case 'fit': {
      const f = r.fitCpu
      return [
        `- **fit() p99**: ${f !== undefined ? `CPU time per call: median ${fmt(f.cpuMs.p50)} ms, p99 ${fmt(f.cpuMs.p99)} ms over ${f.calls} calls; of the ${f.slowCalls} calls over 1 ms of wall time, ${f.slowWithGc} overlapped a garbage collection${f.slowWaiting !== undefined ? ` and ${f.slowWaiting} were waiting for a core` : ''}. ` : ''}On a machine running other work (load ${r.machine.loadBefore[0]} on ${r.machine.cores} cores at the start of this run) the wall-clock tail is the thread waiting for a core or paused by a collection, not fit() computing.`
      ]
    }
    case 'http': {
      const h = r.httpFit
      return [`- **HTTP fit throughput**: ${h !== undefined ? `${fmt(h.requestsPerSec)} requests/s with the agent at ${fmt(h.agentCpuShare * 100)}% of one core. ` : ''}Run \`npm run bench -- --profile\` for the agent's CPU profile under this load (section 6).`]
    }
    case 'ledger':
      return ['- **Ledger growth**: see simulations/bench/crdt.ts for the measurement.']
    case 'idle':
      return [
        `- **Idle RSS**: ${r.idle !== undefined ? `${fmt(r.idle.rssBytes / 1e6)} MB, of which ${fmt(r.idle.rssFileBytes / 1e6)} MB are file-backed pages (the node binary and its libraries, shared with every other node process) and ${fmt(r.idle.rssAnonBytes / 1e6)} MB anonymous. ` : ''}Since 2026-12-06 the agent runs from a bundle with one V8 worker thread (docs/decisions.md "The agent runs from a bundle"): side by side on this machine for 26 minutes (\`npx tsx simulations/bench/idle-rss.ts\`), tsc's unbundled \`dist/\` held 86 MiB, the bundle 75 MiB and the bundle as \`npm start\` runs it 70 MiB. What remains is the node binary's pages (about 46 MiB; a bare \`node\` process touches 34 MiB of them), V8's heap (about 15 MB live, a third of it compiled code) and malloc arenas.`
      ]
    case 'peer':
      return ['- **RSS per peer**: see section 8.']
    default:
      if (id.startsWith('final-inproc-')) return explainFinalInproc(r, Number(id.slice('final-inproc-'.length)))
      if (id.startsWith('final-')) {
        return ['- **Reservation → final**: a verdict is final when every member\'s beacon past it has arrived and a majority has announced a line past it: two rounds of beacons. Each member hands its beacon to one relay, which sends every member one batch as soon as it holds every member\'s beacon, or ' + String(RELAY_DEFAULTS.windowMs) + ' ms after the first (docs/design.md "Clock channel"). A batch therefore waits for the slowest member: with 25 or more agent processes on 2 cores, each using about 3 % of a core per change per second, some agent is waiting for a core in most rounds, and a beacon that is lost or later than 1 s is pulled (which is where the slowest trials\' 1–2 s come from). Where an agent\'s CPU per change goes, at N = 25 under 2 changes a second for 160 s (`npx tsx simulations/bench/rest-profile.ts --nodes 25 --seconds 160 --changes 2`, which splits each agent\'s CPU by thread from /proc): the 25 agents used 1.08 cores, 0.83 on their event loops and 0.25 in V8\'s helper threads (garbage collection and compilation; 0.42 over a 40 s window, while each process is still compiling its hot code). Less what they use at rest, that is about 12 ms on the event loop and 2–5 ms in helpers per change per agent. Resolution is about 1 ms of it (in one process, a hot `finishResolution` takes 64 µs and runs about 6.6 times per change per agent, once per beacon batch, own beacon and clock move, and one replay of the ledger 0.25 ms); a CPU profile of the event loop spreads the rest over the libp2p stack per message (Noise, yamux, stream plumbing), Node\'s streams, events and timers, file writes and garbage collection, with no single hot spot. Running the agents with `--single-threaded` moves the helpers\' work onto the event loop without reducing the total. On hosts with a core per agent, as deployed, no agent waits for a core; on this machine the processes compete.']
      }
      if (id.startsWith('rest-bytes-')) return explainMissed('bandwidth', r)
      if (id.startsWith('load-bytes-')) return explainLoadBytes(r, Number(id.slice('load-bytes-'.length)))
      if (id.startsWith('rest-cpu-')) return explainRestCpu(r, Number(id.slice('rest-cpu-'.length)))
      if (id.startsWith('liveness-')) {
        return ['- **Failure detection**: with 50 agent processes on 2 cores, the one-change-per-second windows use most of both cores (memgossip\'s and Serf\'s agents together; section 2), and an agent\'s event loop then lags by more than the 1 s probe timeout. A starved agent misses its pings and its helpers\' pings alike, so it is suspected, as SWIM would, and it refutes once its event loop catches up. The detector does not accuse when its own timer runs late or when its helpers do not answer at all (Lifeguard\'s local health), but it cannot tell a peer starved for seconds from a dead one without a longer timeout, which would miss the 5 s detection target. What would fix it is less CPU per change (see Reservation → final); at N = 10 and 25, where the cores keep up, there were no suspicions.']
      }
      return [`- **${id}**: not investigated.`]
  }
}

/** The medians of one size's windows of one kind (undefined when that size has no traffic figures). */
function mediansAt (r: BenchResults, nodes: number, kind: 'rest' | 'load'): TrafficMedians | undefined {
  const t = r.traffic.find(x => x.nodes === nodes)
  return t === undefined ? undefined : trafficMedians(t, kind)
}

/** Cores all of one product's agents used together (the median window's CPU per agent × N). */
function coresAt (r: BenchResults, nodes: number, kind: 'rest' | 'load', which: 'memgossip' | 'serf'): number {
  const m = mediansAt(r, nodes, kind)
  return ((which === 'memgossip' ? m?.mgCpu : m?.serfCpu) ?? Number.NaN) * nodes
}

function explainLoadBytes (r: BenchResults, nodes: number): string[] {
  const cores = (which: 'memgossip' | 'serf'): number => coresAt(r, nodes, 'load', which)
  const ratio = (n: number): number => mediansAt(r, n, 'load')?.ratioSocket ?? Number.NaN
  const smaller = r.traffic.map(t => t.nodes).filter(n => n < nodes && Number.isFinite(ratio(n))).sort((a, b) => b - a)[0]
  const suspicions = r.liveness?.find(l => l.nodes === nodes)?.falseSuspicions
  return [
    `- **Bytes under one change a second, N = ${nodes}**: ×${fmt(ratio(nodes), 2)} Serf's${smaller !== undefined ? `, against ×${fmt(ratio(smaller), 2)} at N = ${smaller}` : ''}. A change reaches each agent as one update on the direct stream, then two rounds of beacons, each agent sending one beacon to the round's relay and receiving one batch from it (docs/design.md "Clock channel"). In these windows the ${nodes} memgossip agents used ${fmt(cores('memgossip'), 2)} cores together and Serf's ${fmt(cores('serf'), 2)}, on a ${r.machine.cores}-core machine: agents waiting for a core answer probes late${suspicions !== undefined ? ` (${suspicions} suspicions in the traffic windows, see Failure detection)` : ''}, and each suspicion and its refutation is a message to every agent; a beacon that arrives after its round is pulled, and an update that arrived late is synced. That catching-up is what the bytes above ${smaller !== undefined ? `N = ${smaller}'s ratio` : 'the plain case'} are; what would close it is less CPU per change (see Reservation → final).`
  ]
}

function explainRestCpu (r: BenchResults, nodes: number): string[] {
  const cores = (which: 'memgossip' | 'serf', kind: 'rest' | 'load'): number => coresAt(r, nodes, kind, which)
  return [
    `- **CPU at rest, N = ${nodes}**: the memgossip agents used ${fmt(cores('memgossip', 'rest'), 2)} cores together, Serf's ${fmt(cores('serf', 'rest'), 2)}. At rest an agent answers and sends one probe a second (SWIM), beacons on a slow timer and runs a sync round that backs off while it brings nothing (docs/design.md "Liveness", "Network"). The rest windows follow the one-change-per-second windows (${fmt(cores('memgossip', 'load'), 2)} cores there), and agents that fell behind spend the start of a rest window catching up (see Bandwidth).`
  ]
}

/** Why the virtual tier does not reach 1,000 peers within its budget: this run's sizes, and what profiles found. */
function explainVirtualScale (r: BenchResults): string[] {
  const done = r.virtual.runs.filter(x => x.error === undefined && x.result?.wallMs !== undefined).sort((a, b) => a.nodes - b.nodes)
  const wall = (x: typeof done[number]): number => x.result!.wallMs!
  const top = done.at(-1)
  const mib = (x: typeof done[number], field: 'rssPerPeerBytes' | 'heapPerPeerBytes'): number => (x.result?.[field] ?? Number.NaN) / 1024 ** 2
  const steps: string[] = []
  for (let i = 1; i < done.length; i++) {
    const a = done[i - 1]
    const b = done[i]
    steps.push(`${fmt(wall(a) / 1000)} s at ${a.nodes} → ${fmt(wall(b) / 1000)} s at ${b.nodes} (N^${fmt(Math.log(wall(b) / wall(a)) / Math.log(b.nodes / a.nodes), 2)})`)
  }
  return [
    `- **\`fleet\` at 1,000 virtual peers**: ${steps.length > 0 ? `the scenario's wall time grew ${steps.join(', ')}. ` : ''}The scenario's writes grow with N (30 % of N, then 10 % per region), every write reaches every peer, and every peer's refreshes after it walk every member: about N³ in all. A CPU profile of the scenario alone at 200 peers (seed 1, formation to settled, 2026-12-07): recomputing resolutions 39 % (\`finishResolution\` — finality and node views over every member — 25 %, the replay of the log 10 %), Yjs applying updates 16 % (of which the state vector Yjs builds at the start of every transaction, O(peers), 8 %), answering syncs 9.5 %, garbage collection 9 %.${top !== undefined ? ` Memory at N = ${top.nodes}: ${fmt(mib(top, 'rssPerPeerBytes'))} MiB of RSS and ${fmt(mib(top, 'heapPerPeerBytes'), 2)} MiB of heap per peer, ${fmt((top.memoryBytes ?? Number.NaN) / 1024 ** 3, 2)} GiB at the peak.` : ''}`,
    '  What would change it is a resolution whose work per event does not grow with N: a replay that applies a new entry to the last state, and finality and node views recomputed only for the members whose beacons or records moved. That is the core of the finality rule, not started; 2,000 and 5,000 were not tried, as 1,000 does not run.'
  ]
}

function explainFinalInproc (r: BenchResults, nodes: number): string[] {
  const f = r.finalInproc?.find(x => x.nodes === nodes)
  const run = f !== undefined && !('error' in f) ? f : undefined
  const half = r.finalInproc?.filter(x => x.nodes < nodes && !('error' in x) && x.notFinal === 0).sort((a, b) => b.nodes - a.nodes)[0] as (Exclude<NonNullable<BenchResults['finalInproc']>[number], { error: string }> | undefined)
  return [
    `- **Reservation → final, ${nodes} agents in one process**: all ${nodes} agents share one JavaScript thread${run !== undefined ? `; before the writes they used ${run.restCpuCores !== undefined ? `${fmt(run.restCpuCores, 2)} cores at rest (event-loop delay p99 ${fmt(run.restLoopDelayP99Ms ?? Number.NaN)} ms), and ` : ''}${fmt(run.cpuCores, 2)} cores over the writes, with an event-loop delay p99 of ${fmt(run.loopDelayP99Ms)} ms` : ''}. One change costs each agent about 10 ms of that thread (a CPU profile of 100 agents under writes, 2026-12-07: gossipsub's handling of received messages 34 % of the busy time, signature checks 7 % of it once duplicates are dropped first), so one change takes about a second of the one thread over the 100 agents, before anything else they do. Above 64 members, beacons go by gossip to every agent instead of straight to each member; an agent late by more than the probe timeout is suspected, and each suspicion and its refutation is another message to every agent (docs/decisions.md "Between 50 and 70 agents in one process").${half !== undefined ? ` At ${half.nodes} agents the same run was final everywhere with a p99 of ${fmt(half.allP99Ms ?? Number.NaN)} ms.` : ''}`
  ]
}
