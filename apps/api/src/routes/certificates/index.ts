import { checkUploadedCertificate } from '@certq/api-client';
import {
  ACTIVE_STATUS_SQL_LIST,
  CERTIFICATE_STATUSES,
  type CertificateStatus,
  certificateStatus,
  normalizeDomainList,
} from '@certq/core';
import { auditLog, type Certificate, certificates } from '@certq/db';
import { retireCertificate, storeUploadedCertificate } from '@certq/workflow';
import { and, desc, eq, lte, not, type SQL, sql } from 'drizzle-orm';
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
import { writeAudit } from '../../plugins/audit';
import { actorOf, type Principal, principalOf, tenantScope } from '../../plugins/auth';
import { badRequest, errorResponses, notFound } from '../../plugins/errors';
import { AlgorithmSchema, CaSchema, IdParams, Timestamp } from '../../schemas';

export const CertificateSchema = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    orderId: z.string().nullable().describe('the order that issued it; null for an uploaded certificate'),
    domains: z.array(z.string()),
    algorithm: AlgorithmSchema,
    ca: CaSchema.nullable().describe('null for an uploaded certificate'),
    notBefore: Timestamp,
    notAfter: Timestamp,
    fingerprint: z.string().describe('SHA-256 of the leaf certificate (DER), lowercase hex'),
    isCurrent: z.boolean().describe('false: retired or replaced by a newer certificate, kept as history'),
    status: z
      .enum(CERTIFICATE_STATUSES)
      .describe(
        'active, renewing (an order for the same domains is under way), moved (the CNAME left: renewals stopped), ' +
          'retired (not served: retired, tenant deleted, or replaced), expired, uploaded (brought by the tenant, never renewed)',
      ),
    statusReason: z.string().describe('one sentence: why it has this status'),
    uploaded: z.boolean().describe('brought by the tenant (POST /v1/certificates), not issued by certq'),
    retiredAt: Timestamp.nullable(),
    movedAt: Timestamp.nullable().describe(
      'when its renewal found the CNAME gone for longer than MOVED_GRACE_DAYS',
    ),
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
  includeHistory: z
    .enum(['true', 'false'])
    .optional()
    .describe('also retired and replaced certificates (default false; implied by status=retired)'),
  status: z.enum(CERTIFICATE_STATUSES).optional().describe('only certificates with this status'),
});

/** At most this much PEM: a chain of a few certificates is a few kilobytes. */
const MAX_PEM_CHARS = 128 * 1024;
const UPLOAD_BODY_LIMIT = 2 * MAX_PEM_CHARS + 16 * 1024;

