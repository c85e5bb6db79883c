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
  it('an upstream failing 30% of requests with latency: every order issued, no early poll', async () => {
    // Retries at the 10 s floor (the cap at its minimum) keep the test short.
    bench = await createWorkbench({
      sim: { failRate: 0.3, latencyMs: 20 },
      env: { VERIFY_MAX_DELAY_MS: '10000' },
    });
    await bench.startWorker();
    const created = await bench.orders(names(12, 'flaky'));
    const done = await bench.waitForStatus(
      created.map((o) => o.id),
      ['issued', 'failed'],
      120_000,
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
