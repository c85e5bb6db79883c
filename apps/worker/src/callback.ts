import { hashToken } from '@certq/core';
import { orders } from '@certq/db';
import { eq } from 'drizzle-orm';
import type { WorkflowContext } from './context';
import { pollApplication } from './tasks/poll';

export type CallbackResult =
  | { status: 'unknown' }
  | {
      status: 'accepted';
      orderId: string;
      /** Settles when the re-fetch behind this callback is done (the route does not wait for it). */
      settled: Promise<void>;
    };

/**
 * httpsok's "issued" callback is not signed, so its body is never trusted: the secret in the URL
 * finds the order, and the application is fetched again from httpsok — through the same poll step as
 * the poll task, so the 10 s floor holds — before anything is stored. Replays find the order issued
 * (or the poll slot taken) and change nothing.
 */
export async function receiveCallback(
  ctx: WorkflowContext,
  secret: string,
  _body: unknown,
): Promise<CallbackResult> {
  if (!/^cb_[A-Za-z0-9_-]{20,100}$/.test(secret)) return { status: 'unknown' };
  const [order] = await ctx.db
    .select({ id: orders.id, status: orders.status, attempts: orders.attempts, tenantId: orders.tenantId })
    .from(orders)
    .where(eq(orders.callbackSecretHash, hashToken(secret)));
  if (!order) return { status: 'unknown' };
  if (order.status !== 'issuing')
    return { status: 'accepted', orderId: order.id, settled: Promise.resolve() };
  const settled = pollApplication(ctx, { orderId: order.id, run: order.attempts }).then(
    (outcome) =>
      ctx.logger.info(
        { orderId: order.id, tenantId: order.tenantId, stage: 'callback', result: outcome.result },
        'callback handled',
      ),
    (error) =>
      ctx.logger.warn(
        { err: error, orderId: order.id, stage: 'callback' },
        'callback re-fetch failed; the poll job will retry',
      ),
  );
  return { status: 'accepted', orderId: order.id, settled };
}
