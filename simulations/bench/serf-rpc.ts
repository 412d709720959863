/**
 * A minimal client of Serf's RPC protocol (msgpack over TCP, the protocol the
 * `serf event` / `serf tags` / `serf members` commands speak to the agent's
 * `-rpc-addr`). The benchmark talks to it directly so that a trial's clock
 * starts when the request is written, not when a `serf` CLI process has been
 * spawned and has handshaken (a few ms of process start-up that would be
 * charged to Serf otherwise).
 *
 * Protocol (serf/client/rpc_client.go): every request is a msgpack header map
 * `{Command, Seq}` followed by an optional body map; every response is a
 * header `{Seq, Error}` followed by a body for commands that have one. The
 * first request must be `handshake` with `{Version: 1}`.
 */
import { connect, type Socket } from 'node:net'

// ------------------------------------------------------------ msgpack (the subset Serf uses)

export type Msg = null | boolean | number | string | Uint8Array | Msg[] | { [key: string]: Msg }

export function encodeMsgpack (value: Msg): Buffer {
  const parts: Buffer[] = []
  const write = (v: Msg): void => {
    if (v === null) { parts.push(Buffer.from([0xc0])); return }
    if (typeof v === 'boolean') { parts.push(Buffer.from([v ? 0xc3 : 0xc2])); return }
    if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new TypeError(`msgpack: only uint32 numbers are supported, got ${v}`)
      if (v < 0x80) parts.push(Buffer.from([v]))
      else if (v < 0x100) parts.push(Buffer.from([0xcc, v]))
      else if (v < 0x10000) { const b = Buffer.alloc(3); b[0] = 0xcd; b.writeUInt16BE(v, 1); parts.push(b) } else { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(v, 1); parts.push(b) }
      return
    }
    if (typeof v === 'string') {
      const s = Buffer.from(v, 'utf8')
      if (s.length < 32) parts.push(Buffer.from([0xa0 | s.length]))
      else if (s.length < 0x100) parts.push(Buffer.from([0xd9, s.length]))
      else { const b = Buffer.alloc(3); b[0] = 0xda; b.writeUInt16BE(s.length, 1); parts.push(b) }
      parts.push(s)
      return
    }
    if (v instanceof Uint8Array) {
      if (v.length < 0x100) parts.push(Buffer.from([0xc4, v.length]))
      else { const b = Buffer.alloc(3); b[0] = 0xc5; b.writeUInt16BE(v.length, 1); parts.push(b) }
      parts.push(Buffer.from(v))
      return
    }
    if (Array.isArray(v)) {
      if (v.length >= 16) throw new TypeError('msgpack: arrays of 16+ items are not needed here')
      parts.push(Buffer.from([0x90 | v.length]))
      for (const item of v) write(item)
      return
    }
    const entries = Object.entries(v)
    if (entries.length >= 16) throw new TypeError('msgpack: maps of 16+ entries are not needed here')
    parts.push(Buffer.from([0x80 | entries.length]))
    for (const [k, item] of entries) { write(k); write(item) }
  }
  write(value)
  return Buffer.concat(parts)
}

class Incomplete extends Error {}

/** Decode one value at `offset`; throws `Incomplete` when the buffer ends inside it. */
export function decodeMsgpack (buf: Buffer, offset = 0): { value: Msg, offset: number } {
  let pos = offset
  const need = (n: number): void => { if (pos + n > buf.length) throw new Incomplete() }
  const u8 = (): number => { need(1); return buf[pos++] }
  const bytes = (n: number): Buffer => { need(n); const b = buf.subarray(pos, pos + n); pos += n; return b }
  const read = (): Msg => {
    const t = u8()
    if (t < 0x80) return t
    if (t >= 0xe0) return t - 0x100
    if ((t & 0xf0) === 0x80) return map(t & 0x0f)
    if ((t & 0xf0) === 0x90) return array(t & 0x0f)
    if ((t & 0xe0) === 0xa0) return bytes(t & 0x1f).toString('utf8')
    switch (t) {
      case 0xc0: return null
      case 0xc2: return false
      case 0xc3: return true
      case 0xc4: return new Uint8Array(bytes(u8()))
      case 0xc5: { need(2); const n = buf.readUInt16BE(pos); pos += 2; return new Uint8Array(bytes(n)) }
      case 0xc6: { need(4); const n = buf.readUInt32BE(pos); pos += 4; return new Uint8Array(bytes(n)) }
      case 0xca: { need(4); const v = buf.readFloatBE(pos); pos += 4; return v }
      case 0xcb: { need(8); const v = buf.readDoubleBE(pos); pos += 8; return v }
      case 0xcc: return u8()
      case 0xcd: { need(2); const v = buf.readUInt16BE(pos); pos += 2; return v }
      case 0xce: { need(4); const v = buf.readUInt32BE(pos); pos += 4; return v }
      case 0xcf: { need(8); const v = Number(buf.readBigUInt64BE(pos)); pos += 8; return v }
      case 0xd0: { need(1); const v = buf.readInt8(pos); pos += 1; return v }
      case 0xd1: { need(2); const v = buf.readInt16BE(pos); pos += 2; return v }
      case 0xd2: { need(4); const v = buf.readInt32BE(pos); pos += 4; return v }
      case 0xd3: { need(8); const v = Number(buf.readBigInt64BE(pos)); pos += 8; return v }
      case 0xd9: return bytes(u8()).toString('utf8')
      case 0xda: { need(2); const n = buf.readUInt16BE(pos); pos += 2; return bytes(n).toString('utf8') }
      case 0xdb: { need(4); const n = buf.readUInt32BE(pos); pos += 4; return bytes(n).toString('utf8') }
      case 0xdc: { need(2); const n = buf.readUInt16BE(pos); pos += 2; return array(n) }
      case 0xdd: { need(4); const n = buf.readUInt32BE(pos); pos += 4; return array(n) }
      case 0xde: { need(2); const n = buf.readUInt16BE(pos); pos += 2; return map(n) }
      case 0xdf: { need(4); const n = buf.readUInt32BE(pos); pos += 4; return map(n) }
      default: throw new Error(`msgpack: unsupported type byte 0x${t.toString(16)}`)
    }
  }
  const array = (n: number): Msg[] => Array.from({ length: n }, () => read())
  const map = (n: number): { [key: string]: Msg } => {
    const out: { [key: string]: Msg } = {}
    for (let i = 0; i < n; i++) {
      const k = read()
      out[k instanceof Uint8Array ? Buffer.from(k).toString('utf8') : String(k)] = read()
    }
    return out
  }
  const value = read()
  return { value, offset: pos }
}

