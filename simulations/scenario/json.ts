/**
 * A small JSON parser that remembers where every value starts, so a scenario
 * error can name the line as well as the path (`timeline[3].size`, line 27).
 * `JSON.parse` gives neither. Strict JSON (RFC 8259): no comments, no trailing
 * commas; a syntax error names its line and column.
 */

/** A path into a JSON document: `timeline[3].size`. */
export type JsonPath = string

export interface Position {
  line: number
  column: number
}

export interface LocatedJson {
  value: unknown
  /** Where each value starts, by path (`''` is the root). */
  positions: Map<JsonPath, Position>
}

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError'
  readonly line: number
  readonly column: number

  constructor (message: string, position: Position) {
    super(`${message} at line ${position.line}, column ${position.column}`)
    this.line = position.line
    this.column = position.column
  }
}

/** `a.b[2]`-style path of a child. */
export function childPath (parent: JsonPath, key: string | number): JsonPath {
  if (typeof key === 'number') return `${parent}[${key}]`
  const plain = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)
  if (!plain) return `${parent}[${JSON.stringify(key)}]`
  return parent === '' ? key : `${parent}.${key}`
}

export function parseJsonWithPositions (text: string): LocatedJson {
  const positions = new Map<JsonPath, Position>()
  let i = 0
  let line = 1
  let lineStart = 0

  const here = (): Position => ({ line, column: i - lineStart + 1 })
  const fail = (message: string): never => { throw new JsonSyntaxError(message, here()) }

  const skipSpace = (): void => {
    while (i < text.length) {
      const c = text[i]
      if (c === '\n') { i++; line++; lineStart = i } else if (c === ' ' || c === '\t' || c === '\r') i++
      else break
    }
  }

  const parseString = (): string => {
    // Opening quote already checked by the caller.
    const start = i
    i++
    let out = ''
    let chunk = i
    for (;;) {
      if (i >= text.length) { i = start; fail('unterminated string') }
      const c = text[i]
      if (c === '"') {
        out += text.slice(chunk, i)
        i++
        return out
      }
      if (c === '\n') fail('line break inside a string')
      if (c === '\\') {
        out += text.slice(chunk, i)
        const e = text[i + 1]
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' }
        if (e !== undefined && e in simple) { out += simple[e]; i += 2 } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16))
          i += 6
        } else fail('bad escape in a string')
        chunk = i
        continue
      }
      if (c < ' ') fail('control character inside a string')
      i++
    }
  }

  const parseValue = (path: JsonPath): unknown => {
    skipSpace()
    positions.set(path, here())
    const c = text[i]
    if (c === '{') {
      i++
      const obj: Record<string, unknown> = {}
      skipSpace()
      if (text[i] === '}') { i++; return obj }
      for (;;) {
        skipSpace()
        if (text[i] !== '"') fail('expected a property name in double quotes')
        const keyPos = here()
        const key = parseString()
        if (Object.prototype.hasOwnProperty.call(obj, key)) {
          throw new JsonSyntaxError(`duplicate property "${key}"`, keyPos)
        }
        skipSpace()
        if (text[i] !== ':') fail(`expected ':' after "${key}"`)
        i++
        obj[key] = parseValue(childPath(path, key))
        skipSpace()
        if (text[i] === ',') { i++; continue }
        if (text[i] === '}') { i++; return obj }
        fail("expected ',' or '}'")
      }
    }
    if (c === '[') {
      i++
      const arr: unknown[] = []
      skipSpace()
      if (text[i] === ']') { i++; return arr }
      for (;;) {
        arr.push(parseValue(childPath(path, arr.length)))
        skipSpace()
        if (text[i] === ',') { i++; continue }
        if (text[i] === ']') { i++; return arr }
        fail("expected ',' or ']'")
      }
    }
    if (c === '"') return parseString()
    const rest = text.slice(i)
    const literal = /^(true|false|null)\b/.exec(rest)
    if (literal !== null) {
      i += literal[1].length
      return literal[1] === 'true' ? true : literal[1] === 'false' ? false : null
    }
    const number = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(rest)
    if (number !== null) {
      i += number[0].length
      return Number(number[0])
    }
    if (i >= text.length) fail('unexpected end of file')
    return fail(`unexpected character ${JSON.stringify(c)}`)
  }

  const value = parseValue('')
  skipSpace()
  if (i < text.length) fail('unexpected text after the end of the document')
  return { value, positions }
}

/** The position of `path`, or of its nearest ancestor that has one. */
export function positionOf (positions: Map<JsonPath, Position>, path: JsonPath): Position | undefined {
  let p = path
  for (;;) {
    const found = positions.get(p)
    if (found !== undefined) return found
    if (p === '') return undefined
    const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['))
    p = cut <= 0 ? '' : p.slice(0, cut)
  }
}
