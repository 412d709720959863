/**
 * The node's identity: an Ed25519 key kept in the data directory so a node keeps
 * its peer id (which is also its node id in the ledger) across restarts
 * (docs/design.md "Network", "Durability"). A lost data dir means a new
 * identity.
 *
 * The key file holds the libp2p protobuf encoding of the private key (the same
 * encoding `privateKeyToProtobuf` produces), readable by its owner only.
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { PeerKeyError } from './errors.ts'
import type { PrivateKey } from '@libp2p/interface'

export { PeerKeyError } from './errors.ts'

/** File name of the peer key inside the data directory. */
export const PEER_KEY_FILE = 'peer.key'
/** The key is a secret: owner read/write only. */
const PEER_KEY_FILE_MODE = 0o600
/** The data dir holds the key and the ledger: owner only. */
const DATA_DIR_MODE = 0o700
/** Group/other permission bits. */
const GROUP_OTHER_MODE_BITS = 0o077
/** A protobuf Ed25519 private key is 68 bytes; refuse to read anything absurd. */
const MAX_PEER_KEY_FILE_BYTES = 16 * 1024

/**
 * Load the peer key from `<dataDir>/peer.key`, or create a new Ed25519 key there
 * if the file does not exist. `dataDir` is created (mode 0700) when missing. The
 * new file is written atomically (temporary file, fsync, rename, fsync of the
 * directory), so a crash leaves either no key or a whole one. An existing key
 * file readable by group or others is tightened to 0600.
 *
 * @throws {PeerKeyError} when the file exists but is unreadable, corrupt or not Ed25519;
 *   it is never replaced, because that would silently change the node's identity
 */
export async function loadOrCreatePeerKey (dataDir: string): Promise<PrivateKey> {
  await mkdir(dataDir, { recursive: true, mode: DATA_DIR_MODE })
  const path = join(dataDir, PEER_KEY_FILE)

  const existing = await readKeyFile(path)
  if (existing != null) return existing

  const key = await generateKeyPair('Ed25519')
  await writeFileAtomic(dataDir, path, privateKeyToProtobuf(key))
  return key
}

/** The peer id string (`12D3KooW…`) of a private key. */
export function peerIdFromKey (key: PrivateKey): string {
  return peerIdFromPrivateKey(key).toString()
}

async function readKeyFile (path: string): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    const info = await stat(path)
    if (info.size > MAX_PEER_KEY_FILE_BYTES) {
      throw new PeerKeyError(`peer key ${path} is ${info.size} bytes, not a libp2p private key; move it away to create a new identity`)
    }
    if (process.platform !== 'win32' && (info.mode & GROUP_OTHER_MODE_BITS) !== 0) {
      await chmod(path, PEER_KEY_FILE_MODE)
    }
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if (err instanceof PeerKeyError) throw err
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new PeerKeyError(`cannot read peer key ${path} (${code})`, { cause: err })
  }
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new PeerKeyError(`peer key ${path} is corrupt; move it away to create a new identity`, { cause: err })
  }
  if (key.type !== 'Ed25519') {
    throw new PeerKeyError(`peer key ${path} is a ${key.type} key; memgossip uses Ed25519`)
  }
  return key
}

/**
 * Write `bytes` to `path` so that readers only ever see the old file or the
 * complete new one: write a temporary sibling, fsync it, rename it over the
 * target, then fsync the directory so the rename itself survives a crash.
 */
async function writeFileAtomic (dir: string, path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    const file = await open(tmp, 'wx', PEER_KEY_FILE_MODE)
    try {
      await file.writeFile(bytes)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fsyncDir(dir)
}

async function fsyncDir (dir: string): Promise<void> {
  // Directories cannot be opened for fsync on Windows; the rename is as durable
  // as that platform makes it.
  if (process.platform === 'win32') return
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
