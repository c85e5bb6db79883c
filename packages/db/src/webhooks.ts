import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Queryable } from './client';

/**
 * Every event a tenant's webhook receives: when it is sent and what its `data` holds. The one list:
 * WEBHOOK_EVENTS is read from it, and docs/webhooks.md is generated from it (`pnpm webhooks:doc`; a
 * test checks the file matches).
 */
export const WEBHOOK_CATALOGUE = [
  {
    event: 'certificate.issued',
    when: 'A new order was issued: its certificate is current and served.',
    data: {
      orderId: 'the order',
      kind: '`new`',
      domains: "the certificate's names",
      certificateId: 'the new certificate',
      notAfter: 'its expiry (ISO-8601)',
      fingerprint: "SHA-256 of the leaf's DER, hex",
    },
  },
  {
    event: 'certificate.renewed',
    when: 'A renewal order was issued: the new certificate replaced the one it renews.',
    data: {
      orderId: 'the renewal order',
      kind: '`renewal`',
      domains: "the certificate's names",
      certificateId: 'the new certificate',
      notAfter: 'its expiry (ISO-8601)',
      fingerprint: "SHA-256 of the leaf's DER, hex",
      previousCertificateId: 'the certificate it replaced',
    },
  },
  {
    event: 'order.failed',
    when: 'An order failed (DNS window over, every CA refused, API key refused, …).',
    data: {
      orderId: 'the order',
      kind: '`new` or `renewal`',
      domains: "the order's names",
      error: 'why, one sentence',
      renewalOfCertificateId: 'the certificate a renewal was for, else null',
    },
  },
  {
    event: 'order.ca_changed',
    when: 'The order moved to its next CA (CAA forbids the current one, or its application ended with status 3).',
    data: {
      orderId: 'the order',
      domains: "the order's names",
      from: 'the CA given up',
      to: 'the CA tried next',
      reason: 'why the previous one gave up',
      caChoices: "the order's CA list",
    },
  },
  {
    event: 'certificate.expiring',
    when: 'Once per current certificate with less than a sixth of its lifetime left (no renewal replaced it; uploaded certificates get it too).',
    data: { certificateId: 'the certificate', domains: 'its names', notAfter: 'its expiry (ISO-8601)' },
  },
  {
    event: 'certificate.retired',
    when: 'A certificate was retired (DELETE /v1/certificates/{id}, or its tenant deleted): no longer renewed or served.',
    data: {
      certificateId: 'the certificate',
      domains: 'its names',
      reason: '`retired` or `tenant_deleted`',
      cancelledOrderId: 'the active order for the same names, cancelled with it, else null',
    },
  },
  {
    event: 'certificate.moved',
    when: "Once per move: a renewal's DNS check kept reading missing or wrong_target for longer than MOVED_GRACE_DAYS. Renewals stopped; still served until it expires or is retired.",
    data: {
      certificateId: 'the certificate',
      domains: 'its names',
      dnsLostSince: 'the first reading of the run (ISO-8601)',
      graceDays: 'MOVED_GRACE_DAYS',
      renewalOrderId:
        'the renewal order whose check decided it (POST /v1/orders/{id}/dns-check brings it back)',
      dns: 'each domain: `{domain, status, found, reason}`',
    },
  },
  {
    event: 'domain.transferred_out',
    when: "A name of this tenant's was transferred to another tenant (proven in DNS, or by the operator).",
    data: {
      domains: 'the names transferred',
      via: '`dns_proof` or `operator`',
      reason: 'why',
      stoppedCertificateIds: 'certificates of this tenant no longer served',
      cancelledOrderIds: 'orders of this tenant cancelled',
    },
  },
  {
    event: 'domain.transferred_in',
    when: 'A name another tenant held was transferred to this tenant.',
    data: { domains: 'the names transferred', via: '`dns_proof` or `operator`', reason: 'why' },
  },
] as const satisfies readonly { event: string; when: string; data: Record<string, string> }[];

/** The events a tenant's webhook receives (see WEBHOOK_CATALOGUE). */
export const WEBHOOK_EVENTS = WEBHOOK_CATALOGUE.map((e) => e.event);
export type WebhookEvent = (typeof WEBHOOK_CATALOGUE)[number]['event'];

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

/** docs/webhooks.md: the catalogue as a page (generated; a test compares the file with this). */
export function webhookCatalogueMarkdown(): string {
  const cell = (text: string) => text.replaceAll('|', '\\|');
  const lines = [
    '# Webhook events',
    '',
    '<!-- Generated from WEBHOOK_CATALOGUE in packages/db/src/webhooks.ts by `pnpm webhooks:doc`; do not edit. -->',
    '',
    'Every POST carries `{id, event, tenantId, createdAt, data}` as JSON, signed: `x-certq-signature:',
    'sha256=<hex HMAC-SHA256(secret, "<x-certq-timestamp>.<body>")>`; `x-certq-delivery` is `id` (deduplicate on',
    'it), `x-certq-event` the event. Deliveries are retried with backoff until answered 2xx.',
    '',
    '| event | sent when | `data` |',
    '| --- | --- | --- |',
    ...WEBHOOK_CATALOGUE.map(
      (e) =>
        `| \`${e.event}\` | ${cell(e.when)} | ${Object.entries(e.data)
          .map(([field, what]) => `\`${field}\`: ${cell(what)}`)
          .join('<br>')} |`,
    ),
    '',
  ];
  return lines.join('\n');
}
