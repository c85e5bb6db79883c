import type { OrderStatus, StageJob } from '@certq/core';
import {
  findOrder,
  lockOrder,
  type Order,
  orders,
  type Transaction,
  takeRecordedWebhookDeliveries,
} from '@certq/db';
import { and, eq, type SQL, sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { enqueueWebhooksAfterCommit } from '../webhooks/delivery';
import { done, type Outcome } from './outcome';

/**
 * The condition "this job's order, in `status` and the job's run" (and `more`) for a one-statement claim,
 * built once per call site with placeholders `id` and `run` (see StatementText in @certq/db).
 */
export function jobsOrderIn(status: OrderStatus, ...more: SQL[]): SQL {
  return and(
    eq(orders.id, sql.placeholder('id')),
    eq(orders.status, status),
    eq(orders.run, sql.placeholder('run')),
    ...more,
  )!;
}

/** Loads the order and says whether this job still drives it (right status, same run). */
export async function loadForStage(
  ctx: WorkerContext,
  job: StageJob,
  status: OrderStatus,
): Promise<{ order: Order } | { stale: Outcome }> {
  const order = await findOrder(ctx.db, job.orderId);
  if (!order) return { stale: done('stale', 'order not found') };
  if (order.status !== status || order.run !== job.run) {
    // The order moved on (or was retried): its current stage is queued (`next`), this job lets go.
    // This also heals a crash between committing a transition and enqueueing the next job.
    return { stale: done('stale', `order is ${order.status} run ${order.run}`, order) };
  }
  return { order };
}

/**
 * Runs `fn` on the order locked in a transaction, only if it is still in `status` for this run.
 * Webhook outbox rows the transaction wrote (transitionOrder's issued/failed events) are enqueued once
 * it has committed.
 */
export async function withLockedOrder<T>(
  ctx: WorkerContext,
  job: StageJob,
  status: OrderStatus,
  fn: (tx: Transaction, order: Order) => Promise<T>,
): Promise<T | undefined> {
  return inTransaction(ctx, async (tx) => {
    const order = await lockOrder(tx, job.orderId);
    if (!order || order.status !== status || order.run !== job.run) return undefined;
    return fn(tx, order);
  });
}

/**
 * Runs `fn` in a transaction and enqueues the webhook outbox rows it wrote (transitionOrder's issued/failed
 * events) once it has committed. For work on an order read without a lock, whose writes are guarded by
 * their WHERE (transitionIfUnchanged).
 */
export async function inTransaction<T>(ctx: WorkerContext, fn: (tx: Transaction) => Promise<T>): Promise<T> {
  let outbox: string[] = [];
  const result = await ctx.db.transaction(async (tx) => {
    const value = await fn(tx);
    outbox = takeRecordedWebhookDeliveries(tx);
    return value;
  });
  await enqueueWebhooksAfterCommit(ctx, outbox);
  return result;
}
