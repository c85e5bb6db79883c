import { normalizeDomain } from '@certq/core';
import { tenants } from '@certq/db';
import { enqueueSafely, getRenewalBatch, requestRenewals } from '@certq/workflow';
import { inArray } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { principalOf, tenantScope } from '../../plugins/auth';
import { badRequest, errorResponses, notFound } from '../../plugins/errors';
import { IdParams, Timestamp } from '../../schemas';

// ─── schemas ──────────────────────────────────────────────────────────────────────────────────────

export const RenewalInputSchema = z.strictObject({
  tenantIds: z
    .array(z.uuid())
    .min(1)
    .max(1000)
    .optional()
    .describe(
      'operator: only these tenants (unknown ids answer 400). A tenant token may give only its own id; ' +
        "another tenant's id answers 404",
    ),
  domains: z
    .array(z.string().max(1000))
    .min(1)
    .max(1000)
    .transform((list, ctx) => {
      const out = new Set<string>();
      for (const [index, raw] of list.entries()) {
        const result = normalizeDomain(raw);
        if (!result.ok) {
          ctx.addIssue({ code: 'custom', message: result.reason, path: [index], input: raw });
          return z.NEVER;
        }
        out.add(result.domain);
      }
      return [...out];
    })
    .optional()
    .describe('certificates containing any of these domains (normalised as for orders)'),
  expiringWithinDays: z
    .number()
    .int()
    .min(0)
    .max(3650)
    .optional()
    .describe('certificates whose notAfter is within this many days (expired ones included)'),
});

const BatchAcceptedSchema = z.object({
  batchId: z.string(),
  enqueued: z.number().describe('renewal orders created and queued'),
  skipped: z.number().describe('matching certificates that already had an active order'),
});

const BatchProgressSchema = z
  .object({
    batchId: z.string(),
    total: z.number().describe('renewal orders the batch created'),
    issued: z.number(),
    failed: z.number(),
    cancelled: z.number(),
    inFlight: z.number().describe('verifying, applying or issuing'),
    createdAt: Timestamp,
  })
  .meta({ id: 'RenewalBatch' });

// ─── routes ───────────────────────────────────────────────────────────────────────────────────────

export const renewalsRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db, queues, config } = deps;

  app.post(
    '/v1/renewals',
    {
      schema: {
        operationId: 'requestRenewals',
        tags: ['renewals'],
        summary: 'Renew matching certificates now',
        description:
          'Creates renewal orders for the current certificates that match every given filter (none: all ' +
          'current certificates in scope — a tenant token is always limited to its own) and that have no ' +
          'active order; those are counted in `skipped`, so repeating the request while the renewals run ' +
          'enqueues nothing. Renewal orders run after new orders, interleaved by tenant. The certificates’ ' +
          'renewal backoff is ignored. Answers at once with the batch id; follow it with ' +
          'GET /v1/renewals/{id}.',
        body: RenewalInputSchema,
        response: { 202: BatchAcceptedSchema, ...errorResponses(400, 401, 404, 413, 415, 429) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const scope = tenantScope(principal);
      let tenantIds = body.tenantIds ? [...new Set(body.tenantIds)] : undefined;
      if (scope) {
        // A tenant names no one but itself: another tenant's id is 404, as everywhere else.
        if (tenantIds?.some((id) => id !== scope)) throw notFound('tenant');
        tenantIds = [scope];
      } else if (tenantIds) {
        const known = new Set(
          (await db.select({ id: tenants.id }).from(tenants).where(inArray(tenants.id, tenantIds))).map(
            (t) => t.id,
          ),
        );
        const index = body.tenantIds!.findIndex((id) => !known.has(id));
        if (index >= 0)
          throw badRequest(`tenantIds[${index}]: unknown tenant ${body.tenantIds![index]}`, {
            path: `tenantIds[${index}]`,
          });
      }
      const result = await requestRenewals(db, queues, {
        selection: { tenantIds, domains: body.domains, expiringWithinDays: body.expiringWithinDays },
        requestedByTenantId: scope ?? null,
        maxRps: config.UPSTREAM_MAX_RPS,
        enqueue: (orders) => enqueueSafely(queues, orders, deps.enqueueTimeoutMs, request.log),
      });
      request.log.info({ ...result, tenantId: scope }, 'renewal batch created');
      request.auditChange = {
        subjectId: result.batchId ?? null,
        detail: {
          filter: {
            tenantIds: tenantIds ?? null,
            domains: body.domains ?? null,
            expiringWithinDays: body.expiringWithinDays ?? null,
          },
          enqueued: result.enqueued,
          skipped: result.skipped,
        },
      };
      return reply.code(202).send(result);
    },
  );

  app.get(
    '/v1/renewals/:id',
    {
      schema: {
        operationId: 'getRenewalBatch',
        tags: ['renewals'],
        summary: 'Progress of a renewal batch',
        description: 'Counts of the batch’s renewal orders by outcome. Visible to whoever asked for it.',
        params: IdParams,
        response: { 200: BatchProgressSchema, ...errorResponses(401, 404, 429) },
      },
    },
    async (request) => {
      const scope = tenantScope(principalOf(request));
      const batch = await getRenewalBatch(db, request.params.id);
      if (!batch || (scope && batch.requestedByTenantId !== scope)) throw notFound('renewal batch');
      return {
        batchId: batch.batchId,
        total: batch.total,
        issued: batch.issued,
        failed: batch.failed,
        cancelled: batch.cancelled,
        inFlight: batch.inFlight,
        createdAt: batch.createdAt.toISOString(),
      };
    },
  );
};
