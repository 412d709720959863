/**
 * One place per setting (agent/config.ts, docs/configuration.md): the presets
 * differ where they should and nowhere else, `memgossip agent`'s flags and
 * their defaults are generated from the table, an unknown preset is a usage
 * error naming it, the scenario files' defaults are the agent's, and the
 * daemon starts the agent with the preset it was given (a real daemon over
 * libp2p TCP on loopback, fake probe).
 */
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { AGENT_DEFAULTS, AGENT_FLAGS, flagDefault, formatSetting, LAN, LOCAL, PRESET_NAMES, PRESETS, resolveSettings, WAN, type AgentSettings } from '../../agent/config.ts'
import { startDaemon } from '../../agent/daemon.ts'
import type { Logger } from '../../agent/log.ts'
import { createFakeProbe } from '../../agent/probe.ts'
import { agentOptionsFromArgs, runAgent } from '../../cli/commands/agent.ts'
import { DEFAULT_AGENT, DEFAULT_NETWORK, agentTimers } from '../../simulations/scenario/schema.ts'
import { GOSSIP_D } from '../../agent/config.ts'
import { tempDir } from '../../simulations/support/cluster.ts'
import { runCli } from '../cli/procs.ts'

const GiB = 1024 ** 3
const dirs: string[] = []
afterAll(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

/** The fields where `other` differs from `lan`. */
function differences (other: Readonly<AgentSettings>): Array<keyof AgentSettings> {
  return (Object.keys(LAN) as Array<keyof AgentSettings>).filter(k => other[k] !== LAN[k]).sort()
}

describe('presets', () => {
  it('wan waits longer and exchanges less often than lan, and differs from it in nothing else', () => {
    expect(differences(WAN)).toEqual(['ackTimeoutMs', 'beaconPullAfterMs', 'probeIntervalMs', 'probeTimeoutMs', 'requestTimeoutMs', 'suspicionMult', 'syncIntervalMs'])
    for (const key of differences(WAN)) expect(WAN[key] as number, key).toBeGreaterThan(LAN[key] as number)
    // The failure detector's timeout must stay below its interval, or probes overlap.
    for (const name of PRESET_NAMES) expect(PRESETS[name].probeTimeoutMs, name).toBeLessThanOrEqual(PRESETS[name].probeIntervalMs)
  })

  it('local is lan on loopback: the same timing, libp2p relaxed for many agents on one host', () => {
    expect(differences(LOCAL)).toEqual(['localCluster'])
    expect(LOCAL.localCluster).toBe(true)
    expect(LAN.localCluster).toBe(false)
    expect(WAN.localCluster).toBe(false)
  })

  it('every preset sets every setting, and the agent defaults are the lan preset', () => {
    for (const name of PRESET_NAMES) {
      for (const [key, value] of Object.entries(PRESETS[name])) expect(typeof value === 'boolean' || Number.isFinite(value), `${name}.${key}`).toBe(true)
      expect(Object.keys(PRESETS[name]).sort()).toEqual(Object.keys(LAN).sort())
    }
    for (const key of ['sampleIntervalMs', 'heartbeatIntervalMs', 'syncIntervalMs', 'probeIntervalMs', 'evictAfterMs', 'maxClockOffsetMs', 'recordRefreshMs', 'gossipBatchMs', 'beaconDelayMs', 'beaconPullAfterMs', 'ackTimeoutMs', 'nearLimitRatio'] as const) {
      expect(AGENT_DEFAULTS[key], key).toBe(LAN[key])
    }
    expect(AGENT_DEFAULTS.maxUpdateBytes).toBe(LAN.maxMessageBytes)
  })

  it('an override wins over the preset; an unset one keeps it', () => {
    const s = resolveSettings('wan', { probeIntervalMs: 2000, syncIntervalMs: undefined })
    expect(s).toEqual({ ...WAN, probeIntervalMs: 2000 })
  })
})

describe('memgossip agent flags come from the table', () => {
  async function help (): Promise<string> {
    let out = ''
    expect(await runAgent(['--help'], { stdout: (s) => { out += s }, stderr: () => {} })).toBe(0)
    return out
  }

  it('--help lists exactly the table\'s flags, each with its help and default', async () => {
    const text = await help()
    const listed = [...text.matchAll(/^ {2}--([a-z-]+)/gm)].map(m => m[1])
    expect(listed).toEqual(Object.keys(AGENT_FLAGS))
    for (const [name, flag] of Object.entries(AGENT_FLAGS)) {
      const block = text.slice(text.indexOf(`  --${name}`)).split('\n')[1]
      expect(block, name).toContain(flag.help)
      const value = flagDefault(flag)
      if (value !== undefined) expect(block, name).toContain(`(default ${value})`)
    }
    // Per-preset values are printed where the presets differ.
    expect(text).toMatch(/--probe-interval VALUE\n\s+.*\(default 1s; wan 5s\)/)
  })

  it('the real command exits 2 on an unknown preset, naming it', async () => {
    const dir = await tempDir('memgossip-config-')
    dirs.push(dir)
    const r = await runCli(['agent', '--preset', 'mars', '--api', '127.0.0.1:0', '--fake-memory', '1GiB', '--data-dir', join(dir, 'never')])
    expect(existsSync(join(dir, 'never'))).toBe(false)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe("memgossip agent: --preset: unknown preset 'mars' (expected lan, local, wan)\n")
  })

  it('a preset flag overrides that one setting of the chosen preset', () => {
    const options = agentOptionsFromArgs(['--preset', 'wan', '--probe-interval', '2s', '--suspicion-mult', '5', '--max-message', '4MiB'])
    expect(options).toMatchObject({ preset: 'wan', probeIntervalMs: 2000, suspicionMult: 5, maxMessageBytes: 4 * 1024 * 1024 })
    expect(agentOptionsFromArgs(['--local-cluster']).preset).toBe('local')
    expect(agentOptionsFromArgs([]).preset).toBeUndefined()
  })

  it.each([
    [['--preset', 'mars'], /--preset: unknown preset 'mars' \(expected lan, local, wan\)/],
    [['--preset', 'wan', '--local-cluster'], /--local-cluster is --preset local; it cannot go with --preset wan/],
    [['--suspicion-mult', '0'], /--suspicion-mult: '0' is not a whole number of at least 1/],
    [['--probe-timeout', 'soon'], /--probe-timeout: 'soon' is not a duration/],
    [['--log-level', 'loud'], /--log-level: 'loud' is not one of debug, info, warn, error/],
    [['--log-format', 'xml'], /--log-format: 'xml' is not text or json/]
  ])('%j exits 2 naming what was wrong, and writes nothing', async (argv, message) => {
    const dataDir = join(await tempDir('memgossip-config-'), 'never')
    dirs.push(dataDir)
    let err = ''
    const code = await runAgent(['--data-dir', dataDir, '--api', '127.0.0.1:0', '--fake-memory', '1GiB', ...argv], { stdout: () => {}, stderr: (s) => { err += s } })
    expect(code).toBe(2)
    expect(err).toMatch(message)
    expect(existsSync(dataDir)).toBe(false)
  })
})

describe('docs/configuration.md', () => {
  it('shows every preset setting with its flag and the presets\' values as they are', async () => {
    const doc = await readFile(join(import.meta.dirname, '../../docs/configuration.md'), 'utf8')
    for (const [name, flag] of Object.entries(AGENT_FLAGS)) {
      if (flag.setting === undefined) {
        if (!name.startsWith('pressure-')) expect(doc, name).toContain(`\`--${name}`)
        continue
      }
      const values = PRESET_NAMES.map(p => formatSetting(flag, PRESETS[p][flag.setting!]))
      expect(doc, name).toContain(`| \`--${name}\` | \`${flag.setting}\` | ${values.join(' | ')} |`)
    }
  })
})

describe('scenario files', () => {
  it('default to the agent\'s settings and mesh degree', () => {
    expect(agentTimers(DEFAULT_AGENT)).toEqual({ sampleIntervalMs: LAN.sampleIntervalMs, heartbeatIntervalMs: LAN.heartbeatIntervalMs, syncIntervalMs: LAN.syncIntervalMs })
    expect(DEFAULT_NETWORK.paths).toBe(GOSSIP_D)
  })
})

describe('the daemon', () => {
  it('starts the agent with the preset it was given, and an override on top', async () => {
    const records: Array<{ level: string, message: string, fields?: Record<string, unknown> }> = []
    const at = (level: string) => (message: string, fields?: Record<string, unknown>) => { records.push({ level, message, fields }) }
    const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
    const dataDir = await tempDir('memgossip-config-')
    dirs.push(dataDir)
    const daemon = await startDaemon({ preset: 'wan', syncIntervalMs: 7000, dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], api: '127.0.0.1:0', probe: createFakeProbe({ totalBytes: 4 * GiB, availableBytes: 4 * GiB }), log: logger })
    try {
      const settings = records.find(r => r.level === 'debug' && r.message === 'settings: preset wan')
      expect(settings?.fields).toEqual({ ...WAN, syncIntervalMs: 7000 })
      expect(records.some(r => r.level === 'info' && r.message.startsWith(`memgossip agent ${daemon.agent.self} started`))).toBe(true)
    } finally {
      await daemon.stop()
    }
  })
})
