/**
 * Why a target is missed: what was found when the miss was investigated
 * (profiles, CPU time against wall time, counters, and patched builds tried
 * outside the repository), printed next to the figures of the run that missed
 * it. Each entry appears only when its target is missed in that run; figures
 * in backticks-free prose come from the run itself, the rest are named as
 * measurements made while investigating (2026-11-21, this machine).
 */
import type { BenchResults } from './run.ts'
import { fmt, percentile } from './stats.ts'

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
      if (failed !== undefined && (id === 'propagation-seed' || r.propagation.every(x => x.origin !== 'seed' || x.memgossipFailed === undefined))) {
        const cpuAt = [...r.traffic].filter(t => t.windows.some(w => Number.isFinite(w.memgossip.cpuPerNode))).sort((a, b) => a.nodes - b.nodes)
        const restCpu = (t: typeof cpuAt[number], which: 'memgossip' | 'serf'): number => percentile(t.windows.filter(w => w.kind === 'rest').map(w => (which === 'memgossip' ? w.memgossip.cpuPerNode : w.serf?.cpuPerNode) ?? Number.NaN).filter(Number.isFinite), 0.5)
        const serfAtFailed = r.traffic.find(t => t.nodes === failed.nodes)
        out.push(`- **No memgossip cluster at N = ${failed.nodes} on this machine.** ${failed.memgossipFailed?.split('\n')[0] ?? ''}. Cause: CPU. An idle memgossip agent's work grows with the cluster — every member's heartbeat (every 5 s) reaches every agent, which verifies its signature, applies it to the Yjs document and recomputes the resolution — ${cpuAt.map(t => `${fmt(restCpu(t, 'memgossip') * 100, 2)}% of a core per agent at rest at N = ${t.nodes}`).join(', ')}${cpuAt.length > 0 && Number.isFinite(restCpu(cpuAt[0], 'serf')) ? `, against ${cpuAt.map(t => `${fmt(restCpu(t, 'serf') * 100, 2)}%`).join(' and ')} for a Serf agent` : ''}. The whole cluster's cost grows as N², so ${failed.nodes} agents need more than the ${r.machine.cores} cores of this machine${serfAtFailed !== undefined && Number.isFinite(restCpu(serfAtFailed, 'serf')) ? ` (the ${failed.nodes} Serf agents used ${fmt(restCpu(serfAtFailed, 'serf') * failed.nodes * 100, 2)}% of one core in total)` : ''}. Once the agents are starved, anti-entropy requests time out (10 s), libp2p's connection monitor drops connections whose pings go unanswered, agents redial (more Noise handshakes, more CPU), and the cluster never settles: node 0 held only a fraction of its 49 connections at the end. This is a limit of one small host running many agents, not of a real deployment with one agent per host — but the per-agent CPU figures above carry over: they grow with the size of the cluster.`)
        out.push('  Proposed: make an idle agent\'s cost independent of N — recompute the resolution only when a reservation-relevant entry changed (heartbeats change liveness and finality, not decisions: agent/agent.ts `scheduleRefresh` → `resolve()` after every remote update), and send heartbeats less often when nothing changed (see Bandwidth). The benchmark records the failure instead of changing defaults.')
      }
      if (p === undefined || (p.memgossip.n > 0 && p.serfEvent !== undefined && p.memgossip.p99 <= p.serfEvent.p99 && p.missed.memgossip === 0)) return out
      return [...out,
        `- **Propagation (${id === 'propagation-seed' ? 'change on node 0' : 'change on a leaf'}${failed !== undefined ? `, at the largest size that ran, N = ${p.nodes}` : ''})**: ${p !== undefined ? `at N = ${p.nodes}, ${pct(slowShare)} of memgossip trials took over 1 s (median ${fmt(p.memgossip.p50)} ms, p99 ${fmt(p.memgossip.p99)} ms). ` : ''}Cause: a memgossip agent connects only to its bootstrap peers and to whoever dials it — there is no peer exchange or discovery beyond them — so "every node joins node 0" yields a star: each leaf has one connection. Node 0's gossipsub mesh holds at most Dhi = 16 peers (it prunes to D = 8 above that), so a message node 0 relays reaches its mesh peers at once and every other leaf only through gossip metadata (IHAVE to 6 random non-mesh peers per 1 s heartbeat, while the message is in the 3-heartbeat gossip window, then IWANT) or through the next anti-entropy round (every 5 s, with the leaf's only peer). A change made on node 0 itself is flood-published to all its peers and does not wait. Serf's members learn the whole member list and gossip to random members directly, so its fan-out does not depend on who joined whom.`,
        '  Proposed (agent/net/libp2p.ts): let agents find each other beyond the bootstrap list — e.g. enable gossipsub peer exchange (`doPX: true` on prune, accepting PX from peers) or dial a few members whose addresses arrive by identify/the ledger — so that leaves form a mesh of D peers of their own. Until then, operators should list several bootstrap peers per agent. The benchmark keeps the documented single-seed topology for both products.'
      ]
    }
    case 'bandwidth': {
      const t = [...r.traffic].sort((a, b) => b.nodes - a.nodes)[0]
      const rest = t?.windows.filter(w => w.kind === 'rest') ?? []
      const payload = percentile(rest.map(w => w.memgossip.payloadBytesPerNodeSec), 0.5)
      const socket = percentile(rest.map(w => w.memgossip.socketBytesPerNodeSec), 0.5)
      const serf = percentile(rest.map(w => w.serf?.payloadBytesPerNodeSec ?? Number.NaN), 0.5)
      const busiest = percentile(rest.map(w => w.memgossip.socketBytesBusiestNodeSec), 0.5)
      return [
        `- **Bandwidth**: at rest${t !== undefined ? ` at N = ${t.nodes}` : ''} a memgossip agent moves ${fmt(socket)} B/s on its sockets, of which ${fmt(payload)} B/s are ledger bytes (the agent's own counters); Serf moves ${fmt(serf)} B/s. Two causes, in order of weight:`,
        `  1. Design: every member writes a heartbeat at least every 5 s (DESIGN.md §5; finality, §4.2, needs every member's clock to advance), and each heartbeat is gossiped to every member. Per node, that is N / 5 messages received per second — it grows with the cluster. SWIM (Serf) sends a constant number of probe packets per node per second and gossips only changes, so its per-node cost hardly depends on N. Under one change per second the gap narrows because Serf's cost is then dominated by the change itself (it retransmits each broadcast about 4 × log(N) times).`,
        `  2. Envelope: each gossipsub message carries the author's peer id, a sequence number, the topic and a 64-byte signature, and travels in a Noise frame (16-byte tag) inside a yamux frame (12-byte header); each anti-entropy round opens a fresh stream (multistream-select negotiation both ways) for two request/response exchanges. For updates of a few hundred bytes that roughly triples the bytes on the socket relative to the ledger bytes (socket ÷ payload = ${fmt(socket / payload, 2)} here).`,
        `  In a star the hub relays every message to everyone: the busiest memgossip agent moved ${fmt(busiest)} B/s.`,
        '  What would close the gap without giving up finality: publish heartbeats less often when nothing changed and let finality advance by a cheap clock-only beacon (a few bytes in one message per node, batched), or carry liveness/clock in the anti-entropy exchange instead of gossiping it to everyone; and send one anti-entropy round over a long-lived stream instead of a new stream per exchange. These are design changes, not settings; the benchmark measures the defaults.'
      ]
    }
    case 'duplicates':
      return ['- **Duplicates**: gossipsub delivers a message to a node once from each mesh peer that has not seen it from that node first; with D = 8 a node can receive up to 8 copies. The count above is from the counting preload in the benchmark agents.']
    case 'heal': {
      const h = r.heal
      const lastAgents = h !== undefined ? h.trials.map(t => t.perNodeMs ?? []).filter(x => x.length > 0) : []
      const early = lastAgents.map(x => x.filter(v => v <= 1000).length)
      return [
        `- **Partition heal**: ${h !== undefined ? `in every trial a first group of agents held both reservations within about a second (agents with both within 1 s: ${early.join(', ')} of ${h.nodes}), and the rest waited up to several seconds. ` : ''}Cause: an update an agent learns through anti-entropy is applied and stored but not gossiped on (agent/agent.ts: \`onDocUpdate\` queues gossip only for \`ORIGIN_LOCAL\`). After the links return, node 0 (the hub every agent joined) syncs with the agents of the other side and so learns the other side's reservation — but its own leaves, which had synced with it a moment earlier or never lost it, only get it at their next periodic sync with a random peer (every 5 s). The first sync round heals the agents that happen to sync after the hub has both sides; the others wait for the timer.`,
        '  Proposed (agent/agent.ts): relay what anti-entropy brings — when a sync reply (`syncWith`) or a push (`onRequest`, `MSG_PUSH`) changes the document, queue the resulting Yjs update for gossip like a local write (`queueGossip(update)` from `onDocUpdate` while such an update is being applied). Tried on a copy of the repository (not committed): 20 agents, 3 trials, identical digests 0.68 s, 0.95 s and 1.46 s after the links returned, against 0.7–5.9 s without it on the same machine. The cost is one extra gossip message per agent that learns something by sync, which only happens after partitions and restarts.'
      ]
    }
    case 'virtual':
      return ['- **Virtual tier**: the run could not finish it; see section 5.']
    case 'fit': {
      const f = r.fitCpu
      return [
        `- **fit() p99**: fit() itself is well under a millisecond${f !== undefined ? ` (CPU time per call: median ${fmt(f.cpuMs.p50)} ms, p99 ${fmt(f.cpuMs.p99)} ms over ${f.calls} calls)` : ''}; the wall-clock p99 of runCrdtBench (200–2,000 calls timed right after thirty full \`resolve()\` runs over the same ledger) is set by a handful of calls that were paused — by the garbage collection of what those \`resolve()\` runs allocated, and by the thread waiting for a core on a machine running other work (load ${r.machine.loadBefore[0]} on ${r.machine.cores} cores at the start of this run)${f !== undefined ? `: of the ${f.slowCalls} calls over 1 ms of wall time in the separate measurement, ${f.slowWithGc} overlapped a garbage collection${f.slowWaiting !== undefined ? ` and ${f.slowWaiting} were waiting for a core` : ''}` : ''}. An agent answers fit() from a cached resolution; there the same pauses show up as HTTP latency p99 (section 6), not as fit() cost.`
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
        `- **Idle RSS**: ${r.idle !== undefined ? `${fmt(r.idle.rssBytes / 1e6)} MB, of which ${fmt(r.idle.rssFileBytes / 1e6)} MB are file-backed pages (the node binary and its libraries, shared with every other node process) and ${fmt(r.idle.rssAnonBytes / 1e6)} MB anonymous. ` : ''}Measured while investigating (same machine, each after 30 s idle): a bare \`node\` process is 41 MB; node with libp2p loaded, 70 MB. The agent runs TypeScript through tsx (\`cli/bin.js\` registers tsx's loader): the loader's hooks thread and the transformed sources cost about 30 MB — the same agent bundled to plain JavaScript with esbuild and run with \`node\` was 92 MB (anonymous 45 MB), and with \`--max-semi-space-size=1\` (a smaller V8 young generation) 77 MB.`,
        '  Proposed (packaging, not agent code): ship a prebuilt JavaScript bundle for `memgossip agent` instead of transpiling at start-up (≈ −30 MB), and consider `--max-semi-space-size=1` in the launcher (≈ −15 MB at this load; it trades a few more minor GCs, to be measured under load before it becomes a default).'
      ]
    case 'peer':
      return ['- **RSS per peer**: see section 8.']
    default:
      return [`- **${id}**: not investigated.`]
  }
}
