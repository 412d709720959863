/**
 * A memory cgroup per reservation (docs/design.md "Enforcement"): create it,
 * set its limits, put a process in it, read what it used, remove it. Two
 * backends, chosen by detection:
 *
 * - cgroup v2 (unified): `memory.max` = limit, `memory.min` (or `memory.low`
 *   where the kernel has no `memory.min`) = protected minimum, `memory.current`,
 *   `memory.peak`, `memory.events` (`max`, `oom`, `oom_kill`).
 * - cgroup v1 memory controller: `memory.limit_in_bytes` = limit,
 *   `memory.soft_limit_in_bytes` = minimum, `memory.usage_in_bytes`,
 *   `memory.max_usage_in_bytes`, `memory.failcnt` (+ `memory.memsw.failcnt`),
 *   `memory.oom_control` (`oom_kill`).
 *
 * v2 wins when the unified hierarchy has the memory controller; a hybrid host
 * (memory bound to v1, an empty `unified` mount) uses v1. The reasons for the
 * mapping are in docs/decisions.md ("Enforcement: cgroup v1 and v2").
 *
 * Every path hangs off two injectable roots (`procRoot`, `cgroupRoot`), so both
 * backends are tested over a fake tree in a temp dir. Nothing here decides
 * anything about the ledger: the CLI (`memgossip run`) reserves, this file only
 * enforces what was reserved.
 */
import { constants as fsConstants } from 'node:fs'
import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises'
import path from 'node:path'

/** Where procfs is mounted. */
export const DEFAULT_PROC_ROOT = '/proc'
/** Where cgroup file systems are mounted (v2 itself, or v1 controllers below it). */
export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup'
/** Every reservation's cgroup is named `memgossip-<id>`, so it is recognisable in `systemd-cgls`. */
export const CGROUP_NAME_PREFIX = 'memgossip-'
/** How long {@link MemoryCgroup.remove} keeps trying while killed leftovers exit. */
const REMOVE_TIMEOUT_MS = 5000

/**
 * v1 reports "no limit" as the largest page-aligned counter (9223372036854771712
 * on x86-64); anything this large is treated as unlimited.
 */
const V1_UNLIMITED_AT = 2 ** 62

export type CgroupVersion = 1 | 2

/** Why a cgroup could not be made; stable, for tests and scripts. */
export type CgroupFailure = 'NoController' | 'PermissionDenied' | 'NoDelegation' | 'Busy'

/**
 * A memory cgroup cannot be created or used here. The message says which of
 * {@link CgroupFailure} it is and how to fix it; `memgossip run` prints it and
 * refuses to run the command unconfined.
 *
 * Lives here rather than in `agent/errors.ts` only because that file is owned
 * by another change in flight (as `ConfigError` in probe.ts); move it when both land.
 */
