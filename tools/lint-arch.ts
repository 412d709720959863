/**
 * `npm run lint:arch`: the import structure, checked on every source file as
 * the compiler parses it (type-only imports included: they are arrows too).
 * Fails, listing each finding as `file: what`, on
 *
 * - an import circle (every strongly connected group of files, with one
 *   circle through it spelled out);
 * - a file outside test/ importing from test/;
 * - crdt/ importing anything but `yjs`, `lib0` and its own files (the core is
 *   pure: docs/design.md "Layout");
 * - agent/ importing from simulations/ (the product does not ship the
 *   simulator: its in-memory network lives in simulations/virtual/);
 * - a computed (non-literal) dynamic `import()`, anywhere: the compiler, this
 *   check and the build can only follow a literal path.
 *
 * Why a script and not dependency-cruiser or madge: both parse TypeScript
 * through the `typescript` package's JavaScript API, which TypeScript 7 (our
 * compiler) no longer ships, so with it they skip every .ts file without a
 * word. The parsing here uses the TypeScript 5 compiler API, installed under
 * the name `typescript-api` for this script only.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript-api'

const ROOT = resolve(import.meta.dirname, '..')
const SOURCE_DIRS = ['agent', 'crdt', 'cli', 'simulations', 'test', 'tools']
const EXTENSIONS = ['.ts', '.js', '.mjs']
/** Packages crdt/ may import. */
const CRDT_PACKAGES = new Set(['yjs', 'lib0'])

export interface ImportEdge {
  /** As written. */
  specifier: string
  /** Repository-relative path of the imported file, for a relative specifier that names one. */
  target?: string
  line: number
  typeOnly: boolean
}

export interface FileImports {
  file: string
  imports: ImportEdge[]
  /** Lines of `import(<expression>)` whose argument is not a string literal. */
  computed: number[]
}

/** Every import of one source text: static, re-exports, `import type`, `typeof import('…')` and dynamic ones. */
export function readImports (file: string, text: string): FileImports {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS)
  const imports: ImportEdge[] = []
  const computed: number[] = []
  const line = (node: ts.Node): number => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1
  const add = (specifier: ts.Expression | ts.Node | undefined, node: ts.Node, typeOnly: boolean): void => {
    if (specifier !== undefined && ts.isStringLiteralLike(specifier)) imports.push({ specifier: specifier.text, line: line(node), typeOnly })
  }
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node.moduleSpecifier, node, node.importClause?.isTypeOnly === true)
    } else if (ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier, node, node.isTypeOnly)
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node, node.isTypeOnly)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, node, true)
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0]
      if (arg !== undefined && ts.isStringLiteralLike(arg)) add(arg, node, false)
      else computed.push(line(node))
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return { file, imports, computed }
}

function sourceFiles (dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'results') out.push(...sourceFiles(path))
    } else if (EXTENSIONS.some(e => entry.name.endsWith(e)) && !entry.name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

/** Is there a file at this repository-relative path? */
export type FileExists = (path: string) => boolean

const onDisk: FileExists = (path) => existsSync(join(ROOT, path)) && statSync(join(ROOT, path)).isFile()

function resolveRelative (from: string, specifier: string, exists: FileExists): string | undefined {
  const path = relative(ROOT, resolve(ROOT, dirname(from), specifier))
  return exists(path) ? path : undefined
}

/** The package a bare specifier names (`@libp2p/tcp/x` → `@libp2p/tcp`), or the builtin (`node:fs`). */
export function packageOf (specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]
}

export interface Finding { file: string, line?: number, message: string }

