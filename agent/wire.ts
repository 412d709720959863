/**
 * The wire format between agents: gossip messages and the anti-entropy sync
 * exchange (docs/design.md "Network"). Every message starts with a
 * version-and-type byte.
 *
 *   gossip     0x01 | varuint len | Yjs update (a merged batch of local writes)
 *   beacon     0x02 | varstring node | varuint wall ms | varuint counter
 *                   | varuint seq | varstring seen ('' when none)
 *   sync-req   0x10 | varuint len | state vector of the requester
 *   sync-reply 0x11 | varuint len | Yjs update the requester lacks
 *                   | varuint len | state vector of the responder
 *   push       0x12 | varuint len | Yjs update the responder lacks
 *   ack        0x13
 *   error      0x1f | varstring reason
 *
 * One exchange is two request/response round trips over the network's
 * `request()`: sync-req → sync-reply, then push → ack when the responder lacks
 * something. Decoding is strict: unknown type, short buffer, trailing bytes or a
 * length beyond the buffer throw {@link WireError}; nothing is applied from a
 * message that does not decode whole.
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'

export const MSG_GOSSIP = 0x01
export const MSG_BEACON = 0x02
export const MSG_SYNC_REQUEST = 0x10
export const MSG_SYNC_REPLY = 0x11
export const MSG_PUSH = 0x12
export const MSG_ACK = 0x13
export const MSG_ERROR = 0x1f

export class WireError extends Error {
  override readonly name = 'WireError'
}

export type WireMessage =
  | { type: typeof MSG_GOSSIP, update: Uint8Array }
  | { type: typeof MSG_BEACON, beacon: WireBeacon }
  | { type: typeof MSG_SYNC_REQUEST, stateVector: Uint8Array }
  | { type: typeof MSG_SYNC_REPLY, update: Uint8Array, stateVector: Uint8Array }
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
}

export function encodeMessage (message: WireMessage): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeUint8(encoder, message.type)
  switch (message.type) {
    case MSG_GOSSIP:
    case MSG_PUSH:
      encoding.writeVarUint8Array(encoder, message.update)
      break
    case MSG_BEACON:
      encoding.writeVarString(encoder, message.beacon.node)
      encoding.writeVarUint(encoder, message.beacon.wallMs)
      encoding.writeVarUint(encoder, message.beacon.counter)
      encoding.writeVarUint(encoder, message.beacon.seq)
      encoding.writeVarString(encoder, message.beacon.seen ?? '')
      break
    case MSG_SYNC_REQUEST:
      encoding.writeVarUint8Array(encoder, message.stateVector)
      break
    case MSG_SYNC_REPLY:
      encoding.writeVarUint8Array(encoder, message.update)
      encoding.writeVarUint8Array(encoder, message.stateVector)
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
  let message: WireMessage
  try {
    const type = decoding.readUint8(decoder)
    switch (type) {
      case MSG_GOSSIP: message = { type, update: readBytes() }; break
      case MSG_PUSH: message = { type, update: readBytes() }; break
      case MSG_BEACON: {
        const node = decoding.readVarString(decoder)
        const wallMs = decoding.readVarUint(decoder)
        const counter = decoding.readVarUint(decoder)
        const seq = decoding.readVarUint(decoder)
        const seen = decoding.readVarString(decoder)
        message = { type, beacon: seen === '' ? { node, wallMs, counter, seq } : { node, wallMs, counter, seq, seen } }
        break
      }
      case MSG_SYNC_REQUEST: message = { type, stateVector: readBytes() }; break
      case MSG_SYNC_REPLY: message = { type, update: readBytes(), stateVector: readBytes() }; break
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
