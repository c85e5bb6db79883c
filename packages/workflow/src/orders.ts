import { createHash } from 'node:crypto';
import { domainSetKey, isActive } from '@certq/core';
import {
  claimDomains,
  type Database,
  DomainOwnedError,
  idempotencyKeys,
  insertOrders,
  insertOrderWithKey,
  isActiveOrder,
  lockOrder,
  type Order,
  OrderInsertRaceError,
  type OrderRequest,
  orders,
  startRun,
  type Transaction,
  tenants,
  transitionOrder,
  violatedConstraint,
} from '@certq/db';
import { and, eq, inArray } from 'drizzle-orm';
import { suspendedError } from './certificate-life';
import { type EnqueueLogger, enqueueSafely } from './enqueue';
import { WorkflowError } from './errors';
import {
  enqueueWebhookJobs,
  type OwnershipProofs,
  ownedByAnotherTenant,
  provenNames,
  type TransferActor,
  transferClaims,
} from './ownership';
import type { Queues } from './queues';

/** What order operations need: the database, the queues, and how long to wait for Redis. */
export interface OrderDeps {
  db: Database;
  queues: Queues;
  /** How long a request waits for Redis to take its jobs before answering anyway (default 2000). */
  enqueueTimeoutMs?: number;
  /** How a tenant proves a name another tenant holds (without it, such an order is simply refused). */
  ownership?: OwnershipProofs;
}

/** Who places the order, for the audit row of a transfer its proof causes. */
export interface OrderOptions {
  log?: EnqueueLogger;
  by?: TransferActor;
}

/** The order created, or the one that already stood for this request (active for the set, or a replay). */
export type CreateOrderResult = { created: true; order: Order } | { created: false; orderId: string };

/** 1–255 printable ASCII characters, as Stripe's idempotency keys. */
const IDEMPOTENCY_KEY = /^[!-~]{1,255}$/;
const ATTEMPTS = 3;

/**
 * One order: stored (with its idempotency row, if a key is given, in the same statement), then
 * queued. A tenant that already has an active order for the same domain set gets that order back.
 */
export async function createOrder(
  deps: OrderDeps,
  request: OrderRequest,
  options: OrderOptions & { idempotencyKey?: string; checkTenant?: boolean } = {},
): Promise<CreateOrderResult> {
  const key = options.idempotencyKey;
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
    throw new WorkflowError(
      'invalid_idempotency_key',
      'Idempotency-Key: must be 1–255 printable ASCII characters',
    );
  if (options.checkTenant) await assertTenantsExist(deps.db, [request]);
  const place = (before?: (tx: Transaction) => Promise<void>) =>
    key
      ? createWithKey(deps.db, request, key, before)
      : before
        ? deps.db.transaction(async (tx) => {
            await before(tx);
            return (await insertOrders(tx, [request])).orders[0]!;
          })
        : retryRace(async () => (await insertOrders(deps.db, [request])).orders[0]!);
  let result: KeyedResult;
  try {
    result = await place();
  } catch (error) {
    if (!(error instanceof DomainOwnedError)) throw error;
    const outbox: string[] = [];
    result = await placeByProof(deps, [request], error.names, options.by, outbox, (transfer) =>
      place(transfer),
    );
    await enqueueWebhookJobs(deps.queues, outbox);
  }
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
  options: OrderOptions & { checkTenants?: boolean } = {},
): Promise<{ order: Order; created: boolean }[]> {
  if (options.checkTenants) await assertTenantsExist(deps.db, requests);
  const bulk = requests.map((r): OrderRequest => ({ lane: 'bulk', ...r }));
  const place = (before?: (tx: Transaction) => Promise<void>) =>
    retryRace(() =>
      deps.db.transaction(async (tx) => {
        await before?.(tx);
        return insertOrders(tx, bulk);
      }),
    );
  let result: Awaited<ReturnType<typeof place>>;
  try {
    result = await place();
  } catch (error) {
    if (!(error instanceof DomainOwnedError)) throw error;
    const outbox: string[] = [];
    result = await placeByProof(deps, bulk, error.names, options.by, outbox, place);
    await enqueueWebhookJobs(deps.queues, outbox);
  }
  const created = result.orders.filter((r) => r.created).map((r) => r.order);
  await enqueueSafely(deps.queues, created, deps.enqueueTimeoutMs, options.log);
  return result.orders;
}

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

