/**
 * One size's traffic windows of one kind (at rest, or one change a second)
 * reduced to the median of each figure over the windows: what the report's
 * tables and targets (report.ts) and its findings (findings.ts) read.
 */
import type { TrafficWindow } from './clusters.ts'
import type { TrafficResult } from './results.ts'
import { percentile } from './stats.ts'

export type TrafficMedians = { mgCpu: number, mgCpuHub: number, serfCpu: number, serfCpuHub: number, mgPayload: number, mgSocket: number, mgBusiest: number, mgWire: number, serfPayload: number, serfBusiest: number, serfWire: number, serfIo: number, ratioSocket: number, ratioWire: number, ratioCpu: number, copies: number, applied: number, redundant: number, ihave: number, iwant: number, sync: number, published: number, gsMessages: number, gsControl: number }

/** Median over the finite values; NaN when there are none. */
const median = (xs: number[]): number => percentile(xs.filter(x => Number.isFinite(x)), 0.5)

export function trafficMedians (t: TrafficResult, kind: 'rest' | 'load'): TrafficMedians {
  const ws = t.windows.filter(w => w.kind === kind)
  const m = (f: (w: TrafficWindow) => number | undefined): number => median(ws.map(w => f(w) ?? Number.NaN))
  return {
    mgPayload: m(w => w.memgossip.payloadBytesPerNodeSec),
    mgCpu: m(w => w.memgossip.cpuPerNode),
    mgCpuHub: m(w => w.memgossip.cpuHub),
    serfCpu: m(w => w.serf?.cpuPerNode),
    serfCpuHub: m(w => w.serf?.cpuHub),
    mgSocket: m(w => w.memgossip.socketBytesPerNodeSec),
    mgBusiest: m(w => w.memgossip.socketBytesBusiestNodeSec),
    serfBusiest: m(w => w.serf?.payloadBytesBusiestNodeSec),
    mgWire: m(w => w.memgossip.wireBytesPerNodeSec),
    serfPayload: m(w => w.serf?.payloadBytesPerNodeSec),
    serfWire: m(w => w.serf?.wireBytesPerNodeSec),
    serfIo: m(w => w.serf?.procIoBytesPerNodeSec),
    ratioSocket: m(w => w.ratioSocket),
    ratioWire: m(w => w.ratioWire),
    ratioCpu: m(w => w.serf !== undefined && w.serf.cpuPerNode > 0 ? w.memgossip.cpuPerNode / w.serf.cpuPerNode : undefined),
    copies: m(w => w.memgossip.gossipCopiesPerNodePerMessage),
    applied: m(w => w.memgossip.updatesAppliedPerNodePerMessage),
    redundant: m(w => w.memgossip.redundantShare),
    ihave: m(w => w.memgossip.ihavePerNodeSec),
    iwant: m(w => w.memgossip.iwantPerNodeSec),
    sync: m(w => w.memgossip.syncRoundsPerNodeSec),
    published: ws.reduce((a, w) => a + w.memgossip.gossipMessagesPublished, 0),
    gsMessages: m(w => w.memgossip.gossipMessageBytesSentPerNodeSec),
    gsControl: m(w => w.memgossip.gossipControlBytesSentPerNodeSec)
  }
}
