import { canTransition, IllegalTransitionError, type OrderStatus } from '@certq/core';
import { eq, is, SQL, sql } from 'drizzle-orm';
import { PgTransaction, type PgUpdateSetSource } from 'drizzle-orm/pg-core';
import type { Queryable, Transaction } from './client';
import { certificates, type Order, orderEvents, orders } from './schema';
import { columnCount, columnsOf, rowOf, StatementText, writeSet } from './statement';
import {
  recordWebhookEvent,
  rememberWebhookDelivery,
  type WebhookEventArgs,
  webhookPayload,
} from './webhooks';

/**
 * Renewal backoff, persisted on the certificate being renewed (cert-manager style): 1 h after the
 * first failed renewal, doubling, at most 32 h. Survives restarts; the renewal scanner skips the
 * certificate until `renewal_not_before`. Computed in one place only: the SQL in `afterOutcome`,
 * which reads the failure count inside the same UPDATE.
 */
export const RENEWAL_BACKOFF = { baseMs: 3600_000, capMs: 32 * 3600_000 } as const;

/**
 * The columns that start a stage afresh: its retry counter, its window (STAGE_WINDOW_HOURS counts
 * from `stageStartedAt`), due at once, no error carried over.
 */
export function enterStage(now: Date) {
  return { stageAttempts: 0, stageStartedAt: now, nextAttemptAt: now, lastError: null } as const;
}

/** Why an order starts a new run: an operator's retry, or a move to the order's next CA. */
export type NewRunReason = 'retried' | 'ca_changed';

/**
 * The one way an order starts a new run (`run` + 1: every job of the old run is stale). Everything
 * that belongs to a run is reset alike — no application, no apply call in flight or announced, no
 * callback secret, no poll, progress 0 — and the first stage starts afresh (enterStage). `set` adds what
 * the caller decides (the CA, `caFailures`, a `lastError` to show); the event is `why`.
 */
export async function startRun(
  tx: Transaction,
  order: Order,
  run: {
    why: NewRunReason;
    to: 'verifying' | 'applying';
    at: Date;
    set?: TransitionArgs['set'];
    detail?: Record<string, unknown>;
  },
): Promise<Order> {
  return transitionOrder(tx, {
    order,
    to: run.to,
    set: {
      run: order.run + 1,
      applyId: null,
      applyRequestedAt: null,
      announcedApplyId: null,
      callbackSecretHash: null,
      lastPolledAt: null,
      progress: 0,
      ...enterStage(run.at),
      ...run.set,
    },
    event: { type: run.why, detail: { previousApplyId: order.applyId, ...run.detail } },
  });
}

/** Loads an order and locks its row until the transaction ends, so two jobs never decide at once. */
export async function lockOrder(tx: Transaction, orderId: string): Promise<Order | undefined> {
  const rows = await tx.select().from(orders).where(eq(orders.id, orderId)).for('update');
  return rows[0];
}

export interface TransitionArgs {
  /** The row as read: locked in this transaction, or (transitionOrderIfUnchanged) read without a lock. */
  order: Order;
  to: OrderStatus;
  /** Other columns to change with the status; values may be SQL (e.g. clock_timestamp()). */
  set?: Omit<PgUpdateSetSource<typeof orders>, 'id' | 'status' | 'tenantId' | 'createdAt' | 'updatedAt'>;
  event?: { type?: string; detail?: unknown };
  /** The moment of the transition by the caller's clock (renewal backoff counts from it); default now. */
  at?: Date;
  /**
   * Entering `issued`: the new certificate. Its webhook outbox row then rides in the transition's
   * statement, so the transition needs no transaction (without it, the certificate is read back by id).
   */
  issued?: { certificateId: string; notAfter: Date; fingerprint: string };
  /**
   * More writes that belong to this transition (e.g. the DNS rows of the `dv` answer that verified the
   * order): data-modifying statements that run in the same statement, only if the transition applies;
   * they may select from TRANSITIONED, the updated row, and from an earlier one's output
   * (`alsoWritten(i)`). A fragment built once with `sql.placeholder`s comes with their values.
   */
  alsoWrite?: (SQL | { sql: SQL; values: Record<string, unknown> })[];
}

/** The updated order inside a transition's statement, for `alsoWrite`. */
export const TRANSITIONED = sql`"transitioned"`;
/** The output (RETURNING) of the transition's `alsoWrite[i]`, for a later one. */
export const alsoWritten = (i: number) => sql.raw(alsoWrittenName(i));
const alsoWrittenName = (i: number) => `"transition_also_${i}"`;
const TRANSITIONED_COLUMNS = columnsOf(orders, 'transitioned');
/** Where the tenant's webhook flag follows the order's columns in the row. */
const ORDER_COLUMNS = columnCount(orders);

/**
 * The only way an order's status changes: checks the state machine, updates the row and appends the
 * event, all in the caller's transaction. Entering a terminal outcome also, in the same transaction:
 *  - `failed` of a renewal order: the renewed certificate's backoff (`renewal_failures`,
 *    `renewal_not_before`, see RENEWAL_BACKOFF);
 *  - `issued` / `failed`: the tenant's webhook outbox row (certificate.issued, certificate.renewed,
 *    order.failed), whose job the committer enqueues (see webhooks.ts).
 */
export async function transitionOrder(tx: Transaction, args: TransitionArgs): Promise<Order> {
  const updated = await transitionOrderIfUnchanged(tx, args);
  // The caller holds the row lock: nobody can have changed the row since it was read.
  if (!updated) throw new Error(`order ${args.order.id} changed under its own row lock`);
  return updated;
}

