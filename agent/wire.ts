/**
 * The wire format between agents: gossip messages and the anti-entropy sync
 * exchange (docs/design.md "Network"). Every message starts with a
 * version-and-type byte.
 *
 *   gossip     0x01 | varuint len | Yjs update (a merged batch of local writes) [| varuint epoch]
 *   beacon     0x02 | 8-byte node tag | varuint wall ms | varuint counter
 *                   | varuint seq | varuint seen wall ms (0: none) | varuint seen counter
 *   suspect    0x03 | varstring suspector | varstring target | varuint wall ms | varuint counter
 *   relay-me   0x06 | as 0x02: a member's own beacon, sent to a relay to pass on
 *   relayed    0x07 | varuint base wall ms | varuint n
 *                   | n × (4-byte node tag | varint wall ms − base | varuint counter | varuint seq
 *                        | varuint line back (0: none, else wall ms − line wall ms + 1)
 *                        | varuint line counter, only when there is a line)
 *   sync-req   0x10 | varuint len | state vector of the requester [| varuint epoch]
 *   sync-reply 0x11 | varuint len | Yjs update the requester lacks
 *                   | varuint len | state vector of the responder [| varuint epoch]
 *   push       0x12 | varuint len | Yjs update the responder lacks
 *   ack        0x13
 *   ping       0x14 | varstring suspicion stamp ('' when the target is not suspected)
 *   ping-req   0x15 | varstring target
 *   pong       0x16 | varuint wall ms of the responder
 *   pull       0x17 | varuint n | n × varstring node
 *   beacons    0x18 | varuint n | n × (varstring node | the rest as in 0x02)
 *   error      0x1f | varstring reason
 *
 * The failure detector probes with ping → pong and ping-req → pong (or
 * error); a peer missing beacons pulls them with pull → beacons.
 *
 * The epoch (docs/design.md "Compaction: epochs") is written only when it is
 * not 0: an update or state vector is of one epoch's document and means
 * nothing in another's.
 *
 * One sync exchange is two request/response round trips over the network's
 * `request()`: sync-req → sync-reply, then push → ack when the responder lacks
 * something. Decoding is strict: unknown type, short buffer, trailing bytes or a
 * length beyond the buffer throw {@link WireError}; nothing is applied from a
 * message that does not decode whole.
 */
import { createHash } from 'node:crypto'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { decodeHlc, encodeHlc, isHlc, stampInRange } from '../crdt/hlc.ts'

export const MSG_GOSSIP = 0x01
export const MSG_BEACON = 0x02
export const MSG_SUSPECT = 0x03
/** A small request and its answer over a direct stream, matched by id (agent/calls.ts). */
export const MSG_CALL = 0x04
export const MSG_REPLY = 0x05
/** A member's own beacon, sent straight to a relay that passes it on (agent/relay.ts). */
export const MSG_BEACON_RELAY = 0x06
/** A relay's batch: the newest beacon it holds of each member, a few bytes each. */
export const MSG_RELAYED = 0x07
export const MSG_SYNC_REQUEST = 0x10
export const MSG_SYNC_REPLY = 0x11
export const MSG_PUSH = 0x12
export const MSG_ACK = 0x13
export const MSG_PING = 0x14
export const MSG_PING_REQ = 0x15
export const MSG_PONG = 0x16
export const MSG_PULL = 0x17
export const MSG_BEACONS = 0x18
/** Most node ids in one pull, and beacons in one answer. */
export const MAX_PULL = 256
export const MSG_ERROR = 0x1f

export class WireError extends Error {
  override readonly name = 'WireError'
}

export type WireMessage =
  | { type: typeof MSG_GOSSIP, update: Uint8Array, epoch?: number }
  | { type: typeof MSG_BEACON, beacon: WireBeacon }
  | { type: typeof MSG_BEACON_RELAY, beacon: WireBeacon }
  | { type: typeof MSG_RELAYED, beacons: WireBeacon[] }
  | { type: typeof MSG_SUSPECT, suspector: string, target: string, wallMs: number, counter: number }
  | { type: typeof MSG_CALL, id: number, body: Uint8Array }
  | { type: typeof MSG_REPLY, id: number, body: Uint8Array }
  | { type: typeof MSG_PING, suspicion?: string }
  | { type: typeof MSG_PING_REQ, target: string }
  | { type: typeof MSG_PONG, wallMs: number }
  | { type: typeof MSG_PULL, nodes: string[] }
  | { type: typeof MSG_BEACONS, beacons: WireBeacon[] }
  | { type: typeof MSG_SYNC_REQUEST, stateVector: Uint8Array, epoch?: number }
  | { type: typeof MSG_SYNC_REPLY, update: Uint8Array, stateVector: Uint8Array, epoch?: number }
  | { type: typeof MSG_PUSH, update: Uint8Array }
  | { type: typeof MSG_ACK }
  | { type: typeof MSG_ERROR, reason: string }

