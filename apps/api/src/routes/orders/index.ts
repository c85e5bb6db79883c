import { ORDER_STATUSES } from '@certq/core';
import { type Order, type OrderRequest, orders } from '@certq/db';
import {
  cancelOrder,
  createOrder,
  createOrders,
  isWorkflowError,
  requestDnsCheck,
  retryOrder,
} from '@certq/workflow';
import { and, desc, eq, type SQL } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { containsDomain, ownedPageConditions, page, pageResponse } from '../../pagination';
import { actorOf, type Principal, principalOf, tenantScope } from '../../plugins/auth';
import { badRequest, errorResponses, notFound } from '../../plugins/errors';
import { IdParams } from '../../schemas';
import {
  BulkInputSchema,
  caRequest,
  IdempotencyHeaders,
  MAX_BULK_ORDERS,
  OrderInputSchema,
  OrderListQuery,
  OrderSchema,
} from './schemas';
import { createOrderViews, toOrderView, viewColumns } from './views';

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

/** Workflow's unknown_tenant names an index; the API names the request path, as for any bad field. */
async function withTenantPath<T>(at: (index: number) => string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isWorkflowError(error) && error.code === 'unknown_tenant') {
      const path = `${at(Number(error.details?.index ?? 0))}tenantId`;
      throw badRequest(`${path}: ${error.message}`, { path });
    }
    throw error;
  }
}

function orderListConditions(principal: Principal, query: z.output<typeof OrderListQuery>): SQL[] {
  const conditions = ownedPageConditions(principal, query, orders);
  if (query.status) conditions.push(eq(orders.status, query.status));
  if (query.domain !== undefined) conditions.push(containsDomain(orders.domains, query.domain));
  return conditions;
}

export const ordersRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db } = deps;
  const views = createOrderViews(db);

  app.post(
    '/v1/orders',
    {
      schema: {
        operationId: 'createOrder',
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
        ...caRequest(body.ca),
      };
      const result = await withTenantPath(
        () => '',
        () =>
          createOrder(deps, orderRequest, {
            idempotencyKey: request.headers['idempotency-key'],
            checkTenant: principal.kind === 'admin',
            log: request.log,
            by: { actor: actorOf(principal), ip: request.ip, requestId: request.id },
          }),
      );
      if (result.created) return reply.code(202).send(toOrderView(result.order));
      const view = await views.get(result.orderId, undefined);
      if (!view) throw new Error(`order ${result.orderId} disappeared`);
      return reply.code(200).send(view);
    },
  );

  app.post(
    '/v1/orders/bulk',
    {
      schema: {
        operationId: 'createOrdersBulk',
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
          ...errorResponses(400, 401, 409, 413, 415, 429),
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
        ...caRequest(item.ca),
      }));
      const result = await withTenantPath(at, () =>
        createOrders(deps, requests, {
          checkTenants: principal.kind === 'admin',
          log: request.log,
          by: { actor: actorOf(principal), ip: request.ip, requestId: request.id },
        }),
      );
      return reply
        .code(202)
        .send({ orders: result.map(({ order }) => ({ id: order.id, status: order.status })) });
    },
  );

  app.get(
    '/v1/orders/:id',
    {
      schema: {
        operationId: 'getOrder',
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
        operationId: 'listOrders',
        tags: ['orders'],
        summary: 'List orders, newest first',
        description:
          'Keyset pagination: pass `nextCursor` as `cursor` for the next page; null on the last page. ' +
          'A tenant sees its own orders; the operator sees all and may filter by tenantId.',
        querystring: OrderListQuery,
        response: pageResponse('orders', OrderSchema),
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

  /**
   * `POST /v1/orders/:id/<action>`: a workflow action on one order (it refuses what the order's
   * status does not allow), answered 202 with the order as it now reads.
   */
  const orderAction = (
    action: string,
    docs: { operationId: string; summary: string; description: string },
    run: (id: string, principal: Principal, log: FastifyBaseLogger) => Promise<Order>,
  ) =>
    app.post(
      `/v1/orders/:id/${action}`,
      {
        schema: {
          ...docs,
          tags: ['orders'],
          params: IdParams,
          response: { 202: OrderSchema, ...errorResponses(401, 404, 409, 429) },
        },
      },
      async (request, reply) => {
        const id = request.params.id;
        const updated = await run(id, principalOf(request), request.log);
        request.auditChange = {
          tenantId: updated.tenantId,
          detail: { status: updated.status, run: updated.run },
        };
        const view = await views.get(id, undefined);
        return reply.code(202).send(view ?? toOrderView(updated));
      },
    );

  orderAction(
    'retry',
    {
      operationId: 'retryOrder',
      summary: 'Start a failed order again',
      description:
        'Only a failed order: it goes back to verifying with a fresh run (run + 1). 409 not_retryable ' +
        'for any other status; 409 conflict when another active order now covers the same domain set.',
    },
    (id, principal, log) =>
      retryOrder(deps, id, { tenantScope: tenantScope(principal), actor: actorOf(principal), log }),
  );

  orderAction(
    'dns-check',
    {
      operationId: 'checkOrderDns',
      summary: "Check this order's DNS now",
      description:
        '"I have set the record": the worker checks every domain\'s CNAME (and CAA) at once and, when all read ok, ' +
        'asks httpsok in the same run, so the order moves to applying within seconds. 202 with the order; the ' +
        'new `dns[].status`/`reason` appear once the check ran. Only for a verifying order (409 not_verifying); ' +
        'at most once per 10 s per order (429 dns_check_too_soon, with Retry-After).',
    },
    (id, principal, log) => requestDnsCheck(deps, id, { tenantScope: tenantScope(principal), log }),
  );

  app.delete(
    '/v1/orders/:id',
    {
      schema: {
        operationId: 'cancelOrder',
        tags: ['orders'],
        summary: 'Cancel an active order',
        description: 'An active order becomes cancelled (200). An order that already ended answers 409.',
        params: IdParams,
        response: { 200: OrderSchema, ...errorResponses(401, 404, 409, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const id = request.params.id;
      const cancelled = await cancelOrder(deps, id, {
        tenantScope: tenantScope(principal),
        actor: actorOf(principal),
      });
      request.auditChange = {
        tenantId: cancelled.tenantId,
        changes: { status: { old: 'active', new: cancelled.status } },
      };
      const view = await views.get(id, undefined);
      if (!view) throw notFound('order');
      return view;
    },
  );
};
