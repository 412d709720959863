/**
 * The checkpoint file (agent/checkpoint-file.ts): written atomically, read
 * back equal, and every kind of damage refused with `ECORRUPT` naming what is
 * wrong, the file left untouched — real files in a temp directory, a real
 * checkpoint of a real document.
 */
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { CHECKPOINT_FILE, readCheckpointFile, writeCheckpointFile } from '../../agent/checkpoint-file.ts'
import { resolveFrom, stableCut, takeCheckpoint, type Checkpoint } from '../../crdt/checkpoint.ts'
import { LedgerWriter, resolve } from '../../crdt/index.ts'

const MiB = 1024 ** 2

/** A one-node cluster that made 20 reservations and released 15: a checkpoint with running and ended entries. */
function sample (): { doc: Y.Doc, checkpoint: Checkpoint } {
  const doc = new Y.Doc()
  const node = 'node-a'
  const writer = new LedgerWriter(doc, node)
  let wall = 1_700_000_000_000
  writer.admit(node, 1024 * MiB, wall)
  for (let i = 0; i < 20; i++) writer.reserve({ id: `r${i}`, bytes: 16 * MiB, placement: { kind: 'any' }, priority: 0 }, ++wall)
  for (let i = 0; i < 15; i++) writer.release(`r${i}`, node, ++wall)
  // Its own stream is complete up to its clock, and it is the whole view: everything is final.
  const res = resolve(doc, { self: node, selfClock: writer.clock.peek() })
  const cut = stableCut(res)
  expect(cut).toBeDefined()
  return { doc, checkpoint: takeCheckpoint(doc, cut!) }
}

let dir: string
beforeEach(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'mg-cp-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

async function refusal (): Promise<{ name: string, code: string, message: string }> {
  return await readCheckpointFile(dir).then(() => { throw new Error('expected a refusal') }, (err: unknown) => err as { name: string, code: string, message: string })
}

describe('checkpoint file', () => {
  it('round-trips a checkpoint, resolution from the read one equal to the original, and leaves no temp file', async () => {
    const { doc, checkpoint } = sample()
    expect(checkpoint.running.length).toBe(5)
    expect(checkpoint.ended.counts.released).toBe(15)
    await writeCheckpointFile(dir, checkpoint)
    const read = await readCheckpointFile(dir)
    expect(read).toEqual(checkpoint)
    expect(resolveFrom(read!, doc).digest).toBe(resolveFrom(checkpoint, doc).digest)
    expect(await readdir(dir)).toEqual([CHECKPOINT_FILE])
  })

  it('reads nothing when there is no checkpoint yet', async () => {
    expect(await readCheckpointFile(dir)).toBeUndefined()
  })

  it('replaces an earlier checkpoint whole', async () => {
    const { checkpoint } = sample()
    await writeCheckpointFile(dir, checkpoint)
    // A different checkpoint: one at an earlier cut of the same document.
    const other = takeCheckpoint(sample().doc, '000000000000001:000000:node-a')
    await writeCheckpointFile(dir, other)
    expect((await readCheckpointFile(dir))!.digest).toBe(other.digest)
  })

  const damage: Array<[string, (file: string, bytes: Buffer) => Promise<void>, RegExp]> = [
    ['truncated inside the payload', async (file, bytes) => { await truncate(file, bytes.length - 10) }, /truncated: its header says \d+ payload bytes, it holds \d+/],
    ['truncated inside the header', async (file) => { await truncate(file, 7) }, /truncated: 7 bytes/],
    ['empty', async (file) => { await truncate(file, 0) }, /truncated: 0 bytes/],
    ['a flipped payload byte', async (file, bytes) => { const b = Buffer.from(bytes); b[b.length - 3] ^= 0x20; await writeFile(file, b) }, /fails its CRC/],
    ['bytes after the payload', async (file, bytes) => { await writeFile(file, Buffer.concat([bytes, Buffer.from('xx')])) }, /2 bytes after its payload/],
    ['another file type', async (file, bytes) => { const b = Buffer.from(bytes); b.write('MGL1', 0, 'latin1'); await writeFile(file, b) }, /does not start with 'MGC1'/]
  ]
  for (const [what, spoil, message] of damage) {
    it(`refuses a file with ${what} (ECORRUPT, naming it) and leaves it as it is`, async () => {
      await writeCheckpointFile(dir, sample().checkpoint)
      const file = path.join(dir, CHECKPOINT_FILE)
      await spoil(file, await readFile(file))
      const before = await readFile(file)
      const err = await refusal()
      expect(err.name).toBe('StoreError')
      expect(err.code).toBe('ECORRUPT')
      expect(err.message).toMatch(message)
      expect(await readFile(file)).toEqual(before)
    })
  }

  it('refuses a checkpoint whose content does not match its digest, even with a good CRC', async () => {
    const { checkpoint } = sample()
    // Written through the same writer, so the frame and CRC are right: only the digest is wrong.
    await writeCheckpointFile(dir, { ...checkpoint, allNeedBytes: checkpoint.allNeedBytes + 1 })
    const err = await refusal()
    expect(err.code).toBe('ECORRUPT')
    expect(err.message).toMatch(/does not match its own digest/)
  })
})