/**
 * A beacon as it travels (docs/design.md "Clock channel"): the member's stamp
 * split into its parts (the stamp's node is the member), its stream position
 * and its completeness line. The member names itself so that a beacon
 * published by anyone else can be told apart and dropped.
 */
export interface WireBeacon {
  node: string
  wallMs: number
  counter: number
  seq: number
  seen?: string
  /**
   * Decoded from a published beacon (0x02): the first 8 bytes of SHA-256 of
   * the member's id, which travels instead of the 52-character id (its
   * author is the signed gossip author); `node` is then ''.
   */
  tag?: Uint8Array
}

/**
 * Bytes of {@link nodeTag} a relay's batch names a member by: a view of 64
 * members has two ids sharing them with odds of about 1 in 2 million, and
 * then its members do not relay (agent/relay.ts).
 */
export const RELAYED_TAG_BYTES = 4

/** The tag a relay's batch names a member by: the first {@link RELAYED_TAG_BYTES} of its {@link nodeTag}. */
export function relayedTag (node: string): Uint8Array {
  return nodeTag(node).subarray(0, RELAYED_TAG_BYTES)
}

/** The tag a published beacon names its member by. */
export function nodeTag (node: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(node).digest().subarray(0, 8))
}

/** Does `tag` name `node`? */
export function tagNames (tag: Uint8Array | undefined, node: string): boolean {
  if (tag === undefined || tag.length !== 8) return false
  const expected = nodeTag(node)
  return expected.every((b, i) => b === tag[i])
}

export function encodeMessage (message: WireMessage): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeUint8(encoder, message.type)
  switch (message.type) {
    case MSG_GOSSIP:
      encoding.writeVarUint8Array(encoder, message.update)
      writeEpoch(encoder, message.epoch)
      break
    case MSG_PUSH:
      encoding.writeVarUint8Array(encoder, message.update)
      break
    case MSG_BEACON:
    case MSG_BEACON_RELAY:
      encoding.writeUint8Array(encoder, nodeTag(message.beacon.node))
      writeBeaconBody(encoder, message.beacon)
      break
    case MSG_RELAYED: {
      const base = message.beacons[0]?.wallMs ?? 0
      encoding.writeVarUint(encoder, base)
      writeList(encoder, message.beacons, beacon => { writeRelayedBeacon(encoder, beacon, base) })
      break
    }
    case MSG_SUSPECT:
      encoding.writeVarString(encoder, message.suspector)
      encoding.writeVarString(encoder, message.target)
      encoding.writeVarUint(encoder, message.wallMs)
      encoding.writeVarUint(encoder, message.counter)
      break
    case MSG_CALL:
    case MSG_REPLY:
      encoding.writeVarUint(encoder, message.id)
      encoding.writeVarUint8Array(encoder, message.body)
      break
    case MSG_PING:
      encoding.writeVarString(encoder, message.suspicion ?? '')
      break
    case MSG_PING_REQ:
      encoding.writeVarString(encoder, message.target)
      break
    case MSG_PONG:
      encoding.writeVarUint(encoder, message.wallMs)
      break
    case MSG_PULL:
      writeList(encoder, message.nodes, node => { encoding.writeVarString(encoder, node) })
      break
    case MSG_BEACONS:
      writeList(encoder, message.beacons, beacon => {
        encoding.writeVarString(encoder, beacon.node)
        writeBeaconBody(encoder, beacon)
      })
      break
    case MSG_SYNC_REQUEST:
      encoding.writeVarUint8Array(encoder, message.stateVector)
      writeEpoch(encoder, message.epoch)
      break
    case MSG_SYNC_REPLY:
      encoding.writeVarUint8Array(encoder, message.update)
      encoding.writeVarUint8Array(encoder, message.stateVector)
      writeEpoch(encoder, message.epoch)
      break
    case MSG_ACK:
      break
    case MSG_ERROR:
      encoding.writeVarString(encoder, message.reason.slice(0, 200))
      break
  }
  return encoding.toUint8Array(encoder)
}

