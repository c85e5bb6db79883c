import { orderEvents, orders } from '@certq/db';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { createWorkbench, type Workbench } from './helpers';
import { spawnWorker } from './process';

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

describe('worker processes', () => {
  it('SIGTERM drains: jobs in hand finish, the process exits 0, nothing is lost', async () => {
    bench = await createWorkbench({ sim: { latencyMs: 400 } });
    const created = await bench.orders(names(20, 'drain'));
    const ids = created.map((o) => o.id);
    const child = spawnWorker(bench.env);
    await expect
      .poll(async () => (await bench!.queues.verify.getJobCounts('active')).active, { timeout: 20_000 })
      .toBeGreaterThan(0);
    child.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(await bench.queues.verify.getJobCounts('active')).toEqual({ active: 0 });
    const restarted = spawnWorker(bench.env);
    const done = await bench.waitForStatus(ids, ['issued', 'failed'], 60_000);
    restarted.kill('SIGTERM');
    await restarted.exited;
    expect(done.every((o) => o.status === 'issued')).toBe(true);
    expect(await appliesAccountedFor(bench, ids)).toBe(0);
  }, 180_000);
});
