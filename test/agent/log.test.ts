/**
 * Levelled, structured logging (agent/log.ts): levels filter, the text format
 * is one readable line per event, the JSON format one object per line with the
 * level's name, old-style line sinks keep their `WARNING`/`ERROR` lines, and
 * no secret reaches the log: a real agent (`memgossip agent` as a child
 * process, libp2p over TCP on loopback) started with a cluster key and an API
 * token at debug level, asked with the token and with a wrong one.
 */
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger, lineLogger, lineSink, type Logger } from '../../agent/log.ts'
import { generateClusterKey } from '../../agent/net/cluster-key.ts'
import { startChildAgent, stopAgents, tempDir, type ChildAgent } from '../cli/procs.ts'

const dirs: string[] = []
const agents: ChildAgent[] = []
afterAll(async () => {
  await stopAgents(agents)
  await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
})

function captured (level: 'debug' | 'info' | 'warn' | 'error', format: 'text' | 'json'): { logger: Logger, lines: () => string[] } {
  let out = ''
  const logger = createLogger({ level, format, write: (s) => { out += s } })
  return { logger, lines: () => out.split('\n').filter(l => l !== '') }
}

describe('createLogger', () => {
  it('text: one line per event with time, level and fields; below the level nothing', () => {
    const { logger, lines } = captured('info', 'text')
    logger.debug('not shown')
    logger.info('joined', { peers: 3, peer: '12D3KooWabc' })
    logger.warn('cluster key file is readable by others')
    logger.error('disk full')
    expect(lines()).toHaveLength(3)
    expect(lines()[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}joined peers=3 peer=12D3KooWabc$/)
    expect(lines()[1]).toMatch(/ WARN {2}cluster key file is readable by others$/)
    expect(lines()[2]).toMatch(/ ERROR disk full$/)
  })

  it('json: one object per line, the level by name, fields as fields; a machine filters by level', () => {
    const { logger, lines } = captured('debug', 'json')
    logger.debug('settings', { syncIntervalMs: 5000 })
    logger.warn('slow peer', { peer: 'p1' })
    const records = lines().map(l => JSON.parse(l) as Record<string, unknown>)
    expect(records.map(r => r.level)).toEqual(['debug', 'warn'])
    expect(records[0]).toMatchObject({ msg: 'settings', syncIntervalMs: 5000 })
    expect(records.filter(r => r.level === 'warn').map(r => r.msg)).toEqual(['slow peer'])
  })

  it('blanks fields named like a secret, at any depth of one', () => {
    const { logger, lines } = captured('info', 'json')
    logger.info('started', { token: 'tok-secret-1', options: { clusterKey: 'k-secret-2' } })
    expect(lines()[0]).not.toMatch(/secret/)
    expect(lines()[0]).toContain('[redacted]')
  })
})

describe('line sinks', () => {
  it('a Logger over a line sink keeps the WARNING and ERROR lines tests and harnesses match', () => {
    const seen: string[] = []
    const logger = lineLogger((l) => { seen.push(l) })
    logger.debug('dropped')
    logger.info('plain', { n: 1 })
    logger.warn('careful')
    logger.error('broken')
    expect(seen).toEqual(['plain n=1', 'WARNING careful', 'ERROR broken'])
  })

  it('a line sink over a Logger gives prefixed lines their level', () => {
    const seen: Array<[string, string]> = []
    const at = (level: string) => (m: string) => { seen.push([level, m]) }
    const sink = lineSink({ debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, 'net: ')
    sink('WARNING peer is slow')
    sink('ERROR gone')
    sink('ALERT ClockOffset: behind')
    sink('connected')
    expect(seen).toEqual([['warn', 'net: peer is slow'], ['error', 'net: gone'], ['warn', 'net: ALERT ClockOffset: behind'], ['info', 'net: connected']])
  })
})

describe('secrets never reach the log', () => {
  it('an agent with a cluster key and an API token at debug level logs neither', async () => {
    const dir = await tempDir('memgossip-log-')
    dirs.push(dir)
    const key = generateClusterKey()
    const keyHex = new TextDecoder().decode(key).split('\n')[2]!
    expect(keyHex).toMatch(/^[0-9a-f]{64}$/)
    const token = 'tok-9c1e5a7b3d2f4e6a8b0c1d3e5f7a9b2c'
    await writeFile(join(dir, 'cluster.key'), key, { mode: 0o600 })
    await writeFile(join(dir, 'api.token'), `${token}\n`, { mode: 0o600 })
    const agent = await startChildAgent(['--cluster-key', join(dir, 'cluster.key'), '--api-token', join(dir, 'api.token'), '--log-level', 'debug'])
    agents.push(agent)
    // Requests with the token, a wrong one and none: an API that logged its requests would show them.
    expect((await fetch(`${agent.api}/v1/state`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
    expect((await fetch(`${agent.api}/v1/state`, { headers: { authorization: `Bearer ${token.slice(0, -1)}x` } })).status).toBe(401)
    expect((await fetch(`${agent.api}/v1/state`)).status).toBe(401)
    await agent.stop()
    const log = await readFile(agent.log, 'utf8')
    // Debug lines were printed, so the level took effect.
    expect(log).toMatch(/ DEBUG settings: preset local/)
    for (const secret of [keyHex, keyHex.slice(0, 16), token, token.slice(4, 20)]) expect(log).not.toContain(secret)
  }, 60_000)
})
