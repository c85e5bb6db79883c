import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Queryable } from './client';

/** The events a tenant's webhook receives. */
export const WEBHOOK_EVENTS = [
  'certificate.issued',
  'certificate.renewed',
  'order.failed',
  'certificate.expiring',
  /** The order moved to its next CA (CAA forbids the current one, or its application ended with status 3). */
  'order.ca_changed',
  'certificate.retired',
  'certificate.moved',
  /** A name of this tenant's was transferred to another tenant (proven in DNS, or by the operator). */
  'domain.transferred_out',
  /** A name another tenant held was transferred to this tenant. */
  'domain.transferred_in',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** The JSON body of every webhook POST. */
export interface WebhookPayload {
  /** The delivery id (also in the `x-certq-delivery` header): receivers deduplicate on it. */
  id: string;
  event: WebhookEvent;
  tenantId: string;
  createdAt: string;
  data: Record<string, unknown>;
}

/**
 * Delivery ids recorded in a transaction, so whoever committed it can enqueue their jobs right away
 * (`takeRecordedWebhookDeliveries`). Keyed by the transaction object: a rolled-back transaction's ids
 * are simply never taken, and its rows never existed. Anything missed is found by the relay.
 */
const recorded = new WeakMap<object, string[]>();

/**
 * Writes one outbox row for a tenant's webhook, in the caller's transaction, if the tenant has a
 * webhook URL (a single INSERT … SELECT: no row, no cost beyond a primary-key lookup, when it has none).
 * Returns the delivery id, or undefined when the tenant has no webhook.
 */
export async function recordWebhookEvent(db: Queryable, args: WebhookEventArgs): Promise<string | undefined> {
  const payload = webhookPayload(args);
  const id = payload.id;
  const result = await db.execute<{ id: string }>(sql`
    insert into webhook_deliveries (id, tenant_id, order_id, event, payload)
    select ${id}::uuid, t.id, ${args.orderId ?? null}::uuid, ${args.event}, ${JSON.stringify(payload)}::jsonb
    from tenants t where t.id = ${args.tenantId}::uuid and t.webhook_url is not null
    returning id`);
  if (!result.rows[0]) return undefined;
  rememberWebhookDelivery(db, id);
  return id;
}

export type WebhookEventArgs = {
  tenantId: string;
  event: WebhookEvent;
  data: Record<string, unknown>;
  orderId?: string;
  at?: Date;
};

/** The body of a new delivery of `args.event` (its id is new). */
export function webhookPayload(args: WebhookEventArgs): WebhookPayload {
  return {
    id: randomUUID(),
    event: args.event,
    tenantId: args.tenantId,
    createdAt: (args.at ?? new Date()).toISOString(),
    data: args.data,
  };
}

/**
 * Notes an outbox row written on `db` for whoever commits it (takeRecordedWebhookDeliveries). On a
 * connection pool rather than a transaction the row is committed already: whoever takes the list next
 * enqueues it (a job per delivery id, so taking another caller's ids only enqueues them sooner).
 */
export function rememberWebhookDelivery(db: Queryable, id: string): void {
  const list = recorded.get(db) ?? [];
  list.push(id);
  recorded.set(db, list);
}

/** The delivery ids recorded on this transaction (once: they are forgotten as they are taken). */
export function takeRecordedWebhookDeliveries(db: Queryable): string[] {
  const list = recorded.get(db) ?? [];
  recorded.delete(db);
  return list;
}
