import { createHash } from 'node:crypto';
import { domainSetKey, isActive, normalizeDomain, normalizeDomainList, ORDER_STATUSES } from '@certq/core';
import {
  type Database,
  idempotencyKeys,
  insertOrders,
  lockOrder,
  type Order,
  type OrderRequest,
  orderDns,
  orders,
  tenants,
  transitionOrder,
  violatedConstraint,
} from '@certq/db';
import { and, arrayContains, desc, eq, inArray, type SQL, sql } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { insertNewOrdersFast } from '../../bulk-insert';
import type { RouteOptions } from '../../deps';
import { enqueueSafely } from '../../enqueue';
import {
  afterCursor,
  CursorSchema,
  cursorTimestamp,
  decodeCursor,
  LimitSchema,
  page,
} from '../../pagination';
import { actorOf, type Principal, principalOf, tenantScope } from '../../plugins/auth';
import { ApiError, badRequest, errorResponses, notFound } from '../../plugins/errors';
import { AlgorithmSchema, CaSchema, IdParams, Timestamp } from '../../schemas';

// ─── schemas ──────────────────────────────────────────────────────────────────────────────────────

/** Raw entries are capped at 1000 (duplicates allowed) so normalisation work stays bounded. */
export const DomainListSchema = z
  .array(z.string().max(1000))
  .min(1)
  .max(1000)
  .transform((list, ctx) => {
    const result = normalizeDomainList(list);
    if (!result.ok) {
      ctx.addIssue({
        code: 'custom',
        message: result.reason,
        path: result.index === undefined ? [] : [result.index],
        input: list,
      });
      return z.NEVER;
    }
    return result.domains;
  })
  .describe(
    '1–100 distinct domains: lower-cased, IDN to punycode, one trailing dot dropped, duplicates removed; ' +
      'a wildcard only as the whole leftmost label; no IP addresses',
  );

export const OrderInputSchema = z.strictObject({
  domains: DomainListSchema,
  algorithm: AlgorithmSchema.optional().describe('default ECC'),
  ca: CaSchema.optional().describe('default google'),
  tenantId: z
    .uuid()
    .optional()
    .describe('required with the operator token; with a tenant token omit it (or give your own id)'),
});
export type OrderInput = z.output<typeof OrderInputSchema>;

export const MAX_BULK_ORDERS = 10_000;
export const BulkInputSchema = z.strictObject({
  orders: z.array(OrderInputSchema).min(1).max(MAX_BULK_ORDERS),
});

export const DnsRecordSchema = z.object({
  domain: z.string(),
  host: z.string(),
  hostValue: z.string(),
  valid: z.boolean(),
});
export type DnsRecord = z.output<typeof DnsRecordSchema>;

export const OrderSchema = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    kind: z.enum(['new', 'renewal']),
    domains: z.array(z.string()),
    algorithm: AlgorithmSchema,
    ca: CaSchema,
    status: z.enum(ORDER_STATUSES),
    applyId: z.string().nullable(),
    progress: z.number(),
    dns: z.array(DnsRecordSchema),
    attempts: z.number(),
    lastError: z.string().nullable(),
    certificateId: z.string().nullable(),
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .meta({ id: 'Order' });
export type OrderView = z.output<typeof OrderSchema>;

const OrderListQuery = z.strictObject({
  status: z.enum(ORDER_STATUSES).optional(),
  domain: z.string().max(1000).optional().describe('orders containing this domain (normalised)'),
  tenantId: z.uuid().optional().describe('operator only: one tenant'),
  limit: LimitSchema,
  cursor: CursorSchema.optional(),
});

const IdempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .optional()
    .describe('1–255 printable ASCII characters; same key and body → the same order, another body → 409'),
});

// ─── data access ──────────────────────────────────────────────────────────────────────────────────

const viewColumns = {
  id: orders.id,
  tenantId: orders.tenantId,
  kind: orders.kind,
  domains: orders.domains,
  algorithm: orders.algorithm,
  ca: orders.ca,
  status: orders.status,
  applyId: orders.applyId,
  progress: orders.progress,
  attempts: orders.attempts,
  lastError: orders.lastError,
  certificateId: orders.certificateId,
  createdAt: orders.createdAt,
  updatedAt: orders.updatedAt,
  cursorTs: cursorTimestamp(orders.createdAt),
  dns: sql<DnsRecord[]>`coalesce((
    select json_agg(json_build_object('domain', d.domain, 'host', d.host, 'hostValue', d.host_value, 'valid', d.valid)
                    order by array_position(${orders.domains}, d.domain), d.domain)
    from ${orderDns} d where d.order_id = ${orders.id}), '[]'::json)`,
};

