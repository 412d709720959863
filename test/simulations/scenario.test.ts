/**
 * Scenario files: every shipped one is valid and scales with N; malformed ones
 * are refused with an error naming the JSON path and the line.
 */
import { describe, expect, it } from 'vitest'
import { GOSSIP_D } from '../../agent/config.ts'
import { ScenarioError } from '../../simulations/support/errors.ts'
import { listScenarios, loadScenario, parseScenario } from '../../simulations/scenario/load.ts'
import { selectNodes, streamFor } from '../../simulations/scenario/plan.ts'

const SHIPPED = ['yz-race', 'partition-heal-storm', 'node-loss', 'churn', 'replicated-all-placement', 'fleet']

function base (extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'test', nodes: 4, timeline: [{ at: '1s', do: 'heal' }], ...extra }
}

function refusal (text: string): ScenarioError {
  try {
    parseScenario(text, 'bad.json')
  } catch (error) {
    expect(error).toBeInstanceOf(ScenarioError)
    return error as ScenarioError
  }
  throw new Error('scenario was accepted')
}

describe('shipped scenarios', () => {
  it('are all there and valid', async () => {
    const names = await listScenarios()
    for (const name of SHIPPED) expect(names).toContain(name)
    for (const name of names) {
      const s = await loadScenario(name)
      expect(s.name).toBe(name)
      expect(s.timeline.length).toBeGreaterThan(0)
      expect(s.description.length).toBeGreaterThan(40)
    }
  })

  it('groups defined by fractions scale with N', async () => {
    const s = await loadScenario('yz-race')
    const left = s.groups.get('left')!
    const at = (n: number): number[] => selectNodes(s, left, { initial: n, total: n }, streamFor(1, 'x'), 'groups.left')
    expect(at(6)).toEqual([0, 1, 2])
    expect(at(1000)).toHaveLength(500)
    expect(at(1000)[499]).toBe(499)
  })

  it('gossip takes as many paths to each peer as the agent\'s gossipsub mesh degree, unless the file says otherwise', async () => {
    expect(parseScenario(JSON.stringify(base()), 'a.json').network.paths).toBe(GOSSIP_D)
    expect(parseScenario(JSON.stringify(base({ network: { paths: 1 } })), 'a.json').network.paths).toBe(1)
  })

  it('random selectors are reproducible from the seed', async () => {
    const s = await loadScenario('fleet')
    const half = s.groups.get('half')!
    const pick = (seed: number): number[] => selectNodes(s, half, { initial: 200, total: 200 }, streamFor(seed, 'timeline[7]'), 'x')
    expect(pick(7)).toEqual(pick(7))
    expect(pick(7)).toHaveLength(100)
    expect(pick(7)).not.toEqual(pick(8))
  })
})

