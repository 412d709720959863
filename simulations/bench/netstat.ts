/**
 * Per-process traffic and memory from the kernel:
 *
 * - `ss -tinpH`: every TCP socket with its owner pid and the kernel's
 *   `bytes_sent` / `bytes_received` (TCP payload bytes, so everything the
 *   process put on the connection: for libp2p that is Noise-encrypted yamux
 *   frames carrying gossipsub data and control, identify, ping and the sync
 *   protocol) and `segs_out` / `segs_in` (to estimate header bytes).
 *   Counters live as long as the socket: a delta between two snapshots is
 *   taken per socket, and a socket that closed between them loses what it
 *   carried since the first snapshot (libp2p connections are long-lived).
 * - `/proc/<pid>/status` VmRSS, `/proc/<pid>/io` rchar/wchar.
 *
 * `/proc/<pid>/io` is NOT a network counter for Serf: rchar/wchar count
 * read()/write() and friends, and Go's UDP sockets use sendto()/recvfrom(),
 * which the kernel does not add there (checked: a 3-node Serf cluster's rchar
 * moved by 25 bytes in 10 s while memberlist exchanged ~9 kB of UDP).
 */
import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'

export interface SocketCounters {
  pid: number
  local: string
  peer: string
  bytesSent: number
  bytesReceived: number
  segsOut: number
  segsIn: number
}

export async function ssSnapshot (): Promise<SocketCounters[]> {
  const text = await new Promise<string>((resolve, reject) => {
    execFile('ss', ['-tinpH'], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => { if (error !== null) reject(error); else resolve(stdout) })
  })
  const out: SocketCounters[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const head = lines[i]
    if (head === '' || /^\s/.test(head)) continue
    const cols = head.trim().split(/\s+/)
    const info = (lines[i + 1] ?? '').startsWith('\t') || /^\s/.test(lines[i + 1] ?? '') ? lines[i + 1] : ''
    const pids = [...head.matchAll(/pid=(\d+)/g)].map(m => Number(m[1]))
    if (pids.length === 0) continue
    const num = (key: string): number => {
      const m = new RegExp(`\\b${key}:(\\d+)`).exec(info)
      return m === null ? 0 : Number(m[1])
    }
    for (const pid of new Set(pids)) {
      out.push({ pid, local: cols[3], peer: cols[4], bytesSent: num('bytes_sent'), bytesReceived: num('bytes_received'), segsOut: num('segs_out'), segsIn: num('segs_in') })
    }
  }
  return out
}

export interface SocketDelta { bytes: number, segs: number, sockets: number }

/**
 * Bytes (sent + received) and segments per pid between two snapshots, over
 * the sockets `include` accepts. A socket absent from `before` counts from 0.
 */
export function ssDelta (before: SocketCounters[], after: SocketCounters[], include: (s: SocketCounters) => boolean): Map<number, SocketDelta> {
  const key = (s: SocketCounters): string => `${s.pid}|${s.local}|${s.peer}`
  const prior = new Map(before.map(s => [key(s), s]))
  const out = new Map<number, SocketDelta>()
  for (const s of after) {
    if (!include(s)) continue
    const p = prior.get(key(s))
    // A reused 4-tuple whose counters went down is a new socket.
    const base = p !== undefined && p.bytesSent <= s.bytesSent && p.bytesReceived <= s.bytesReceived ? p : undefined
    const d = out.get(s.pid) ?? { bytes: 0, segs: 0, sockets: 0 }
    d.bytes += s.bytesSent + s.bytesReceived - (base?.bytesSent ?? 0) - (base?.bytesReceived ?? 0)
    d.segs += s.segsOut + s.segsIn - (base?.segsOut ?? 0) - (base?.segsIn ?? 0)
    d.sockets++
    out.set(s.pid, d)
  }
  return out
}

export function portOf (address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

/** Resident set size in bytes (VmRSS), or NaN when the process is gone. */
export async function rssBytes (pid: number): Promise<number> {
  return (await processMemory(pid)).rssBytes
}

/** Resident memory of a process and its parts (anonymous, file-backed), and its threads; NaN when it is gone. */
export interface ProcessMemory { rssBytes: number, rssAnonBytes: number, rssFileBytes: number, threads: number }

export async function processMemory (pid: number): Promise<ProcessMemory> {
  const status = await procStatus(pid)
  const kb = (key: string): number => Number.parseInt(status[key] ?? '', 10) * 1024
  return { rssBytes: kb('VmRSS'), rssAnonBytes: kb('RssAnon'), rssFileBytes: kb('RssFile'), threads: Number.parseInt(status.Threads ?? '', 10) }
}

export async function procStatus (pid: number): Promise<Record<string, string>> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  return Object.fromEntries(text.split('\n').filter(l => l.includes(':')).map(l => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]))
}

export async function procIo (pid: number): Promise<{ rchar: number, wchar: number }> {
  const text = await readFile(`/proc/${pid}/io`, 'utf8').catch(() => '')
  const get = (k: string): number => Number(new RegExp(`${k}: (\\d+)`).exec(text)?.[1] ?? Number.NaN)
  return { rchar: get('rchar'), wchar: get('wchar') }
}

/** User + system CPU seconds of a process so far (/proc/<pid>/stat). */
export async function cpuSeconds (pid: number): Promise<number> {
  return await statCpuSeconds(`/proc/${pid}/stat`)
}

/**
 * A process's CPU seconds so far split by thread: its main thread (the event
 * loop: JavaScript, and the system calls it makes) and all others (V8's
 * garbage-collection and compiler helpers, libuv's pool for file I/O).
 * A thread that has ended is no longer counted; Node's are long-lived.
 */
export async function threadCpuSeconds (pid: number): Promise<{ main: number, other: number, system: number }> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[])
  let main = 0
  let other = 0
  let system = 0
  for (const tid of tids) {
    const { user, system: kernel } = await statCpu(`/proc/${pid}/task/${tid}/stat`)
    if (Number.isNaN(user + kernel)) continue // the thread ended meanwhile
    if (tid === String(pid)) main += user + kernel
    else other += user + kernel
    system += kernel
  }
  return { main, other, system }
}

async function statCpuSeconds (path: string): Promise<number> {
  const { user, system } = await statCpu(path)
  return user + system
}

/** A process's or thread's CPU seconds in user space and in the kernel (system calls: sockets, files). */
async function statCpu (path: string): Promise<{ user: number, system: number }> {
  const text = await readFile(path, 'utf8').catch(() => '')
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // Fields 14 and 15 (utime, stime) counted from 1; after the ')' the 3rd field is index 0.
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 }
}
