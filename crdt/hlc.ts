/**
 * Hybrid logical clock (Kulkarni et al., 2014). Stamps are totally ordered by
 * (wall ms, counter, node id) and never go backwards on one node, whatever its
 * wall clock does. Time is passed in: `crdt/` never reads a clock
 * (docs/design.md "Layout").
 *
 * Encoded form, which sorts correctly as a plain string:
 *
 *   <wall ms, 15 decimal digits>:<counter, 6 decimal digits>:<node id>
 *   000001763712000000:000003:12D3KooW…
 */
import { HlcError } from './errors.ts'

/** An encoded HLC stamp; compare with `<` / `>` or {@link compareHlc}. */
export type HlcString = string

export interface Hlc {
  wallMs: number
  counter: number
  node: string
}

const WALL_DIGITS = 15
const COUNTER_DIGITS = 6
const COUNTER_MAX = 10 ** COUNTER_DIGITS - 1
const HLC_PATTERN = /^(\d{15}):(\d{6}):(.+)$/

/**
 * True when a wall time and counter fit an encoded stamp (15 and 6 digits):
 * what a stamp that travels as its parts (a beacon, a suspicion) is checked
 * against before it is rebuilt with {@link encodeHlc}.
 */
export function stampInRange (wallMs: number, counter: number): boolean {
  return Number.isSafeInteger(wallMs) && wallMs >= 0 && wallMs < 10 ** WALL_DIGITS && Number.isSafeInteger(counter) && counter >= 0 && counter <= COUNTER_MAX
}

export function encodeHlc (hlc: Hlc): HlcString {
  return `${String(hlc.wallMs).padStart(WALL_DIGITS, '0')}:${String(hlc.counter).padStart(COUNTER_DIGITS, '0')}:${hlc.node}`
}

/** Decode a stamp; throws {@link HlcError} when malformed. */
export function decodeHlc (text: HlcString): Hlc {
  const match = typeof text === 'string' ? HLC_PATTERN.exec(text) : null
  if (match == null) throw new HlcError(`malformed HLC stamp ${JSON.stringify(text)}`)
  return { wallMs: Number(match[1]), counter: Number(match[2]), node: match[3] }
}

/** True when `text` is a well-formed encoded stamp. */
export function isHlc (text: unknown): text is HlcString {
  return typeof text === 'string' && HLC_PATTERN.test(text)
}

/** True when the encoded stamp `text` is `node`'s (ends in `:node`); builds no string (it runs per member per beacon batch). */
export function stampedBy (text: HlcString, node: string): boolean {
  const at = text.length - node.length - 1
  return at >= 0 && text.charCodeAt(at) === 58 /* ':' */ && text.endsWith(node)
}

/** The wall-clock part of an encoded stamp, in ms. */
export function hlcWallMs (text: HlcString): number {
  return Number(text.slice(0, WALL_DIGITS))
}

export function compareHlc (a: HlcString, b: HlcString): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * One node's clock. `now()` stamps a local event, `receive()` merges a stamp
 * seen from a peer so that everything this node writes afterwards sorts after it.
 */
export class HybridClock {
  readonly node: string
  private wallMs = 0
  private counter = 0

  /** `last`: the latest stamp this node may have issued before (e.g. from its data dir). */
  constructor (node: string, last?: HlcString) {
    this.node = node
    if (last !== undefined) this.observe(decodeHlc(last))
  }

  /** Stamp a local event at wall time `wallMs` (whole milliseconds: a fraction is dropped). */
  now (wallMs: number): HlcString {
    wallMs = Math.floor(wallMs)
    if (wallMs > this.wallMs) {
      this.wallMs = wallMs
      this.counter = 0
    } else {
      this.tick()
    }
    return this.current()
  }

  /** Merge a remote stamp; returns the stamp of the receive event. */
  receive (remote: HlcString, wallMs: number): HlcString {
    wallMs = Math.floor(wallMs)
    const r = decodeHlc(remote)
    const wall = Math.max(this.wallMs, r.wallMs, wallMs)
    if (wall === this.wallMs && wall === r.wallMs) {
      this.counter = Math.max(this.counter, r.counter)
      this.tick()
    } else if (wall === this.wallMs) {
      this.tick()
    } else if (wall === r.wallMs) {
      this.wallMs = wall
      this.counter = r.counter
      this.tick()
    } else {
      this.wallMs = wall
      this.counter = 0
    }
    return this.current()
  }

  /** Raise the clock to at least `hlc` without issuing a stamp. */
  observe (hlc: Hlc): void {
    if (hlc.wallMs > this.wallMs || (hlc.wallMs === this.wallMs && hlc.counter > this.counter)) {
      this.wallMs = hlc.wallMs
      this.counter = hlc.counter
    }
  }

  /** The latest stamp issued or merged, without advancing. */
  peek (): HlcString {
    return this.current()
  }

  private tick (): void {
    if (this.counter >= COUNTER_MAX) {
      // A million events in one millisecond: borrow the next millisecond rather
      // than overflow the fixed-width counter (the order stays total).
      this.wallMs += 1
      this.counter = 0
    } else {
      this.counter += 1
    }
  }

  private current (): HlcString {
    return encodeHlc({ wallMs: this.wallMs, counter: this.counter, node: this.node })
  }
}
