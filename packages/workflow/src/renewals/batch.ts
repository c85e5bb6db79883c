import { ACTIVE_STATUS_SQL_LIST, ACTIVE_STATUSES } from '@certq/core';
import {
  certificates,
  type Database,
  insertOrders,
  type Order,
  type OrderRequest,
  orders,
  renewableOnRequest,
  renewalBatches,
} from '@certq/db';
import { and, arrayOverlaps, asc, count, eq, gt, inArray, lte, type SQL, sql } from 'drizzle-orm';
import { enqueueOrders, type Queues } from '../queues';
import { spreadNotBefore } from './spread';
import { freshenOrderStatistics, freshenStatisticsAfter } from './statistics';

/** Which current certificates a manual renewal covers; all given filters apply (AND). */
export interface RenewalSelection {
  tenantIds?: string[];
  /** Certificates containing any of these (already normalised) domains. */
  domains?: string[];
  /** Certificates whose notAfter is within this many days (expired ones included). */
  expiringWithinDays?: number;
  /** Only these certificates (the console's "renew now" on one order or a filtered set). */
  certificateIds?: string[];
}

export interface RenewalRequest {
  selection: RenewalSelection;
  /** The tenant that asked (its own certificates only), or null for the operator. */
  requestedByTenantId: string | null;
  now?: Date;
  /** Upstream requests per second, for spreading the first runs (UPSTREAM_MAX_RPS). */
  maxRps: number;
  random?: () => number;
  /** Certificates read and orders inserted per round trip (default 1000). */
  batchSize?: number;
  /** Puts committed orders on their queues (default enqueueOrders); one call per page. */
  enqueue?: (orders: Order[]) => Promise<unknown>;
}

export interface RenewalBatchResult {
  batchId: string;
  /** Renewal orders created and enqueued. */
  enqueued: number;
  /** Matching certificates that already had an active order (of any kind) for their domain set. */
  skipped: number;
}

function selectionConditions(selection: RenewalSelection, now: Date): SQL[] {
  const conditions: SQL[] = [eq(certificates.isCurrent, true), renewableOnRequest('"certificates"')];
  if (selection.tenantIds) conditions.push(inArray(certificates.tenantId, selection.tenantIds));
  if (selection.domains) conditions.push(arrayOverlaps(certificates.domains, selection.domains));
  if (selection.certificateIds) conditions.push(inArray(certificates.id, selection.certificateIds));
  if (selection.expiringWithinDays !== undefined)
    conditions.push(
      lte(certificates.notAfter, new Date(now.getTime() + selection.expiringWithinDays * 86_400_000)),
    );
  return conditions;
}

/**
 * The certificate has an active order for its domain set. The outer columns are spelled out: drizzle
 * renders `${certificates.tenantId}` unqualified in a single-table query, and inside this subquery an
 * unqualified `tenant_id` would mean the order's own column.
 */
const activeOrderExists = sql<boolean>`exists (
  select 1 from orders o where o.tenant_id = "certificates"."tenant_id" and o.domains_key = "certificates"."domains_key"
    and o.status in (${sql.raw(ACTIVE_STATUS_SQL_LIST)}))`;

/**
 * A manual renewal (POST /v1/renewals): records a renewal_batches row, then gives every matching
 * current certificate without an active order a renewal order tagged with the batch — in the renewal
 * lane, interleaved by tenant as the scanner's (see insertOrders), first runs spread at the upstream
 * rate; the certificate's renewal backoff is ignored (someone asked). All in one transaction, paging
 * through the certificates by id so memory stays flat; the orders are enqueued page by page after the
 * commit.
 * Asking again while those orders run creates nothing: they are active, so their certificates are skipped.
 */