const UploadSchema = z.strictObject({
  tenantId: z.uuid().optional().describe('the operator uploads for this tenant; a tenant for itself'),
  certificate: z.string().min(1).max(MAX_PEM_CHARS).describe('PEM: the leaf, then its intermediates'),
  privateKey: z.string().min(1).max(MAX_PEM_CHARS).describe('PEM, unencrypted (SEC1, PKCS#1 or PKCS#8)'),
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
  state: certificates.state,
  retiredReason: certificates.retiredReason,
  retiredAt: certificates.retiredAt,
  movedAt: certificates.movedAt,
  createdAt: certificates.createdAt,
  // Spelled out: drizzle renders a single-table query's columns unqualified, which inside the
  // subquery would name the order's own.
  orderActive: sql<boolean>`exists (select 1 from orders o where o.tenant_id = "certificates"."tenant_id"
    and o.domains_key = "certificates"."domains_key" and o.status in (${sql.raw(ACTIVE_STATUS_SQL_LIST)}))`,
};

type MetadataRow = Pick<Certificate, Exclude<keyof typeof metadataColumns, 'orderActive'>> & {
  orderActive: boolean;
};

/** The row as the API shows it: the selected columns, its status derived (core), timestamps as ISO strings. */
export function toMetadata(row: MetadataRow, now = new Date()) {
  const {
    notBefore,
    notAfter,
    createdAt,
    state,
    retiredReason,
    retiredAt,
    movedAt,
    orderActive,
    ...columns
  } = row;
  const { status, reason } = certificateStatus(
    { isCurrent: row.isCurrent, state, retiredReason, notAfter, orderActive },
    now,
  );
  return {
    ...columns,
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    status,
    statusReason: reason,
    uploaded: state === 'uploaded',
    retiredAt: retiredAt?.toISOString() ?? null,
    movedAt: movedAt?.toISOString() ?? null,
    createdAt: createdAt.toISOString(),
  };
}

/** The rows whose derived status (certificateStatus in core) is `status`, as SQL. */
function statusCondition(status: CertificateStatus): SQL {
  const live = sql`${certificates.isCurrent} and ${certificates.notAfter} > now()`;
  const busy = metadataColumns.orderActive;
  switch (status) {
    case 'retired':
      return not(certificates.isCurrent);
    case 'expired':
      return sql`${certificates.isCurrent} and ${certificates.notAfter} <= now()`;
    case 'moved':
      return sql`${live} and ${certificates.state} = 'moved'`;
    case 'renewing':
      return sql`${live} and ${certificates.state} <> 'moved' and ${busy}`;
    case 'uploaded':
    case 'active':
      return sql`${live} and ${certificates.state} = ${status} and not ${busy}`;
  }
}

function owned(principal: Principal, id: string): SQL | undefined {
  const scope = tenantScope(principal);
  return scope ? and(eq(certificates.id, id), eq(certificates.tenantId, scope)) : eq(certificates.id, id);
}

export const certificatesRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db, secrets, queues } = deps;

  async function readMetadata(id: string) {
    const [row] = await db.select(metadataColumns).from(certificates).where(eq(certificates.id, id));
    if (!row) throw notFound('certificate');
    return toMetadata(row);
  }

  app.delete(
    '/v1/certificates/:id',
    {
      schema: {
        operationId: 'retireCertificate',
        tags: ['certificates'],
        summary: 'Retire a certificate: stop renewing and serving it',
        description:
          'The certificate stops being current: renewals stop, the TLS route answers 204 for its names, the change ' +
          'feed carries its removal (agents delete its files). An active order for the same domain set is cancelled ' +
          'first (`cancelledOrderId`). History stays. Retiring again answers 200 with the certificate unchanged. ' +
          'A new order for the same domains later starts again. Sends `certificate.retired`. Audited.',
        params: IdParams,
        response: {
          200: CertificateSchema.extend({
            cancelledOrderId: z
              .string()
              .nullable()
              .describe('the active order for the same domains, cancelled'),
          }),
          ...errorResponses(401, 403, 404, 429),
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const result = await retireCertificate(db, queues, {
        certificateId: request.params.id,
        actor: actorOf(principal),
        tenantScope: tenantScope(principal),
      });
      if (result.retired)
        await writeAudit(db, request, {
          action: 'certificate.retire',
          tenantId: result.certificate.tenantId,
          subjectId: result.certificate.id,
          detail: { domains: result.certificate.domains, cancelledOrderId: result.cancelledOrderId },
        }).catch((error: unknown) => request.log.warn({ err: error }, 'could not write the audit row'));
      return { ...(await readMetadata(result.certificate.id)), cancelledOrderId: result.cancelledOrderId };
    },
  );

  app.post(
    '/v1/certificates',
    {
      bodyLimit: UPLOAD_BODY_LIMIT,
      schema: {
        operationId: 'uploadCertificate',
        tags: ['certificates'],
        summary: 'Upload a certificate certq did not issue (bring your own)',
        description:
          'Checked as an issued one: the key matches the leaf, the chain links, the leaf is not a CA certificate and ' +
          'is valid now, its names are valid domains and no other tenant holds a current certificate for them. ' +
          'Stored with status `uploaded`: served like an issued certificate, never renewed by certq. A later order for ' +
          'the same domains replaces it once issued. Never answers the key. Bodies over ' +
          `${UPLOAD_BODY_LIMIT} bytes answer 413. Audited.`,
        body: UploadSchema,
        response: { 201: CertificateSchema, ...errorResponses(400, 401, 403, 409, 413, 415, 429) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const scope = tenantScope(principal);
      const { tenantId: asked, certificate, privateKey } = request.body;
      if (scope && asked && asked !== scope) throw badRequest('tenantId: a tenant uploads for itself only');
      const tenantId = scope ?? asked;
      if (!tenantId) throw badRequest('tenantId: required with the operator token');
      const check = checkUploadedCertificate({ certificate, privateKey });
      if (!check.ok) throw badRequest(check.reason);
      const names = normalizeDomainList(check.domains);
      if (!names.ok)
        throw badRequest(
          `the certificate names ${names.index === undefined ? 'domains' : `"${check.domains[names.index]}"`}, ` +
            `which certq cannot serve: ${names.reason}`,
        );
      if (
        names.domains.length !== check.domains.length ||
        names.domains.some((d, i) => d !== check.domains[i])
      )
        throw badRequest(`the certificate's names are not in canonical form: ${check.domains.join(', ')}`);
      const stored = await storeUploadedCertificate(db, {
        tenantId,
        domains: names.domains,
        algorithm: check.algorithm,
        certificatePem: check.certificate,
        privateKeySealed: secrets.seal(privateKey),
        fingerprint: check.fingerprint,
        notBefore: check.notBefore,
        notAfter: check.notAfter,
        actor: actorOf(principal),
      });
      await writeAudit(db, request, {
        action: 'certificate.upload',
        tenantId,
        subjectId: stored.id,
        detail: { domains: stored.domains, fingerprint: stored.fingerprint },
      }).catch((error: unknown) => request.log.warn({ err: error }, 'could not write the audit row'));
      return reply.code(201).send(await readMetadata(stored.id));
    },
  );

  app.get(
    '/v1/certificates',
    {
      schema: {
        operationId: 'listCertificates',
        tags: ['certificates'],
        summary: 'List certificate metadata, newest first',
        description:
          'Current certificates only unless includeHistory=true or a status is asked for. Keyset pagination as for orders.',
        querystring: CertificateListQuery,
        response: pageResponse('certificates', CertificateSchema),
      },
    },
    async (request) => {
      const query = request.query;
      const conditions = ownedPageConditions(principalOf(request), query, certificates);
      if (query.status !== undefined) conditions.push(statusCondition(query.status));
      else if (query.includeHistory !== 'true') conditions.push(eq(certificates.isCurrent, true));
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
      return { certificates: items.map((row) => toMetadata(row)), nextCursor };
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