type ViewRow = Pick<
  Order,
  | 'id'
  | 'tenantId'
  | 'kind'
  | 'domains'
  | 'algorithm'
  | 'ca'
  | 'status'
  | 'applyId'
  | 'progress'
  | 'attempts'
  | 'lastError'
  | 'certificateId'
  | 'createdAt'
  | 'updatedAt'
>;

export function toOrderView(row: ViewRow, dns: DnsRecord[] = []): OrderView {
  return {
    id: row.id,
    tenantId: row.tenantId,
    kind: row.kind,
    domains: row.domains,
    algorithm: row.algorithm,
    ca: row.ca,
    status: row.status,
    applyId: row.applyId,
    progress: row.progress,
    dns,
    attempts: row.attempts,
    lastError: row.lastError,
    certificateId: row.certificateId,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/**
 * Reads orders as the API shows them. The two lookups by id are prepared statements: they are the
 * hottest queries (clients poll their orders), and preparing skips both drizzle's query building and
 * Postgres's parse/plan on every call.
 */
export function createOrderViews(db: Database) {
  const byId = db
    .select(viewColumns)
    .from(orders)
    .where(eq(orders.id, sql.placeholder('id')))
    .prepare('certq_api_order_view');
  const byIdInTenant = db
    .select(viewColumns)
    .from(orders)
    .where(and(eq(orders.id, sql.placeholder('id')), eq(orders.tenantId, sql.placeholder('tenantId'))))
    .prepare('certq_api_order_view_in_tenant');
  return {
    /** The order, or undefined when it does not exist or is outside `scope` (a tenant id). */
    async get(id: string, scope: string | undefined): Promise<OrderView | undefined> {
      const [row] = scope ? await byIdInTenant.execute({ id, tenantId: scope }) : await byId.execute({ id });
      return row && toOrderView(row, row.dns);
    },
  };
}

/** insertOrders throws if a conflicting active order ends between its insert and its lookup: try again. */
async function retryVanished<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= 3 || !/vanished while inserting/.test(String((error as Error)?.message))) throw error;
    }
  }
}

/** The tenant an order is for: a tenant's own; the operator must name one. */
function orderTenant(principal: Principal, tenantId: string | undefined, at = ''): string {
  if (principal.kind === 'tenant') {
    if (tenantId !== undefined && tenantId !== principal.tenantId)
      throw badRequest(`${at}tenantId: a tenant token can only order for its own tenant`, {
        path: `${at}tenantId`,
      });
    return principal.tenantId;
  }
  if (tenantId === undefined)
    throw badRequest(`${at}tenantId: required when ordering with the operator token`, {
      path: `${at}tenantId`,
    });
  return tenantId;
}

/** 400 naming the first request whose tenant does not exist. */
async function assertTenantsExist(
  db: Database,
  requests: readonly OrderRequest[],
  at: (i: number) => string,
) {
  const ids = [...new Set(requests.map((r) => r.tenantId))];
  const found = new Set(
    (await db.select({ id: tenants.id }).from(tenants).where(inArray(tenants.id, ids))).map((t) => t.id),
  );
  const index = requests.findIndex((r) => !found.has(r.tenantId));
  if (index >= 0)
    throw badRequest(`${at(index)}tenantId: unknown tenant ${requests[index]!.tenantId}`, {
      path: `${at(index)}tenantId`,
    });
}

const IDEMPOTENCY_KEY = /^[!-~]{1,255}$/;

function requestHash(request: OrderRequest): string {
  const canonical = JSON.stringify({
    tenantId: request.tenantId,
    domains: domainSetKey(request.domains),
    algorithm: request.algorithm ?? 'ECC',
    ca: request.ca ?? 'google',
  });
  return createHash('sha256').update(canonical).digest('hex');
}

type CreateOutcome = { order: Order; created: boolean } | { replayOf: string };

/**
 * One order under an Idempotency-Key, in one transaction with the key's row. A transaction-scoped
 * advisory lock on (tenant, key) serialises concurrent requests with the same key, so the second
 * waits for the first to commit and then finds its row: one order, never two.
 */
async function createWithKey(db: Database, request: OrderRequest, key: string): Promise<CreateOutcome> {
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
            throw new ApiError(
              409,
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
      if (attempt < 3 && violatedConstraint(error) === 'idempotency_keys_tenant_id_key_pk') continue;
      if (attempt < 3 && /vanished while inserting/.test(String((error as Error)?.message))) continue;
      throw error;
    }
  }
}

