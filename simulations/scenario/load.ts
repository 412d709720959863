/**
 * Finding and reading scenario files: a name looks in simulations/scenarios/,
 * anything with a slash or a `.json` ending is a path.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { basename, dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ScenarioError } from '../support/errors.ts'
import { JsonSyntaxError, parseJsonWithPositions } from './json.ts'
import { validateScenario, type Scenario } from './schema.ts'

/** The shipped scenarios. */
export const SCENARIOS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'scenarios')

/** Names of the shipped scenarios, sorted. */
export async function listScenarios (dir = SCENARIOS_DIR): Promise<string[]> {
  const entries = await readdir(dir).catch(() => [] as string[])
  return entries.filter(f => f.endsWith('.json')).map(f => f.slice(0, -5)).sort()
}

/** Parse and validate scenario text; `source` names it in messages. */
export function parseScenario (text: string, source: string): Scenario {
  let located
  try {
    located = parseJsonWithPositions(text)
  } catch (error) {
    if (error instanceof JsonSyntaxError) throw new ScenarioError(`${source}:${error.line}: ${error.message}`, { line: error.line })
    throw error
  }
  return validateScenario(located.value, located.positions, source)
}

/**
 * Load a scenario by name (a file of simulations/scenarios/) or by path.
 *
 * @throws {ScenarioError} unknown name, unreadable file, or an invalid scenario
 */
export async function loadScenario (nameOrPath: string, dir = SCENARIOS_DIR): Promise<Scenario> {
  const looksLikePath = nameOrPath.includes('/') || nameOrPath.includes('\\') || nameOrPath.endsWith('.json')
  let file: string
  if (looksLikePath || existsSync(nameOrPath)) {
    file = resolvePath(nameOrPath)
  } else {
    file = join(dir, `${nameOrPath}.json`)
    if (!existsSync(file)) {
      const names = await listScenarios(dir)
      throw new ScenarioError(`no scenario named '${nameOrPath}'; shipped scenarios: ${names.join(', ')} (or give a path to a .json file)`)
    }
  }
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new ScenarioError(`cannot read scenario file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  return parseScenario(text, looksLikePath ? nameOrPath : `scenarios/${basename(file)}`)
}
