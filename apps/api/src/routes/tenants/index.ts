import { generateToken, hashToken } from '@certq/core';
import { tenants, violatedConstraint } from '@certq/db';
import { deleteTenant, resumeTenant, suspendTenant } from '@certq/workflow';
import { asc, eq } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { writeAudit } from '../../plugins/audit';
import { actorOf, principalOf } from '../../plugins/auth';
import { ApiError, errorResponses, notFound } from '../../plugins/errors';
import { CaSchema, DisplayName, IdParams, operatorListResponse, Timestamp } from '../../schemas';

/** A tenant's default CA list: used by its orders that name no CA. */
const CaChoicesSchema = z
  .array(CaSchema)
  .min(1)
  .max(3)
  .refine((list) => new Set(list).size === list.length, 'each CA may appear once')
  .describe("default CAs, in order of preference, for this tenant's orders that name no `ca`");

export const TenantInputSchema = z.strictObject({
  name: DisplayName,
  httpsokApiKey: z
    .string()
    .trim()
    .min(1)
    .max(512)
    .optional()
    .describe("the tenant's own httpsok OpenApiKey (stored encrypted); default: the operator's"),
  caChoices: CaChoicesSchema.optional(),
});

export const TenantSchema = z.object({
  id: z.string(),
  name: z.string(),
  hasOwnApiKey: z.boolean(),
  caChoices: z.array(CaSchema).nullable().describe('default CA list; null: google'),
  status: z
    .enum(['active', 'suspended', 'deleted'])
    .describe('suspended: writes refused, renewals stopped (reversible); deleted: for good'),
  suspendedAt: Timestamp.nullable(),
  stopServing: z.boolean().describe('suspended with stopServing: its certificates are not served meanwhile'),
  deletedAt: Timestamp.nullable(),
  createdAt: Timestamp,
});

type TenantRow = typeof tenants.$inferSelect;

function tenantView(t: TenantRow) {
  return {
    id: t.id,
    name: t.name,
    hasOwnApiKey: t.httpsokApiKeySealed !== null,
    caChoices: t.defaultCaChoices,
    status: t.deletedAt ? ('deleted' as const) : t.suspendedAt ? ('suspended' as const) : ('active' as const),
    suspendedAt: t.suspendedAt?.toISOString() ?? null,
    stopServing: t.stopServing,
    deletedAt: t.deletedAt?.toISOString() ?? null,
    createdAt: t.createdAt.toISOString(),
  };
}

const SuspendInputSchema = z
  .strictObject({
    stopServing: z
      .boolean()
      .optional()
      .describe(
        'also stop serving its certificates until it is resumed (default false: served until they expire)',
      ),
  })
  .optional();

