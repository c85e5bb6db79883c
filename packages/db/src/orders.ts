import { domainSetKey, PRIORITY } from '@certq/core';
import { and, eq, inArray, lt, sql } from 'drizzle-orm';
import type { Database, Queryable } from './client';
import { idempotencyKeys, type Order, orders } from './schema';

export interface OrderRequest {
  tenantId: string;
  domains: string[];
  algorithm?: 'ECC' | 'RSA';
  ca?: 'google' | 'letsencrypt' | 'zerossl';
  kind?: 'new' | 'renewal';
  renewalOfCertificateId?: string;
  renewalBatchId?: string;
  /** BullMQ priority, lower first; default by kind (new before renewal). */
  priority?: number;
  /** When the first job may run (renewals are spread out a little); default now. */
  notBefore?: Date;
}

export interface InsertOrdersResult {
  /** One entry per request, in request order. */
  orders: { order: Order; created: boolean }[];
}

const BATCH = 1000;

/**
 * Inserts orders in batches. A tenant may have only one active order per domain set (a partial unique
 * index): a request for a set that already has one gets that order back with `created: false`
 * instead of failing the whole batch. Call inside a transaction for all-or-nothing.
 */
export async function insertOrders(
  db: Queryable,
  requests: readonly OrderRequest[],
): Promise<InsertOrdersResult> {
  const result: { order: Order; created: boolean }[] = [];
  for (let start = 0; start < requests.length; start += BATCH) {
    const chunk = requests.slice(start, start + BATCH);
    // Two requests in one chunk for the same tenant and set: the first wins, the second gets it back.
    const rows = chunk.map((r) => ({
      tenantId: r.tenantId,
      domains: r.domains,
      domainsKey: domainSetKey(r.domains),
      algorithm: r.algorithm ?? 'ECC',
      ca: r.ca ?? 'google',
      kind: r.kind ?? 'new',
      priority: r.priority ?? PRIORITY[r.kind ?? 'new'],
      renewalOfCertificateId: r.renewalOfCertificateId ?? null,
      renewalBatchId: r.renewalBatchId ?? null,
      nextAttemptAt: r.notBefore ?? sql`now()`,
    }));
    const inserted = await db
      .insert(orders)
      .values(rows)
      .onConflictDoNothing({
        target: [orders.tenantId, orders.domainsKey],
        where: sql`${orders.status} in ('verifying', 'applying', 'issuing')`,
      })
      .returning();
    const key = (tenantId: string, domainsKey: string) => `${tenantId}|${domainsKey}`;
    const fresh = new Map(inserted.map((o) => [key(o.tenantId, o.domainsKey), o]));
    const missing = rows.filter((r) => !fresh.has(key(r.tenantId, r.domainsKey)));
    const existing = new Map<string, Order>();
    if (missing.length) {
      const found = await db
        .select()
        .from(orders)
        .where(
          and(
            inArray(orders.domainsKey, [...new Set(missing.map((r) => r.domainsKey))]),
            inArray(orders.tenantId, [...new Set(missing.map((r) => r.tenantId))]),
            sql`${orders.status} in ('verifying', 'applying', 'issuing')`,
          ),
        );
      for (const o of found) existing.set(key(o.tenantId, o.domainsKey), o);
    }
    const claimed = new Set<string>();
    for (const row of rows) {
      const k = key(row.tenantId, row.domainsKey);
      const mine = fresh.get(k);
      if (mine && !claimed.has(k)) {
        claimed.add(k);
        result.push({ order: mine, created: true });
        continue;
      }
      const other = existing.get(k) ?? mine;
      if (!other) throw new Error(`active order for ${row.domainsKey} vanished while inserting`);
      result.push({ order: other, created: false });
    }
  }
  return { orders: result };
}

export async function getOrder(db: Queryable, orderId: string): Promise<Order | undefined> {
  const rows = await db.select().from(orders).where(eq(orders.id, orderId));
  return rows[0];
}

const findOrderStatements = new WeakMap<object, ReturnType<typeof prepareFindOrder>>();

function prepareFindOrder(db: Database) {
  return db
    .select()
    .from(orders)
    .where(eq(orders.id, sql.placeholder('id')))
    .prepare('certq_find_order');
}

/** One order by id through a prepared statement (the worker's hottest read); getOrder on a transaction. */
export async function findOrder(db: Queryable, orderId: string): Promise<Order | undefined> {
  if (!('transaction' in db) || 'rollback' in db) return getOrder(db, orderId);
  let statement = findOrderStatements.get(db);
  if (!statement) {
    statement = prepareFindOrder(db as Database);
    findOrderStatements.set(db, statement);
  }
  const rows = await statement.execute({ id: orderId });
  return rows[0];
}

/** Idempotency keys are honoured for a day (as Stripe does); older ones are deleted by the worker's maintenance job. */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 3600_000;

export async function purgeIdempotencyKeys(db: Queryable, now: Date): Promise<number> {
  const deleted = await db
    .delete(idempotencyKeys)
    .where(lt(idempotencyKeys.createdAt, new Date(now.getTime() - IDEMPOTENCY_KEY_TTL_MS)))
    .returning({ key: idempotencyKeys.key });
  return deleted.length;
}
