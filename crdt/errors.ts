/**
 * Typed errors of the ledger core. Tests and callers match on `name`, never on
 * the wording of `message`.
 */

/** A size string that is not one of the accepted forms (docs/design.md "Interfaces"). */
export class SizeError extends Error {
  override readonly name = 'SizeError'
  /** The text that was refused, as given. */
  readonly input: string

  constructor (input: string, message: string) {
    super(message)
    this.input = input
  }
}

/** A placement string (`any`, `all`, `node:<id>`, `spread:<k>`) that cannot be parsed. */
export class PlacementError extends Error {
  override readonly name = 'PlacementError'
}

/** An HLC string that does not decode. */
export class HlcError extends Error {
  override readonly name = 'HlcError'
}

/**
 * This node already wrote a reservation with that id. Its entry `<id>@<node>`
 * is write-once and stays in the document after it ends, so the same node
 * cannot write the id again there (another node can, once the entry holding
 * the id has ended: docs/design.md "Resolution").
 */
export class DuplicateReservationError extends Error {
  override readonly name = 'DuplicateReservationError'
  readonly id: string

  constructor (id: string, node?: string, why = 'an entry is write-once and stays in the ledger after it ends') {
    super(`reservation '${id}' was already written by this node${node !== undefined ? ` (entry ${id}@${node})` : ''}: ${why}, so this node cannot write that id again`)
    this.id = id
  }
}