/**
 * transitionOrder for a row read without a lock: the UPDATE's WHERE (same status, same run as read) is the
 * guard the row lock would have given — under READ COMMITTED a concurrent writer is waited for and the
 * condition re-checked on its result — and the answer is undefined when the order changed meanwhile.
 *
 * One statement: the event row and the tenant's webhook check ride in the UPDATE's CTE, so a transition
 * that is not terminal is atomic on its own and needs no transaction. A terminal one (issued, failed)
 * may write more (renewal backoff, webhook outbox): it must be given a transaction.
 */
export async function transitionOrderIfUnchanged(
  db: Queryable,
  { order, to, set = {}, event, at, issued, alsoWrite = [] }: TransitionArgs,
): Promise<Order | undefined> {
  if (!canTransition(order.status, to)) throw new IllegalTransitionError(order.status, to);
  const terminal = to !== order.status && (to === 'failed' || to === 'issued');
  // The webhook of a known new certificate is written by this statement; anything else afterOutcome
  // writes needs the caller's transaction.
  const outbox = terminal && to === 'issued' && issued ? webhookPayload(issuedEvent(order, issued)) : null;
  if (terminal && !outbox && !(db instanceof PgTransaction)) {
    throw new Error(`the transition of order ${order.id} to ${to} needs a transaction`);
  }
  const type = event?.type ?? (order.status === to ? 'retry_scheduled' : 'status_changed');
  const statement = new StatementText().raw('with "transitioned" as (update "orders" set ');
  writeSet(statement, orders, { ...set, status: to })
    .raw(', "updated_at" = now() where "id" = ')
    .value(order.id)
    .raw(' and "status" = ')
    .value(order.status)
    .raw(' and "run" = ')
    .value(order.run)
    .raw(' returning *), "transition_event" as (insert into "order_events" ')
    .raw('(order_id, type, from_status, to_status, detail) select "transitioned"."id", ')
    .value(type)
    .raw(', ')
    .value(order.status)
    .raw('::order_status, ')
    .value(to)
    .raw('::order_status, ')
    .value(event?.detail == null ? null : JSON.stringify(event.detail))
    .raw('::jsonb from "transitioned")');
  for (const [i, write] of alsoWrite.entries()) {
    statement.raw(`, ${alsoWrittenName(i)} as (`);
    if (is(write, SQL)) statement.sql(write);
    else statement.sql(write.sql, write.values);
    statement.raw(')');
  }
  if (outbox) {
    // The tenant's outbox row, if it has a webhook URL: the select returns its id.
    statement
      .raw(
        ', "transition_outbox" as (insert into "webhook_deliveries" (id, tenant_id, order_id, event, payload) ',
      )
      .raw('select ')
      .value(outbox.id)
      .raw('::uuid, t.id, "transitioned"."id", ')
      .value(outbox.event)
      .raw(', ')
      .value(JSON.stringify(outbox))
      .raw('::jsonb from "transitioned" join "tenants" t on t.id = "transitioned"."tenant_id"')
      .raw(' where t.webhook_url is not null returning id)')
      .raw(` select ${TRANSITIONED_COLUMNS}, (select id from "transition_outbox") from "transitioned"`);
  } else {
    statement.raw(
      ` select ${TRANSITIONED_COLUMNS}, exists (select 1 from "tenants" t where t.id = "transitioned"."tenant_id"` +
        ' and t.webhook_url is not null) from "transitioned"',
    );
  }
  // With writes to other tables (alsoWrite) the best plan depends on their data: planned at every
  // execution. A generic plan made while `certificates` was empty looked the current certificate up by
  // tenant alone, reading every current certificate of the tenant at each issuance.
  const [row] = await statement.run(db, { named: alsoWrite.length === 0 });
  if (!row) return undefined;
  const updated = rowOf<Order>(orders, row);
  const after = row[ORDER_COLUMNS];
  if (outbox) {
    if (typeof after === 'string') rememberWebhookDelivery(db, after);
  } else if (terminal) {
    await afterOutcome(db as Transaction, updated, { at, hasWebhook: after === true });
  }
  return updated;
}

async function afterOutcome(
  tx: Transaction,
  order: Order,
  { at = new Date(), hasWebhook }: { at?: Date; hasWebhook: boolean },
): Promise<void> {
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
  if (!hasWebhook) return;
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
          certificateId: certificates.id,
          notAfter: certificates.notAfter,
          fingerprint: certificates.fingerprint,
        })
        .from(certificates)
        .where(eq(certificates.id, order.certificateId))
    : [];
  await recordWebhookEvent(tx, issuedEvent(order, certificate));
}

/** The `certificate.issued` (or, for a renewal, `certificate.renewed`) event of an order and its certificate. */
function issuedEvent(order: Order, certificate: TransitionArgs['issued']): WebhookEventArgs {
  const data = {
    orderId: order.id,
    kind: order.kind,
    domains: order.domains,
    certificateId: certificate?.certificateId ?? order.certificateId,
    notAfter: certificate?.notAfter.toISOString() ?? null,
    fingerprint: certificate?.fingerprint ?? null,
  };
  return order.kind === 'renewal'
    ? {
        tenantId: order.tenantId,
        orderId: order.id,
        event: 'certificate.renewed',
        data: { ...data, previousCertificateId: order.renewalOfCertificateId },
      }
    : { tenantId: order.tenantId, orderId: order.id, event: 'certificate.issued', data };
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
