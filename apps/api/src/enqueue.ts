import type { Order } from '@certq/db';
import { enqueueOrders, type Queues } from '@certq/worker';
import type { FastifyBaseLogger } from 'fastify';

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
  timeoutMs: number,
  log: FastifyBaseLogger,
): Promise<boolean> {
  if (orders.length === 0) return true;
  let timer: NodeJS.Timeout | undefined;
  const enqueue = enqueueOrders(queues, orders);
  enqueue.catch(() => {}); // after a timeout nobody awaits it any more
  try {
    await Promise.race([
      enqueue,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return true;
  } catch (error) {
    log.warn(
      { err: error, orders: orders.length },
      'enqueueing failed; the reconciler will enqueue these orders from Postgres',
    );
    return false;
  } finally {
    clearTimeout(timer);
  }
}
