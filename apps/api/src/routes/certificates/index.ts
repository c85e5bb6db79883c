import { auditLog, type Certificate, certificates } from '@certq/db';
import { and, desc, eq, lte, type SQL, sql } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import {
  containsDomain,
  cursorTimestamp,
  ownedListQuery,
  ownedPageConditions,
  page,
  pageResponse,
} from '../../pagination';
import { actorOf, type Principal, principalOf, tenantScope } from '../../plugins/auth';
import { errorResponses, notFound } from '../../plugins/errors';
import { AlgorithmSchema, CaSchema, IdParams, Timestamp } from '../../schemas';

export const CertificateSchema = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    orderId: z.string(),
    domains: z.array(z.string()),
    algorithm: AlgorithmSchema,
    ca: CaSchema,
    notBefore: Timestamp,
    notAfter: Timestamp,
    fingerprint: z.string().describe('SHA-256 of the leaf certificate (DER), lowercase hex'),
    isCurrent: z.boolean().describe('false: replaced by a renewal, kept as history'),
    createdAt: Timestamp,
  })
  .meta({ id: 'Certificate' });

const CertificateWithPemSchema = CertificateSchema.extend({
  certificatePem: z.string().describe('the leaf followed by the intermediates, PEM'),
});

const CertificateListQuery = ownedListQuery({
  domain: z.string().max(1000).optional().describe('certificates covering this domain (normalised)'),
  expiringWithinDays: z.coerce
    .number()
    .int()
    .min(0)
    .max(3650)
    .optional()
    .describe('only those whose notAfter is within this many days (expired ones included)'),
  includeHistory: z.enum(['true', 'false']).optional().describe('also replaced certificates (default false)'),
});

const metadataColumns = {
  id: certificates.id,
  tenantId: certificates.tenantId,
  orderId: certificates.orderId,
  domains: certificates.domains,
  algorithm: certificates.algorithm,
  ca: certificates.ca,
  notBefore: certificates.notBefore,
  notAfter: certificates.notAfter,
  fingerprint: certificates.fingerprint,
  isCurrent: certificates.isCurrent,
  createdAt: certificates.createdAt,
};

type MetadataRow = Pick<Certificate, keyof typeof metadataColumns>;

/** The row as the API shows it: the selected columns (nothing else is selected), timestamps as ISO strings. */
function toMetadata({ notBefore, notAfter, createdAt, ...columns }: MetadataRow) {
  return {
    ...columns,
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    createdAt: createdAt.toISOString(),
  };
}

function owned(principal: Principal, id: string): SQL | undefined {
  const scope = tenantScope(principal);
  return scope ? and(eq(certificates.id, id), eq(certificates.tenantId, scope)) : eq(certificates.id, id);
}

export const certificatesRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db, secrets } = deps;

  app.get(
    '/v1/certificates',
    {
      schema: {
        operationId: 'listCertificates',
        tags: ['certificates'],
        summary: 'List certificate metadata, newest first',
        description: 'Current certificates only unless includeHistory=true. Keyset pagination as for orders.',
        querystring: CertificateListQuery,
        response: pageResponse('certificates', CertificateSchema),
      },
    },
    async (request) => {
      const query = request.query;
      const conditions = ownedPageConditions(principalOf(request), query, certificates);
      if (query.includeHistory !== 'true') conditions.push(eq(certificates.isCurrent, true));
      if (query.domain !== undefined) conditions.push(containsDomain(certificates.domains, query.domain));
      if (query.expiringWithinDays !== undefined)
        conditions.push(
          lte(certificates.notAfter, sql`now() + make_interval(days => ${query.expiringWithinDays}::int)`),
        );
      const rows = await db
        .select({ ...metadataColumns, cursorTs: cursorTimestamp(certificates.createdAt) })
        .from(certificates)
        .where(and(...conditions))
        .orderBy(desc(certificates.createdAt), desc(certificates.id))
        .limit(query.limit + 1);
      const { items, nextCursor } = page(rows, query.limit);
      return { certificates: items.map(toMetadata), nextCursor };
    },
  );

  app.get(
    '/v1/certificates/:id',
    {
      schema: {
        operationId: 'getCertificate',
        tags: ['certificates'],
        summary: 'Certificate metadata and its PEM chain',
        params: IdParams,
        response: { 200: CertificateWithPemSchema, ...errorResponses(401, 404, 429) },
      },
    },
    async (request) => {
      const [row] = await db
        .select({ ...metadataColumns, certificatePem: certificates.certificatePem })
        .from(certificates)
        .where(owned(principalOf(request), request.params.id));
      if (!row) throw notFound('certificate');
      return { ...toMetadata(row), certificatePem: row.certificatePem };
    },
  );

  app.get(
    '/v1/certificates/:id/private-key',
    {
      schema: {
        operationId: 'getCertificatePrivateKey',
        tags: ['certificates'],
        summary: 'The private key (audited)',
        description:
          'Every read is recorded in the audit log (actor, certificate) before the key is sent. ' +
          'Answered with Cache-Control: no-store.',
        params: IdParams,
        response: {
          200: z.object({ id: z.string(), privateKey: z.string().describe('PEM') }),
          ...errorResponses(401, 404, 429),
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const [row] = await db
        .select({
          id: certificates.id,
          tenantId: certificates.tenantId,
          sealed: certificates.privateKeySealed,
        })
        .from(certificates)
        .where(owned(principal, request.params.id));
      if (!row) throw notFound('certificate');
      const privateKey = secrets.open(row.sealed);
      // Audit first: a key whose read could not be recorded is not handed out.
      await db.insert(auditLog).values({
        tenantId: row.tenantId,
        actor: actorOf(principal),
        action: 'private_key.read',
        subjectId: row.id,
        detail: { requestId: request.id, ip: request.ip },
        ip: request.ip,
        requestId: request.id,
      });
      return reply.header('cache-control', 'no-store').send({ id: row.id, privateKey });
    },
  );
};
