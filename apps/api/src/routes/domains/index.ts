import { normalizeDomain } from '@certq/core';
import { tenants } from '@certq/db';
import { ownershipOf, ownershipRecord, provenNames, transferDomainByOperator } from '@certq/workflow';
import { eq } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { actorOf, principalOf } from '../../plugins/auth';
import { ApiError, badRequest, errorResponses } from '../../plugins/errors';

const NameParams = z.strictObject({
  name: z.string().min(1).max(300).describe('a domain name, or a one-label wildcard (`*.example.com`)'),
});

const RecordSchema = z.object({
  type: z.literal('TXT'),
  name: z.string().describe('`_certq-owner.<name>` (the base name for a wildcard)'),
  value: z.string().describe('the value to put in the TXT record: certq gives each tenant its own per name'),
});

const OwnershipSchema = z.object({
  name: z.string(),
  holder: z
    .enum(['you', 'another_tenant', 'nobody'])
    .describe('who holds the name now (its claim; another tenant is never named to a tenant)'),
  tenantId: z.string().nullable().describe('operator only: the tenant holding it'),
  record: RecordSchema.nullable().describe(
    'the record that proves the name is yours (tenants, or ?tenantId=)',
  ),
  recordFound: z.boolean().nullable().describe('whether certq’s own DNS lookup finds that record now'),
});

const TransferInput = z.strictObject({
  tenantId: z.uuid().describe('the tenant the name goes to'),
  reason: z.string().trim().min(1).max(500).describe('why, for the audit trail and both webhooks'),
});

function domainParam(raw: string): string {
  const result = normalizeDomain(raw);
  if (!result.ok) throw badRequest(`params name: ${result.reason}`);
  return result.domain;
}

/**
 * Domain ownership across tenants (packages/workflow/src/ownership.ts): who holds a name and the TXT
 * record that proves it, and the operator's explicit transfer.
 */
export const domainsRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db } = deps;

  app.get(
    '/v1/domains/:name/ownership',
    {
      schema: {
        operationId: 'getDomainOwnership',
        tags: ['domains'],
        summary: 'Who holds a domain, and the TXT record that proves it is yours',
        description:
          'A name (and the names a one-label wildcard of it covers) belongs to one tenant at a time. ' +
          'An order for a name another tenant uses answers 409 domain_owned_by_another_tenant; create the ' +
          '`record` given here (or in that 409) and order again: the name is transferred to you. The ' +
          'operator passes `tenantId` to see a tenant’s record.',
        params: NameParams,
        querystring: z.strictObject({ tenantId: z.uuid().optional() }),
        response: { 200: OwnershipSchema, ...errorResponses(400, 401, 403, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const name = domainParam(request.params.name);
      const asTenant = principal.kind === 'tenant' ? principal.tenantId : request.query.tenantId;
      if (
        principal.kind === 'tenant' &&
        request.query.tenantId &&
        request.query.tenantId !== principal.tenantId
      )
        throw badRequest('querystring tenantId: a tenant token can only ask for its own tenant');
      const held = await ownershipOf(db, asTenant, name);
      const proofs = deps.ownership;
      const record = asTenant && proofs ? ownershipRecord(proofs.key, asTenant, name) : null;
      const recordFound =
        asTenant && proofs ? (await provenNames(proofs, asTenant, [name])).length === 1 : null;
      return {
        name,
        holder:
          principal.kind === 'tenant' || asTenant
            ? held.holder
            : held.holder === 'nobody'
              ? 'nobody'
              : 'another_tenant',
        tenantId: principal.kind === 'tenant' ? null : held.tenantId,
        record,
        recordFound,
      };
    },
  );

  app.post(
    '/v1/domains/:name/transfer',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'transferDomain',
        tags: ['domains'],
        summary: 'Give a domain to a tenant (operator)',
        description:
          'Without a DNS proof: the name, and whatever another tenant holds that overlaps it, goes to ' +
          '`tenantId`. Previous holders’ current certificates naming it stop being served and renewed, ' +
          'their active orders naming it are cancelled, both sides get a webhook, the audit says who and why.',
        params: NameParams,
        body: TransferInput,
        response: {
          200: z.object({
            name: z.string(),
            tenantId: z.string(),
            takenFrom: z.array(z.object({ name: z.string(), previousTenantId: z.string() })),
            stoppedCertificateIds: z.array(z.string()),
            cancelledOrderIds: z.array(z.string()),
          }),
          ...errorResponses(400, 401, 403, 404, 415, 429),
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const name = domainParam(request.params.name);
      const { tenantId, reason } = request.body;
      const [tenant] = await db.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId));
      if (!tenant) throw new ApiError(400, 'validation_failed', `tenantId: unknown tenant ${tenantId}`);
      const result = await transferDomainByOperator(deps, {
        tenantId,
        name,
        reason,
        by: { actor: actorOf(principal), ip: request.ip, requestId: request.id },
      });
      return {
        name,
        tenantId,
        takenFrom: result.taken,
        stoppedCertificateIds: result.stoppedCertificateIds,
        cancelledOrderIds: result.cancelledOrderIds,
      };
    },
  );
};
