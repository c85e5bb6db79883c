import { normalizeDomain } from '@certq/core';
import { sql } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { CachedBundle } from '../../delivery/tls-cache';
import type { RouteOptions } from '../../deps';
import { actorOf, principalOf, tenantsVisibleTo } from '../../plugins/auth';
import { ApiError, badRequest, errorResponses } from '../../plugins/errors';
import { ChangesPageSchema, ChangesQuery, TlsCertificateQuery } from './schemas';

const PEM_TYPE = 'application/x-pem-file';

/**
 * Delivery to TLS servers: the handshake-time certificate route (Caddy's `get_certificate http`) and
 * the change feed agents follow. Both take edge tokens; see docs/delivery.md.
 */
export const tlsRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db } = deps;

  app.get(
    '/v1/tls/certificate',
    {
      // On the handshake path: no Redis round trip for a rate limit, no browser security headers for
      // a PEM a TLS server reads; the answer comes from memory.
      config: { auth: 'edge', edgeTokens: true, tokenInQuery: true, rateLimit: false },
      helmet: false,
      schema: {
        tags: ['delivery'],
        operationId: 'getTlsCertificate',
        summary: 'The PEM bundle to serve for a TLS handshake (Caddy get_certificate http)',
        description:
          'The current certificate covering server_name (an exact name before a one-label wildcard, ' +
          'then the newest), as one PEM bundle: leaf, intermediates, private key. 204 when certq holds ' +
          'none. Edge token (limited tokens see only their tenants) or operator token, as ' +
          '`Authorization: Bearer` or a `token` query parameter; tenant tokens get 403.',
        querystring: TlsCertificateQuery,
        response: {
          200: {
            description: 'PEM: leaf, intermediates, then the private key',
            content: { [PEM_TYPE]: { schema: z.string() } },
          },
          204: z.null().describe('certq holds no current certificate for this name'),
          ...errorResponses(400, 401, 403, 429),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const scope = tenantsVisibleTo(principal);
      const { server_name: serverName, certificate_id: certificateId } = request.query;
      if ((serverName === undefined) === (certificateId === undefined))
        throw badRequest('querystring: give exactly one of server_name and certificate_id');
      let found: CachedBundle | null | undefined;
      if (certificateId !== undefined) {
        found = await app.delivery.bundleForId(scope, certificateId);
      } else {
        // A name already answered is served as sent; any other is normalised (and checked) first.
        found = app.delivery.cachedForName(scope, serverName!);
        if (found === undefined) {
          const name = normalizeDomain(serverName!);
          if (!name.ok) throw badRequest(`querystring server_name: ${name.reason}`);
          if (name.domain.startsWith('*.'))
            throw badRequest('querystring server_name: must not be a wildcard');
          found = await app.delivery.bundleForName(scope, name.domain);
        }
      }
      reply.header('cache-control', 'no-store');
      if (!found) return reply.code(204).send(null);
      // A private key handed out: audited like every key read, off the handshake path (AuditBuffer).
      app.keyReads.add({
        tenantId: found.tenantId,
        actor: actorOf(principal),
        action: 'private_key.read',
        subjectId: found.certificateId,
        ip: request.ip,
        requestId: request.id,
        detail:
          certificateId !== undefined
            ? { route: 'GET /v1/tls/certificate', by: 'certificate_id' }
            : { route: 'GET /v1/tls/certificate', by: 'server_name', serverName: serverName!.toLowerCase() },
      });
      return reply
        .type(PEM_TYPE)
        .header('x-certq-certificate-id', found.certificateId)
        .serializer((payload: unknown) => payload as string)
        .send(found.bundle);
    },
  );

  app.get(
    '/v1/certificates/changes',
    {
      config: { edgeTokens: true },
      schema: {
        tags: ['delivery'],
        operationId: 'listCertificateChanges',
        summary: 'Certificates that became current or were replaced since a cursor (long-poll)',
        description:
          'Oldest first. With no change after `cursor`, waits up to `wait` seconds for one. The cursor ' +
          'comes from Postgres (ids commit in order), so it holds across API restarts and replicas. ' +
          'Start from 0 for a full sync. Edge token, operator, or tenant (its own certificates).',
        querystring: ChangesQuery,
        response: { 200: ChangesPageSchema, ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const scope = tenantsVisibleTo(principal);
      if (request.query.token !== undefined)
        throw badRequest('querystring token: send the token as Authorization: Bearer on this route');
      const cursor = Number(request.query.cursor ?? '0');
      const limit = request.query.limit ?? 500;
      const deadline = Date.now() + (request.query.wait ?? 0) * 1000;
      const closed = new AbortController();
      request.raw.once('close', () => closed.abort());
      let after = cursor;
      for (let first = true; ; first = false) {
        // An edge token revoked while its poll waited gets nothing more: the poll ends with a 401.
        if (!first && principal.kind === 'edge' && !(await edgeTokenLive(db, principal.tokenId)))
          throw new ApiError(401, 'unauthorized', 'this edge token was revoked');
        const { head, ...page } = await readChanges(db, scope, after, limit);
        if (
          page.changes.length > 0 ||
          Date.now() >= deadline ||
          closed.signal.aborted ||
          app.delivery.follower.stopping
        ) {
          if (
            page.changes.length > 0 &&
            principal.kind === 'edge' &&
            !(await edgeTokenLive(db, principal.tokenId))
          )
            throw new ApiError(401, 'unauthorized', 'this edge token was revoked');
          return page;
        }
        // Nothing visible to this caller yet: wait for the feed to move past what it has read.
        after = Number(page.nextCursor);
        await app.delivery.follower.waitForChange(
          head,
          Math.min(deadline - Date.now(), 5_000),
          closed.signal,
        );
      }
    },
  );
};

async function edgeTokenLive(db: RouteOptions['deps']['db'], tokenId: string): Promise<boolean> {
  const { rows } = await db.execute<{ live: boolean }>(
    sql`select revoked_at is null as live from edge_tokens where id = ${tokenId}`,
  );
  return rows[0]?.live === true;
}

async function readChanges(
  db: RouteOptions['deps']['db'],
  scope: string[] | null,
  after: number,
  limit: number,
) {
  // Head first, then the page up to it: every id at or below a visible id is visible (see 0005_delivery.sql),
  // so `nextCursor = head` skips nothing even when the page holds no change of this caller's tenants.
  const { rows: headRows } = await db.execute<{ head: string }>(
    sql`select coalesce(max(id), 0)::text as head from certificate_changes`,
  );
  const head = Number(headRows[0]!.head);
  const tenantFilter =
    scope === null ? sql`true` : sql`ch.tenant_id = any(${`{${scope.join(',')}}`}::uuid[])`;
  const { rows } = await db.execute<{
    id: string;
    certificate_id: string;
    tenant_id: string;
    domains: string[];
    became_current: boolean;
    fingerprint: string;
    not_after: string;
    at: string;
  }>(
    sql`select ch.id::text, ch.certificate_id, ch.tenant_id, ch.domains, ch.became_current,
               c.fingerprint, c.not_after, ch.at
        from certificate_changes ch join certificates c on c.id = ch.certificate_id
        where ch.id > ${after} and ch.id <= ${head} and ${tenantFilter}
        order by ch.id limit ${limit}`,
  );
  const changes = rows.map((r) => ({
    cursor: r.id,
    certificateId: r.certificate_id,
    tenantId: r.tenant_id,
    domains: r.domains,
    change: r.became_current ? ('current' as const) : ('replaced' as const),
    fingerprint: r.fingerprint,
    notAfter: new Date(r.not_after).toISOString(),
    at: new Date(r.at).toISOString(),
  }));
  // A caller limited to some tenants gets positions of its own changes only (never the feed's head,
  // which counts every tenant's changes); its next read skips others' changes through the tenant index.
  const lastSeen = changes.length > 0 ? changes[changes.length - 1]!.cursor : String(after);
  const nextCursor = changes.length === limit || scope !== null ? lastSeen : String(Math.max(head, after));
  return { changes, nextCursor, head: Math.max(head, after) };
}
