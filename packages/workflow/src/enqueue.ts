import type { Order } from '@certq/db';
import { enqueueOrders, type Queues } from './queues';

/** The logger the caller has (a request's pino child); only warnings are written. */
export interface EnqueueLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

export const DEFAULT_ENQUEUE_TIMEOUT_MS = 2000;

/**
 * Puts freshly committed orders on their queues, waiting at most `timeoutMs` for Redis.
 *
 * The orders are already committed in Postgres, the source of truth, so a failure here must not fail
 * the request: if Redis is down or slow we still answer 202, and the worker's reconciler re-enqueues
 * every active order that has no job from Postgres. Job ids are deterministic, so a late enqueue that
 * eventually reaches Redis and the reconciler never produce duplicates.
 */
export async function enqueueSafely(
  queues: Queues,
  orders: readonly Order[],
  timeoutMs = DEFAULT_ENQUEUE_TIMEOUT_MS,
  log?: EnqueueLogger,
): Promise<boolean> {
  if (orders.length === 0) return true;
  try {
    await withTimeout(enqueueOrders(queues, orders), timeoutMs);
    return true;
  } catch (error) {
    log?.warn(
      { err: error, orders: orders.length },
      'enqueueing failed; the reconciler will enqueue these orders from Postgres',
    );
    return false;
  }
}

/** `work`, or a rejection once `timeoutMs` has passed (the work goes on; nobody awaits it any more). */
export async function withTimeout<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  work.catch(() => {});
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
