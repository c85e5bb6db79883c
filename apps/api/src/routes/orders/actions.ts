import { isActive } from '@certq/core';
import { type Database, lockOrder, type Order, orders, transitionOrder, violatedConstraint } from '@certq/db';
import { and, eq, inArray } from 'drizzle-orm';
import { ApiError, notFound } from '../../plugins/errors';

/**
 * The operator-and-tenant actions on one order, shared by the JSON routes (POST /v1/orders/{id}/retry,
 * DELETE /v1/orders/{id}) and the console at /admin: one transaction each, the status change through
 * transitionOrder. The caller enqueues a retried order after the commit.
 */
export interface OrderActionArgs {
  id: string;
  /** The tenant the caller is confined to; undefined for the operator. Outside it: 404. */
  scope: string | undefined;
  /** Who asked, recorded in the order's event (`admin`, `tenant:<id>`). */
  actor: string;
}

/** A failed order back to verifying with a fresh run (attempts + 1); 409 for any other status. */
export async function retryOrder(db: Database, { id, scope, actor }: OrderActionArgs): Promise<Order> {
  try {
    return await db.transaction(async (tx) => {
      const order = await lockOrder(tx, id);
      if (!order || (scope && order.tenantId !== scope)) throw notFound('order');
      if (order.status !== 'failed')
        throw new ApiError(
          409,
          'not_retryable',
          `only a failed order can be retried; this one is ${order.status}`,
        );
      const now = new Date();
      return transitionOrder(tx, {
        order,
        to: 'verifying',
        set: {
          attempts: order.attempts + 1,
          stageAttempts: 0,
          stageStartedAt: now,
          nextAttemptAt: now,
          applyId: null,
          lastPolledAt: null,
          lastError: null,
          progress: 0,
          callbackSecretHash: null,
        },
        event: { type: 'retried', detail: { previousApplyId: order.applyId, by: actor } },
      });
    });
  } catch (error) {
    if (violatedConstraint(error) !== 'orders_one_active_per_domain_set') throw error;
    const [failed] = await db.select().from(orders).where(eq(orders.id, id));
    const [active] = failed
      ? await db
          .select({ id: orders.id })
          .from(orders)
          .where(
            and(
              eq(orders.tenantId, failed.tenantId),
              eq(orders.domainsKey, failed.domainsKey),
              inArray(orders.status, ['verifying', 'applying', 'issuing']),
            ),
          )
      : [];
    throw new ApiError(409, 'conflict', 'another active order already covers this domain set', {
      activeOrderId: active?.id ?? null,
    });
  }
}

/** An active order becomes cancelled; 409 when it already ended. The queued job finds it cancelled. */
export async function cancelOrder(db: Database, { id, scope, actor }: OrderActionArgs): Promise<Order> {
  return db.transaction(async (tx) => {
    const order = await lockOrder(tx, id);
    if (!order || (scope && order.tenantId !== scope)) throw notFound('order');
    if (!isActive(order.status))
      throw new ApiError(409, 'not_cancellable', `the order already ended (${order.status})`);
    return transitionOrder(tx, {
      order,
      to: 'cancelled',
      event: { type: 'cancelled', detail: { by: actor } },
    });
  });
}
