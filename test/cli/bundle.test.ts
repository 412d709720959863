/**
 * The bundle `npm start` runs (tools/bundle.mjs, dist/bundle/main.js), built
 * afresh here into its own folder under dist/ and started as a real process:
 * it is the whole agent — it joins, answers the API, serves the page from the
 * checkout's agent/ui/ and its OpenAPI document — and a client command from
 * it answers as the sources do. Minifying and splitting must change none of
 * that, and a module of the bundle must not act as if it were run as a script
 * (`npm run openapi` writes docs/openapi.json only from the source file).
 */
import { execFile } from 'node:child_process'
import { readFile, rm, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT, startAgentProcess, type AgentProcess } from '../../simulations/support/agent-process.ts'
import { tempDir } from '../../simulations/support/cluster.ts'
import { httpJson } from '../../simulations/support/http.ts'
import { modulesLoaded, runCli } from './procs.ts'

const run = promisify(execFile)
const outdir = join(REPO_ROOT, 'dist', `bundle-test-${process.pid}`)
const openapiFile = join(REPO_ROOT, 'docs', 'openapi.json')
const agents: AgentProcess[] = []
const dirs: string[] = []
let openapiMtime = 0

beforeAll(async () => {
  openapiMtime = (await stat(openapiFile)).mtimeMs
  await run(process.execPath, [join(REPO_ROOT, 'tools', 'bundle.mjs'), outdir], { cwd: REPO_ROOT })
}, 60_000)

afterAll(async () => {
  await Promise.all(agents.map(async a => { await a.stop('SIGKILL') }))
  await Promise.all([outdir, ...dirs].map(async d => { await rm(d, { recursive: true, force: true }) }))
})

async function startBundled (bootstrap?: string[]): Promise<AgentProcess> {
  const dataDir = await tempDir('memgossip-bundle-')
  dirs.push(dataDir)
  const agent = await startAgentProcess({ dataDir, from: 'bundle', entry: join(outdir, 'main.js'), bootstrap, healthy: true, timeoutMs: 60_000 })
  agents.push(agent)
  return agent
}

/** The sources (paths from the repository root) in the bundle's files that `argv` loads, by the bundle's metafile. */
async function sourcesLoaded (argv: string[]): Promise<{ code: number, sources: string[] }> {
  const meta = JSON.parse(await readFile(join(outdir, 'meta.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> }
  const inputs = new Map(Object.entries(meta.outputs).map(([file, out]) => [basename(file), Object.keys(out.inputs)]))
  const { code, urls } = await modulesLoaded(argv, { entry: join(outdir, 'main.js') })
  const inBundle = urls.filter(u => u.startsWith(`file://${outdir}/`))
  return { code, sources: inBundle.flatMap(u => inputs.get(basename(u)) ?? [`(not in the metafile: ${u})`]) }
}

const heavy = (source: string): boolean => /^node_modules\/(libp2p|@libp2p|@chainsafe|yjs)\/|^(agent|simulations)\//.test(source)

describe('the bundled agent (what npm start runs)', () => {
  it('a client command loads no chunk with libp2p, Yjs, the agent or simulations/; the agent command does', async () => {
    const fit = await sourcesLoaded(['fit', '--help'])
    expect(fit.code).toBe(0)
    expect(fit.sources).toContain('cli/commands/fit.ts')
    expect(fit.sources.filter(heavy)).toEqual([])
    const agent = await sourcesLoaded(['agent', '--help'])
    expect(agent.code).toBe(0)
    expect(agent.sources.filter(heavy)).toContain('agent/agent.ts')
  }, 60_000)


  it('two bundled agents form a cluster, serve the page and the API document, and answer a client command', async () => {
    const a = await startBundled()
    const b = await startBundled(a.multiaddrs)
    const deadline = Date.now() + 30_000
    let members: string[] = []
    while (Date.now() < deadline) {
      const state = await httpJson(`${a.api}/v1/nodes`)
      members = (state.body as { nodes: Array<{ id: string, member: boolean }> }).nodes.filter(n => n.member).map(n => n.id)
      if (members.length === 2) break
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    expect(members.sort()).toEqual([a.info.peerId, b.info.peerId].sort())

    const page = await fetch(`${a.api}/ui`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(await page.text()).toContain('<html')

    const doc = await httpJson(`${b.api}/v1/openapi.json`)
    expect(doc.status).toBe(200)
    expect((doc.body as { openapi: string }).openapi).toMatch(/^3\./)

    const fit = await runCli(['fit', '1GiB', '--api', b.api, '--json'], { entry: join(outdir, 'main.js') })
    expect(fit.stderr).toBe('')
    expect(fit.code).toBe(0)
    expect(JSON.parse(fit.stdout)).toMatchObject({ fits: true })

    expect((await stat(openapiFile)).mtimeMs).toBe(openapiMtime)
  }, 120_000)
})
