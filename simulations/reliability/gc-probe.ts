/**
 * A preload for the bounded soak (`node --expose-gc --import
 * dist/simulations/reliability/gc-probe.js dist/cli/main.js agent …`,
 * compiled by `npm run build`) that reads an agent's memory after a full
 * collection: the figure issue 16 asks for ("RSS after GC"), which
 * `/metrics` cannot give (a reading there lands anywhere between two
 * collections, so it measures the garbage of the moment as much as what is
 * kept).
 *
 * On SIGUSR2 it runs two full, compacting collections (the second takes
 * what the first's finalisers let go) and reads the heap in use at once.
 * RSS it reads {@link SETTLE_MS} later: V8 hands the pages a collection
 * freed back to the system from a background task, so a reading right after
 * the collection still counts many of them (measured under the soak's churn:
 * 97–129 MiB right after, 96–111 MiB half a second later). Then it writes
 * `{ seq, rss, rssAtOnce, heapUsed, external, gcMs }` to the file named by
 * `MEMGOSSIP_GC_PROBE`, with an increasing `seq`. Without that variable, or
 * without `--expose-gc`, it does nothing.
 */
import { writeFileSync } from 'node:fs'

const file = process.env.MEMGOSSIP_GC_PROBE ?? ''
const collect = (globalThis as { gc?: (options?: { type: 'major', execution: 'sync' }) => void }).gc

/** How long after the collection RSS is read. */
const SETTLE_MS = 500

if (file !== '' && collect !== undefined) {
  let seq = 0
  process.on('SIGUSR2', () => {
    const started = performance.now()
    collect()
    collect()
    const gcMs = performance.now() - started
    const m = process.memoryUsage()
    const answer = { seq: ++seq, rssAtOnce: m.rss, heapUsed: m.heapUsed, external: m.external, gcMs }
    setTimeout(() => { writeFileSync(file, JSON.stringify({ ...answer, rss: process.memoryUsage.rss() })) }, SETTLE_MS).unref()
  })
}
