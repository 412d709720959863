/**
 * Errors of simulations/ (the harness, the scenario files, the agent launcher),
 * one class per kind (STYLE.md); tests match on `name`, not on the wording.
 */

/**
 * A scenario file that cannot be used: a syntax error or a field with a wrong
 * value. The message names the file, the JSON path and the line.
 */
export class ScenarioError extends Error {
  static readonly NAME = 'ScenarioError'
  override readonly name = ScenarioError.NAME
  /** JSON path of the offending value (`timeline[3].size`), when there is one. */
  readonly path: string | undefined
  /** 1-based line of the offending value, when known. */
  readonly line: number | undefined

  constructor (message: string, options: { path?: string, line?: number } = {}) {
    super(message)
    this.path = options.path
    this.line = options.line
  }
}

/** Command-line arguments that make no sense (exit 2): the CLI's own class, which its argument parser throws. */
export { UsageError } from '../../cli/args.ts'

/** The simulated cluster could not be brought up (not an invariant failure of the product). */
export class HarnessError extends Error {
  static readonly NAME = 'HarnessError'
  override readonly name = HarnessError.NAME
}

/** An agent started as a child process (./agent-process.ts) exited before it was ready, or was not ready in time. */
export class AgentStartError extends Error {
  static readonly NAME = 'AgentStartError'
  override readonly name = AgentStartError.NAME
}
