import { orderEvents, orders } from '@certq/db';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { createWorkbench, type Workbench } from './helpers';

let bench: Workbench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

const names = (n: number, tag: string) => Array.from({ length: n }, (_, i) => [`o${i}.${tag}.example.com`]);

/**
 * One application per order, plus at most one for each apply whose outcome a crash made unknowable.
 * Returns how many duplicate applications there were in all.
 */
async function appliesAccountedFor(b: Workbench, ids: string[]) {
  const unknown = await b.db.db
    .select({ orderId: orderEvents.orderId, n: sql<number>`count(*)::int` })
    .from(orderEvents)
    .where(and(inArray(orderEvents.orderId, ids), eq(orderEvents.type, 'apply_outcome_unknown')))
    .groupBy(orderEvents.orderId);
  const repeats = new Map(unknown.map((u) => [u.orderId, u.n]));
  const rows = await b.db.db.select().from(orders).where(inArray(orders.id, ids));
  const stats = b.sim.stats();
  let duplicates = 0;
  for (const row of rows) {
    const applies = stats.appliesByDomains[row.domains.join(',')] ?? 0;
    expect(applies, row.domains.join(',')).toBeGreaterThanOrEqual(1);
    expect(applies, row.domains.join(',')).toBeLessThanOrEqual(1 + (repeats.get(row.id) ?? 0));
    duplicates += applies - 1;
  }
  return duplicates;
}

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