/**
 * A failed order starts again from verifying as a new run (`run` + 1, fresh job ids, no
 * application id), unless another active order now covers its domain set.
 */
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
      // Its names may have gone to another tenant meanwhile: a new run needs them back.
      await claimDomains(tx, order.tenantId, order.domains).catch((error: unknown) => {
        throw error instanceof DomainOwnedError
          ? ownedByAnotherTenant(deps.ownership, order.tenantId, error.names)
          : error;
      });
      return startRun(tx, order, {
        why: 'retried',
        to: 'verifying',
        at: new Date(),
        // A new run starts again from the first CA of the order's list.
        set: { ca: order.caChoices?.[0] ?? order.ca, caFailures: [] },
        detail: { by: options.actor },
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
 * The requests were refused because another tenant uses `refused` names: each requesting tenant's
 * ownership records for its names among them are looked up, and when every one is in place the
 * requests are placed again in one transaction that first transfers the names (transferClaims). Else
 * 409 domain_owned_by_another_tenant, naming the first request concerned and the records it lacks.
 */
async function placeByProof<T>(
  deps: OrderDeps,
  requests: readonly OrderRequest[],
  refused: readonly string[],
  by: TransferActor | undefined,
  outbox: string[],
  place: (before: (tx: Transaction) => Promise<void>) => Promise<T>,
): Promise<T> {
  const wanted = new Set(refused);
  const byTenant = new Map<string, Set<string>>();
  for (const r of requests) {
    for (const d of r.domains) {
      if (!wanted.has(d)) continue;
      const names = byTenant.get(r.tenantId) ?? new Set<string>();
      byTenant.set(r.tenantId, names);
      names.add(d);
    }
  }
  const proven = new Map<string, string[]>();
  for (const [tenantId, names] of byTenant) {
    const found = deps.ownership ? await provenNames(deps.ownership, tenantId, [...names]) : [];
    const missing = [...names].filter((n) => !found.includes(n));
    if (missing.length > 0) {
      const index = requests.findIndex(
        (r) => r.tenantId === tenantId && r.domains.some((d) => missing.includes(d)),
      );
      throw ownedByAnotherTenant(deps.ownership, tenantId, missing, requests.length > 1 ? { index } : {});
    }
    proven.set(tenantId, found);
  }
  try {
    return await place(async (tx) => {
      outbox.length = 0;
      for (const [tenantId, take] of proven) {
        const names = [...new Set(requests.filter((r) => r.tenantId === tenantId).flatMap((r) => r.domains))];
        const transfer = await transferClaims(tx, {
          tenantId,
          names,
          take,
          via: 'dns_proof',
          by: by ?? { actor: `tenant:${tenantId}` },
          reason: 'the ownership record was found in DNS',
        });
        outbox.push(...transfer.webhookDeliveryIds);
      }
    });
  } catch (error) {
    // Something else another tenant uses turned up meanwhile: refused like the first time.
    if (error instanceof DomainOwnedError) {
      const tenantId = requests.find((r) => r.domains.some((d) => error.names.includes(d)))?.tenantId;
      if (tenantId) throw ownedByAnotherTenant(deps.ownership, tenantId, error.names);
    }
    throw error;
  }
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

function requestHashOf(request: OrderRequest): string {
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
 * One order under an Idempotency-Key: the key's row and the order in one statement (insertOrderWithKey),
 * as fast as a plain POST; a key already taken is read back: same body, the same order; another body, 409.
 * With `before` (a transfer of names the request proved) both run in one transaction with it.
 */
async function createWithKey(
  db: Database,
  request: OrderRequest,
  key: string,
  before?: (tx: Transaction) => Promise<void>,
): Promise<KeyedResult> {
  const requestHash = requestHashOf(request);
  const insert = (q: Database | Transaction) => insertOrderWithKey(q, request, { key, requestHash });
  for (let attempt = 1; ; attempt++) {
    try {
      const result = before
        ? await db.transaction(async (tx) => {
            await before(tx);
            return insert(tx);
          })
        : await insert(db);
      if (result.claimed && result.created) return { order: result.order, created: true };
      if (result.claimed) return { replayOf: result.orderId };
      const [existing] = await db
        .select({ orderId: idempotencyKeys.orderId, requestHash: idempotencyKeys.requestHash })
        .from(idempotencyKeys)
        .where(and(eq(idempotencyKeys.tenantId, request.tenantId), eq(idempotencyKeys.key, key)));
      // Taken, then purged before we looked (a day-old key): claim it again.
      if (!existing) throw new KeyVanished();
      if (existing.requestHash !== requestHash)
        throw new WorkflowError(
          'idempotency_key_reused',
          'this Idempotency-Key was already used with a different request body',
        );
      return { replayOf: existing.orderId };
    } catch (error) {
      // Another order took the set between the key's claim and the insert (the key's foreign key refused
      // the statement, nothing was written), or the key vanished: the whole request is tried again.
      const retryable =
        error instanceof KeyVanished ||
        violatedConstraint(error) === 'idempotency_keys_order_id_orders_id_fk';
      if (attempt < ATTEMPTS && retryable) continue;
      throw error;
    }
  }
}

class KeyVanished extends Error {}
