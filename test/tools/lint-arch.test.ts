/**
 * `npm run lint:arch`'s rules on small made-up trees (one finding each), and
 * the repository itself passing them.
 */
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { checkImports, readImports } from '../../tools/lint-arch.ts'

const REPO = resolve(import.meta.dirname, '../..')

/** Findings for a tree given as `{ path: source text }`. */
function lint (tree: Record<string, string>): string[] {
  const files = Object.entries(tree).map(([file, text]) => readImports(file, text))
  return checkImports(files, path => path in tree).map(f => `${f.file}${f.line !== undefined ? `:${f.line}` : ''}: ${f.message}`)
}

describe('lint:arch rules', () => {
  it('a clean tree has no findings', () => {
    expect(lint({
      'cli/main.ts': "import { a } from './a.ts'\nexport const x = await import('./b.ts')\n",
      'cli/a.ts': "import type { B } from './b.ts'\nexport const a = 1\n",
      'cli/b.ts': "import { readFile } from 'node:fs/promises'\nexport interface B { n: number }\n",
      'crdt/x.ts': "import * as Y from 'yjs'\nimport { toBase64 } from 'lib0/buffer'\nimport { s } from './size.ts'\n",
      'crdt/size.ts': 'export const s = 1\n',
      'test/t.test.ts': "import { x } from '../cli/main.ts'\n"
    })).toEqual([])
  })

  it('finds an import circle, type-only arrows included, and spells it out', () => {
    expect(lint({
      'cli/main.ts': "import { fit } from './commands/fit.ts'\nexport interface Io { n: number }\n",
      'cli/commands/fit.ts': "import type { Io } from '../main.ts'\nexport const fit = 1\n"
    })).toEqual(['cli/commands/fit.ts: import circle: cli/commands/fit.ts → cli/main.ts → cli/commands/fit.ts'])
  })

  it('finds a three-file circle through re-exports', () => {
    expect(lint({
      'b/run.ts': "export * from './report.ts'\n",
      'b/report.ts': "import { f } from './findings.ts'\n",
      'b/findings.ts': "import type { R } from './run.ts'\n"
    })).toEqual(['b/findings.ts: import circle: b/findings.ts → b/run.ts → b/report.ts → b/findings.ts'])
  })

  it('refuses test/ imported from outside test/', () => {
    expect(lint({
      'simulations/soak.ts': "import { startAgent } from '../test/helpers/cluster.ts'\n",
      'test/helpers/cluster.ts': 'export const startAgent = 1\n'
    })).toEqual(['simulations/soak.ts:1: imports test/helpers/cluster.ts from test/: move what it needs out of test/ (e.g. simulations/support/)'])
  })

  it('refuses agent/ importing from simulations/', () => {
    expect(lint({
      'agent/agent.ts': "import { MemoryNetworkHub } from '../simulations/virtual/network.ts'\n",
      'simulations/virtual/network.ts': "import type { Network } from '../../agent/agent.ts'\n"
    })).toEqual([
      'agent/agent.ts:1: imports simulations/virtual/network.ts: the agent does not ship the simulator (simulations/ may import agent/, not the other way)',
      'agent/agent.ts: import circle: agent/agent.ts → simulations/virtual/network.ts → agent/agent.ts'
    ])
  })

  it('refuses crdt/ importing anything but yjs, lib0 and crdt/', () => {
    expect(lint({
      'crdt/a.ts': "import { x } from '../agent/b.ts'\nimport { createHash } from 'node:crypto'\nimport type { Libp2p } from 'libp2p'\n",
      'agent/b.ts': 'export const x = 1\n'
    })).toEqual([
      "crdt/a.ts:1: crdt/ imports '../agent/b.ts': the core may import only yjs, lib0 and crdt/",
      "crdt/a.ts:2: crdt/ imports 'node:crypto': the core may import only yjs, lib0 and crdt/",
      "crdt/a.ts:3: crdt/ imports 'libp2p': the core may import only yjs, lib0 and crdt/"
    ])
  })

  it('refuses a computed import(), and a relative import that names no file', () => {
    expect(lint({
      'cli/simulate.ts': "const relative = '../sim.ts'\nexport const m = await import(new URL(relative, import.meta.url).href)\nexport const n = await import(`./${relative}`)\nimport { gone } from './gone.ts'\n"
    })).toEqual([
      'cli/simulate.ts:2: computed dynamic import(): write the path as a string literal',
      'cli/simulate.ts:3: computed dynamic import(): write the path as a string literal',
      "cli/simulate.ts:4: import './gone.ts' names no file"
    ])
  })

  it('this repository passes (npm run lint:arch exits 0)', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'tools/lint-arch.ts'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
  })
})