function orderListConditions(principal: Principal, query: z.output<typeof OrderListQuery>): SQL[] {
  const conditions: SQL[] = [];
  const scope = tenantScope(principal);
  if (scope) conditions.push(eq(orders.tenantId, scope));
  if (query.tenantId) conditions.push(eq(orders.tenantId, query.tenantId));
  if (query.status) conditions.push(eq(orders.status, query.status));
  if (query.domain !== undefined) {
    const domain = normalizeDomain(query.domain);
    if (!domain.ok) throw badRequest(`querystring domain: ${domain.reason}`);
    conditions.push(arrayContains(orders.domains, [domain.domain]));
  }
  if (query.cursor !== undefined)
    conditions.push(afterCursor(orders.createdAt, orders.id, decodeCursor(query.cursor)));
  return conditions;
}

// ─── routes ───────────────────────────────────────────────────────────────────────────────────────

export const ordersRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db, queues } = deps;
  const views = createOrderViews(db);
  const enqueueTimeout = deps.enqueueTimeoutMs ?? 2000;

  app.post(
    '/v1/orders',
    {
      schema: {
        tags: ['orders'],
        summary: 'Order a certificate',
        description:
          'Creates an order and queues its first job: 202. If this tenant already has an active order for ' +
          'the same domain set, that order is returned with 200 and nothing new is created. With an ' +
          'Idempotency-Key, repeating the request returns the same order (200); reusing the key with ' +
          'another body answers 409 idempotency_key_reused.',
        headers: IdempotencyHeaders,
        body: OrderInputSchema,
        response: {
          200: OrderSchema.describe('an existing order: the active one for this domain set, or a replay'),
          202: OrderSchema.describe('order created and queued'),
          ...errorResponses(400, 401, 409, 413, 415, 429),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const orderRequest: OrderRequest = {
        tenantId: orderTenant(principal, body.tenantId),
        domains: body.domains,
        algorithm: body.algorithm,
        ca: body.ca,
      };
      if (principal.kind === 'admin') await assertTenantsExist(db, [orderRequest], () => '');
      const key = request.headers['idempotency-key'];
      if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
        throw badRequest('Idempotency-Key: must be 1–255 printable ASCII characters');

      const outcome: CreateOutcome = key
        ? await createWithKey(db, orderRequest, key)
        : await retryVanished(async () => (await insertOrders(db, [orderRequest])).orders[0]!);

      if ('order' in outcome && outcome.created) {
        await enqueueSafely(queues, [outcome.order], enqueueTimeout, request.log);
        return reply.code(202).send(toOrderView(outcome.order));
      }
      const id = 'order' in outcome ? outcome.order.id : outcome.replayOf;
      const view = await views.get(id, undefined);
      if (!view) throw new Error(`order ${id} disappeared`);
      return reply.code(200).send(view);
    },
  );

  app.post(
    '/v1/orders/bulk',
    {
      schema: {
        tags: ['orders'],
        summary: 'Order many certificates at once',
        description:
          `Up to ${MAX_BULK_ORDERS} orders, each as for POST /v1/orders (with the operator token every item ` +
          'names its tenantId and items may span tenants). Validated all-or-nothing before anything is ' +
          'stored: a 400 names the first failing item (e.g. `orders[17].domains[2]: …`). Stored in one ' +
          'transaction. The answer lists {id, status} in request order; an item whose domain set already ' +
          'has an active order of its tenant gets that order. Idempotency-Key is not used here: while ' +
          'the orders are active, repeating the request returns the same orders.',
        body: BulkInputSchema,
        response: {
          202: z.object({
            orders: z.array(z.object({ id: z.string(), status: z.enum(ORDER_STATUSES) })),
          }),
          ...errorResponses(400, 401, 413, 415, 429),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const at = (i: number) => `orders[${i}].`;
      const requests: OrderRequest[] = request.body.orders.map((item, i) => ({
        tenantId: orderTenant(principal, item.tenantId, at(i)),
        domains: item.domains,
        algorithm: item.algorithm,
        ca: item.ca,
      }));
      if (principal.kind === 'admin') await assertTenantsExist(db, requests, at);
      // Same contract as insertOrders, ~3× faster for big batches (see bulk-insert.ts).
      const result = await retryVanished(() => db.transaction((tx) => insertNewOrdersFast(tx, requests)));
      const created = result.orders.filter((r) => r.created).map((r) => r.order);
      await enqueueSafely(queues, created, enqueueTimeout, request.log);
      return reply
        .code(202)
        .send({ orders: result.orders.map(({ order }) => ({ id: order.id, status: order.status })) });
    },
  );

  app.get(
    '/v1/orders/:id',
    {
      schema: {
        tags: ['orders'],
        summary: 'One order',
        params: IdParams,
        response: { 200: OrderSchema, ...errorResponses(401, 404, 429) },
      },
    },
    async (request) => {
      const view = await views.get(request.params.id, tenantScope(principalOf(request)));
      if (!view) throw notFound('order');
      return view;
    },
  );

  app.get(
    '/v1/orders',
    {
      schema: {
        tags: ['orders'],
        summary: 'List orders, newest first',
        description:
          'Keyset pagination: pass `nextCursor` as `cursor` for the next page; null on the last page. ' +
          'A tenant sees its own orders; the operator sees all and may filter by tenantId.',
        querystring: OrderListQuery,
        response: {
          200: z.object({ orders: z.array(OrderSchema), nextCursor: z.string().nullable() }),
          ...errorResponses(400, 401, 429),
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { limit } = request.query;
      const rows = await db
        .select(viewColumns)
        .from(orders)
        .where(and(...orderListConditions(principal, request.query)))
        .orderBy(desc(orders.createdAt), desc(orders.id))
        .limit(limit + 1);
      const { items, nextCursor } = page(rows, limit);
      return { orders: items.map((row) => toOrderView(row, row.dns)), nextCursor };
    },
  );

  app.post(
    '/v1/orders/:id/retry',
    {
      schema: {
        tags: ['orders'],
        summary: 'Start a failed order again',
        description:
          'Only a failed order: it goes back to verifying with a fresh run (attempts + 1). 409 not_retryable ' +
          'for any other status; 409 conflict when another active order now covers the same domain set.',
        params: IdParams,
        response: { 202: OrderSchema, ...errorResponses(401, 404, 409, 429) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const scope = tenantScope(principal);
      const id = request.params.id;
      let updated: Order;
      try {
        updated = await db.transaction(async (tx) => {
          const order = await lockOrder(tx, id);
          if (!order || (scope && order.tenantId !== scope)) throw notFound('order');
          if (order.status !== 'failed')
            throw new ApiError(
              409,
              'not_retryable',
              `only a failed order can be retried; this one is ${order.status}`,
            );
          const now = new Date();
          return transitionOrder(tx, {
            order,
            to: 'verifying',
            set: {
              attempts: order.attempts + 1,
              stageAttempts: 0,
              stageStartedAt: now,
              nextAttemptAt: now,
              applyId: null,
              lastPolledAt: null,
              lastError: null,
              progress: 0,
              callbackSecretHash: null,
            },
            event: { type: 'retried', detail: { previousApplyId: order.applyId, by: actorOf(principal) } },
          });
        });
      } catch (error) {
        if (violatedConstraint(error) !== 'orders_one_active_per_domain_set') throw error;
        const [failed] = await db.select().from(orders).where(eq(orders.id, id));
        const [active] = failed
          ? await db
              .select({ id: orders.id })
              .from(orders)
              .where(
                and(
                  eq(orders.tenantId, failed.tenantId),
                  eq(orders.domainsKey, failed.domainsKey),
                  inArray(orders.status, ['verifying', 'applying', 'issuing']),
                ),
              )
          : [];
        throw new ApiError(409, 'conflict', 'another active order already covers this domain set', {
          activeOrderId: active?.id ?? null,
        });
      }
      await enqueueSafely(queues, [updated], enqueueTimeout, request.log);
      const view = await views.get(id, undefined);
      return reply.code(202).send(view ?? toOrderView(updated));
    },
  );

  app.delete(
    '/v1/orders/:id',
    {
      schema: {
        tags: ['orders'],
        summary: 'Cancel an active order',
        description: 'An active order becomes cancelled (200). An order that already ended answers 409.',
        params: IdParams,
        response: { 200: OrderSchema, ...errorResponses(401, 404, 409, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const scope = tenantScope(principal);
      const id = request.params.id;
      await db.transaction(async (tx) => {
        const order = await lockOrder(tx, id);
        if (!order || (scope && order.tenantId !== scope)) throw notFound('order');
        if (!isActive(order.status))
          throw new ApiError(409, 'not_cancellable', `the order already ended (${order.status})`);
        // The queued job stays; the worker finds the order cancelled and drops it.
        await transitionOrder(tx, {
          order,
          to: 'cancelled',
          event: { type: 'cancelled', detail: { by: actorOf(principal) } },
        });
      });
      const view = await views.get(id, undefined);
      if (!view) throw notFound('order');
      return view;
    },
  );
};
