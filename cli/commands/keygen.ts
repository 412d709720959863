/** `memgossip keygen`: print a new pre-shared cluster key (loads @libp2p/pnet, so only when it runs). */
import '../../agent/shim.ts'
import { generateClusterKey } from '../../agent/net/cluster-key.ts'
import type { Io } from '../io.ts'

export async function keygen (argv: string[], io: Io): Promise<number> {
  if (argv.includes('--help')) { io.stdout('Usage: memgossip keygen > cluster.key\n\nPrint a new pre-shared cluster key. Copy it to every host (mode 0600).\n'); return 0 }
  io.stdout(new TextDecoder().decode(generateClusterKey()))
  return 0
}
