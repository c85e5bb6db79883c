import { isHttpsokError } from '@certq/api-client';
import { backoffDelay, type Config, UPSTREAM_FLOOR_MS } from '@certq/core';
import {
  type Order,
  orders,
  type Queryable,
  type Transaction,
  type TransitionArgs,
  updateOrders,
} from '@certq/db';
import { and, eq, sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { delayUntil, done, type Outcome } from './outcome';
import { transition, transitionIfUnchanged } from './transition';

/*
 * Every retry and every wait of an order is scheduled here, and only here: `reschedule` writes when the
 * order's stage runs next (`next_attempt_at`, Postgres's schedule, which the reconciler reads) and says
 * so to the worker, which delays the job until then. The retry delay rule and the stage window live
 * beside it.
 */

/** The end of the current stage's window: STAGE_WINDOW_HOURS from when the stage began (enterStage). */
export function stageWindowEndsAt(config: Pick<Config, 'STAGE_WINDOW_HOURS'>, order: Order): Date {
  return new Date(order.stageStartedAt.getTime() + config.STAGE_WINDOW_HOURS * 3600_000);
}

/**
 * The delay before retry `stageAttempts` of a stage: at least the upstream's 10 s, doubling with jitter
 * (no herd after an outage) up to RETRY_MAX_DELAY_MS.
 */
export function retryDelayMs(
  config: Pick<Config, 'RETRY_MAX_DELAY_MS'>,
  stageAttempts: number,
  random: () => number,
): number {
  const delay = backoffDelay(
    stageAttempts,
    { baseMs: UPSTREAM_FLOOR_MS, capMs: config.RETRY_MAX_DELAY_MS },
    random,
  );
  return Math.max(delay, UPSTREAM_FLOOR_MS);
}

/** When the order's stage is tried again after an error, by the retry delay rule. */
export function retryAt(ctx: WorkerContext, order: Order): Date {
  return new Date(ctx.clock.now().getTime() + retryDelayMs(ctx.config, order.stageAttempts, ctx.random));
}

export function describeError(error: unknown): string {
  if (isHttpsokError(error)) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Why the order's stage runs again later:
 * - `early`: the job came before its time (not due, the poll floor, an apply call possibly in flight, a
 *   callback awaited): only the time moves;
 * - `waiting`: the order waits on the world (DNS not in place, the CA still issuing). With `giveUp`, the
 *   wait is bounded by the stage window: past it the order fails with that reason;
 * - `retrying`: an upstream error. The stage's retry counter grows (so does the next delay), the event
 *   `upstream_error` is logged, and past the stage window the order fails.
 */
export type Why =
  | { kind: 'early'; detail: string }
  | {
      kind: 'waiting';
      detail: string;
      lastError?: string | null;
      giveUp?: { lastError: string; event: { type: string; detail?: unknown } };
      /** Logged with the new schedule (none: the schedule moves without an event row). */
      event?: { type: string; detail?: unknown };
    }
  | { kind: 'retrying'; error: unknown };

/** This job's order in the status and run it was read in: the guard of a write made without a lock. */
const SAME_RUN = and(
  eq(orders.id, sql.placeholder('id')),
  eq(orders.status, sql.placeholder('status')),
  eq(orders.run, sql.placeholder('run')),
)!;

/**
 * The one way to schedule an order's stage again: at `at`, for `why`, with `set` (other columns that
 * belong to the same write, e.g. when the upstream answered). The write is guarded — it applies only if
 * the order is still in the status and run it was read in — so it needs no row lock; under one (`db` a
 * transaction holding it) it simply applies. Failing at the end of the stage window needs a transaction.
 * Returns the job's outcome: delayed until `at`, failed, or stale when the order changed meanwhile.
 */
export async function reschedule(
  ctx: WorkerContext,
  db: Queryable,
  order: Order,
  at: Date,
  why: Why,
  set: TransitionArgs['set'] = {},
): Promise<Outcome> {
  const now = ctx.clock.now();
  if (why.kind === 'early') {
    if (at.getTime() !== order.nextAttemptAt.getTime() || Object.keys(set).length > 0) {
      if (!(await write(db, order, { ...set, nextAttemptAt: at }))) return stale;
    }
    return delayUntil(at, 'early', why.detail);
  }
  const giveUp =
    why.kind === 'retrying'
      ? {
          lastError: `gave up after ${ctx.config.STAGE_WINDOW_HOURS} h of upstream errors: ${describeError(why.error)}`,
          event: { type: 'failed', detail: { error: describeError(why.error) } },
        }
      : why.giveUp;
  if (giveUp && now >= stageWindowEndsAt(ctx.config, order)) {
    await transition(ctx, db as Transaction, {
      order,
      to: 'failed',
      set: { ...set, lastError: giveUp.lastError },
      event: giveUp.event,
      at: now,
    });
    return done('failed', `${order.status}: the stage window ended`);
  }
  if (why.kind === 'retrying') {
    const message = describeError(why.error);
    const retried = await transitionIfUnchanged(ctx, db, {
      order,
      to: order.status,
      set: { ...set, stageAttempts: order.stageAttempts + 1, nextAttemptAt: at, lastError: message },
      event: {
        type: 'upstream_error',
        detail: {
          error: message,
          traceId: isHttpsokError(why.error) ? why.error.traceId : null,
          retryInMs: at.getTime() - now.getTime(),
        },
      },
    });
    return retried ? delayUntil(at, 'retrying', message) : stale;
  }
  const columns = {
    ...set,
    nextAttemptAt: at,
    ...(why.lastError !== undefined ? { lastError: why.lastError } : {}),
  };
  const written = why.event
    ? await transitionIfUnchanged(ctx, db, { order, to: order.status, set: columns, event: why.event })
    : await write(db, order, columns);
  return written ? delayUntil(at, 'waiting', why.detail) : stale;
}

const stale = done('stale', 'order changed meanwhile');

async function write(db: Queryable, order: Order, set: TransitionArgs['set']): Promise<boolean> {
  const [row] = await updateOrders(db, { ...set, updatedAt: sql`now()` }, SAME_RUN, {
    id: order.id,
    status: order.status,
    run: order.run,
  });
  return row !== undefined;
}
