import {
  ACTIVE_STATUS_SQL_LIST,
  ALGORITHMS,
  CERTIFICATE_AUTHORITIES,
  CERTIFICATE_STATES,
  ORDER_KINDS,
  ORDER_STATUSES,
  RENEWAL_REASONS,
  type RetiredReason,
} from '@certq/core';
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  foreignKey,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

export const orderStatus = pgEnum('order_status', ORDER_STATUSES);
export const orderKind = pgEnum('order_kind', ORDER_KINDS);
export const algorithm = pgEnum('algorithm', ALGORITHMS);
export const certificateAuthority = pgEnum('certificate_authority', CERTIFICATE_AUTHORITIES);
export const renewalReason = pgEnum('renewal_reason', RENEWAL_REASONS);
/** The local DNS check of one domain (`pending`: not checked by certq yet). See @certq/dns. */
export const DNS_STATUSES = [
  'pending',
  'ok',
  'missing',
  'wrong_target',
  'caa_forbidden',
  'lookup_failed',
] as const;
export const dnsStatus = pgEnum('dns_status', DNS_STATUSES);
/** A certificate's stored state; its status adds what is derived (see @certq/core certificate-status). */
export const certificateState = pgEnum('certificate_state', CERTIFICATE_STATES);

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

export const tenants = pgTable(
  'tenants',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull().unique(),
    /** SHA-256 of the bearer token; the token itself is shown once and never stored. */
    tokenHash: text('token_hash').notNull().unique(),
    /** The tenant's own OpenApiKey, sealed (see @certq/core crypto); null: the operator's default key. */
    httpsokApiKeySealed: text('httpsok_api_key_sealed'),
    webhookUrl: text('webhook_url'),
    webhookSecretSealed: text('webhook_secret_sealed'),
    /** CAs in order of preference for this tenant's orders that name none; null: the service default. */
    defaultCaChoices: certificateAuthority('default_ca_choices').array(),
    /** After a rotation: the old token's hash, accepted until previousTokenExpiresAt (the grace period). */
    previousTokenHash: text('previous_token_hash'),
    previousTokenExpiresAt: timestamp('previous_token_expires_at', { withTimezone: true }),
    /** Set by revocation: neither token is accepted until a rotation issues a new one. */
    tokenRevokedAt: timestamp('token_revoked_at', { withTimezone: true }),
    /** Suspended: writes refused, renewals stopped; reversible until deletedAt is set. */
    suspendedAt: timestamp('suspended_at', { withTimezone: true }),
    /** Suspended with stopServing: its certificates were taken out of delivery until it is resumed. */
    stopServing: boolean('stop_serving').notNull().default(false),
    /** Deleted: every certificate retired, tokens revoked; the row stays for the audit trail. */
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('tenants_previous_token_hash_unique')
      .on(t.previousTokenHash)
      .where(sql`${t.previousTokenHash} is not null`),
  ],
);

export const renewalBatches = pgTable('renewal_batches', {
  id: uuid('id').primaryKey().defaultRandom(),
  /** Null when the operator asked; else the tenant that asked for its own certificates. */
  requestedByTenantId: uuid('requested_by_tenant_id').references(() => tenants.id),
  filter: jsonb('filter').notNull(),
  total: integer('total').notNull().default(0),
  createdAt: createdAt(),
});

