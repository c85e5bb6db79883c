import { describe } from 'vitest';
import { expectIssuedOnce, it, names } from './helpers';

describe('the workflow survives', () => {
  it('an upstream failing 30% of requests with latency: every order issued, no early poll', async ({
    workbench,
  }) => {
    // Retries at the 10 s floor (the cap at its minimum) keep the test short.
    const bench = await workbench({
      sim: { failRate: 0.3, latencyMs: 20 },
      env: { VERIFY_MAX_DELAY_MS: '10000' },
    });
    await bench.startWorker();
    const created = await bench.orders(names(12, 'flaky'));
    await expectIssuedOnce(
      bench,
      created.map((o) => o.id),
      120_000,
    );
  }, 180_000);
});
