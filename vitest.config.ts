import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./agent/shim.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites start real libp2p nodes and child processes; on a
    // 2-core machine running files in parallel only adds handshake stalls.
    fileParallelism: false,
    pool: 'forks'
  }
})
