import { ACTIVE_STATUSES, STAGE_OF, stageJobId } from '@certq/core';
import { type Order, orders } from '@certq/db';
import { enqueueOrders } from '@certq/workflow';
import { and, asc, gt, inArray } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { type SweepResult, sweep } from './sweep';

export type ReconcileResult = SweepResult;

const PAGE = 1000;

/**
 * Makes the queues match the rows (cert-manager style): every active order in Postgres gets its stage
 * job back in Redis if it is missing (Redis emptied, a crash between commit and enqueue) or stuck in
 * the failed set. Repaired jobs keep their stored next-attempt time; overdue ones are spread out at
 * the upstream rate limit, so a restart after an outage does not fire every waiting order in the same
 * second.
 */
export async function reconcile(ctx: WorkerContext): Promise<ReconcileResult> {
  const spacingMs = 1000 / ctx.config.UPSTREAM_MAX_RPS;
  let overdue = 0;
  return sweep<Order>(ctx, {
    lock: 'certq:reconcile',
    page: (tx, last) =>
      tx
        .select()
        .from(orders)
        .where(and(inArray(orders.status, [...ACTIVE_STATUSES]), last ? gt(orders.id, last.id) : undefined))
        .orderBy(asc(orders.id))
        .limit(PAGE),
    jobOf: (order) => {
      const stage = STAGE_OF[order.status as keyof typeof STAGE_OF];
      return { queue: ctx.queues.stage(stage), jobId: stageJobId(stage, order.id, order.run) };
    },
    repair: async (_tx, missing) => {
      const now = ctx.clock.now();
      const spread = missing.map((order) =>
        order.nextAttemptAt <= now
          ? { ...order, nextAttemptAt: new Date(now.getTime() + overdue++ * spacingMs) }
          : order,
      );
      await enqueueOrders(ctx.queues, spread, now);
    },
    repairedCounter: ctx.metrics.reconcilerRepairs,
    repairedMessage: 'reconciler put missing stage jobs back',
  });
}
