import { stageJobId } from '@certq/core';
import { type Database, type Order, orders } from '@certq/db';
import { eq, sql } from 'drizzle-orm';
import { DEFAULT_ENQUEUE_TIMEOUT_MS, type EnqueueLogger, withTimeout } from './enqueue';
import { WorkflowError } from './errors';
import { lockOwnedOrder } from './orders';
import { enqueueOrders, type Queues } from './queues';

/** At most one "check my DNS now" per order in this window. */
export const DNS_CHECK_MIN_SPACING_MS = 10_000;

/**
 * "I have set it: check now" (`POST /v1/orders/{id}/dns-check`). Only a verifying order waits on DNS. The
 * order's verify job is made due now and promoted, and its local check delay starts again from
 * DNS_CHECK_INTERVAL_MS: the worker checks DNS at once and, when every domain reads ok, asks httpsok in the
 * same run. Committed first (the reconciler queues the order from the row should Redis be away); a second
 * request within 10 s answers `dns_check_too_soon`.
 */
export async function requestDnsCheck(
  deps: { db: Database; queues: Queues; enqueueTimeoutMs?: number },
  orderId: string,
  options: { tenantScope?: string; log?: EnqueueLogger; now?: Date } = {},
): Promise<Order> {
  const now = options.now ?? new Date();
  const order = await deps.db.transaction(async (tx) => {
    const locked = await lockOwnedOrder(tx, orderId, options.tenantScope);
    if (locked.status !== 'verifying')
      throw new WorkflowError(
        'not_verifying',
        `only an order waiting on DNS (verifying) can be checked; this one is ${locked.status}`,
      );
    const last = locked.dnsCheckRequestedAt?.getTime();
    if (last !== undefined && now.getTime() - last < DNS_CHECK_MIN_SPACING_MS) {
      const retryAfterMs = DNS_CHECK_MIN_SPACING_MS - (now.getTime() - last);
      throw new WorkflowError(
        'dns_check_too_soon',
        'a DNS check of this order was asked less than 10 s ago',
        {
          retryAfterSeconds: Math.ceil(retryAfterMs / 1000),
        },
      );
    }
    const [updated] = await tx
      .update(orders)
      .set({
        dnsCheckRequestedAt: now,
        nextAttemptAt: sql`least(${orders.nextAttemptAt}, ${now.toISOString()}::timestamptz)`,
        stageAttempts: 0,
        updatedAt: sql`now()`,
      })
      .where(eq(orders.id, locked.id))
      .returning();
    return updated!;
  });
  try {
    await withTimeout(promoteVerify(deps.queues, order), deps.enqueueTimeoutMs ?? DEFAULT_ENQUEUE_TIMEOUT_MS);
  } catch (error) {
    options.log?.warn({ err: error, orderId }, 'could not bring the DNS check forward; it runs at its time');
  }
  return order;
}

async function promoteVerify(queues: Queues, order: Order): Promise<void> {
  const job = await queues.verify.getJob(stageJobId('verify', order.id, order.run));
  if (!job) {
    await enqueueOrders(queues, [order]);
    return;
  }
  if (await job.isDelayed()) await job.promote().catch(() => {});
}
