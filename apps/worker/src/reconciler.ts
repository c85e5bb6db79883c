import { ACTIVE_STATUSES, STAGE_OF, stageJobId } from '@certq/core';
import { type Order, orders } from '@certq/db';
import { enqueueOrders } from '@certq/workflow';
import { and, asc, gt, inArray, sql } from 'drizzle-orm';
import type { WorkerContext } from './context';

export interface ReconcileResult {
  /** False when another process held the reconcile lock and this run did nothing. */
  ran: boolean;
  checked: number;
  repaired: number;
}

const PAGE = 1000;

/**
 * Makes the queues match the rows (cert-manager style): every active order in Postgres gets its stage
 * job back in Redis if it is missing (Redis emptied, a crash between commit and enqueue) or stuck in
 * the failed set. One run at a time across all workers (a transaction-scoped advisory lock).
 * Repaired jobs keep their stored next-attempt time; overdue ones are spread out at the upstream rate
 * limit, so a restart after an outage does not fire every waiting order in the same second.
 */
export async function reconcile(ctx: WorkerContext): Promise<ReconcileResult> {
  return ctx.db.transaction(async (tx) => {
    const lock = await tx.execute<{ locked: boolean }>(
      sql`select pg_try_advisory_xact_lock(hashtext('certq:reconcile')) as locked`,
    );
    if (!lock.rows[0]?.locked) return { ran: false, checked: 0, repaired: 0 };
    let checked = 0;
    let repaired = 0;
    let overdue = 0;
    const spacingMs = 1000 / ctx.config.UPSTREAM_MAX_RPS;
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const page: Order[] = await tx
        .select()
        .from(orders)
        .where(and(inArray(orders.status, [...ACTIVE_STATUSES]), gt(orders.id, after)))
        .orderBy(asc(orders.id))
        .limit(PAGE);
      if (page.length === 0) break;
      after = page[page.length - 1]!.id;
      checked += page.length;
      const now = ctx.clock.now();
      const states = await Promise.all(
        page.map(async (order) => {
          const stage = STAGE_OF[order.status as keyof typeof STAGE_OF];
          const queue = ctx.queues.stage(stage);
          const jobId = stageJobId(stage, order.id, order.attempts);
          const state = await queue.getJobState(jobId);
          const missing = state === 'unknown' || state === 'failed' || state === 'completed';
          // 'unknown' may still leave the job's hash behind (keys lost one by one, not all at once):
          // BullMQ would then take the re-add for a duplicate and do nothing. Remove whatever is left.
          if (missing) await queue.remove(jobId);
          return missing;
        }),
      );
      const missing = page
        .filter((_, i) => states[i])
        .map((order) =>
          order.nextAttemptAt <= now
            ? { ...order, nextAttemptAt: new Date(now.getTime() + overdue++ * spacingMs) }
            : order,
        );
      if (missing.length) {
        await enqueueOrders(ctx.queues, missing, now);
        repaired += missing.length;
      }
    }
    if (repaired) {
      ctx.metrics.reconcilerRepairs.inc(repaired);
      ctx.logger.warn({ repaired, checked }, 'reconciler put missing stage jobs back');
    }
    return { ran: true, checked, repaired };
  });
}
