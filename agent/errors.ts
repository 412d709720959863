/**
 * Typed errors of the agent's client-facing operations. The HTTP API maps each
 * `name` to a status code; tests assert the name, never the wording.
 */

/** A client request that is malformed (bad size, unknown placement, bad id…). 400. */
export class BadRequestError extends Error {
  override readonly name = 'BadRequestError'
  /** The field that was wrong, as the client named it. */
  readonly field: string

  constructor (field: string, message: string) {
    super(message)
    this.field = field
  }
}

/** The id is already in the ledger as this peer sees it. 409. */
export class IdExistsError extends Error {
  override readonly name = 'IdExistsError'
}

/** No reservation with that id. 404. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError'
}

/** The agent cannot write now (disk failure, not yet joined, stopping). 503. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError'
}

/** `--ack peers:K` was not reached in time; the write is durable locally. 504. */
export class AckTimeoutError extends Error {
  override readonly name = 'AckTimeoutError'
  readonly acked: number

  constructor (acked: number, wanted: number) {
    super(`durable locally, but only ${acked} of ${wanted} peers confirmed it in time`)
    this.acked = acked
  }
}
