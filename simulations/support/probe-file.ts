/**
 * The preloads of the benchmark and the soak (simulations/bench/gossip-probe.ts,
 * simulations/reliability/gc-probe.ts) answer SIGUSR2 by writing a JSON
 * document with an increasing `seq` to a file. This asks one and reads its
 * answer.
 */
import { readFile } from 'node:fs/promises'
import { sleep } from './wait.ts'

async function readSeq (file: string): Promise<number> {
  try { return JSON.parse(await readFile(file, 'utf8')).seq as number } catch { return 0 }
}

/**
 * Signal `pid` and wait up to `timeoutMs` for a document newer than the one
 * in `file`; undefined if none came (a process starved of CPU may answer
 * after the caller stopped waiting).
 */
export async function askProbe<T> (pid: number, file: string, timeoutMs = 1000): Promise<(T & { seq: number }) | undefined> {
  const before = await readSeq(file)
  try { process.kill(pid, 'SIGUSR2') } catch { return undefined }
  for (const until = Date.now() + timeoutMs; Date.now() < until;) {
    try {
      const doc = JSON.parse(await readFile(file, 'utf8'))
      if (doc.seq > before) return doc
    } catch {}
    await sleep(25)
  }
  return undefined
}
