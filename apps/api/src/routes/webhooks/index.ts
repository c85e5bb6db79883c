import { generateToken, webhookUrlProblem } from '@certq/core';
import {
  tenants,
  WEBHOOK_DELIVERY_STATUSES,
  WEBHOOK_EVENTS,
  type WebhookDelivery,
  webhookDeliveries,
  webhookDeliveryFields,
} from '@certq/db';
import { and, desc, eq } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { cursorTimestamp, ownedListQuery, ownedPageConditions, page, pageResponse } from '../../pagination';
import { principalOf, tenantScope } from '../../plugins/auth';
import { badRequest, errorResponses, notFound } from '../../plugins/errors';
import { IdParams, Timestamp } from '../../schemas';

// ─── schemas ──────────────────────────────────────────────────────────────────────────────────────

export const WebhookInputSchema = z.strictObject({
  url: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    // Postgres cannot store a NUL, and no valid URL needs a control character or a space.
    .refine(
      (url) => ![...url].some((c) => c <= ' ' || c === '\u007f'),
      'must not contain control characters or spaces',
    )
    .describe('where certq POSTs events: http(s), answered with 2xx within 10 s'),
});

const WebhookSecretSchema = z.object({
  url: z.string(),
  secret: z
    .string()
    .describe(
      'HMAC-SHA256 key of x-certq-signature; shown once (a new one is made on every PUT), stored sealed',
    ),
});

const DeliverySchema = z
  .object({
    id: z.string().describe('also the x-certq-delivery header: deduplicate on it'),
    tenantId: z.string(),
    orderId: z.string().nullable(),
    event: z.string(),
    status: z.enum(WEBHOOK_DELIVERY_STATUSES).describe('failed: given up after the last attempt'),
    attempts: z.number(),
    lastStatusCode: z.number().nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: Timestamp.nullable().describe('pending only'),
    createdAt: Timestamp,
    deliveredAt: Timestamp.nullable(),
    payload: z.unknown().describe('the JSON body sent'),
  })
  .meta({ id: 'WebhookDelivery' });

const DeliveryListQuery = ownedListQuery({
  status: z.enum(WEBHOOK_DELIVERY_STATUSES).optional(),
});

type DeliveryRow = Omit<WebhookDelivery, 'nextAttemptAt'> & { nextAttemptAt: Date };

function toDeliveryView(row: DeliveryRow) {
  return {
    id: row.id,
    tenantId: row.tenantId,
    orderId: row.orderId,
    event: row.event,
    status: row.status,
    attempts: row.attempts,
    lastStatusCode: row.lastStatusCode,
    lastError: row.lastError,
    nextAttemptAt: row.status === 'pending' ? row.nextAttemptAt.toISOString() : null,
    createdAt: row.createdAt.toISOString(),
    deliveredAt: row.deliveredAt?.toISOString() ?? null,
    payload: row.payload,
  };
}

// ─── routes ───────────────────────────────────────────────────────────────────────────────────────