export const orders = pgTable(
  'orders',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id),
    kind: orderKind('kind').notNull().default('new'),
    domains: text('domains').array().notNull(),
    /** Sorted, comma-joined domains: the same certificate whatever order the names came in. */
    domainsKey: text('domains_key').notNull(),
    algorithm: algorithm('algorithm').notNull().default('ECC'),
    /** The CA of the current run. */
    ca: certificateAuthority('ca').notNull().default('google'),
    /** Every CA to try, in order of preference (`ca` is one of them); null: just `ca`. */
    caChoices: certificateAuthority('ca_choices').array(),
    /** Why each CA tried so far gave up, `[{ca, reason}]`, in order: the error names them all when the list is used up. */
    caFailures: jsonb('ca_failures').$type<{ ca: string; reason: string }[]>().notNull().default([]),
    /** Last `POST /v1/cert/dv` for this order: with local DNS checks, httpsok is asked only when they pass or an hour went by. */
    lastDvAt: timestamp('last_dv_at', { withTimezone: true }),
    /** Last "check my DNS now" request (`POST /v1/orders/{id}/dns-check`), at most one per 10 s. */
    dnsCheckRequestedAt: timestamp('dns_check_requested_at', { withTimezone: true }),
    status: orderStatus('status').notNull().default('verifying'),
    applyId: text('apply_id').unique(),
    progress: integer('progress').notNull().default(0),
    /** Runs of this order: 1 when created, +1 on every explicit retry. Part of the job ids. */
    /** The run number: 1, then one more per new run (operator retry, next CA). */
    run: integer('run').notNull().default(1),
    /** Tries within the current stage (DNS checks, transient upstream failures); drives backoff. */
    stageAttempts: integer('stage_attempts').notNull().default(0),
    stageStartedAt: timestamp('stage_started_at', { withTimezone: true }).notNull().defaultNow(),
    /** When the current stage's next job is due; the reconciler schedules from it after a restart. */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    /**
     * Last request of any outcome for applyId: the 10 s polling floor counts from here. While a poll
     * is in flight it holds the latest moment the upstream could still receive that request.
     */
    lastPolledAt: timestamp('last_polled_at', { withTimezone: true }),
    /**
     * Set just before the apply call is sent, cleared when its outcome is known. Still set on a later
     * run: the previous call's outcome is unknown (crash or timeout), see apps/worker/src/tasks/apply.ts.
     */
    applyRequestedAt: timestamp('apply_requested_at', { withTimezone: true }),
    lastError: text('last_error'),
    priority: integer('priority').notNull().default(1),
    /** SHA-256 of the secret in this order's notifyUrl. */
    callbackSecretHash: text('callback_secret_hash').unique(),
    /**
     * An application id announced by the issued callback of this order's current secret while its
     * apply outcome is unknown; the apply task re-fetches and checks it, then adopts it.
     */
    announcedApplyId: text('announced_apply_id'),
    certificateId: uuid('certificate_id'),
    renewalOfCertificateId: uuid('renewal_of_certificate_id'),
    renewalBatchId: uuid('renewal_batch_id').references(() => renewalBatches.id),
    /** Why this renewal was created (@certq/core RENEWAL_REASONS); null for a new order. */
    renewalReason: renewalReason('renewal_reason'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  // Keyset indexes are DESC NULLS FIRST: Postgres's DESC, so `ORDER BY created_at DESC, id DESC` uses them.
  (t) => [
    // Written from core's active set (a test compares them with the migrated indexes in Postgres).
    // One tenant cannot have two active orders for the same certificate.
    uniqueIndex('orders_one_active_per_domain_set')
      .on(t.tenantId, t.domainsKey)
      .where(sql`${t.status} in (${sql.raw(ACTIVE_STATUS_SQL_LIST)})`),
    index('orders_active_by_next_attempt')
      .on(t.nextAttemptAt)
      .where(sql`${t.status} in (${sql.raw(ACTIVE_STATUS_SQL_LIST)})`),
    // A tenant's backlog per priority lane, counted when its next order is placed (see 0009).
    index('orders_active_by_tenant_priority')
      .on(t.tenantId, t.priority)
      .where(sql`${t.status} in (${sql.raw(ACTIVE_STATUS_SQL_LIST)})`),
    index('orders_by_tenant_created').on(
      t.tenantId,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index('orders_by_created').on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index('orders_by_batch').on(t.renewalBatchId).where(sql`${t.renewalBatchId} is not null`),
    index('orders_domains_gin').using('gin', t.domains),
    // Console search: domain prefixes and "every name under" (LIKE on the joined names), see 0008.
    index('orders_domains_key_trgm').using('gin', t.domainsKey.op('gin_trgm_ops')),
    index('orders_by_status_created').on(t.status, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    check('orders_domains_count', sql`cardinality(${t.domains}) between 1 and 100`),
    check(
      'orders_issuing_has_apply_id',
      sql`${t.status} not in ('issuing', 'issued') or ${t.applyId} is not null`,
    ),
    check('orders_progress_range', sql`${t.progress} between 0 and 100`),
  ],
);

export const orderDns = pgTable(
  'order_dns',
  {
    orderId: uuid('order_id')
      .notNull()
      .references(() => orders.id, { onDelete: 'cascade' }),
    domain: text('domain').notNull(),
    host: text('host').notNull(),
    hostValue: text('host_value').notNull(),
    /** httpsok's last word on this domain (from `dv`). */
    valid: boolean('valid').notNull(),
    /** certq's own check (local DNS, CAA) */
    status: dnsStatus('status').notNull().default('pending'),
    /** What `<host>.<registered domain>` is a CNAME to now, or null. */
    found: text('found'),
    /** One sentence the tenant can act on. */
    reason: text('reason'),
    /** Last check of this domain, local or upstream. */
    checkedAt: timestamp('checked_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.orderId, t.domain] }),
    index('order_dns_not_ok_by_status').on(t.status).where(sql`${t.status} <> 'ok'`),
  ],
);

export const certificates = pgTable(
  'certificates',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id),
    /** Null for an uploaded certificate (as are applyId and ca). */
    orderId: uuid('order_id')
      .unique()
      .references(() => orders.id),
    domains: text('domains').array().notNull(),
    domainsKey: text('domains_key').notNull(),
    applyId: text('apply_id'),
    algorithm: algorithm('algorithm').notNull(),
    ca: certificateAuthority('ca'),
    notBefore: timestamp('not_before', { withTimezone: true }).notNull(),
    notAfter: timestamp('not_after', { withTimezone: true }).notNull(),
    fingerprint: text('fingerprint').notNull(),
    /** Leaf first, then intermediates, as the CA delivered them. */
    certificatePem: text('certificate_pem').notNull(),
    privateKeySealed: text('private_key_sealed').notNull(),
    /** The certificate to serve for this domain set; older ones stay as history. */
    isCurrent: boolean('is_current').notNull().default(true),
    /** Renewal backoff, persisted so a restart neither resets it nor fires every failing renewal at once. */
    renewalFailures: integer('renewal_failures').notNull().default(0),
    renewalNotBefore: timestamp('renewal_not_before', { withTimezone: true }),
    /**
     * When the renewal scan takes this certificate (@certq/core renewalTime, written with it). An insert
     * that gives none gets the lifetime rule's time from a trigger (migration 0011), hence the default.
     */
    renewAt: timestamp('renew_at', { withTimezone: true }).notNull().default(sql`null`),
    /** When the `certificate.expiring` webhook was recorded for this certificate: sent once. */
    expiringNotifiedAt: timestamp('expiring_notified_at', { withTimezone: true }),
    state: certificateState('state').notNull().default('active'),
    /** Set when it stopped being current for a reason other than a replacement (retiredReason says which). */
    retiredAt: timestamp('retired_at', { withTimezone: true }),
    retiredReason: text('retired_reason').$type<RetiredReason>(),
    /** The audit actor who retired it. */
    retiredBy: text('retired_by'),
    /** The first of an unbroken run of renewal DNS checks reading missing or wrong_target. */
    dnsLostSince: timestamp('dns_lost_since', { withTimezone: true }),
    movedAt: timestamp('moved_at', { withTimezone: true }),
    /** The DNS diagnosis that marked it moved. */
    movedDiagnosis: jsonb('moved_diagnosis'),
    createdAt: createdAt(),
  },
  (t) => [
    check(
      'certificates_retired_reason_known',
      sql`${t.retiredReason} is null or ${t.retiredReason} in ('retired', 'tenant_deleted', 'tenant_suspended', 'transferred')`,
    ),
    check(
      'certificates_issued_has_order',
      sql`${t.state} = 'uploaded' or (${t.orderId} is not null and ${t.applyId} is not null and ${t.ca} is not null)`,
    ),
    uniqueIndex('certificates_one_current_per_domain_set')
      .on(t.tenantId, t.domainsKey)
      .where(sql`${t.isCurrent}`),
    index('certificates_current_by_expiry').on(t.notAfter, t.id).where(sql`${t.isCurrent}`),
    index('certificates_current_by_renew_at').on(t.renewAt, t.id).where(sql`${t.isCurrent}`),
    index('certificates_by_tenant_created').on(
      t.tenantId,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index('certificates_current_by_created')
      .on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.isCurrent}`),
    index('certificates_history_by_expiry').on(t.notAfter, t.id).where(sql`not ${t.isCurrent}`),
    index('certificates_domains_gin').using('gin', t.domains),
    index('certificates_domains_key_trgm').using('gin', t.domainsKey.op('gin_trgm_ops')),
    index('certificates_current_by_tenant_expiry')
      .on(t.tenantId, t.notAfter, t.id)
      .where(sql`${t.isCurrent}`),
  ],
);

export const WEBHOOK_DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export const webhookDeliveryStatus = pgEnum('webhook_delivery_status', WEBHOOK_DELIVERY_STATUSES);

/**
 * The webhook outbox: one row per event for a tenant with a webhook URL, inserted in the same
 * transaction as the change that caused it, then delivered by BullMQ jobs (job id = row id) and
 * re-enqueued from here by the relay when Redis lost them. `failed` means given up after the last attempt.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id),
    /** The order behind the event, if any (certificate.expiring has none). */
    orderId: uuid('order_id'),
    event: text('event').notNull(),
    /** The JSON body sent, as stored; the signature covers the exact bytes sent. */
    payload: jsonb('payload').notNull(),
    status: webhookDeliveryStatus('status').notNull().default('pending'),
    /** POSTs made so far. */
    attempts: integer('attempts').notNull().default(0),
    lastStatusCode: integer('last_status_code'),
    lastError: text('last_error'),
    /** When the next POST is due (pending only); the relay re-enqueues from it. */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    createdAt: createdAt(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
  },
  (t) => [
    index('webhook_deliveries_pending_by_next_attempt')
      .on(t.nextAttemptAt, t.id)
      .where(sql`${t.status} = 'pending'`),
    index('webhook_deliveries_by_tenant_created').on(
      t.tenantId,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index('webhook_deliveries_settled_by_created').on(t.createdAt, t.id).where(sql`${t.status} <> 'pending'`),
  ],
);

/** What the API's delivery list and the worker's delivery job both read of a delivery. */
export const webhookDeliveryFields = {
  id: webhookDeliveries.id,
  tenantId: webhookDeliveries.tenantId,
  orderId: webhookDeliveries.orderId,
  event: webhookDeliveries.event,
  payload: webhookDeliveries.payload,
  status: webhookDeliveries.status,
  attempts: webhookDeliveries.attempts,
};

/** Append-only history of every order transition and notable event. */
export const orderEvents = pgTable(
  'order_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    orderId: uuid('order_id')
      .notNull()
      .references(() => orders.id, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    fromStatus: orderStatus('from_status'),
    toStatus: orderStatus('to_status'),
    detail: jsonb('detail'),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('order_events_by_order').on(t.orderId, t.id),
    index('order_events_by_at').on(t.at, t.id),
    index('order_events_terminal_by_at')
      .on(t.at, t.toStatus)
      .where(sql`${t.toStatus} in ('issued', 'failed')`),
  ],
);

export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    tenantId: uuid('tenant_id')
      .notNull()
      .references(() => tenants.id),
    key: text('key').notNull(),
    requestHash: text('request_hash').notNull(),
    orderId: uuid('order_id')
      .notNull()
      .references(() => orders.id),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.key] })],
);

/** Operator and tenant actions that change state (and private-key reads): who, from where, when. */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    tenantId: uuid('tenant_id'),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    subjectId: uuid('subject_id'),
    detail: jsonb('detail'),
    ip: text('ip'),
    requestId: text('request_id'),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('audit_log_by_subject').on(t.subjectId, t.id),
    index('audit_log_by_tenant').on(t.tenantId, t.id),
  ],
);

/**
 * Read-only credentials for TLS servers and agents (delivery routes only). `tenantIds` null: every
 * tenant. Use is counted in memory and written here at most every few seconds, never per handshake.
 */
export const edgeTokens = pgTable('edge_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  tenantIds: uuid('tenant_ids').array(),
  createdAt: createdAt(),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  useCount: bigint('use_count', { mode: 'number' }).notNull().default(0),
  /** Last contact, written at most once a minute per token (0014). */
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
});

/** The id the next change takes; its row lock serialises change-writers (see 0005_delivery.sql). */
export const certificateChangeCounter = pgTable(
  'certificate_change_counter',
  {
    onlyRow: boolean('only_row').primaryKey().default(true),
    lastId: bigint('last_id', { mode: 'number' }).notNull(),
  },
  () => [check('certificate_change_counter_one_row', sql`only_row`)],
);

/**
 * The change feed: one row each time a certificate becomes current or stops being current, written by
 * a trigger on `certificates`. Ids commit in order, so `id > cursor` never skips a change.
 */
export const certificateChanges = pgTable(
  'certificate_changes',
  {
    id: bigint('id', { mode: 'number' }).primaryKey(),
    certificateId: uuid('certificate_id').notNull(),
    tenantId: uuid('tenant_id').notNull(),
    domains: text('domains').array().notNull(),
    becameCurrent: boolean('became_current').notNull(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('certificate_changes_by_tenant').on(t.tenantId, t.id),
    // Named as Postgres named it in 0005_delivery.sql.
    foreignKey({
      name: 'certificate_changes_certificate_id_fkey',
      columns: [t.certificateId],
      foreignColumns: [certificates.id],
    }),
  ],
);

/**
 * Which tenant a name belongs to (0012_domain_ownership.sql): one row per name a tenant's order named
 * (`*.example.com` is its own name). `parent` is the name a one-label wildcard of it stands for
 * (`example.com` for both `a.example.com` and `*.example.com`): overlapping names share it. Written
 * by `certq_claim_domains` only; see packages/workflow/src/ownership.ts.
 */
export const domainClaims = pgTable(
  'domain_claims',
  {
    name: text('name').primaryKey(),
    parent: text('parent').notNull(),
    /** No foreign key (see 0012): claims are written only with an order of the same tenant. */
    tenantId: uuid('tenant_id').notNull(),
    /** How the tenant got it: `order`, `dns_proof` (a transfer), `operator` (an explicit transfer). */
    via: text('via').notNull().default('order'),
    claimedAt: timestamp('claimed_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('domain_claims_by_parent').on(t.parent)],
);

/** httpsok calls per minute by endpoint and reason, added up by the workers (see 0015_upstream_budget.sql). */
export const upstreamCalls = pgTable(
  'upstream_calls',
  {
    minute: timestamp('minute', { withTimezone: true }).notNull(),
    endpoint: text('endpoint').notNull(),
    reason: text('reason').notNull(),
    calls: bigint('calls', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ name: 'upstream_calls_pk', columns: [t.minute, t.endpoint, t.reason] })],
);

/** Certificates issued per minute: what upstream_calls is divided by. */
export const upstreamIssued = pgTable('upstream_issued', {
  minute: timestamp('minute', { withTimezone: true }).primaryKey(),
  issued: bigint('issued', { mode: 'number' }).notNull(),
});

export type Tenant = typeof tenants.$inferSelect;
export type DomainClaim = typeof domainClaims.$inferSelect;
export type EdgeToken = typeof edgeTokens.$inferSelect;
export type CertificateChange = typeof certificateChanges.$inferSelect;
export type Order = typeof orders.$inferSelect;
export type NewOrder = typeof orders.$inferInsert;
export type OrderDns = typeof orderDns.$inferSelect;
export type Certificate = typeof certificates.$inferSelect;
export type OrderEvent = typeof orderEvents.$inferSelect;
export type WebhookDelivery = typeof webhookDeliveries.$inferSelect;
export type RenewalBatch = typeof renewalBatches.$inferSelect;
