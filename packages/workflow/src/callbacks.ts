import { hashToken, stageJobId } from '@certq/core';
import { type Database, orders } from '@certq/db';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { DEFAULT_ENQUEUE_TIMEOUT_MS, type EnqueueLogger, withTimeout } from './enqueue';
import { enqueueOrders, type Queues } from './queues';

/** Callback secrets are `cb_` and 20–100 URL-safe characters (see the apply task). */
const CALLBACK_SECRET = /^cb_[A-Za-z0-9_-]{20,100}$/;

export type CallbackResult = { status: 'unknown' } | { status: 'accepted'; orderId: string; nudged: boolean };

/**
 * httpsok's "issued" callback, as the API receives it. The callback is not signed, so of its body
 * only the application id is taken, as a hint: the secret in the URL finds the order; an order still
 * applying records the announced id and its apply task is made due (it re-fetches and checks the
 * application before adopting it); otherwise the order's poll is brought forward — its next attempt
 * made due now and its delayed job promoted — so a worker polls the application at once. Nothing here calls httpsok: the worker's poll task does, and the 10 s floor it claims in
 * Postgres still holds (a poll within 10 s of the last one waits out the rest). Replays find the order
 * issued, or already due, and change nothing.
 */
export async function nudgeFromCallback(
  deps: { db: Database; queues: Queues; enqueueTimeoutMs?: number },
  secret: string,
  log?: EnqueueLogger,
  /** The application id the (unsigned) body names: only a hint, checked by the worker before use. */
  announcedApplyId?: string,
): Promise<CallbackResult> {
  if (!CALLBACK_SECRET.test(secret)) return { status: 'unknown' };
  const [order] = await deps.db
    .select({ id: orders.id })
    .from(orders)
    .where(eq(orders.callbackSecretHash, hashToken(secret)));
  if (!order) return { status: 'unknown' };
  if (announcedApplyId !== undefined) {
    // An order still applying (its apply outcome lost, or the commit not in yet): the announced
    // application is recorded and the apply task made due; it re-fetches and checks it, then adopts it.
    const [applying] = await deps.db
      .update(orders)
      .set({
        announcedApplyId,
        nextAttemptAt: sql`least(${orders.nextAttemptAt}, now())`,
        updatedAt: sql`now()`,
      })
      .where(and(eq(orders.id, order.id), eq(orders.status, 'applying'), isNull(orders.applyId)))
      .returning();
    if (applying) {
      try {
        await withTimeout(
          promoteStage(deps.queues, 'apply', applying),
          deps.enqueueTimeoutMs ?? DEFAULT_ENQUEUE_TIMEOUT_MS,
        );
      } catch (error) {
        log?.warn(
          { err: error, orderId: order.id },
          'could not bring the apply forward; it runs at its time',
        );
      }
      return { status: 'accepted', orderId: order.id, nudged: true };
    }
  }
  // Only an issuing order has something to fetch. Committed first: should Redis be away, the
  // reconciler queues the order from this row, due now.
  const [due] = await deps.db
    .update(orders)
    .set({ nextAttemptAt: sql`least(${orders.nextAttemptAt}, now())`, updatedAt: sql`now()` })
    .where(and(eq(orders.id, order.id), eq(orders.status, 'issuing')))
    .returning();
  if (!due) return { status: 'accepted', orderId: order.id, nudged: false };
  try {
    await withTimeout(promotePoll(deps.queues, due), deps.enqueueTimeoutMs ?? DEFAULT_ENQUEUE_TIMEOUT_MS);
  } catch (error) {
    log?.warn({ err: error, orderId: order.id }, 'could not bring the poll forward; it runs at its time');
  }
  return { status: 'accepted', orderId: order.id, nudged: true };
}

async function promotePoll(queues: Queues, order: typeof orders.$inferSelect): Promise<void> {
  return promoteStage(queues, 'poll', order);
}

/** The order's job of `stage` runs now: promoted if delayed, added if missing, left alone if waiting or running. */
async function promoteStage(
  queues: Queues,
  stage: 'apply' | 'poll',
  order: typeof orders.$inferSelect,
): Promise<void> {
  const job = await queues[stage].getJob(stageJobId(stage, order.id, order.attempts));
  if (!job) {
    await enqueueOrders(queues, [order]);
    return;
  }
  if (await job.isDelayed()) {
    // It may have become active meanwhile; then it polls anyway.
    await job.promote().catch(() => {});
  }
}
