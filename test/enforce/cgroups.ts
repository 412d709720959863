/**
 * Shared by the enforcement tests that need real memory cgroups: can this
 * process make one here (root, a memory controller, delegation)?
 */
import { CgroupError, detectCgroupController } from '../../agent/cgroup.ts'

/** Undefined when this process can create, limit and remove a memory cgroup; else why not. */
export async function whyNoCgroups (name: string): Promise<string | undefined> {
  try {
    const cg = await (await detectCgroupController()).create(`probe-${name}-${process.pid}`)
    await cg.setLimits({ maxBytes: 64 * 1024 * 1024 })
    await cg.remove()
    return undefined
  } catch (error) {
    return error instanceof CgroupError ? `${error.failure}: ${error.message}` : String(error)
  }
}
