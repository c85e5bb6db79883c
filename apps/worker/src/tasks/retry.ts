import { isHttpsokError } from '@certq/api-client';
import { backoffDelay, UPSTREAM_FLOOR_MS } from '@certq/core';
import type { Order, Transaction, TransitionArgs } from '@certq/db';
import type { WorkerContext } from '../context';
import { delayUntil, done, type Outcome } from './outcome';
import { transition } from './transition';

/** The end of the current stage's retry window (VERIFY_WINDOW_HOURS from when the stage began). */
export function windowEndsAt(ctx: WorkerContext, order: Order): Date {
  return new Date(order.stageStartedAt.getTime() + ctx.config.VERIFY_WINDOW_HOURS * 3600_000);
}

export function describeError(error: unknown): string {
  if (isHttpsokError(error)) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/** The delay before retry `stageAttempts` of a stage: ≥ 10 s, growing with jitter to VERIFY_MAX_DELAY_MS. */
export function stageRetryDelay(ctx: WorkerContext, stageAttempts: number): number {
  return backoffDelay(
    stageAttempts,
    { baseMs: UPSTREAM_FLOOR_MS, capMs: ctx.config.VERIFY_MAX_DELAY_MS },
    ctx.random,
  );
}

/**
 * A transient failure (network, timeout, 5xx, unknown code): back off at least 10 s with jitter and
 * try the same stage again. It fails the order only once the stage's window has passed.
 */
export async function retryLater(
  ctx: WorkerContext,
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
      at: now,
    });
    return { order: failed, outcome: done('failed', 'upstream errors until the window ended') };
  }
  const delay = Math.max(stageRetryDelay(ctx, order.stageAttempts), UPSTREAM_FLOOR_MS);
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
  return { order: updated, outcome: delayUntil(nextAttemptAt, 'retrying', message) };
}