export class CgroupError extends Error {
  override readonly name = 'CgroupError'
  constructor (readonly failure: CgroupFailure, message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** How to get a delegated cgroup, quoted in every refusal. */
export const CGROUP_FIX_HINT =
  "run as root, or inside a delegated systemd scope: 'systemd-run --user --scope -p Delegate=yes memgossip run …' " +
  "(or 'sudo systemd-run --scope -p Delegate=yes …')"

/** What a reservation's cgroup used, read after (or while) its command runs. Integer bytes. */
export interface CgroupUsage {
  /** Memory charged now (`memory.current` / `memory.usage_in_bytes`). */
  currentBytes: number
  /** Highest charge seen (`memory.peak` / `memory.max_usage_in_bytes`); undefined on v2 kernels before 5.19. */
  peakBytes?: number
  /** The hard limit in force (`memory.max` / `memory.limit_in_bytes`); undefined when unlimited. */
  limitBytes?: number
  /** Times usage hit the limit (`memory.events` `max` / `memory.failcnt`). */
  limitHits: number
  /** Processes the OOM killer killed inside this cgroup (`oom_kill`); 0 where the kernel does not count them. */
  oomKills: number
  /**
   * Times this cgroup's own limit ran out and the kernel went OOM for it (v2
   * `memory.events` `oom`). v1 has no such counter: undefined there, and
   * `limitHits` (`memory.failcnt`) tells a limit OOM from a host one instead.
   */
  limitOoms?: number
}

/** The limits of one reservation's cgroup. */
export interface CgroupLimits {
  /** Hard limit: the reservation's size. */
  maxBytes: number
  /** Protected minimum (`--min`); 0 or undefined protects nothing. */
  minBytes?: number
}

/** One reservation's cgroup. */
export interface MemoryCgroup {
  readonly version: CgroupVersion
  /** Absolute directory of the cgroup. */
  readonly dir: string
  /** The file a process writes its pid into to join (`cgroup.procs`). */
  readonly procsFile: string
  setLimits: (limits: CgroupLimits) => Promise<void>
  /** Move process `pid` (all its threads) into the cgroup. */
  addProcess: (pid: number) => Promise<void>
  /** Pids in the cgroup now. */
  pids: () => Promise<number[]>
  usage: () => Promise<CgroupUsage>
  /** Kill what is left inside (SIGKILL), then remove the directory. */
  remove: () => Promise<void>
}

/** A place where reservation cgroups can be made. */
export interface CgroupController {
  readonly version: CgroupVersion
  /** The cgroup that reservation cgroups are made under (absolute directory). */
  readonly parentDir: string
  /** Create (or take over an empty leftover of) the cgroup for reservation `id`. */
  create: (id: string) => Promise<MemoryCgroup>
}

/** Options of {@link detectCgroupController}; every field is optional. */
export interface CgroupInit {
  /** Root of procfs; default {@link DEFAULT_PROC_ROOT}. Tests point it at a fake tree. */
  procRoot?: string
  /** Root of the cgroup mounts; default {@link DEFAULT_CGROUP_ROOT}. */
  cgroupRoot?: string
  /**
   * The cgroup to create reservation cgroups under, as a path inside the
   * hierarchy (`/process_api/abc`); default: this process's own cgroup, read
   * from `/proc/self/cgroup`.
   */
  parent?: string
  /** Pid of this process, for the v2 move into a leaf; default `process.pid`. */
  selfPid?: number
  /**
   * Removes an empty cgroup directory; default `rmdir`. A real cgroupfs removes a
   * directory full of interface files with rmdir; a test's fake tree holds
   * regular files, so tests pass a recursive delete.
   */
  removeDir?: (dir: string) => Promise<void>
}

/** `a/b:c` → `memgossip-a%2Fb%3Ac`: one path component, different ids never collide. */
export function cgroupName (id: string): string {
  return CGROUP_NAME_PREFIX + id.replace(/[^A-Za-z0-9._-]/g, c => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
}

/** The lines of `/proc/self/cgroup`: `hierarchy-id:controllers:path`. */
export interface CgroupMembership {
  /** The v2 path (the `0::` line), if any. */
  unified?: string
  /** The v1 memory controller's path, if any. */
  memoryV1?: string
}

export function parseProcCgroup (text: string): CgroupMembership {
  const out: CgroupMembership = {}
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim())
    if (m === null) continue
    const [, hierarchy, controllers, p] = m
    if (hierarchy === '0' && controllers === '') out.unified = normalizeCgroupPath(p)
    else if (controllers.split(',').includes('memory')) out.memoryV1 = normalizeCgroupPath(p)
  }
  return out
}

function normalizeCgroupPath (p: string): string {
  return path.posix.normalize('/' + p.trim())
}

/**
 * Find where reservation cgroups can be made on this host. v2 when the unified
 * hierarchy (at `cgroupRoot`, or `cgroupRoot/unified` on a hybrid host) offers
 * the memory controller and this process has a `0::` line; else v1 when the
 * memory controller is mounted at `cgroupRoot/memory`.
 *
 * @throws {CgroupError} `NoController` when neither is there.
 */
export async function detectCgroupController (init: CgroupInit = {}): Promise<CgroupController> {
  const procRoot = init.procRoot ?? DEFAULT_PROC_ROOT
  const cgroupRoot = init.cgroupRoot ?? DEFAULT_CGROUP_ROOT
  const text = await readOptional(path.join(procRoot, 'self', 'cgroup'))
  if (text === undefined) {
    throw new CgroupError('NoController', `cannot read ${path.join(procRoot, 'self', 'cgroup')}: this system has no cgroups (Linux only); memgossip run needs a memory cgroup to enforce the reservation`)
  }
  const membership = parseProcCgroup(text)

  if (membership.unified !== undefined) {
    for (const mount of [cgroupRoot, path.join(cgroupRoot, 'unified')]) {
      const controllers = await readOptional(path.join(mount, 'cgroup.controllers'))
      if (controllers?.split(/\s+/).includes('memory') === true) {
        const parent = init.parent !== undefined ? normalizeCgroupPath(init.parent) : membership.unified
        return new V2Controller(path.join(mount, parent), init.selfPid ?? process.pid, init.removeDir ?? rmdir)
      }
    }
  }
  const v1Mount = path.join(cgroupRoot, 'memory')
  if (membership.memoryV1 !== undefined && await exists(path.join(v1Mount, 'memory.limit_in_bytes'))) {
    const parent = init.parent !== undefined ? normalizeCgroupPath(init.parent) : membership.memoryV1
    return new V1Controller(path.join(v1Mount, parent), init.removeDir ?? rmdir)
  }
  throw new CgroupError('NoController',
    `no memory cgroup controller: neither cgroup v2 with the memory controller (${path.join(cgroupRoot, 'cgroup.controllers')}) ` +
    `nor the cgroup v1 memory controller (${v1Mount}) is available to this process. ` +
    'Boot with cgroups enabled (systemd does by default), or enable the memory controller (cgroup_enable=memory on the kernel command line).')
}

/**
 * The cgroup of a reservation that already exists at `dir` (made by `memgossip
 * run`, perhaps in another process): v2 when it has `memory.current`, v1 when it
 * has `memory.usage_in_bytes`, undefined when it is not a memory cgroup (or is
 * gone). For reading its usage; nothing is created.
 */
export async function openCgroup (dir: string, init: Pick<CgroupInit, 'removeDir'> = {}): Promise<MemoryCgroup | undefined> {
  if (await exists(path.join(dir, 'memory.current'))) return new V2Cgroup(dir, init.removeDir ?? rmdir)
  if (await exists(path.join(dir, 'memory.usage_in_bytes'))) return new V1Cgroup(dir, init.removeDir ?? rmdir)
  return undefined
}

// ---------------------------------------------------------------------------
// v2

class V2Controller implements CgroupController {
  readonly version = 2
  constructor (readonly parentDir: string, private readonly selfPid: number, private readonly removeDir: RemoveDir) {}