export async function requestRenewals(
  db: Database,
  queues: Queues,
  request: RenewalRequest,
): Promise<RenewalBatchResult> {
  const now = request.now ?? new Date();
  const random = request.random ?? Math.random;
  const batchSize = request.batchSize ?? 1000;
  const conditions = selectionConditions(request.selection, now);
  await freshenOrderStatistics(db);
  const result = await db.transaction(async (tx) => {
    const [batch] = await tx
      .insert(renewalBatches)
      .values({
        requestedByTenantId: request.requestedByTenantId,
        filter: request.selection,
      })
      .returning({ id: renewalBatches.id });
    const [{ n: matching } = { n: 0 }] = await tx
      .select({ n: count() })
      .from(certificates)
      .where(and(...conditions, sql`not ${activeOrderExists}`));
    let enqueued = 0;
    let skipped = 0;
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await tx
        .select({
          id: certificates.id,
          tenantId: certificates.tenantId,
          domains: certificates.domains,
          algorithm: certificates.algorithm,
          ca: certificates.ca,
          busy: activeOrderExists,
        })
        .from(certificates)
        .where(and(...conditions, after ? gt(certificates.id, after) : undefined))
        .orderBy(asc(certificates.id))
        .limit(batchSize);
      if (page.length === 0) break;
      after = page[page.length - 1]!.id;
      const free = page.filter((c) => !c.busy);
      skipped += page.length - free.length;
      const requests: OrderRequest[] = free.map((c) => ({
        tenantId: c.tenantId,
        domains: c.domains,
        algorithm: c.algorithm,
        ca: c.ca ?? undefined,
        kind: 'renewal',
        renewalOfCertificateId: c.id,
        renewalBatchId: batch!.id,
        notBefore: spreadNotBefore(now, matching, request.maxRps, random),
      }));
      if (requests.length) {
        const inserted = await insertOrders(tx, requests);
        const created = inserted.orders.filter((o) => o.created).length;
        enqueued += created;
        skipped += requests.length - created;
      }
      if (page.length < batchSize) break;
      // Statistics that still say "few active orders" make the per-certificate check quadratic (see
      // scanner.ts); inside this transaction ANALYZE also counts the orders inserted so far.
      if (freshenStatisticsAfter(++pages)) await freshenOrderStatistics(tx);
    }
    await tx.update(renewalBatches).set({ total: enqueued }).where(eq(renewalBatches.id, batch!.id));
    return { batchId: batch!.id, enqueued, skipped };
  });
  await enqueueBatch(db, result.batchId, request.enqueue ?? ((list) => enqueueOrders(queues, list, now)));
  return result;
}

/** Enqueues the batch's active orders, a page at a time (keyset on id, orders_by_batch index). */
async function enqueueBatch(db: Database, batchId: string, enqueue: (orders: Order[]) => Promise<unknown>) {
  let after: string | undefined;
  for (;;) {
    const page = await db
      .select()
      .from(orders)
      .where(
        and(
          eq(orders.renewalBatchId, batchId),
          inArray(orders.status, [...ACTIVE_STATUSES]),
          after ? gt(orders.id, after) : undefined,
        ),
      )
      .orderBy(asc(orders.id))
      .limit(1000);
    if (page.length === 0) return;
    after = page[page.length - 1]!.id;
    await enqueue(page);
    if (page.length < 1000) return;
  }
}

export interface RenewalBatchProgress {
  batchId: string;
  requestedByTenantId: string | null;
  /** Renewal orders the batch created. */
  total: number;
  issued: number;
  failed: number;
  cancelled: number;
  inFlight: number;
  createdAt: Date;
}

/** A batch's progress from its orders' statuses; undefined when unknown. */
export async function getRenewalBatch(
  db: Database,
  batchId: string,
): Promise<RenewalBatchProgress | undefined> {
  const [batch] = await db.select().from(renewalBatches).where(eq(renewalBatches.id, batchId));
  if (!batch) return undefined;
  const rows = await db
    .select({ status: orders.status, n: count() })
    .from(orders)
    .where(eq(orders.renewalBatchId, batchId))
    .groupBy(orders.status);
  const by = (status: Order['status']) => rows.find((r) => r.status === status)?.n ?? 0;
  return {
    batchId: batch.id,
    requestedByTenantId: batch.requestedByTenantId,
    total: batch.total,
    issued: by('issued'),
    failed: by('failed'),
    cancelled: by('cancelled'),
    inFlight: by('verifying') + by('applying') + by('issuing'),
    createdAt: batch.createdAt,
  };
}
