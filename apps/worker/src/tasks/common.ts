import { isHttpsokError } from '@certq/api-client';
import { backoffDelay, type OrderStatus, UPSTREAM_FLOOR_MS } from '@certq/core';
import {
  findOrder,
  lockOrder,
  type Order,
  type Transaction,
  type TransitionArgs,
  takeRecordedWebhookDeliveries,
} from '@certq/db';
import type { WorkflowContext } from '../context';
import { enqueueOrders } from '../queues';
import { enqueueWebhooksAfterCommit } from '../webhooks/delivery';
import { delayUntil, done, type Outcome } from './outcome';
import { transition } from './transition';

export interface StageJob {
  orderId: string;
  run: number;
}

/** Loads the order and says whether this job still drives it (right status, same run). */
export async function loadForStage(
  ctx: WorkflowContext,
  job: StageJob,
  status: OrderStatus,
): Promise<{ order: Order } | { stale: Outcome }> {
  const order = await findOrder(ctx.db, job.orderId);
  if (!order) return { stale: done('order not found') };
  if (order.status !== status || order.attempts !== job.run) {
    // The order moved on (or was retried): make sure its current stage is queued, then let this job go.
    // This also heals a crash between committing a transition and enqueueing the next job.
    await enqueueOrders(ctx.queues, [order], ctx.clock.now());
    return { stale: done(`stale: order is ${order.status} run ${order.attempts}`) };
  }
  return { order };
}

/**
 * Runs `fn` on the order locked in a transaction, only if it is still in `status` for this run.
 * Webhook outbox rows the transaction wrote (transitionOrder's issued/failed events) are enqueued once
 * it has committed.
 */
export async function withLockedOrder<T>(
  ctx: WorkflowContext,
  job: StageJob,
  status: OrderStatus,
  fn: (tx: Transaction, order: Order) => Promise<T>,
): Promise<T | undefined> {
  let outbox: string[] = [];
  const result = await ctx.db.transaction(async (tx) => {
    const order = await lockOrder(tx, job.orderId);
    if (!order || order.status !== status || order.attempts !== job.run) return undefined;
    const value = await fn(tx, order);
    outbox = takeRecordedWebhookDeliveries(tx);
    return value;
  });
  await enqueueWebhooksAfterCommit(ctx, outbox);
  return result;
}

export function windowEndsAt(ctx: WorkflowContext, order: Order): Date {
  return new Date(order.stageStartedAt.getTime() + ctx.config.VERIFY_WINDOW_HOURS * 3600_000);
}

export function describeError(error: unknown): string {
  if (isHttpsokError(error)) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * A transient failure (network, timeout, 5xx, unknown code): back off at least 10 s with jitter and
 * try the same stage again. It fails the order only once the stage's window has passed.
 */
export async function retryLater(
  ctx: WorkflowContext,
  tx: Transaction,
  order: Order,
  error: unknown,
  extra: TransitionArgs['set'] = {},
): Promise<{ order: Order; outcome: Outcome }> {
  const now = ctx.clock.now();
  const message = describeError(error);
  if (now >= windowEndsAt(ctx, order)) {
    const failed = await transition(ctx, tx, {
      order,
      to: 'failed',
      set: {
        ...extra,
        lastError: `gave up after ${ctx.config.VERIFY_WINDOW_HOURS} h of upstream errors: ${message}`,
      },
      event: { type: 'failed', detail: { error: message } },
      at: ctx.clock.now(),
    });
    return { order: failed, outcome: done('failed: window ended') };
  }
  const delay = Math.max(
    backoffDelay(
      order.stageAttempts,
      { baseMs: UPSTREAM_FLOOR_MS, capMs: ctx.config.VERIFY_MAX_DELAY_MS },
      ctx.random,
    ),
    UPSTREAM_FLOOR_MS,
  );
  const nextAttemptAt = new Date(now.getTime() + delay);
  const updated = await transition(ctx, tx, {
    order,
    to: order.status,
    set: { ...extra, stageAttempts: order.stageAttempts + 1, nextAttemptAt, lastError: message },
    event: {
      type: 'upstream_error',
      detail: { error: message, traceId: isHttpsokError(error) ? error.traceId : null, retryInMs: delay },
    },
  });
  return { order: updated, outcome: delayUntil(nextAttemptAt, 'upstream error, retrying') };
}
