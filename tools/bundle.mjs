#!/usr/bin/env node
// The agent as it ships: `cli/main.ts` and everything it imports, bundled by
// esbuild into dist/bundle/ (the last step of `npm run build`; `npm start`
// and cli/bin.js run dist/bundle/main.js).
//
// Why a bundle and not tsc's dist/ alone: Node keeps every module it loads —
// its source text, its module record, the code V8 compiled from it — and the
// agent's dependency tree (libp2p and its many small packages) is several
// hundred modules. One minified file per lazy command holds the same code in a
// fraction of that: an idle agent measured 90 MB of RSS from dist/cli/main.js
// and 70 MB from the bundle (docs/decisions.md "The agent runs from a bundle").
//
// - `splitting`: each command's `import()` stays its own chunk, so a client
//   command such as `memgossip fit` still loads no libp2p, Yjs or agent code.
// - `minify` with `keepNames`: stack traces keep their function and class
//   names; `dist/bundle/*.js.map` maps positions back to the sources
//   (`node --enable-source-maps dist/bundle/main.js …` reads them).
// - `dist/bundle/meta.json` (esbuild's metafile) says which sources each
//   file holds: test/cli/bundle.test.ts reads it to check that a client
//   command still loads nothing of libp2p, Yjs or the agent.
// - The banner gives CommonJS dependencies (pino) the `require` of Node's own
//   modules that an ES module lacks.
//
// Plain JavaScript, so that `npm start` needs nothing but Node and esbuild.
import { rm, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
const outdir = process.argv[2] ?? `${root}dist/bundle`

await rm(outdir, { recursive: true, force: true })
const { metafile } = await build({
  absWorkingDir: root,
  entryPoints: ['cli/main.ts'],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  keepNames: true,
  sourcemap: 'external',
  legalComments: 'none',
  banner: { js: "import { createRequire as __memgossipRequire } from 'node:module'; const require = __memgossipRequire(import.meta.url);" },
  metafile: true,
  logLevel: 'warning'
})
await writeFile(`${outdir}/meta.json`, JSON.stringify(metafile))