describe('malformed scenarios are refused with the field and the line', () => {
  const cases: Array<{ name: string, doc: unknown, path: string, message: RegExp }> = [
    { name: 'a misspelled field', doc: base({ timeline: [{ at: '1s', do: 'reserve', from: 'all', id: 'x', sise: '1GiB' }] }), path: 'timeline[0].sise', message: /unknown field 'sise' \(did you mean 'size'\?\)/ },
    { name: 'a size with a bad unit', doc: base({ timeline: [{ at: '1s', do: 'reserve', from: 'all', id: 'x', size: '1Gb' }] }), path: 'timeline[0].size', message: /unknown unit 'Gb'/ },
    { name: 'lowercase m (milli)', doc: base({ memory: '512m' }), path: 'memory', message: /milli/ },
    { name: 'an unknown action', doc: base({ timeline: [{ at: '1s', do: 'partiton', groups: ['all'] }] }), path: 'timeline[0].do', message: /unknown action 'partiton' \(did you mean 'partition'\?\)/ },
    { name: 'an unknown group', doc: base({ timeline: [{ at: '1s', do: 'crash', nodes: 'lefty' }] }), path: 'timeline[0].nodes', message: /unknown group 'lefty'/ },
    { name: 'a bad duration', doc: base({ timeline: [{ at: '1 hour', do: 'heal' }] }), path: 'timeline[0].at', message: /must be a duration/ },
    { name: 'a missing timeline', doc: { name: 'test' }, path: '', message: /missing required field 'timeline'/ },
    { name: 'a fraction out of order', doc: base({ groups: { a: { fraction: [0.5, 0.2] } } }), path: 'groups.a.fraction', message: /from must be below to/ },
    { name: 'zero mesh paths', doc: base({ network: { paths: 0 } }), path: 'network.paths', message: /from 1 to 16/ },
    { name: 'a loss rate above 1', doc: base({ network: { loss: 2 } }), path: 'network.loss', message: /from 0 to 0\.99/ },
    { name: 'a race whose y + z fit together', doc: base({ timeline: [{ at: '1s', do: 'race', sides: ['all', 'all'], shares: [0.3, 0.3] }] }), path: 'timeline[0].shares', message: /must exceed the headroom/ },
    { name: 'groups referring to each other in a cycle', doc: base({ groups: { a: ['b'], b: ['a'] } }), path: 'groups.a', message: /cycle/ },
    { name: 'an event without an action', doc: base({ timeline: [{ at: '1s' }] }), path: 'timeline[0]', message: /missing required field 'do'/ },
    { name: 'an event that is not an object', doc: base({ timeline: ['heal'] }), path: 'timeline[0]', message: /an event must be an object/ },
    { name: 'an action that is not a word', doc: base({ timeline: [{ at: '1s', do: 7 }] }), path: 'timeline[0].do', message: /must be a string, got 7/ },
    { name: 'a join count below one', doc: base({ timeline: [{ at: '1s', do: 'join', count: 0 }] }), path: 'timeline[0].count', message: /must be an integer from 1 to 100000, got 0/ },
    { name: 'an unknown field of a selector object', doc: base({ groups: { a: { fraction: [0, 1], of: 'all' } } }), path: 'groups.a.of', message: /unknown field 'of'/ },
    { name: 'a bad placement', doc: base({ timeline: [{ at: '1s', do: 'reserve', from: 'all', id: 'x', size: '1GiB', placement: 'everywhere' }] }), path: 'timeline[0].placement', message: /placement must be/ }
  ]
  for (const c of cases) {
    it(c.name, () => {
      const text = JSON.stringify(c.doc, null, 2)
      const error = refusal(text)
      expect(error.name).toBe('ScenarioError')
      expect(error.path).toBe(c.path)
      expect(error.message).toMatch(c.message)
      expect(error.message).toContain(c.path === '' ? 'the document' : c.path)
      // The line is where the offending value starts in the file.
      const expectedLine = c.path === '' ? 1 : lineOf(text, c.path)
      expect(error.line).toBe(expectedLine)
      expect(error.message).toContain(`bad.json:${expectedLine}:`)
    })
  }

  it('a JSON syntax error names its line and column', () => {
    const error = refusal('{\n  "name": "x",\n  "timeline": [\n    { "at": "1s", "do": "heal" },\n  ]\n}\n')
    expect(error.line).toBe(5)
    expect(error.message).toMatch(/bad\.json:5: unexpected character "\]" at line 5, column 3/)
  })

  it('a selector that is empty at this node count is refused before anything starts', async () => {
    const { runScenario } = await import('../../simulations/harness/run.ts')
    const s = parseScenario(JSON.stringify(base({ timeline: [{ at: '1s', do: 'crash', nodes: { fraction: [0, 0.1] } }] }), null, 2), 'small.json')
    await expect(runScenario(s, { tier: 'virtual', seed: 1, nodes: 4 })).rejects.toThrow(/small\.json:\d+: timeline\[0\]\.nodes: selects no node with 4 initial nodes/)
  })
})

/** Line of the value at `path` in pretty-printed JSON (for the tests' own cross-check). */
function lineOf (text: string, path: string): number {
  const lines = text.split('\n')
  const keys = path.replace(/\[(\d+)\]/g, '.$1').split('.')
  let line = 0
  let depthKey = keys.shift()
  // Walk forward: each key (or array index) must appear after the previous one.
  while (depthKey !== undefined) {
    if (/^\d+$/.test(depthKey)) {
      let index = -1
      for (; line < lines.length; line++) {
        if (/^\s*[{["\d]/.test(lines[line]) && !/":/.test(lines[line])) index++
        if (index === Number(depthKey)) break
      }
    } else {
      while (line < lines.length && !lines[line].includes(`"${depthKey}":`)) line++
    }
    depthKey = keys.shift()
  }
  return line + 1
}
