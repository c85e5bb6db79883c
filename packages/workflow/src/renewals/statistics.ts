import type { Queryable } from '@certq/db';
import { sql } from 'drizzle-orm';

/**
 * Re-ANALYZE `orders` first after this many batches that created orders (see freshenOrderStatistics).
 * 1, not 5: the statistics taken when a mass renewal starts say "no active orders", and until the first
 * re-ANALYZE each batch of 1,000 took 400–1,500 ms instead of ~120 (a million-certificate scan: its
 * first five batches 3.8 s, against 2.7 s with two more ANALYZEs of ~0.5 s each).
 */
export const ANALYZE_EVERY_BATCHES = 1;

/**
 * Whether to re-ANALYZE after the `batch`-th batch that created orders: after batch 1, 2, 4, 8…,
 * each time the orders this pass created have doubled. The estimate of active orders is then never
 * off by more than 2×, which is all the plan choice needs; an ANALYZE of a million orders takes about
 * half a second, and one every 5 batches cost a million-certificate scan ~20 of them (7 now).
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
