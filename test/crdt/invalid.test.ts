import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { parsePlacement, PlacementError, resolve, validatePlacement, DuplicateReservationError } from '../../crdt/index.ts'
import { GiB, TestLedger, nodeId } from './helpers.ts'

const A = nodeId(1)
const B = nodeId(2)
const hlc = `000000001000000:000000:${A}`

describe('malformed entries injected straight into the Y.Doc', () => {
  const cases: Array<[string, string, unknown, string]> = [
    ['negative size', `neg@${A}`, { id: 'neg', bytes: -5, placement: { kind: 'any' }, priority: 0, hlc, creator: A, seq: 9 }, 'InvalidSize'],
    ['fractional size', `frac@${A}`, { id: 'frac', bytes: 1.5, placement: { kind: 'any' }, priority: 0, hlc, creator: A, seq: 9 }, 'InvalidSize'],
    ['string size', `str@${A}`, { id: 'str', bytes: '2GiB', placement: { kind: 'any' }, priority: 0, hlc, creator: A, seq: 9 }, 'InvalidSize'],
    ['unknown placement', `plc@${A}`, { id: 'plc', bytes: GiB, placement: { kind: 'moon' }, priority: 0, hlc, creator: A, seq: 9 }, 'InvalidPlacement'],
    ['spread of zero', `spr@${A}`, { id: 'spr', bytes: GiB, placement: { kind: 'spread', count: 0 }, priority: 0, hlc, creator: A, seq: 9 }, 'InvalidPlacement'],
    ['bad hlc', `hlc@${A}`, { id: 'hlc', bytes: GiB, placement: { kind: 'any' }, priority: 0, hlc: 'yesterday', creator: A, seq: 9 }, 'InvalidHlc'],
    ['id not matching key', `key@${A}`, { id: 'other', bytes: GiB, placement: { kind: 'any' }, priority: 0, hlc, creator: A, seq: 9 }, 'InvalidId'],
    ['not an object', `num@${A}`, 42, 'InvalidValue'],
    ['null', `nul@${A}`, null, 'InvalidValue'],
    ['array', `arr@${A}`, [1, 2], 'InvalidValue'],
    ['bad priority', `pri@${A}`, { id: 'pri', bytes: GiB, placement: { kind: 'any' }, priority: 'high', hlc, creator: A, seq: 9 }, 'InvalidValue']
  ]

  it.each(cases)('%s → invalid with its code on every replica, nothing thrown', (_name, key, value, code) => {
    const l = new TestLedger({ [A]: 8 * GiB })
    l.reserve(A, 'good', GiB)
    l.doc.getMap('reservations').set(key, value)
    const replica = new Y.Doc()
    Y.applyUpdate(replica, Y.encodeStateAsUpdate(l.doc))
    for (const doc of [l.doc, replica]) {
      const res = resolve(doc)
      const id = key.split('@')[0]
      expect(res.verdicts.get(id)).toMatchObject({ status: 'invalid', decision: 'invalid', code })
      expect(res.verdicts.get(id)!.reason).toMatch(/^invalid: /)
      expect(res.verdicts.get('good')!.status).toBe('admitted')
      expect(res.counts.invalid).toBe(1)
    }
    expect(resolve(replica).digest).toBe(resolve(l.doc).digest)
  })

  it('garbage in the other maps is reported as issues and ignored', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    l.doc.getMap('nodes').set(B, { totalBytes: 'lots' })
    l.doc.getMap('capacity').set(`${B}/1`, { node: B, allocatableBytes: -1, state: 'active', hlc, seq: 1 })
    l.doc.getMap('releases').set(`x@${B}`, 'nope')
    l.doc.getMap('membership').set(`join/${B}`, { kind: 'teleport' })
    l.doc.getMap('reservations').set(`nested@${A}`, new Y.Map())
    const res = resolve(l.doc)
    expect(res.issues.map(i => [i.map, i.code]).sort()).toEqual([
      ['capacity', 'InvalidSize'], ['membership', 'InvalidValue'], ['nodes', 'InvalidSize'], ['releases', 'InvalidValue']
    ])
    expect(res.verdicts.get('nested')!.status).toBe('invalid')
    expect(res.nodes.get(A)!.allocatableBytes).toBe(8 * GiB)
  })

  it('a release naming a stamp that is not its entry\'s earlier one is reported and ends nothing', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    l.reserve(A, 'kept', GiB)
    const entry = resolve(l.doc).verdicts.get('kept')!.hlc!
    const release = { id: 'kept', creator: A, hlc: `000000009000000:000000:${A}`, by: A, seq: 50 }
    // `of` later than the release itself, and `of` not a stamp: refused by validation.
    l.doc.getMap('releases').set(`kept@${A}@${A}`, { ...release, of: `000000009000001:000000:${A}` })
    let res = resolve(l.doc)
    expect(res.issues).toContainEqual(expect.objectContaining({ map: 'releases', code: 'InvalidHlc', reason: expect.stringMatching(/'of' must be the stamp of the entry it ends, earlier than the release's own/) }))
    expect(res.verdicts.get('kept')!.status).toBe('admitted')
    l.doc.getMap('releases').set(`kept@${A}@${A}`, { ...release, of: 'yesterday' })
    expect(resolve(l.doc).verdicts.get('kept')!.status).toBe('admitted')
    // Well-formed, naming another stamp than the entry's: valid, and it ends nothing.
    l.doc.getMap('releases').set(`kept@${A}@${A}`, { ...release, of: `000000000000001:000000:${A}` })
    res = resolve(l.doc)
    expect(res.issues.filter(i => i.map === 'releases')).toEqual([])
    expect(res.verdicts.get('kept')!.status).toBe('admitted')
    // Naming the entry's own: it ends it.
    l.doc.getMap('releases').set(`kept@${A}@${A}`, { ...release, of: entry })
    expect(resolve(l.doc).verdicts.get('kept')!.status).toBe('released')
  })

  it('a key named __proto__ is an ordinary (invalid) entry, not a prototype', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    l.doc.getMap('reservations').set('__proto__', { [`evil@${A}`]: { id: 'evil', bytes: GiB, placement: { kind: 'any' }, priority: 0, hlc, creator: A, seq: 99 } })
    l.doc.getMap('capacity').set('__proto__', { x: 1 })
    const res = resolve(l.doc)
    expect(res.verdicts.has('evil')).toBe(false)
    expect(res.verdicts.get('__proto__')).toMatchObject({ status: 'invalid' })
    expect(res.issues.some(i => i.map === 'capacity' && i.key === '__proto__')).toBe(true)
  })

  it('a node cannot write the same reservation twice (entries are write-once)', () => {
    const l = new TestLedger({ [A]: 8 * GiB })
    l.reserve(A, 'once', GiB)
    expect(() => l.reserve(A, 'once', 2 * GiB)).toThrow(DuplicateReservationError)
    expect(l.writer(A).release('once', A, l.tick())).toBe(true)
    expect(l.writer(A).release('once', A, l.tick())).toBe(false)
    // Ended, the id is free for another node's entry, but not for a second
    // entry of this node: its key is taken for good (and the release above
    // names that key). Refused with nothing written.
    const before = Y.encodeStateAsUpdate(l.doc)
    expect(() => l.reserve(A, 'once', GiB)).toThrow(/reservation 'once' was already written by this node \(entry once@12D3KooWnode001\): an entry is write-once/)
    expect(Y.encodeStateAsUpdate(l.doc)).toEqual(before)
    l.join(B, 8 * GiB)
    l.reserve(B, 'once', GiB)
    expect(resolve(l.doc).verdicts.get('once')).toMatchObject({ creator: B, status: 'admitted' })
  })
})

describe('placement text', () => {
  it.each([
    ['any', { kind: 'any' }],
    ['all', { kind: 'all' }],
    ['node:12D3KooWabc', { kind: 'node', node: '12D3KooWabc' }],
    ['spread:3', { kind: 'spread', count: 3 }]
  ])('parses %s', (text, placement) => {
    expect(parsePlacement(text)).toEqual(placement)
    expect(validatePlacement(placement).ok).toBe(true)
  })

  it.each([['somewhere'], ['node:'], ['spread:0'], ['spread:x'], ['spread:1.5'], ['spread:-2']])('refuses %s with PlacementError', (text) => {
    expect(() => parsePlacement(text)).toThrow(PlacementError)
  })
})
