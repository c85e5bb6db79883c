import { describe, expect } from 'vitest';
import { it, names } from './helpers';

describe('the workflow survives', () => {
  it('a poll is never sent within 10 s of the previous one, even with duplicate jobs', async ({
    workbench,
  }) => {
    const bench = await workbench({ sim: { issueSeconds: 12 } });
    await bench.startWorker();
    const created = await bench.orders(names(5, 'floor'));
    await expect.poll(() => bench.countIn('issuing'), { timeout: 20_000 }).toBe(5);
    // Early duplicates of every poll job, with other ids: the floor in Postgres makes them wait.
    for (const order of created) {
      for (let i = 0; i < 3; i++)
        await bench.queues.poll.add(
          'poll',
          { orderId: order.id, run: 1 },
          { jobId: `extra-${i}-${order.id}` },
        );
    }
    const done = await bench.waitForStatus(
      created.map((o) => o.id),
      ['issued', 'failed'],
      60_000,
    );
    expect(done.every((o) => o.status === 'issued')).toBe(true);
    const stats = bench.sim.stats();
    expect(stats.tooFrequent).toBe(0);
    expect(stats.get).toBeGreaterThanOrEqual(10);
  }, 180_000);
});
