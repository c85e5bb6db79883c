import { defineConfig } from 'vitest/config';

// One Vitest run over the whole workspace: a single global setup prepares Postgres (a migrated
// template database) and Redis once; each test file then clones its own database and uses its own
// Redis key prefix (see @certq/testing), so files run in parallel without seeing each other.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['packages/testing/src/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 4,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
