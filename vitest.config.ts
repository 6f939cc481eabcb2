import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Stops whatever process a test file started and left running.
    setupFiles: ['test/helpers/teardown.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // 2-core machines: two test files at a time, each with its own servers.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