export function decodeMessage (bytes: Uint8Array): WireMessage {
  if (bytes.length === 0) throw new WireError('empty message')
  const decoder = decoding.createDecoder(bytes)
  const readBytes = (): Uint8Array => {
    const len = decoding.readVarUint(decoder)
    if (len > bytes.length - decoder.pos) throw new WireError(`length ${len} runs past the end of a ${bytes.length}-byte message`)
    return decoding.readUint8Array(decoder, len)
  }
  /** The optional epoch at the end of a message (absent: epoch 0). */
  const readEpoch = (): { epoch?: number } => {
    if (decoder.pos === bytes.length) return {}
    const epoch = decoding.readVarUint(decoder)
    if (epoch === 0 || epoch > 0xffffffff) throw new WireError(`epoch ${epoch} out of range (1 to 2^32 − 1; epoch 0 is not written)`)
    return { epoch }
  }
  let message: WireMessage
  try {
    const type = decoding.readUint8(decoder)
    switch (type) {
      case MSG_GOSSIP: message = { type, update: readBytes(), ...readEpoch() }; break
      case MSG_PUSH: message = { type, update: readBytes() }; break
      case MSG_BEACON:
      case MSG_BEACON_RELAY: {
        const tag = readTag(decoder, bytes.length)
        message = { type, beacon: { ...readBeaconBody(decoder, ''), tag } }
        break
      }
      case MSG_RELAYED: {
        const base = decoding.readVarUint(decoder)
        message = { type, beacons: readList(decoder, () => readRelayedBeacon(decoder, bytes.length, base)) }
        break
      }
      case MSG_SUSPECT: message = { type, suspector: decoding.readVarString(decoder), target: decoding.readVarString(decoder), wallMs: decoding.readVarUint(decoder), counter: decoding.readVarUint(decoder) }; break
      case MSG_CALL: message = { type, id: decoding.readVarUint(decoder), body: readBytes() }; break
      case MSG_REPLY: message = { type, id: decoding.readVarUint(decoder), body: readBytes() }; break
      case MSG_PING: {
        const suspicion = decoding.readVarString(decoder)
        message = suspicion === '' ? { type } : { type, suspicion }
        break
      }
      case MSG_PING_REQ: message = { type, target: decoding.readVarString(decoder) }; break
      case MSG_PONG: message = { type, wallMs: decoding.readVarUint(decoder) }; break
      case MSG_PULL: message = { type, nodes: readList(decoder, () => decoding.readVarString(decoder)) }; break
      case MSG_BEACONS: message = { type, beacons: readList(decoder, () => readBeaconBody(decoder, decoding.readVarString(decoder))) }; break
      case MSG_SYNC_REQUEST: message = { type, stateVector: readBytes(), ...readEpoch() }; break
      case MSG_SYNC_REPLY: message = { type, update: readBytes(), stateVector: readBytes(), ...readEpoch() }; break
      case MSG_ACK: message = { type }; break
      case MSG_ERROR: message = { type, reason: decoding.readVarString(decoder) }; break
      default: throw new WireError(`unknown message type 0x${type.toString(16)}`)
    }
  } catch (error) {
    if (error instanceof WireError) throw error
    throw new WireError(`truncated or malformed message: ${(error as Error).message}`)
  }
  if (decoder.pos !== bytes.length) throw new WireError(`${bytes.length - decoder.pos} trailing bytes after the message`)
  return message
}

/**
 * Stamp, position and line. The line travels as its wall time and counter
 * only, and comes back with the lowest node part ('!'): a line one node id
 * lower is a weaker announcement, so it can only make a peer wait, and it
 * saves most of a beacon's bytes.
 */
function writeBeaconBody (encoder: encoding.Encoder, beacon: WireBeacon): void {
  encoding.writeVarUint(encoder, beacon.wallMs)
  encoding.writeVarUint(encoder, beacon.counter)
  encoding.writeVarUint(encoder, beacon.seq)
  const seen = beacon.seen !== undefined && isHlc(beacon.seen) ? decodeHlc(beacon.seen) : undefined
  encoding.writeVarUint(encoder, seen?.wallMs ?? 0)
  encoding.writeVarUint(encoder, seen?.counter ?? 0)
}