export const webhooksRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db, secrets } = deps;

  /** Stores the URL and a fresh secret; undefined when the tenant does not exist. */
  async function setWebhook(tenantId: string, url: string) {
    // Nothing a tenant configures may make certq reach inside (checked again at connect time).
    const problem = await webhookUrlProblem(url, {
      allowPrivate: deps.config.WEBHOOK_ALLOW_PRIVATE,
      resolveAll: deps.resolveAll,
    });
    if (problem)
      throw badRequest(`url: ${problem}`, {
        in: 'body',
        issues: [{ path: 'url', code: 'address_not_allowed', message: problem }],
        totalIssues: 1,
      });
    const secret = generateToken('whsec');
    const [before] = await db
      .select({ url: tenants.webhookUrl })
      .from(tenants)
      .where(eq(tenants.id, tenantId));
    const [row] = await db
      .update(tenants)
      .set({ webhookUrl: url, webhookSecretSealed: secrets.seal(secret), updatedAt: new Date() })
      .where(eq(tenants.id, tenantId))
      .returning({ id: tenants.id });
    return row ? { url, secret, previousUrl: before?.url ?? null } : undefined;
  }

  async function removeWebhook(tenantId: string) {
    const [before] = await db
      .select({ url: tenants.webhookUrl })
      .from(tenants)
      .where(eq(tenants.id, tenantId));
    const [row] = await db
      .update(tenants)
      .set({ webhookUrl: null, webhookSecretSealed: null, updatedAt: new Date() })
      .where(eq(tenants.id, tenantId))
      .returning({ id: tenants.id });
    return row === undefined ? undefined : { previousUrl: before?.url ?? null };
  }

  const setChange = (tenantId: string, old: string | null, url: string | null) => ({
    tenantId,
    subjectId: tenantId,
    changes: {
      webhookUrl: { old, new: url },
      webhookSecret: { old: old === null ? null : '[set]', new: url === null ? '[removed]' : '[changed]' },
    },
  });

  const ownTenant = (request: { principal: Parameters<typeof principalOf>[0]['principal'] }) => {
    const scope = tenantScope(principalOf(request));
    if (!scope) throw badRequest('the operator sets a tenant’s webhook with PUT /v1/tenants/{id}/webhook');
    return scope;
  };

  const putDescription =
    `Events (each one's data and when it is sent: docs/webhooks.md): ${WEBHOOK_EVENTS.join(', ')}. Each POST ` +
    'carries x-certq-event, x-certq-delivery, x-certq-timestamp (unix seconds) and x-certq-signature: ' +
    // biome-ignore lint/suspicious/noTemplateCurlyInString: documents the signed string literally
    'sha256=<hex HMAC-SHA256(secret, `${timestamp}.${body}`)>. Non-2xx answers are retried with ' +
    'exponential backoff (8 attempts), then given up. Every PUT makes a new secret, shown once.';

  app.put(
    '/v1/webhook',
    {
      schema: {
        operationId: 'setWebhook',
        tags: ['webhooks'],
        summary: 'Set your webhook (tenant)',
        description: putDescription,
        body: WebhookInputSchema,
        response: { 200: WebhookSecretSchema, ...errorResponses(400, 401, 415, 429) },
      },
    },
    async (request) => {
      const tenantId = ownTenant(request);
      const result = await setWebhook(tenantId, request.body.url);
      if (!result) throw notFound('tenant');
      request.auditChange = setChange(tenantId, result.previousUrl, result.url);
      return { url: result.url, secret: result.secret };
    },
  );

  app.delete(
    '/v1/webhook',
    {
      schema: {
        operationId: 'deleteWebhook',
        tags: ['webhooks'],
        summary: 'Remove your webhook (tenant)',
        description: 'Pending deliveries are dropped (marked failed) when their turn comes.',
        response: { 204: z.null(), ...errorResponses(400, 401, 429) },
      },
    },
    async (request, reply) => {
      const tenantId = ownTenant(request);
      const removed = await removeWebhook(tenantId);
      if (removed) request.auditChange = setChange(tenantId, removed.previousUrl, null);
      return reply.code(204).send(null);
    },
  );

  app.put(
    '/v1/tenants/:id/webhook',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'setTenantWebhook',
        tags: ['webhooks'],
        summary: 'Set a tenant’s webhook (operator)',
        description: putDescription,
        params: IdParams,
        body: WebhookInputSchema,
        response: { 200: WebhookSecretSchema, ...errorResponses(400, 401, 404, 415, 429) },
      },
    },
    async (request) => {
      const result = await setWebhook(request.params.id, request.body.url);
      if (result) request.auditChange = setChange(request.params.id, result.previousUrl, result.url);
      if (!result) throw notFound('tenant');
      return { url: result.url, secret: result.secret };
    },
  );

  app.delete(
    '/v1/tenants/:id/webhook',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'deleteTenantWebhook',
        tags: ['webhooks'],
        summary: 'Remove a tenant’s webhook (operator)',
        params: IdParams,
        response: { 204: z.null(), ...errorResponses(401, 404, 429) },
      },
    },
    async (request, reply) => {
      const removed = await removeWebhook(request.params.id);
      if (!removed) throw notFound('tenant');
      request.auditChange = setChange(request.params.id, removed.previousUrl, null);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/webhook-deliveries',
    {
      schema: {
        operationId: 'listWebhookDeliveries',
        tags: ['webhooks'],
        summary: 'List webhook deliveries, newest first',
        description:
          'A tenant sees its own; the operator sees all and may filter by tenantId. Keyset pagination ' +
          'as for orders.',
        querystring: DeliveryListQuery,
        response: pageResponse('deliveries', DeliverySchema),
      },
    },
    async (request) => {
      const query = request.query;
      const conditions = ownedPageConditions(principalOf(request), query, webhookDeliveries);
      if (query.status) conditions.push(eq(webhookDeliveries.status, query.status));
      const rows = await db
        .select({
          ...webhookDeliveryFields,
          lastStatusCode: webhookDeliveries.lastStatusCode,
          lastError: webhookDeliveries.lastError,
          nextAttemptAt: webhookDeliveries.nextAttemptAt,
          createdAt: webhookDeliveries.createdAt,
          deliveredAt: webhookDeliveries.deliveredAt,
          cursorTs: cursorTimestamp(webhookDeliveries.createdAt),
        })
        .from(webhookDeliveries)
        .where(and(...conditions))
        .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
        .limit(query.limit + 1);
      const { items, nextCursor } = page(rows, query.limit);
      return { deliveries: items.map(toDeliveryView), nextCursor };
    },
  );
};
