import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take a minute or more, longest first: they start at once, so none is left running
 * alone at the end (a fresh clone, as in CI, has no Vitest timing cache to order files by).
 */
const LONG_FILES = [
  'test/chaos.test.ts',
  'apps/worker/test/renewals-fairness.test.ts',
  'test/cli-workflow.test.ts',
  'test/cli-import.test.ts',
  'test/console.test.ts',
  'apps/worker/test/crash.test.ts',
];

class LongFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const at = LONG_FILES.findIndex((path) => file.moduleId.endsWith(path));
      return at === -1 ? LONG_FILES.length : at;
    };
    return [...(await super.sort(files))].sort((a, b) => rank(a) - rank(b));
  }
}

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
    sequence: { sequencer: LongFilesFirst },
  },
});
