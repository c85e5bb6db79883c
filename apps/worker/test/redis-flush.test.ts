import { describe, expect } from 'vitest';
import { expectIssuedOnce, it, names } from './helpers';

describe('the workflow survives', () => {
  it('Redis emptied while orders are in flight: the reconciler restores them and all complete', async ({
    workbench,
  }) => {
    // A job in flight while Redis is emptied loses its key when it tries to reschedule itself; the
    // periodic reconcile (RECONCILE_INTERVAL_MS, here 2 s) puts such jobs back.
    const bench = await workbench({
      sim: { issueSeconds: 2, latencyMs: 5 },
      env: { RECONCILE_INTERVAL_MS: '2000' },
    });
    await bench.startWorker();
    const created = await bench.orders(names(30, 'flush'));
    await expect.poll(() => bench.countIn('issuing'), { timeout: 20_000 }).toBeGreaterThan(0);
    // FLUSHALL would also wipe the other test files' keys on this shared Redis; deleting every key under
    // this file's prefix is the same event for certq.
    const repairs = async () =>
      (await bench.worker!.ctx.metrics.reconcilerRepairs.get()).values[0]?.value ?? 0;
    const repairsBefore = await repairs();
    await bench.redis.flush();
    // The reconciler (here the periodic run) finds the active orders whose jobs vanished and puts them back.
    await expect.poll(repairs, { timeout: 20_000 }).toBeGreaterThan(repairsBefore);
    await expectIssuedOnce(
      bench,
      created.map((o) => o.id),
      60_000,
    );
  }, 180_000);
});
