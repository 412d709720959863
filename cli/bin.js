#!/usr/bin/env node
// Entry point for the installed `memgossip` command: runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api'
// A closed pipe (memgossip watch | head) ends the command quietly.
process.stdout.on('error', (error) => { if (error.code === 'EPIPE') process.exit(0); else throw error })
register()
const { main } = await import('./main.ts')
process.exitCode = await main(process.argv.slice(2), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) })
