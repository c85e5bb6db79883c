import { type WebhookDelivery, webhookDeliveries } from '@certq/db';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { enqueueWebhookDeliveries, maxWebhookAttempts } from './delivery';

export interface RelayResult {
  /** False when another process held the relay lock. */
  ran: boolean;
  checked: number;
  requeued: number;
}

const PAGE = 1000;

/**
 * The outbox relay: every pending delivery must have its job in Redis. Rows whose job is missing
 * (Redis emptied, a crash between commit and enqueue, a job that ran out of attempts without the row
 * being updated) are enqueued again, keeping their schedule (`next_attempt_at`) and the attempts they
 * have left. One run at a time across workers (transaction-scoped advisory lock); runs with the
 * reconciler.
 */
export async function relayWebhooks(ctx: WorkerContext): Promise<RelayResult> {
  return ctx.db.transaction(async (tx) => {
    const lock = await tx.execute<{ locked: boolean }>(
      sql`select pg_try_advisory_xact_lock(hashtext('certq:webhook-relay')) as locked`,
    );
    if (!lock.rows[0]?.locked) return { ran: false, checked: 0, requeued: 0 };
    const maxAttempts = maxWebhookAttempts(ctx.queues);
    let checked = 0;
    let requeued = 0;
    let cursor: { at: string; id: string } | undefined;
    for (;;) {
      const page: (Pick<WebhookDelivery, 'id' | 'attempts' | 'nextAttemptAt'> & { cursorTs: string })[] =
        await tx
          .select({
            id: webhookDeliveries.id,
            attempts: webhookDeliveries.attempts,
            nextAttemptAt: webhookDeliveries.nextAttemptAt,
            cursorTs: sql<string>`to_char(${webhookDeliveries.nextAttemptAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
          })
          .from(webhookDeliveries)
          .where(
            and(
              eq(webhookDeliveries.status, 'pending'),
              cursor
                ? sql`(${webhookDeliveries.nextAttemptAt}, ${webhookDeliveries.id}) > (${cursor.at}::timestamptz, ${cursor.id}::uuid)`
                : undefined,
            ),
          )
          .orderBy(asc(webhookDeliveries.nextAttemptAt), asc(webhookDeliveries.id))
          .limit(PAGE);
      if (page.length === 0) break;
      const last = page[page.length - 1]!;
      cursor = { at: last.cursorTs, id: last.id };
      checked += page.length;
      const missing = await Promise.all(
        page.map(async (row) => {
          const state = await ctx.queues.webhooks.getJobState(row.id);
          const missing = state === 'unknown' || state === 'failed' || state === 'completed';
          // An 'unknown' job may have left its hash behind, which would make the re-add a no-op.
          if (missing) await ctx.queues.webhooks.remove(row.id);
          return missing;
        }),
      );
      const now = Date.now();
      const jobs = page
        .filter((_, i) => missing[i])
        .map((row) => ({
          id: row.id,
          delayMs: Math.max(0, row.nextAttemptAt.getTime() - now),
          attempts: Math.max(1, maxAttempts - row.attempts),
        }));
      if (jobs.length) {
        await enqueueWebhookDeliveries(ctx.queues, jobs);
        requeued += jobs.length;
      }
      if (page.length < PAGE) break;
    }
    if (requeued) {
      ctx.metrics.webhookRelayRequeued.inc(requeued);
      ctx.logger.warn({ requeued, checked }, 'webhook relay put missing delivery jobs back');
    }
    return { ran: true, checked, requeued };
  });
}
