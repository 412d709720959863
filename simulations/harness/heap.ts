/**
 * Large runs need more heap than V8 gives by default (about 4 GiB): a virtual
 * peer holds a replica of the whole ledger, so memory grows as N² — about
 * 4 MiB per peer at 1,000 peers. When the current process's limit is too low,
 * the run is started again in a child process with `--max-old-space-size`
 * raised (never above 85% of the machine's memory), its output passed through.
 */
import { spawn } from 'node:child_process'
import { totalmem } from 'node:os'
import v8 from 'node:v8'
import type { TierKind } from './types.ts'

const MiB = 1024 * 1024
/** Set in the child so it never re-spawns itself. */
export const CHILD_ENV = 'MEMGOSSIP_SIM_CHILD'

/**
 * Heap a run of `nodes` peers is expected to need, with headroom: per peer a
 * fixed part plus a part per other peer (virtual: measured about 1.5 MiB +
 * 2.5 KiB × N; real: libp2p adds about 2 MiB per peer, STACK.md), times 1.5.
 */
export function heapWanted (tier: TierKind, nodes: number): number {
  const perPeer = tier === 'virtual' ? 1.5 * MiB + 2.5 * 1024 * nodes : 4 * MiB + 2.5 * 1024 * nodes
  return Math.round(512 * MiB + 1.5 * nodes * perPeer)
}

/** The heap limit to ask a child for, or undefined when this process's limit suffices (or a child is running). */
export function heapToRaise (tier: TierKind, nodes: number): number | undefined {
  if (process.env[CHILD_ENV] === '1') return undefined
  const wanted = heapWanted(tier, nodes)
  const limit = v8.getHeapStatistics().heap_size_limit
  if (limit >= wanted) return undefined
  const cap = Math.floor(totalmem() * 0.85)
  const raised = Math.min(wanted, cap)
  return raised > limit ? raised : undefined
}

/**
 * Run `script` (a .ts file) with `args` in a child Node with a heap limit of
 * `heapBytes`, forwarding its stdout and stderr; resolves to its exit code.
 */
export async function runWithHeap (script: string, args: string[], heapBytes: number, io: { stdout: (s: string) => void, stderr: (s: string) => void }): Promise<number> {
  const tsx = import.meta.resolve('tsx')
  const child = spawn(process.execPath, [`--max-old-space-size=${Math.floor(heapBytes / MiB)}`, '--import', tsx, script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, [CHILD_ENV]: '1' }
  })
  child.stdout.on('data', (chunk: Buffer) => { io.stdout(chunk.toString()) })
  child.stderr.on('data', (chunk: Buffer) => { io.stderr(chunk.toString()) })
  // Ctrl-C reaches the child through the process group; stopping this one stops it too.
  const forward = (signal: NodeJS.Signals) => () => { child.kill(signal) }
  const onInt = forward('SIGINT')
  const onTerm = forward('SIGTERM')
  process.once('SIGINT', onInt)
  process.once('SIGTERM', onTerm)
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code, signal) => { resolve(code ?? (signal === 'SIGINT' ? 130 : 1)) })
    })
  } finally {
    process.removeListener('SIGINT', onInt)
    process.removeListener('SIGTERM', onTerm)
  }
}
