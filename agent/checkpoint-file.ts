/**
 * The checkpoint file of a data directory (docs/design.md "Checkpoints"): the
 * latest checkpoint this agent took, so a restart can resume resolution from
 * it. Not wired into the agent yet (the lead does that after the agent split);
 * the format and its refusals are fixed here.
 *
 *   ledger.checkpoint
 *     offset 0   4 bytes   magic 'MGC1' (ASCII)
 *     +4         u32 LE    payload length n, 1 ≤ n ≤ MAX_CHECKPOINT_BYTES
 *     +8         u32 LE    CRC-32 (zlib polynomial) of the payload
 *     +12        n bytes   payload: the checkpoint as UTF-8 JSON
 *     and nothing after it
 *
 * Written whole and atomically (temp file, fsync, rename, fsync the
 * directory), so a crash leaves the old file or the new one. A file that is
 * short, long, fails its CRC, is not a checkpoint, or whose digest does not
 * match its content is refused with a {@link StoreError} `ECORRUPT` naming
 * what is wrong; nothing is repaired or removed.
 */
import { open, readFile } from 'node:fs/promises'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import { checkpointIntact, CHECKPOINT_VERSION, type Checkpoint } from '../crdt/checkpoint.ts'
import { StoreError, writeFileAtomic } from './store.ts'

export const CHECKPOINT_FILE = 'ledger.checkpoint'
export const CHECKPOINT_MAGIC = 'MGC1'
/** Largest payload accepted: a checkpoint holds live reservations and owned ids, far below this. */
export const MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024
const HEADER_BYTES = 12
const FILE_MODE = 0o600

/** Write `checkpoint` as the data directory's checkpoint file, replacing any earlier one atomically. */
export async function writeCheckpointFile (dir: string, checkpoint: Checkpoint, options: { fsync?: boolean } = {}): Promise<void> {
  const payload = Buffer.from(JSON.stringify(checkpoint), 'utf8')
  if (payload.length > MAX_CHECKPOINT_BYTES) throw new StoreError('ETOOBIG', `checkpoint of ${payload.length} bytes is over the ${MAX_CHECKPOINT_BYTES}-byte limit`)
  const header = Buffer.alloc(HEADER_BYTES)
  header.write(CHECKPOINT_MAGIC, 0, 'latin1')
  header.writeUInt32LE(payload.length, 4)
  header.writeUInt32LE(crc32(payload), 8)
  await writeFileAtomic(path.join(dir, CHECKPOINT_FILE), Buffer.concat([header, payload]), {
    fsync: options.fsync ?? true,
    openFile: async (file, flags) => await open(file, flags, FILE_MODE)
  })
}

/** The data directory's checkpoint, or undefined when it has none; throws {@link StoreError} `ECORRUPT` when the file is damaged. */
export async function readCheckpointFile (dir: string): Promise<Checkpoint | undefined> {
  const file = path.join(dir, CHECKPOINT_FILE)
  let buf: Buffer
  try {
    buf = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new StoreError((err as NodeJS.ErrnoException).code ?? 'EIO', `cannot read ${file}: ${(err as Error).message}`, { file, cause: err })
  }
  const refuse = (why: string): never => { throw new StoreError('ECORRUPT', `checkpoint file ${file} ${why}; it is left as it is`, { file }) }
  if (buf.length < HEADER_BYTES) refuse(`is truncated: ${buf.length} bytes, shorter than its ${HEADER_BYTES}-byte header`)
  if (buf.toString('latin1', 0, 4) !== CHECKPOINT_MAGIC) refuse(`does not start with '${CHECKPOINT_MAGIC}' (not a checkpoint file)`)
  const length = buf.readUInt32LE(4)
  if (length === 0 || length > MAX_CHECKPOINT_BYTES) refuse(`has an impossible payload length ${length}`)
  if (buf.length < HEADER_BYTES + length) refuse(`is truncated: its header says ${length} payload bytes, it holds ${buf.length - HEADER_BYTES}`)
  if (buf.length > HEADER_BYTES + length) refuse(`has ${buf.length - HEADER_BYTES - length} bytes after its payload`)
  const payload = buf.subarray(HEADER_BYTES)
  if (crc32(payload) !== buf.readUInt32LE(8)) refuse('fails its CRC (damaged)')
  let checkpoint: Checkpoint
  try {
    checkpoint = JSON.parse(payload.toString('utf8')) as Checkpoint
  } catch {
    return refuse('holds no valid JSON')
  }
  if (typeof checkpoint !== 'object' || checkpoint === null || checkpoint.version !== CHECKPOINT_VERSION) refuse(`is not a version ${CHECKPOINT_VERSION} checkpoint`)
  if (!checkpointIntact(checkpoint)) refuse('does not match its own digest')
  return checkpoint
}
