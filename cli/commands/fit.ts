/**
 * `memgossip fit SIZE`: the dry run (POST /v1/fit). Exit 0 when the agent says
 * it fits, 1 when it does not.
 */
import { jsonText } from '../format.ts'
import { clientCommand, PLACEMENT_FLAG, placementArg, sizeArg } from './common.ts'
import type { FitAnswerJson, FitRequestIn } from '../../agent/api/contract.ts'
import { renderFit } from './print.ts'

export const fitCommand = clientCommand({
  name: 'fit',
  args: 'SIZE',
  summary: 'dry run: would a deploy of SIZE fit, where, and why not',
  description: `Ask the agent whether a deploy of SIZE would fit now (POST /v1/fit; nothing
is written). The answer reads like a plan: fits or not, the node(s) it would
land on with headroom before and after, the Kubernetes-style histogram
(0/5 nodes fit: 3 InsufficientMemory, 2 Draining) with the per-node numbers
behind it, warnings near the limits, and whether the answer is final or which
members it still waits for.

SIZE: 512MiB, 2GiB (IEC), 2Gi (Kubernetes), 1.5GB (SI decimal), or bytes.
Exit 0 fits, 1 does not fit, 2 for bad input (a node:<id> the agent does not
know is bad input, not a "does not fit").`,
  examples: ['memgossip fit 2GiB', 'memgossip fit 6GiB --placement all', 'memgossip fit 1.5GB --placement spread:2 --json'],
  flags: { placement: PLACEMENT_FLAG }
}, async ({ client, json, color, positionals, flags, out }) => {
  const size = positionals[0]
  sizeArg(size)
  const placement = flags.placement as string | undefined
  await placementArg(placement)
  const request: FitRequestIn = { size, placement }
  const { body } = await client.post<FitAnswerJson>('/v1/fit', request)
  out(json ? jsonText(body) : renderFit(body, color))
  return body.fits ? 0 : 1
})