export const tenantsRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db, secrets } = deps;

  app.post(
    '/v1/tenants',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'createTenant',
        tags: ['tenants'],
        summary: 'Create a tenant (operator)',
        description:
          'Answers the tenant and its bearer token. The token is shown once: only its hash is kept.',
        body: TenantInputSchema,
        response: {
          201: z.object({ id: z.string(), name: z.string(), token: z.string() }),
          ...errorResponses(400, 401, 404, 409, 429),
        },
      },
    },
    async (request, reply) => {
      const token = generateToken('cq');
      const { name, httpsokApiKey, caChoices } = request.body;
      try {
        const [tenant] = await db
          .insert(tenants)
          .values({
            name,
            tokenHash: hashToken(token),
            httpsokApiKeySealed: httpsokApiKey === undefined ? null : secrets.seal(httpsokApiKey),
            defaultCaChoices: caChoices ?? null,
          })
          .returning({ id: tenants.id, name: tenants.name });
        await writeAudit(db, request, {
          action: 'tenant.create',
          tenantId: tenant!.id,
          subjectId: tenant!.id,
          detail: { name: tenant!.name },
        }).catch((error: unknown) => request.log.warn({ err: error }, 'could not write the audit row'));
        return reply.code(201).send({ id: tenant!.id, name: tenant!.name, token });
      } catch (error) {
        if (violatedConstraint(error) === 'tenants_name_unique')
          throw new ApiError(409, 'conflict', `a tenant named "${name}" already exists`);
        throw error;
      }
    },
  );

  app.get(
    '/v1/tenants',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'listTenants',
        tags: ['tenants'],
        summary: 'List tenants (operator)',
        description: 'No secrets: whether a tenant has its own httpsok key, never the key or token.',
        response: operatorListResponse('tenants', TenantSchema),
      },
    },
    async () => {
      const rows = await db.select().from(tenants).orderBy(asc(tenants.createdAt), asc(tenants.id));
      return { tenants: rows.map(tenantView) };
    },
  );

  app.put(
    '/v1/tenants/:id/ca-choices',
    {
      schema: {
        tags: ['tenants'],
        summary: "Set a tenant's default CA list",
        operationId: 'setTenantCaChoices',
        description:
          'The CAs, in order of preference, for orders of this tenant that name no `ca` (null: back to google). ' +
          'The operator for any tenant, a tenant for itself. Orders already created keep their list.',
        params: IdParams,
        body: z.strictObject({ caChoices: CaChoicesSchema.nullable() }),
        response: {
          200: z.object({ id: z.string(), caChoices: z.array(CaSchema).nullable() }),
          ...errorResponses(400, 401, 404, 429),
        },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { id } = request.params;
      if (principal.kind === 'tenant' && principal.tenantId !== id) throw notFound('tenant');
      const [before] = await db
        .select({ caChoices: tenants.defaultCaChoices })
        .from(tenants)
        .where(eq(tenants.id, id));
      const [updated] = await db
        .update(tenants)
        .set({ defaultCaChoices: request.body.caChoices })
        .where(eq(tenants.id, id))
        .returning({ id: tenants.id, caChoices: tenants.defaultCaChoices });
      if (!updated) throw notFound('tenant');
      request.auditChange = {
        tenantId: id,
        subjectId: id,
        changes: { caChoices: { old: before?.caChoices ?? null, new: updated.caChoices } },
      };
      return updated;
    },
  );

  const counts = (fields: Record<string, string>) =>
    z.object(Object.fromEntries(Object.entries(fields).map(([k, d]) => [k, z.number().int().describe(d)])));

  app.post(
    '/v1/tenants/:id/suspend',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'suspendTenant',
        tags: ['tenants'],
        summary: 'Suspend a tenant (operator)',
        description:
          'Its writes answer 403 tenant_suspended, its active orders are cancelled and its certificates are no longer ' +
          'renewed. They are still served until they expire, so that suspending an account does not take its ' +
          "customers' sites down; `stopServing: true` takes them out of delivery too until it is resumed. " +
          'Reversible with /resume until the tenant is deleted. Suspending again changes nothing. Audited.',
        params: IdParams,
        body: SuspendInputSchema,
        response: {
          200: z.object({
            tenant: TenantSchema,
            changed: z.boolean(),
            affected: counts({
              ordersCancelled: 'active orders cancelled',
              certificatesServed: 'current certificates still served',
              certificatesWithdrawn: 'certificates taken out of delivery (stopServing)',
            }),
          }),
          ...errorResponses(400, 401, 403, 404, 409, 415, 429),
        },
      },
    },
    async (request) => {
      const actor = actorOf(principalOf(request));
      const result = await suspendTenant(db, {
        tenantId: request.params.id,
        actor,
        stopServing: request.body?.stopServing,
      });
      await app.invalidateTenantTokens(result.tenant.id);
      const affected = {
        ordersCancelled: result.ordersCancelled,
        certificatesServed: result.certificatesServed,
        certificatesWithdrawn: result.certificatesWithdrawn,
      };
      if (result.changed) await auditTenant(request, 'tenant.suspend', result.tenant.id, affected);
      return { tenant: tenantView(result.tenant), changed: result.changed, affected };
    },
  );

  app.post(
    '/v1/tenants/:id/resume',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'resumeTenant',
        tags: ['tenants'],
        summary: 'Resume a suspended tenant (operator)',
        description:
          'Writes and renewals again; certificates withdrawn by stopServing are served again. Orders cancelled by ' +
          'the suspension are not restarted (renewals come back with the next scan). A deleted tenant answers 409. Audited.',
        params: IdParams,
        response: {
          200: z.object({
            tenant: TenantSchema,
            changed: z.boolean(),
            affected: counts({ certificatesRestored: 'certificates served again' }),
          }),
          ...errorResponses(401, 403, 404, 409, 429),
        },
      },
    },
    async (request) => {
      const result = await resumeTenant(db, {
        tenantId: request.params.id,
        actor: actorOf(principalOf(request)),
      });
      await app.invalidateTenantTokens(result.tenant.id);
      const affected = { certificatesRestored: result.certificatesRestored };
      if (result.changed) await auditTenant(request, 'tenant.resume', result.tenant.id, affected);
      return { tenant: tenantView(result.tenant), changed: result.changed, affected };
    },
  );

  app.delete(
    '/v1/tenants/:id',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'deleteTenant',
        tags: ['tenants'],
        summary: 'Delete a tenant (operator), for good',
        description:
          'Every current certificate is retired (no longer served, `certificate.retired` sent), active orders ' +
          'cancelled, its tokens revoked, and edge tokens scoped to it alone revoked. Its orders, certificates and ' +
          'audit trail stay. Not reversible; deleting again changes nothing. Audited.',
        params: IdParams,
        response: {
          200: z.object({
            tenant: TenantSchema,
            changed: z.boolean(),
            affected: counts({
              certificatesRetired: 'current certificates retired',
              ordersCancelled: 'active orders cancelled',
              edgeTokensRevoked: 'edge tokens scoped to this tenant alone, revoked',
            }),
          }),
          ...errorResponses(401, 403, 404, 429),
        },
      },
    },
    async (request) => {
      const result = await deleteTenant(db, deps.queues, {
        tenantId: request.params.id,
        actor: actorOf(principalOf(request)),
      });
      await app.invalidateTenantTokens(result.tenant.id);
      if (result.edgeTokensRevoked) app.delivery.edgeTokens.forgetAll();
      const affected = {
        certificatesRetired: result.certificatesRetired,
        ordersCancelled: result.ordersCancelled,
        edgeTokensRevoked: result.edgeTokensRevoked,
      };
      if (result.changed) await auditTenant(request, 'tenant.delete', result.tenant.id, affected);
      return { tenant: tenantView(result.tenant), changed: result.changed, affected };
    },
  );

  async function auditTenant(
    request: Parameters<typeof writeAudit>[1],
    action: string,
    tenantId: string,
    detail: Record<string, unknown>,
  ) {
    await writeAudit(db, request, { action, tenantId, subjectId: tenantId, detail }).catch((error: unknown) =>
      request.log.warn({ err: error }, 'could not write the audit row'),
    );
  }
};
