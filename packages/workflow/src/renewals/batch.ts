import { ACTIVE_STATUSES } from '@certq/core';
import {
  type Database,
  insertOrders,
  type Order,
  type OrderRequest,
  orders,
  renewalBatches,
} from '@certq/db';
import { and, asc, count, eq, gt, inArray, type SQL, sql } from 'drizzle-orm';
import { enqueueOrders, type Queues } from '../queues';
import {
  HAS_ACTIVE_ORDER,
  RENEWABLE_ON_REQUEST,
  RENEWAL_CANDIDATE_COLUMNS,
  RENEWAL_CANDIDATES_FROM,
  type RenewalCandidate,
  renewalRequest,
} from './candidates';
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

/** The selection as conditions on `certificates c` (all of them apply). */
function selectionConditions(selection: RenewalSelection, now: Date): SQL {
  const conditions: SQL[] = [RENEWABLE_ON_REQUEST];
  if (selection.tenantIds) conditions.push(sql`c.tenant_id = any(${sql.param(selection.tenantIds)}::uuid[])`);
  if (selection.domains) conditions.push(sql`c.domains && ${sql.param(selection.domains)}::text[]`);
  if (selection.certificateIds)
    conditions.push(sql`c.id = any(${sql.param(selection.certificateIds)}::uuid[])`);
  if (selection.expiringWithinDays !== undefined) {
    const until = new Date(now.getTime() + selection.expiringWithinDays * 86_400_000);
    conditions.push(sql`c.not_after <= ${until.toISOString()}::timestamptz`);
  }
  return sql.join(conditions, sql` and `);
}

/**
 * A manual renewal (POST /v1/renewals): records a renewal_batches row, then gives every matching
 * renewable certificate without an active order a renewal order (`manual`, renewalRequest) tagged with
 * the batch — in the renewal lane, interleaved by tenant as the scanner's (see insertOrders), first runs
 * spread at the upstream rate; the certificate's renewal time and backoff are ignored (someone asked).
 * All in one transaction, paging through the certificates by id so memory stays flat; the orders are
 * enqueued page by page after the commit.
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
  const selected = selectionConditions(request.selection, now);
  await freshenOrderStatistics(db);
  const result = await db.transaction(async (tx) => {
    const [batch] = await tx
      .insert(renewalBatches)
      .values({
        requestedByTenantId: request.requestedByTenantId,
        filter: request.selection,
      })
      .returning({ id: renewalBatches.id });
    const counted = await tx.execute<{ n: number }>(
      sql`select count(*)::int as n from certificates c where ${selected} and not ${HAS_ACTIVE_ORDER}`,
    );
    const matching = counted.rows[0]?.n ?? 0;
    let enqueued = 0;
    let skipped = 0;
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await tx.execute<RenewalCandidate & { busy: boolean }>(sql`
        select ${RENEWAL_CANDIDATE_COLUMNS}, ${HAS_ACTIVE_ORDER} as busy
        from ${RENEWAL_CANDIDATES_FROM}
        where ${selected} ${after ? sql`and c.id > ${after}::uuid` : sql``}
        order by c.id limit ${batchSize}`);
      if (page.rows.length === 0) break;
      after = page.rows[page.rows.length - 1]!.id;
      const free = page.rows.filter((c) => !c.busy);
      skipped += page.rows.length - free.length;
      const requests: OrderRequest[] = free.map((c) =>
        renewalRequest(c, {
          reason: 'manual',
          batchId: batch!.id,
          notBefore: spreadNotBefore(now, matching, request.maxRps, random),
        }),
      );
      if (requests.length) {
        const inserted = await insertOrders(tx, requests);
        const created = inserted.orders.filter((o) => o.created).length;
        enqueued += created;
        skipped += requests.length - created;
      }
      if (page.rows.length < batchSize) break;
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
