/**
 * Read-only access to an agent's replicated ledger, for tools, the simulation
 * harness and tests. The Yjs document stays inside the agent: everything that
 * writes to it goes through the agent's own write path (durability first,
 * docs/design.md "Durability"), and these reads hand out copies.
 */
import * as Y from 'yjs'
import { MAP_CAPACITY, MAP_MEMBERSHIP, MAP_NODES, MAP_RELEASES, MAP_RESERVATIONS } from '../crdt/index.ts'

/** The ledger's maps, by name. */
export type LedgerMapName = typeof MAP_NODES | typeof MAP_RESERVATIONS | typeof MAP_RELEASES | typeof MAP_CAPACITY | typeof MAP_MEMBERSHIP

export interface LedgerReader {
  /** How many keys one of the ledger's maps holds. */
  size: (map: LedgerMapName) => number
  /** One entry's value (a copy), or undefined. */
  get: (map: LedgerMapName, key: string) => unknown
  /** Every entry of one map (copies). */
  entries: (map: LedgerMapName) => Array<[string, unknown]>
  /** The document's state vector (what it holds of each writer's stream). */
  stateVector: () => Uint8Array
  /** The whole ledger as one Yjs update: apply it to a new document to inspect or resolve it elsewhere. */
  encode: () => Uint8Array
  /** The Yjs client id this agent writes under. */
  clientId: () => number
  /** Yjs holds entries it cannot integrate yet (an update arrived before one it depends on). */
  hasPending: () => boolean
}

/** `current` gives the current epoch's document (the ledger moves to a new one at each epoch). */
export function ledgerReader (current: () => Y.Doc): LedgerReader {
  const copy = (value: unknown): unknown => value instanceof Y.AbstractType ? value.toJSON() : value === undefined ? undefined : structuredClone(value)
  return {
    size: (map) => current().getMap(map).size,
    get: (map, key) => copy(current().getMap(map).get(key)),
    entries: (map) => [...current().getMap(map).entries()].map(([key, value]) => [key, copy(value)]),
    stateVector: () => Y.encodeStateVector(current()),
    encode: () => Y.encodeStateAsUpdate(current()),
    clientId: () => current().clientID,
    hasPending: () => current().store.pendingStructs !== null || current().store.pendingDs !== null
  }
}
