import { createHash } from 'node:crypto';
import { domainSetKey, isActive } from '@certq/core';
import {
  type Database,
  enterStage,
  idempotencyKeys,
  insertOrders,
  isActiveOrder,
  lockOrder,
  type Order,
  OrderInsertRaceError,
  type OrderRequest,
  orders,
  type Transaction,
  tenants,
  transitionOrder,
  violatedConstraint,
} from '@certq/db';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { suspendedError } from './certificate-life';
import { type EnqueueLogger, enqueueSafely } from './enqueue';
import { WorkflowError } from './errors';
import type { Queues } from './queues';

/** What order operations need: the database, the queues, and how long to wait for Redis. */
export interface OrderDeps {
  db: Database;
  queues: Queues;
  /** How long a request waits for Redis to take its jobs before answering anyway (default 2000). */
  enqueueTimeoutMs?: number;
}

/** The order created, or the one that already stood for this request (active for the set, or a replay). */
export type CreateOrderResult = { created: true; order: Order } | { created: false; orderId: string };

/** 1–255 printable ASCII characters, as Stripe's idempotency keys. */
const IDEMPOTENCY_KEY = /^[!-~]{1,255}$/;
const ATTEMPTS = 3;

/**
 * One order: stored (with its idempotency row, if a key is given, in the same transaction), then
 * queued. A tenant that already has an active order for the same domain set gets that order back.
 */
export async function createOrder(
  deps: OrderDeps,
  request: OrderRequest,
  options: { idempotencyKey?: string; checkTenant?: boolean; log?: EnqueueLogger } = {},
): Promise<CreateOrderResult> {
  const key = options.idempotencyKey;
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
    throw new WorkflowError(
      'invalid_idempotency_key',
      'Idempotency-Key: must be 1–255 printable ASCII characters',
    );
  if (options.checkTenant) await assertTenantsExist(deps.db, [request]);
  const result = key
    ? await createWithKey(deps.db, request, key)
    : await retryRace(async () => (await insertOrders(deps.db, [request])).orders[0]!);
  if ('replayOf' in result) return { created: false, orderId: result.replayOf };
  if (!result.created) return { created: false, orderId: result.order.id };
  await enqueueSafely(deps.queues, [result.order], deps.enqueueTimeoutMs, options.log);
  return { created: true, order: result.order };
}

/**
 * Many orders, all-or-nothing in one transaction, then queued in the bulk lane (after every single
 * order, before renewals). Each request whose domain set already has an active order of its tenant
 * gets that order (`created: false`).
 */
export async function createOrders(
  deps: OrderDeps,
  requests: readonly OrderRequest[],
  options: { checkTenants?: boolean; log?: EnqueueLogger } = {},
): Promise<{ order: Order; created: boolean }[]> {
  if (options.checkTenants) await assertTenantsExist(deps.db, requests);
  const bulk = requests.map((r): OrderRequest => ({ lane: 'bulk', ...r }));
  const result = await retryRace(() => deps.db.transaction((tx) => insertOrders(tx, bulk)));
  const created = result.orders.filter((r) => r.created).map((r) => r.order);
  await enqueueSafely(deps.queues, created, deps.enqueueTimeoutMs, options.log);
  return result.orders;
}

/**
 * A failed order starts again from verifying as a new run (`attempts` + 1, fresh job ids, no
 * application id), unless another active order now covers its domain set.
 */
/**
 * Locks an order the caller may act on: one of `tenantScope`'s when given. Another tenant's order is
 * not_found, as an unknown id is, so a tenant cannot learn which ids exist.
 */
export async function lockOwnedOrder(tx: Transaction, orderId: string, tenantScope?: string): Promise<Order> {
  const order = await lockOrder(tx, orderId);
  if (!order || (tenantScope && order.tenantId !== tenantScope))
    throw new WorkflowError('not_found', 'order not found');
  return order;
}

export async function retryOrder(
  deps: OrderDeps,
  orderId: string,
  options: { tenantScope?: string; actor: string; log?: EnqueueLogger },
): Promise<Order> {
  let updated: Order;
  try {
    updated = await deps.db.transaction(async (tx) => {
      const order = await lockOwnedOrder(tx, orderId, options.tenantScope);
      if (order.status !== 'failed')
        throw new WorkflowError(
          'not_retryable',
          `only a failed order can be retried; this one is ${order.status}`,
        );
      return transitionOrder(tx, {
        order,
        to: 'verifying',
        set: {
          ...enterStage(new Date()),
          attempts: order.attempts + 1,
          applyId: null,
          lastPolledAt: null,
          progress: 0,
          callbackSecretHash: null,
          // A new run starts again from the first CA of the order's list.
          ca: order.caChoices?.[0] ?? order.ca,
          caFailures: [],
        },
        event: { type: 'retried', detail: { previousApplyId: order.applyId, by: options.actor } },
      });
    });
  } catch (error) {
    if (violatedConstraint(error) !== 'orders_one_active_per_domain_set') throw error;
    const [failed] = await deps.db.select().from(orders).where(eq(orders.id, orderId));
    const [active] = failed
      ? await deps.db
          .select({ id: orders.id })
          .from(orders)
          .where(
            and(
              eq(orders.tenantId, failed.tenantId),
              eq(orders.domainsKey, failed.domainsKey),
              isActiveOrder,
            ),
          )
      : [];
    throw new WorkflowError('conflict', 'another active order already covers this domain set', {
      activeOrderId: active?.id ?? null,
    });
  }
  await enqueueSafely(deps.queues, [updated], deps.enqueueTimeoutMs, options.log);
  return updated;
}

