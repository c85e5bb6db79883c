import { canTransition, IllegalTransitionError, type OrderStatus } from '@certq/core';
import { and, eq, isNotNull, sql } from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import type { Queryable, Transaction } from './client';
import { certificates, type Order, orderEvents, orders, tenants } from './schema';
import { recordWebhookEvent } from './webhooks';

/**
 * Renewal backoff, persisted on the certificate being renewed (cert-manager style): 1 h after the
 * first failed renewal, doubling, at most 32 h. Survives restarts; the renewal scanner skips the
 * certificate until `renewal_not_before`. Computed in one place only: the SQL in `afterOutcome`,
 * which reads the failure count inside the same UPDATE.
 */
export const RENEWAL_BACKOFF = { baseMs: 3600_000, capMs: 32 * 3600_000 } as const;

/**
 * The columns that start a stage afresh: its retry counter, its window (VERIFY_WINDOW_HOURS counts
 * from `stageStartedAt`), due at once, no error carried over.
 */
export function enterStage(now: Date) {
  return { stageAttempts: 0, stageStartedAt: now, nextAttemptAt: now, lastError: null } as const;
}

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
  /** The moment of the transition by the caller's clock (renewal backoff counts from it); default now. */
  at?: Date;
}

/**
 * The only way an order's status changes: checks the state machine, updates the row and appends the
 * event, all in the caller's transaction. Entering a terminal outcome also, in the same transaction:
 *  - `failed` of a renewal order: the renewed certificate's backoff (`renewal_failures`,
 *    `renewal_not_before`, see RENEWAL_BACKOFF);
 *  - `issued` / `failed`: the tenant's webhook outbox row (certificate.issued, certificate.renewed,
 *    order.failed), whose job the committer enqueues (see webhooks.ts).
 */
export async function transitionOrder(
  tx: Transaction,
  { order, to, set = {}, event, at }: TransitionArgs,
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
  if (to !== order.status && (to === 'failed' || to === 'issued')) await afterOutcome(tx, updated, at);
  return updated;
}

async function afterOutcome(tx: Transaction, order: Order, at = new Date()): Promise<void> {
  if (order.status === 'failed' && order.renewalOfCertificateId) {
    // SET expressions read the old row: 2^(failures before this one) hours, capped.
    await tx
      .update(certificates)
      .set({
        renewalFailures: sql`${certificates.renewalFailures} + 1`,
        renewalNotBefore: sql`${at.toISOString()}::timestamptz + make_interval(secs => least(
          ${RENEWAL_BACKOFF.capMs / 1000}, ${RENEWAL_BACKOFF.baseMs / 1000} * power(2, least(${certificates.renewalFailures}, 30))))`,
      })
      .where(eq(certificates.id, order.renewalOfCertificateId));
  }
  const [tenant] = await tx
    .select({ id: tenants.id })
    .from(tenants)
    .where(and(eq(tenants.id, order.tenantId), isNotNull(tenants.webhookUrl)));
  if (!tenant) return;
  const base = { orderId: order.id, kind: order.kind, domains: order.domains };
  if (order.status === 'failed') {
    await recordWebhookEvent(tx, {
      tenantId: order.tenantId,
      orderId: order.id,
      event: 'order.failed',
      data: { ...base, error: order.lastError, renewalOfCertificateId: order.renewalOfCertificateId },
    });
    return;
  }
  const [certificate] = order.certificateId
    ? await tx
        .select({
          id: certificates.id,
          notAfter: certificates.notAfter,
          fingerprint: certificates.fingerprint,
        })
        .from(certificates)
        .where(eq(certificates.id, order.certificateId))
    : [];
  const issued = {
    ...base,
    certificateId: order.certificateId,
    notAfter: certificate?.notAfter.toISOString() ?? null,
    fingerprint: certificate?.fingerprint ?? null,
  };
  await recordWebhookEvent(
    tx,
    order.kind === 'renewal'
      ? {
          tenantId: order.tenantId,
          orderId: order.id,
          event: 'certificate.renewed',
          data: { ...issued, previousCertificateId: order.renewalOfCertificateId },
        }
      : { tenantId: order.tenantId, orderId: order.id, event: 'certificate.issued', data: issued },
  );
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
