import { generateToken, hashToken } from '@certq/core';
import { type EdgeToken, edgeTokens, tenants } from '@certq/db';
import { and, asc, eq, inArray, isNull } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { EDGE_TOKEN_PREFIX } from '../../delivery/edge-tokens';
import type { RouteOptions } from '../../deps';
import { badRequest, errorResponses, notFound } from '../../plugins/errors';
import { IdParams, operatorListResponse } from '../../schemas';
import { CreatedEdgeTokenSchema, EdgeTokenInputSchema, EdgeTokenSchema } from './schemas';

function toView(row: EdgeToken) {
  return {
    id: row.id,
    name: row.name,
    tenantIds: row.tenantIds,
    createdAt: row.createdAt.toISOString(),
    revokedAt: row.revokedAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    useCount: row.useCount,
    lastSeenAt: row.lastSeenAt?.toISOString() ?? null,
  };
}

/**
 * Edge tokens (operator only): read-only credentials for TLS servers and `certq-agent`, usable only on
 * `GET /v1/tls/certificate` and `GET /v1/certificates/changes`, optionally limited to some tenants.
 */
export const edgeTokensRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db } = deps;

  app.post(
    '/v1/edge-tokens',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['delivery'],
        operationId: 'createEdgeToken',
        summary: 'Create an edge token (operator)',
        description:
          'A read-only token for TLS servers and agents. The token is shown once: only its hash is kept.',
        body: EdgeTokenInputSchema,
        response: { 201: CreatedEdgeTokenSchema, ...errorResponses(400, 401, 404, 429) },
      },
    },
    async (request, reply) => {
      const { name, tenantIds } = request.body;
      const wanted = tenantIds ? [...new Set(tenantIds)] : null;
      if (wanted) {
        const found = await db.select({ id: tenants.id }).from(tenants).where(inArray(tenants.id, wanted));
        const known = new Set(found.map((t) => t.id));
        const unknown = wanted.filter((id) => !known.has(id));
        if (unknown.length) throw badRequest('body.tenantIds: unknown tenant', { unknownTenantIds: unknown });
      }
      const token = generateToken(EDGE_TOKEN_PREFIX);
      const [row] = await db
        .insert(edgeTokens)
        .values({ name, tokenHash: hashToken(token), tenantIds: wanted })
        .returning();
      request.auditChange = {
        subjectId: row!.id,
        changes: { name: { old: null, new: name }, tenantIds: { old: null, new: wanted } },
      };
      return reply.code(201).send({ ...toView(row!), token });
    },
  );

  app.get(
    '/v1/edge-tokens',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['delivery'],
        operationId: 'listEdgeTokens',
        summary: 'List edge tokens (operator), revoked ones included',
        response: operatorListResponse('edgeTokens', EdgeTokenSchema),
      },
    },
    async () => {
      const rows = await db.select().from(edgeTokens).orderBy(asc(edgeTokens.createdAt), asc(edgeTokens.id));
      return { edgeTokens: rows.map(toView) };
    },
  );

  app.delete(
    '/v1/edge-tokens/:id',
    {
      config: { auth: 'admin' },
      schema: {
        tags: ['delivery'],
        operationId: 'revokeEdgeToken',
        summary: 'Revoke an edge token (operator)',
        description:
          'At once on this API replica, within 10 s on the others (they cache tokens that briefly). ' +
          'Revoking a revoked token changes nothing.',
        params: IdParams,
        response: { 200: EdgeTokenSchema, ...errorResponses(401, 404, 429) },
      },
    },
    async (request) => {
      const { id } = request.params;
      await db
        .update(edgeTokens)
        .set({ revokedAt: new Date() })
        .where(and(eq(edgeTokens.id, id), isNull(edgeTokens.revokedAt)));
      const [row] = await db.select().from(edgeTokens).where(eq(edgeTokens.id, id));
      if (!row) throw notFound('edge token');
      app.delivery.edgeTokens.forgetAll();
      return toView(row);
    },
  );
};
