/**
 * The cluster key: a libp2p private-network pre-shared key
 * (docs/design.md "Network"). A host without it cannot even finish a connection
 * handshake with a cluster member.
 *
 * File format, the standard swarm key shared with go-libp2p and IPFS:
 *
 * ```
 * /key/swarm/psk/1.0.0/
 * /base16/
 * <64 hex digits = 32 random bytes>
 * ```
 *
 * Only the `/base16/` encoding is accepted, because that is the only one
 * `@libp2p/pnet` decodes. Line endings may be `\n` or `\r\n`, and a trailing
 * newline or surrounding blanks are tolerated (editors add them).
 *
 * Never log the key or any part of its third line: error messages below name the
 * line and what is wrong with it, never its content.
 */
import { readFile, stat } from 'node:fs/promises'
import { generateKey } from '@libp2p/pnet'
import { ClusterKeyError } from './errors.ts'

export { ClusterKeyError } from './errors.ts'

/** First line of a swarm key file. */
export const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/'
/** Second line: the encoding of the third. */
export const SWARM_KEY_ENCODING = '/base16/'
/** The pre-shared key is 32 bytes (XSalsa20 key), written as 64 hex digits. */
export const CLUSTER_KEY_BYTES = 32
/** Length of the canonical key text produced by `generateClusterKey`. */
const CANONICAL_KEY_TEXT_BYTES = SWARM_KEY_HEADER.length + 1 + SWARM_KEY_ENCODING.length + 1 + CLUSTER_KEY_BYTES * 2
/** A real key file is ~96 bytes; anything far larger is the wrong file. */
const MAX_CLUSTER_KEY_FILE_BYTES = 4096
/** Permission bits for group/other: a key file should have none of them. */
const GROUP_OTHER_MODE_BITS = 0o077

const HEX_KEY = /^[0-9a-fA-F]+$/

/** A cluster key loaded from disk, with a warning when the file is too open. */
export interface LoadedClusterKey {
  /** Canonical swarm key text, ready for `preSharedKey({ psk })`. */
  key: Uint8Array
  /** Set when the file is readable by group or others (mode looser than 0600). */
  warning?: string
}

/**
 * A new random cluster key, as the text of a swarm key file
 * (`/key/swarm/psk/1.0.0/\n/base16/\n<64 hex>`, no trailing newline).
 */
export function generateClusterKey (): Uint8Array {
  const key = new Uint8Array(CANONICAL_KEY_TEXT_BYTES)
  generateKey(key)
  return key
}

/**
 * Validate swarm key file bytes and return them in canonical form (the exact
 * bytes `generateClusterKey` would produce for the same key), so two hosts whose
 * files differ only in line endings or hex case use the same key.
 *
 * @throws {ClusterKeyError} naming what is wrong; the message never contains the key
 */
export function parseClusterKey (bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength > MAX_CLUSTER_KEY_FILE_BYTES) {
    throw new ClusterKeyError('too-large', `cluster key is ${bytes.byteLength} bytes; a swarm key file is about ${CANONICAL_KEY_TEXT_BYTES} bytes (is this the right file?)`)
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch (err) {
    throw new ClusterKeyError('not-text', 'cluster key is not UTF-8 text; expected a swarm key file starting with ' + SWARM_KEY_HEADER, { cause: err })
  }
  // Tolerate a byte-order mark, CRLF and blank lines at the end.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/).map(line => line.trim())
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop()

  const [header, encoding, hex, ...rest] = lines
  if (header !== SWARM_KEY_HEADER) {
    throw new ClusterKeyError('bad-header', `cluster key line 1 must be "${SWARM_KEY_HEADER}"`)
  }
  if (encoding !== SWARM_KEY_ENCODING) {
    // Echo the line only when it looks like an encoding name, so a key pasted
    // on the wrong line never ends up in a log.
    const found = encoding == null || encoding === ''
      ? 'nothing'
      : (/^\/[a-z0-9]{1,16}\/$/i.test(encoding) ? `"${encoding}"` : 'something else')
    throw new ClusterKeyError('bad-encoding', `cluster key line 2 must be "${SWARM_KEY_ENCODING}" (the only encoding supported), found ${found}`)
  }
  if (hex == null || hex === '') {
    throw new ClusterKeyError('bad-key', `cluster key line 3 is missing; expected ${CLUSTER_KEY_BYTES * 2} hex digits`)
  }
  if (!HEX_KEY.test(hex)) {
    throw new ClusterKeyError('bad-key', 'cluster key line 3 contains characters other than hex digits 0-9a-f')
  }
  if (hex.length !== CLUSTER_KEY_BYTES * 2) {
    throw new ClusterKeyError('bad-key', `cluster key line 3 has ${hex.length} hex digits; expected ${CLUSTER_KEY_BYTES * 2} (${CLUSTER_KEY_BYTES} bytes)`)
  }
  if (rest.length > 0) {
    throw new ClusterKeyError('trailing-data', `cluster key has ${rest.length} unexpected line(s) after the key`)
  }
  // Lowercase: the multibase base16 decoder pnet uses only accepts a-f.
  return new TextEncoder().encode(`${SWARM_KEY_HEADER}\n${SWARM_KEY_ENCODING}\n${hex.toLowerCase()}`)
}

/**
 * Read and validate a cluster key file. A file that group or others can read
 * still loads (refusing would take a node off the cluster over a chmod), but a
 * warning is returned for the caller to show.
 *
 * @throws {ClusterKeyError} with `problem: 'unreadable'` when the file cannot be read, or as `parseClusterKey`
 */
export async function loadClusterKey (path: string): Promise<LoadedClusterKey> {
  let bytes: Uint8Array
  let mode: number
  try {
    const info = await stat(path)
    if (!info.isFile()) {
      throw new ClusterKeyError('unreadable', `cluster key ${path} is not a regular file`)
    }
    if (info.size > MAX_CLUSTER_KEY_FILE_BYTES) {
      throw new ClusterKeyError('too-large', `cluster key ${path} is ${info.size} bytes; a swarm key file is about ${CANONICAL_KEY_TEXT_BYTES} bytes (is this the right file?)`)
    }
    mode = info.mode & 0o777
    bytes = await readFile(path)
  } catch (err) {
    if (err instanceof ClusterKeyError) throw err
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new ClusterKeyError('unreadable', `cannot read cluster key ${path} (${code})`, { cause: err })
  }
  const key = parseClusterKey(bytes)
  // Windows has no POSIX modes to speak of; the check would always warn.
  if (process.platform !== 'win32' && (mode & GROUP_OTHER_MODE_BITS) !== 0) {
    return {
      key,
      warning: `cluster key ${path} has mode 0${mode.toString(8)}, readable beyond its owner; run: chmod 600 ${path}`
    }
  }
  return { key }
}
