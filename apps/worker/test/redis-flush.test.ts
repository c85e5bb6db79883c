import { orders } from '@certq/db';
import { eq } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { appliesAccountedFor, createWorkbench, names, type Workbench } from './helpers';

let bench: Workbench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

describe('the workflow survives', () => {
  it('Redis emptied while orders are in flight: the reconciler restores them and all complete', async () => {
    bench = await createWorkbench({ sim: { issueSeconds: 2, latencyMs: 5 } });
    await bench.startWorker();
    const created = await bench.orders(names(30, 'flush'));
    await expect
      .poll(
        async () => (await bench!.db.db.select().from(orders).where(eq(orders.status, 'issuing'))).length,
        { timeout: 20_000 },
      )
      .toBeGreaterThan(0);
    // FLUSHALL would also wipe the other test files' keys on this shared Redis; deleting every key under
    // this file's prefix is the same event for certq.
    await bench.redis.flush();
    const result = await bench.worker!.reconcile();
    expect(result.ran).toBe(true);
    expect(result.repaired).toBeGreaterThan(0);
    const done = await bench.waitForStatus(
      created.map((o) => o.id),
      ['issued', 'failed'],
      60_000,
    );
    expect(done.every((o) => o.status === 'issued')).toBe(true);
    expect(bench.sim.stats().tooFrequent).toBe(0);
    expect(
      await appliesAccountedFor(
        bench,
        created.map((o) => o.id),
      ),
    ).toBe(0);
  }, 180_000);
});