function readBeaconBody (decoder: decoding.Decoder, node: string): WireBeacon {
  const wallMs = decoding.readVarUint(decoder)
  const counter = decoding.readVarUint(decoder)
  const seq = decoding.readVarUint(decoder)
  const seenWall = decoding.readVarUint(decoder)
  const seenCounter = decoding.readVarUint(decoder)
  if (seenWall === 0) return { node, wallMs, counter, seq }
  if (!stampInRange(seenWall, seenCounter)) throw new WireError(`beacon line out of range (wall ${seenWall}, counter ${seenCounter})`)
  return { node, wallMs, counter, seq, seen: encodeHlc({ wallMs: seenWall, counter: seenCounter, node: LOWEST_NODE }) }
}

function writeEpoch (encoder: encoding.Encoder, epoch: number | undefined): void {
  if (epoch !== undefined && epoch !== 0) encoding.writeVarUint(encoder, epoch)
}

function readTag (decoder: decoding.Decoder, length: number, bytes = 8): Uint8Array {
  if (length - decoder.pos < bytes) throw new WireError('beacon shorter than its node tag')
  return decoding.readUint8Array(decoder, bytes).slice()
}

/**
 * One beacon of a relay's batch: its member's short tag, its wall time as a
 * difference from the batch's first (beacons of one batch are stamped within
 * milliseconds of each other), its line's wall time as a distance back from
 * its own stamp (a line is never past its stamp) — about 10 bytes against a
 * 0x02 message's 25 and the ~30 bytes of framing each message costs on the
 * socket. The relay forwards only beacons it accepted, so a line past its
 * stamp cannot be written; one that would be is sent as no line (weaker: the
 * peer waits).
 */
function writeRelayedBeacon (encoder: encoding.Encoder, beacon: WireBeacon, base: number): void {
  const tag = beacon.node !== '' ? relayedTag(beacon.node) : beacon.tag?.subarray(0, RELAYED_TAG_BYTES)
  if (tag?.length !== RELAYED_TAG_BYTES) throw new WireError('a relayed beacon needs its member (a node id or its tag)')
  encoding.writeUint8Array(encoder, tag)
  encoding.writeVarInt(encoder, beacon.wallMs - base)
  encoding.writeVarUint(encoder, beacon.counter)
  encoding.writeVarUint(encoder, beacon.seq)
  const seen = beacon.seen !== undefined && isHlc(beacon.seen) ? decodeHlc(beacon.seen) : undefined
  if (seen === undefined || seen.wallMs > beacon.wallMs || seen.wallMs === 0) {
    encoding.writeVarUint(encoder, 0)
    return
  }
  encoding.writeVarUint(encoder, beacon.wallMs - seen.wallMs + 1)
  encoding.writeVarUint(encoder, seen.counter)
}

function readRelayedBeacon (decoder: decoding.Decoder, length: number, base: number): WireBeacon {
  const tag = readTag(decoder, length, RELAYED_TAG_BYTES)
  const wallMs = base + decoding.readVarInt(decoder)
  const counter = decoding.readVarUint(decoder)
  const seq = decoding.readVarUint(decoder)
  if (!Number.isSafeInteger(wallMs) || wallMs < 0) throw new WireError(`relayed beacon's wall time out of range (${wallMs})`)
  const back = decoding.readVarUint(decoder)
  if (back === 0) return { node: '', wallMs, counter, seq, tag }
  const seenWall = wallMs - (back - 1)
  const seenCounter = decoding.readVarUint(decoder)
  if (seenWall <= 0 || !stampInRange(seenWall, seenCounter)) throw new WireError(`relayed beacon's line out of range (wall ${seenWall}, counter ${seenCounter})`)
  return { node: '', wallMs, counter, seq, tag, seen: encodeHlc({ wallMs: seenWall, counter: seenCounter, node: LOWEST_NODE }) }
}

/** Sorts below every node id: a line decoded without its node part. */
const LOWEST_NODE = '!'

/** A count, then the items (at most {@link MAX_PULL}). */
function writeList<T> (encoder: encoding.Encoder, items: readonly T[], write: (item: T) => void): void {
  encoding.writeVarUint(encoder, items.length)
  for (const item of items) write(item)
}

function readList<T> (decoder: decoding.Decoder, read: () => T): T[] {
  const n = decoding.readVarUint(decoder)
  if (n > MAX_PULL) throw new WireError(`${n} entries exceed the limit of ${MAX_PULL}`)
  const items: T[] = []
  for (let i = 0; i < n; i++) items.push(read())
  return items
}