  async create (id: string): Promise<MemoryCgroup> {
    await this.enableMemoryForChildren()
    const dir = await makeCgroupDir(this.parentDir, cgroupName(id), 2)
    return new V2Cgroup(dir, this.removeDir)
  }

  /**
   * Children get memory files only when the parent lists `memory` in
   * `cgroup.subtree_control`. A cgroup with processes of its own cannot enable
   * it (the "no internal processes" rule, EBUSY): move this process into a leaf
   * `memgossip-cli` first, which is what a delegated scope expects of its owner.
   */
  private async enableMemoryForChildren (): Promise<void> {
    const control = path.join(this.parentDir, 'cgroup.subtree_control')
    const current = await readOptional(control)
    if (current === undefined) {
      throw new CgroupError('NoDelegation', `cgroup ${this.parentDir} does not exist or cannot be read; ${CGROUP_FIX_HINT}`)
    }
    if (current.split(/\s+/).includes('memory')) return
    try {
      await writeFile(control, '+memory')
      return
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'EBUSY') throw cgroupWriteError(error, control)
    }
    const leaf = path.join(this.parentDir, `${CGROUP_NAME_PREFIX}cli`)
    await mkdir(leaf).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'EEXIST') throw cgroupWriteError(error, leaf) })
    await writeFile(path.join(leaf, 'cgroup.procs'), String(this.selfPid)).catch((error: unknown) => { throw cgroupWriteError(error, path.join(leaf, 'cgroup.procs')) })
    try {
      await writeFile(control, '+memory')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EBUSY') {
        throw new CgroupError('NoDelegation',
          `cannot enable the memory controller below ${this.parentDir}: other processes share that cgroup (cgroup v2 allows controllers only below cgroups without processes); ${CGROUP_FIX_HINT}`,
          { cause: error })
      }
      throw cgroupWriteError(error, control)
    }
  }
}

class V2Cgroup implements MemoryCgroup {
  readonly version = 2
  readonly procsFile: string
  constructor (readonly dir: string, private readonly removeDir: RemoveDir) {
    this.procsFile = path.join(dir, 'cgroup.procs')
  }