/** The rules, over the imports of every file (paths repository-relative). */
export function checkImports (files: FileImports[], exists: FileExists = onDisk): Finding[] {
  const findings: Finding[] = []
  const graph = new Map<string, Set<string>>()
  for (const f of files) {
    const edges = new Set<string>()
    graph.set(f.file, edges)
    for (const line of f.computed) findings.push({ file: f.file, line, message: 'computed dynamic import(): write the path as a string literal' })
    for (const edge of f.imports) {
      const relativeSpecifier = edge.specifier.startsWith('.')
      if (relativeSpecifier) {
        edge.target = resolveRelative(f.file, edge.specifier, exists)
        // cli/bin.js loads the compiled dist/, which exists only after a build.
        if (edge.target === undefined && !resolve(ROOT, dirname(f.file), edge.specifier).startsWith(join(ROOT, 'dist'))) {
          findings.push({ file: f.file, line: edge.line, message: `import '${edge.specifier}' names no file` })
        }
      }
      if (edge.target !== undefined) edges.add(edge.target)
      if (!f.file.startsWith('test/') && edge.target?.startsWith('test/') === true) {
        findings.push({ file: f.file, line: edge.line, message: `imports ${edge.target} from test/: move what it needs out of test/ (e.g. simulations/support/)` })
      }
      if (f.file.startsWith('agent/') && edge.target?.startsWith('simulations/') === true) {
        findings.push({ file: f.file, line: edge.line, message: `imports ${edge.target}: the agent does not ship the simulator (simulations/ may import agent/, not the other way)` })
      }
      if (f.file.startsWith('crdt/')) {
        const allowed = relativeSpecifier ? edge.target?.startsWith('crdt/') === true : CRDT_PACKAGES.has(packageOf(edge.specifier))
        if (!allowed) findings.push({ file: f.file, line: edge.line, message: `crdt/ imports '${edge.specifier}': the core may import only yjs, lib0 and crdt/` })
      }
    }
  }
  for (const group of stronglyConnected(graph)) {
    findings.push({ file: group[0], message: `import circle: ${circleThrough(group, graph).join(' → ')}` })
  }
  return findings
}

/** Tarjan's algorithm: the groups of files that reach each other (size > 1, or a file importing itself). */
export function stronglyConnected (graph: Map<string, Set<string>>): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const groups: string[][] = []
  const connect = (v: string): void => {
    index.set(v, next); low.set(v, next); next++
    stack.push(v); onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { connect(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)) } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!))
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = []
      let w: string
      do { w = stack.pop()!; onStack.delete(w); group.push(w) } while (w !== v)
      if (group.length > 1 || graph.get(v)?.has(v) === true) groups.push(group.sort())
    }
  }
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v)
  return groups
}

/** One circle inside a strongly connected group, from its first file back to it (breadth-first: the shortest). */
function circleThrough (group: string[], graph: Map<string, Set<string>>): string[] {
  const members = new Set(group)
  const start = group[0]
  const previous = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0) {
    const v = queue.shift()!
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue
      if (w === start) {
        const path = [start]
        for (let u: string | undefined = v; u !== undefined && u !== start; u = previous.get(u)) path.splice(1, 0, u)
        return [...path, start]
      }
      if (!previous.has(w)) { previous.set(w, v); queue.push(w) }
    }
  }
  return group
}

function main (): number {
  const files = [...SOURCE_DIRS.flatMap(d => existsSync(join(ROOT, d)) ? sourceFiles(join(ROOT, d)) : [])]
    .map(path => relative(ROOT, path)).sort()
  const findings = checkImports(files.map(file => readImports(file, readFileSync(join(ROOT, file), 'utf8'))))
  for (const f of findings) process.stderr.write(`${f.file}${f.line !== undefined ? `:${f.line}` : ''}: ${f.message}\n`)
  if (findings.length > 0) {
    process.stderr.write(`lint:arch: ${findings.length} finding${findings.length === 1 ? '' : 's'} in ${files.length} files\n`)
    return 1
  }
  process.stdout.write(`lint:arch: ${files.length} files, no import circles, nothing outside test/ imports test/, agent/ imports nothing of simulations/, crdt/ imports only yjs/lib0, every import() literal\n`)
  return 0
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) process.exitCode = main()
