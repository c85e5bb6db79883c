import { canTransition, IllegalTransitionError, type OrderStatus } from '@certq/core';
import { eq, sql } from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import type { Queryable, Transaction } from './client';
import { type Order, orderEvents, orders } from './schema';

/** Loads an order and locks its row until the transaction ends, so two jobs never decide at once. */
export async function lockOrder(tx: Transaction, orderId: string): Promise<Order | undefined> {
  const rows = await tx.select().from(orders).where(eq(orders.id, orderId)).for('update');
  return rows[0];
}

export interface TransitionArgs {
  /** The locked row, as read in this transaction. */
  order: Order;
  to: OrderStatus;
  /** Other columns to change with the status; values may be SQL (e.g. clock_timestamp()). */
  set?: Omit<PgUpdateSetSource<typeof orders>, 'id' | 'status' | 'tenantId' | 'createdAt'>;
  event?: { type?: string; detail?: unknown };
}

/**
 * The only way an order's status changes: checks the state machine, updates the row and appends the
 * event, all in the caller's transaction.
 */
export async function transitionOrder(
  tx: Transaction,
  { order, to, set = {}, event }: TransitionArgs,
): Promise<Order> {
  if (!canTransition(order.status, to)) throw new IllegalTransitionError(order.status, to);
  const [updated] = await tx
    .update(orders)
    .set({ ...set, status: to, updatedAt: sql`now()` })
    .where(eq(orders.id, order.id))
    .returning();
  if (!updated) throw new Error(`order ${order.id} vanished inside its own transaction`);
  await tx.insert(orderEvents).values({
    orderId: order.id,
    type: event?.type ?? (order.status === to ? 'retry_scheduled' : 'status_changed'),
    fromStatus: order.status,
    toStatus: to,
    detail: event?.detail ?? null,
  });
  return updated;
}

/** Appends an event without changing the status (e.g. a poll that saw progress). */
export async function recordOrderEvent(
  db: Queryable,
  orderId: string,
  type: string,
  detail?: unknown,
): Promise<void> {
  await db.insert(orderEvents).values({ orderId, type, detail: detail ?? null });
}