// ------------------------------------------------------------ RPC client

export class SerfRpcError extends Error {
  override readonly name = 'SerfRpcError'
}

/** Commands whose response has a body after the header. */
const HAS_BODY = new Set(['members', 'members-filtered', 'stats', 'get-coordinate'])

export class SerfRpc {
  private readonly socket: Socket
  private buffer: Buffer = Buffer.alloc(0)
  private seq = 0
  private readonly waiting = new Map<number, { command: string, resolve: (body: Msg) => void, reject: (e: Error) => void }>()
  private pendingHeader?: { seq: number, error: string }
  private closed = false

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => { this.onData(chunk) })
    socket.on('close', () => { this.fail(new SerfRpcError('connection closed')) })
    socket.on('error', (e) => { this.fail(e) })
  }

  static async connect (address: string, timeoutMs = 5000): Promise<SerfRpc> {
    const [host, port] = address.split(':')
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host, port: Number(port) })
      const timer = setTimeout(() => { s.destroy(); reject(new SerfRpcError(`connect ${address} timed out`)) }, timeoutMs)
      s.once('connect', () => { clearTimeout(timer); s.setNoDelay(true); resolve(s) })
      s.once('error', (e) => { clearTimeout(timer); reject(e) })
    })
    const rpc = new SerfRpc(socket)
    await rpc.call('handshake', { Version: 1 })
    return rpc
  }

  /** Send a request; resolves with the response body (or null) once the agent answered. */
  async call (command: string, body?: { [key: string]: Msg }): Promise<Msg> {
    if (this.closed) throw new SerfRpcError('connection closed')
    const seq = this.seq++
    const frame = body === undefined
      ? encodeMsgpack({ Command: command, Seq: seq })
      : Buffer.concat([encodeMsgpack({ Command: command, Seq: seq }), encodeMsgpack(body)])
    return await new Promise<Msg>((resolve, reject) => {
      this.waiting.set(seq, { command, resolve, reject })
      this.socket.write(frame)
    })
  }

  /** `serf event -coalesce=false NAME PAYLOAD`. */
  async event (name: string, payload: Uint8Array, coalesce = false): Promise<void> {
    await this.call('event', { Name: name, Payload: payload, Coalesce: coalesce })
  }

  /** `serf tags -set k=v`. */
  async setTags (tags: Record<string, string>): Promise<void> {
    await this.call('tags', { Tags: tags, DeleteTags: [] })
  }

  async members (): Promise<Array<{ Name: string, Status: string, Tags: Record<string, string> }>> {
    const body = await this.call('members') as { Members?: Array<{ Name: string, Status: string, Tags: Record<string, string> }> }
    return body?.Members ?? []
  }

  close (): void {
    this.closed = true
    this.socket.destroy()
  }

  private onData (chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    for (;;) {
      let decoded
      try {
        decoded = decodeMsgpack(this.buffer)
      } catch (e) {
        if (e instanceof Incomplete) return
        this.fail(e as Error)
        return
      }
      this.buffer = this.buffer.subarray(decoded.offset)
      const value = decoded.value as { Seq?: number, Error?: string }
      if (this.pendingHeader !== undefined) {
        const header = this.pendingHeader
        this.pendingHeader = undefined
        this.settle(header, decoded.value)
        continue
      }
      const header = { seq: Number(value.Seq), error: String(value.Error ?? '') }
      const waiter = this.waiting.get(header.seq)
      if (waiter !== undefined && header.error === '' && HAS_BODY.has(waiter.command)) {
        this.pendingHeader = header
        continue
      }
      this.settle(header, null)
    }
  }

  private settle (header: { seq: number, error: string }, body: Msg): void {
    const waiter = this.waiting.get(header.seq)
    if (waiter === undefined) return
    this.waiting.delete(header.seq)
    if (header.error !== '') waiter.reject(new SerfRpcError(`${waiter.command}: ${header.error}`))
    else waiter.resolve(body)
  }

  private fail (error: Error): void {
    this.closed = true
    for (const w of this.waiting.values()) w.reject(error)
    this.waiting.clear()
  }
}