/**
 * An active order becomes cancelled. Its queued job stays: the worker finds the order cancelled and
 * lets the job go.
 */
export async function cancelOrder(
  deps: Pick<OrderDeps, 'db'>,
  orderId: string,
  options: { tenantScope?: string; actor: string },
): Promise<Order> {
  return deps.db.transaction(async (tx) => {
    const order = await lockOwnedOrder(tx, orderId, options.tenantScope);
    if (!isActive(order.status))
      throw new WorkflowError('not_cancellable', `the order already ended (${order.status})`);
    return transitionOrder(tx, {
      order,
      to: 'cancelled',
      event: { type: 'cancelled', detail: { by: options.actor } },
    });
  });
}

/**
 * Throws `unknown_tenant` naming the first request (by `details.index`) whose tenant does not exist,
 * `tenant_suspended` when one of them is suspended (or deleted).
 */
export async function assertTenantsExist(db: Database, requests: readonly Pick<OrderRequest, 'tenantId'>[]) {
  const ids = [...new Set(requests.map((r) => r.tenantId))];
  const rows = await db
    .select({ id: tenants.id, suspendedAt: tenants.suspendedAt, deletedAt: tenants.deletedAt })
    .from(tenants)
    .where(inArray(tenants.id, ids));
  const suspended = rows.find((t) => t.suspendedAt);
  if (suspended) throw suspendedError(suspended);
  const found = new Set(rows.map((t) => t.id));
  const index = requests.findIndex((r) => !found.has(r.tenantId));
  if (index >= 0)
    throw new WorkflowError('unknown_tenant', `unknown tenant ${requests[index]!.tenantId}`, {
      index,
      tenantId: requests[index]!.tenantId,
    });
}

function requestHash(request: OrderRequest): string {
  const canonical = JSON.stringify({
    tenantId: request.tenantId,
    domains: domainSetKey(request.domains),
    algorithm: request.algorithm ?? 'ECC',
    ca: request.ca ?? 'google',
  });
  return createHash('sha256').update(canonical).digest('hex');
}

/** A conflicting order kept changing under the insert: the whole request is tried again. */
async function retryRace<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= ATTEMPTS || !(error instanceof OrderInsertRaceError)) throw error;
    }
  }
}

type KeyedResult = { order: Order; created: boolean } | { replayOf: string };

/**
 * One order under an Idempotency-Key, in one transaction with the key's row. A transaction-scoped
 * advisory lock on (tenant, key) serialises concurrent requests with the same key, so the second
 * waits for the first to commit and then finds its row: one order, never two.
 */
async function createWithKey(db: Database, request: OrderRequest, key: string): Promise<KeyedResult> {
  const hash = requestHash(request);
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(async (tx) => {
        await tx.execute(
          sql`select pg_advisory_xact_lock(hashtextextended(${`certq:idempotency:${request.tenantId}:${key}`}, 0))`,
        );
        const [existing] = await tx
          .select()
          .from(idempotencyKeys)
          .where(and(eq(idempotencyKeys.tenantId, request.tenantId), eq(idempotencyKeys.key, key)));
        if (existing) {
          if (existing.requestHash !== hash)
            throw new WorkflowError(
              'idempotency_key_reused',
              'this Idempotency-Key was already used with a different request body',
            );
          return { replayOf: existing.orderId };
        }
        const [result] = (await insertOrders(tx, [request])).orders;
        await tx
          .insert(idempotencyKeys)
          .values({ tenantId: request.tenantId, key, requestHash: hash, orderId: result!.order.id });
        return result!;
      });
    } catch (error) {
      // Belt and braces: should anything bypass the lock, the primary key still refuses a second
      // row; the whole request (order included) rolled back, so trying again finds the winner's row.
      const retryable =
        violatedConstraint(error) === 'idempotency_keys_tenant_id_key_pk' ||
        error instanceof OrderInsertRaceError;
      if (attempt < ATTEMPTS && retryable) continue;
      throw error;
    }
  }
}
