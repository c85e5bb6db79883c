import type { Queryable } from '@certq/db';
import { sql } from 'drizzle-orm';

/**
 * Re-ANALYZE `orders` first after this many batches that created orders (see freshenOrderStatistics):
 * the statistics taken when a mass renewal starts say "no active orders", which makes every batch
 * until the first re-ANALYZE several times slower.
 */
export const ANALYZE_EVERY_BATCHES = 1;

/**
 * Whether to re-ANALYZE after the `batch`-th batch that created orders: after batch 1, 2, 4, 8…,
 * each time the orders this pass created have doubled. The estimate of active orders is then never
 * off by more than 2×, which is all the plan choice needs, and a scan of n batches runs about log2(n)
 * ANALYZEs (each of a million orders takes about half a second).
 */
export function freshenStatisticsAfter(batch: number): boolean {
  const times = batch / ANALYZE_EVERY_BATCHES;
  return Number.isInteger(times) && (times & (times - 1)) === 0;
}

/**
 * The "no active order" anti-join is planned from the statistics of `orders.status`. Taken while few
 * orders were active (before a mass renewal), they make the planner compare every certificate with
 * every active order (a materialised scan of them, or a scan of the other partial index) instead of
 * probing orders_one_active_per_domain_set — fine at 100 active orders, quadratic at 10,000. So the
 * scan refreshes them (sample-based, tens of ms) when it starts and every few batches while it inserts
 * thousands; SKIP_LOCKED: if autovacuum is at it already, that will do.
 */
export async function freshenOrderStatistics(db: Queryable): Promise<void> {
  await db.execute(sql`analyze (skip_locked) orders`);
}
