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

/** This node already wrote a reservation with that id; entries are write-once. */
export class DuplicateReservationError extends Error {
  override readonly name = 'DuplicateReservationError'
  readonly id: string

  constructor (id: string) {
    super(`reservation '${id}' was already written by this node`)
    this.id = id
  }
}