  async setLimits ({ maxBytes, minBytes }: CgroupLimits): Promise<void> {
    await writeCgroupFile(this.dir, 'memory.max', String(maxBytes))
    // memory.min is a hard protection (4.18+); memory.low the best-effort one it replaced.
    const protect = await exists(path.join(this.dir, 'memory.min')) ? 'memory.min' : 'memory.low'
    await writeCgroupFile(this.dir, protect, String(minBytes ?? 0))
    // Swap would let the command hold more than it reserved: none (as Kubernetes does by default).
    if (await exists(path.join(this.dir, 'memory.swap.max'))) await writeCgroupFile(this.dir, 'memory.swap.max', '0')
    // An OOM kill takes the whole reservation down, not one process of it at random.
    if (await exists(path.join(this.dir, 'memory.oom.group'))) await writeCgroupFile(this.dir, 'memory.oom.group', '1')
  }

  async addProcess (pid: number): Promise<void> {
    await writeCgroupFile(this.dir, 'cgroup.procs', String(pid))
  }

  async pids (): Promise<number[]> {
    return parsePids(await readOptional(this.procsFile))
  }

  async usage (): Promise<CgroupUsage> {
    const events = parseKeyValues(await readOptional(path.join(this.dir, 'memory.events')))
    const max = (await readOptional(path.join(this.dir, 'memory.max')))?.trim()
    return {
      currentBytes: await readNumber(path.join(this.dir, 'memory.current')) ?? 0,
      peakBytes: await readNumber(path.join(this.dir, 'memory.peak')),
      limitBytes: max !== undefined && /^\d+$/.test(max) ? Number(max) : undefined,
      limitHits: events.get('max') ?? 0,
      oomKills: events.get('oom_kill') ?? 0,
      limitOoms: events.get('oom') ?? 0
    }
  }

  async remove (): Promise<void> {
    // cgroup.kill (5.14+) kills everything inside at once, including processes forked meanwhile.
    if (await exists(path.join(this.dir, 'cgroup.kill'))) {
      await writeFile(path.join(this.dir, 'cgroup.kill'), '1').catch(() => {})
    }
    await removeCgroupDir(this.dir, async () => await this.pids(), this.removeDir)
  }
}

// ---------------------------------------------------------------------------
// v1

class V1Controller implements CgroupController {
  readonly version = 1
  constructor (readonly parentDir: string, private readonly removeDir: RemoveDir) {}

  async create (id: string): Promise<MemoryCgroup> {
    if (!await exists(this.parentDir)) {
      throw new CgroupError('NoDelegation', `cgroup ${this.parentDir} (this process's memory cgroup) is not visible here; ${CGROUP_FIX_HINT}`)
    }
    const dir = await makeCgroupDir(this.parentDir, cgroupName(id), 1)
    return new V1Cgroup(dir, this.removeDir)
  }
}

class V1Cgroup implements MemoryCgroup {
  readonly version = 1
  readonly procsFile: string
  constructor (readonly dir: string, private readonly removeDir: RemoveDir) {
    this.procsFile = path.join(dir, 'cgroup.procs')
  }

  async setLimits ({ maxBytes, minBytes }: CgroupLimits): Promise<void> {
    await writeCgroupFile(this.dir, 'memory.limit_in_bytes', String(maxBytes))
    // v1 has no protection; the soft limit is the level global reclaim pushes a
    // cgroup back to first, so usage below it is reclaimed last. -1 = none.
    await writeCgroupFile(this.dir, 'memory.soft_limit_in_bytes', minBytes !== undefined && minBytes > 0 ? String(minBytes) : '-1')
    // With swap accounting, memory+swap gets the same limit: no spilling past the reservation.
    if (await exists(path.join(this.dir, 'memory.memsw.limit_in_bytes'))) {
      await writeCgroupFile(this.dir, 'memory.memsw.limit_in_bytes', String(maxBytes))
    }
  }

  async addProcess (pid: number): Promise<void> {
    await writeCgroupFile(this.dir, 'cgroup.procs', String(pid))
  }

  async pids (): Promise<number[]> {
    return parsePids(await readOptional(this.procsFile))
  }

