import { auditLog } from '@certq/db';
import { and, desc, eq, lt, type SQL } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { RouteOptions } from '../../deps';
import { pageResponse } from '../../pagination';
import { AuditEntrySchema, AuditQuery } from './schemas';

export const auditRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  app.get(
    '/v1/audit',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'listAuditEntries',
        tags: ['operator'],
        summary: 'Audit list: operator and tenant actions that change state, and private-key reads',
        description:
          'Newest first, keyset-paginated (pass nextCursor). Order creation is not listed: each order is its own record.',
        querystring: AuditQuery,
        response: pageResponse('entries', AuditEntrySchema, 404),
      },
    },
    async (request) => {
      const { tenantId, action, limit, cursor } = request.query;
      const conditions: SQL[] = [];
      if (tenantId) conditions.push(eq(auditLog.tenantId, tenantId));
      if (action) conditions.push(eq(auditLog.action, action));
      if (cursor) conditions.push(lt(auditLog.id, Number(cursor)));
      const rows = await deps.db
        .select()
        .from(auditLog)
        .where(and(...conditions))
        .orderBy(desc(auditLog.id))
        .limit(limit + 1);
      const more = rows.length > limit;
      const items = more ? rows.slice(0, limit) : rows;
      return {
        entries: items.map((r) => ({
          id: String(r.id),
          at: r.at.toISOString(),
          actor: r.actor,
          action: r.action,
          tenantId: r.tenantId,
          subjectId: r.subjectId,
          ip: r.ip,
          requestId: r.requestId,
          detail: r.detail,
        })),
        nextCursor: more ? String(items[items.length - 1]!.id) : null,
      };
    },
  );
};
