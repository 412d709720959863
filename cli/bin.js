#!/usr/bin/env node
// Entry point for the installed `memgossip` command. It runs the bundled
// JavaScript in dist/bundle/ (built by `npm run build`, which `npm ci` and
// `npm install` run as the `prepare` script; tools/bundle.mjs): starting Node
// on plain JS is what keeps `memgossip fit` near 0.1 s, and the bundle is what
// keeps an agent's memory low. Without it (a checkout where the
// build was skipped or removed) it says so and runs the TypeScript sources
// through tsx instead, several times slower. dist/ is not rebuilt on its own:
// after editing the sources, run `npm run build` (or `npm run memgossip --`).
import { existsSync } from 'node:fs'

// A closed pipe (memgossip watch | head) ends the command quietly.
process.stdout.on('error', (error) => { if (error.code === 'EPIPE') process.exit(0); else throw error })
const io = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }
const compiled = new URL('../dist/bundle/main.js', import.meta.url)
let main
if (existsSync(compiled)) {
  ({ main } = await import('../dist/bundle/main.js'))
} else {
  process.stderr.write(`memgossip: ${compiled.pathname} is missing (run 'npm run build' in the memgossip checkout); running the TypeScript sources through tsx, which is slower\n`)
  const { register } = await import('tsx/esm/api')
  register()
  ;({ main } = await import('./main.ts'))
}
process.exitCode = await main(process.argv.slice(2), io)