  async usage (): Promise<CgroupUsage> {
    const oom = parseKeyValues(await readOptional(path.join(this.dir, 'memory.oom_control')))
    const limit = await readNumber(path.join(this.dir, 'memory.limit_in_bytes'))
    return {
      currentBytes: await readNumber(path.join(this.dir, 'memory.usage_in_bytes')) ?? 0,
      peakBytes: await readNumber(path.join(this.dir, 'memory.max_usage_in_bytes')),
      limitBytes: limit !== undefined && limit < V1_UNLIMITED_AT ? limit : undefined,
      // With swap accounting the memory+swap limit is set to the same size: a hit of either is a hit of the reservation's limit.
      limitHits: (await readNumber(path.join(this.dir, 'memory.failcnt')) ?? 0) + (await readNumber(path.join(this.dir, 'memory.memsw.failcnt')) ?? 0),
      // `oom_kill` is in memory.oom_control from 4.13 on; older kernels count nothing.
      oomKills: oom.get('oom_kill') ?? 0
    }
  }

  async remove (): Promise<void> {
    await removeCgroupDir(this.dir, async () => await this.pids(), this.removeDir)
  }
}

// ---------------------------------------------------------------------------
// Shared file work

type RemoveDir = (dir: string) => Promise<void>

async function makeCgroupDir (parentDir: string, name: string, version: CgroupVersion): Promise<string> {
  const dir = path.join(parentDir, name)
  try {
    await mkdir(dir)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      // A leftover of a run that crashed: take it over if nothing runs in it.
      const pids = parsePids(await readOptional(path.join(dir, 'cgroup.procs')))
      if (pids.length > 0) {
        throw new CgroupError('Busy', `cgroup ${dir} already exists and holds process(es) ${pids.join(', ')}: is a 'memgossip run' of this reservation still running?`, { cause: error })
      }
      return dir
    }
    if (code === 'ENOENT') {
      throw new CgroupError('NoDelegation', `cannot create cgroup ${dir}: its parent ${parentDir} does not exist here (cgroup v${version}); ${CGROUP_FIX_HINT}`, { cause: error })
    }
    throw cgroupWriteError(error, dir)
  }
  return dir
}

async function writeCgroupFile (dir: string, file: string, value: string): Promise<void> {
  try {
    await writeFile(path.join(dir, file), value)
  } catch (error) {
    throw cgroupWriteError(error, path.join(dir, file))
  }
}

function cgroupWriteError (error: unknown, target: string): CgroupError {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    const who = typeof process.getuid === 'function' && process.getuid() !== 0 ? 'not root and ' : ''
    return new CgroupError('PermissionDenied', `permission denied on ${target} (${who}the cgroup is not delegated to this user, ${code}); ${CGROUP_FIX_HINT}`, { cause: error })
  }
  return new CgroupError('NoDelegation', `cannot write ${target}: ${(error as Error).message}; ${CGROUP_FIX_HINT}`, { cause: error })
}

/**
 * Kill what is left (the command's own children that outlived it would keep
 * using memory the ledger says is free), then rmdir; the kernel refuses rmdir
 * (EBUSY) until the killed processes are gone, so retry for a while.
 */
async function removeCgroupDir (dir: string, pids: () => Promise<number[]>, removeDir: RemoveDir): Promise<void> {
  const deadline = Date.now() + REMOVE_TIMEOUT_MS
  for (;;) {
    for (const pid of await pids()) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
    try {
      await removeDir(dir)
      return
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (Date.now() > deadline) throw new CgroupError('Busy', `cannot remove cgroup ${dir}: ${(error as Error).message}`, { cause: error })
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
}

function parsePids (text: string | undefined): number[] {
  return (text ?? '').split(/\s+/).filter(s => /^\d+$/.test(s)).map(Number)
}

/** `key value` lines (memory.events, memory.oom_control) → numbers. */
export function parseKeyValues (text: string | undefined): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of (text ?? '').split('\n')) {
    const m = /^(\S+)\s+(\d+)\s*$/.exec(line)
    if (m !== null) out.set(m[1], Number(m[2]))
  }
  return out
}

async function readNumber (file: string): Promise<number | undefined> {
  const text = (await readOptional(file))?.trim()
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined
}

async function readOptional (file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch {
    return undefined
  }
}

async function exists (file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.F_OK)
    return true
  } catch {
    return false
  }
}
