import { cursorTimestamp, type WebhookDelivery, webhookDeliveries } from '@certq/db';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { enqueueWebhookDeliveries, maxWebhookAttempts } from '../webhooks/delivery';
import { type SweepResult, sweep } from './sweep';

export type RelayResult = SweepResult;

const PAGE = 1000;

type PendingDelivery = Pick<WebhookDelivery, 'id' | 'attempts' | 'nextAttemptAt'> & { cursorTs: string };

/**
 * The outbox relay: every pending delivery must have its job in Redis. Rows whose job is missing
 * (Redis emptied, a crash between commit and enqueue, a job that ran out of attempts without the row
 * being updated) are enqueued again, keeping their schedule (`next_attempt_at`) and the attempts they
 * have left. Runs with the reconciler.
 */
export async function relayWebhooks(ctx: WorkerContext): Promise<RelayResult> {
  const maxAttempts = maxWebhookAttempts(ctx.queues);
  return sweep<PendingDelivery>(ctx, {
    lock: 'certq:webhook-relay',
    page: (tx, last) =>
      tx
        .select({
          id: webhookDeliveries.id,
          attempts: webhookDeliveries.attempts,
          nextAttemptAt: webhookDeliveries.nextAttemptAt,
          cursorTs: cursorTimestamp(webhookDeliveries.nextAttemptAt),
        })
        .from(webhookDeliveries)
        .where(
          and(
            eq(webhookDeliveries.status, 'pending'),
            last
              ? sql`(${webhookDeliveries.nextAttemptAt}, ${webhookDeliveries.id}) > (${last.cursorTs}::timestamptz, ${last.id}::uuid)`
              : undefined,
          ),
        )
        .orderBy(asc(webhookDeliveries.nextAttemptAt), asc(webhookDeliveries.id))
        .limit(PAGE),
    jobOf: (row) => ({ queue: ctx.queues.webhooks, jobId: row.id }),
    repair: async (_tx, missing) => {
      const now = Date.now();
      await enqueueWebhookDeliveries(
        ctx.queues,
        missing.map((row) => ({
          id: row.id,
          delayMs: Math.max(0, row.nextAttemptAt.getTime() - now),
          attempts: Math.max(1, maxAttempts - row.attempts),
        })),
      );
    },
    repairedCounter: ctx.metrics.webhookRelayRequeued,
    repairedMessage: 'webhook relay put missing delivery jobs back',
  });
}
