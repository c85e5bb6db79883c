import { generateToken, hashToken } from '@certq/core';
import { tenants, violatedConstraint } from '@certq/db';
import { asc, eq } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { writeAudit } from '../../plugins/audit';
import { principalOf } from '../../plugins/auth';
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
  createdAt: Timestamp,
});

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
      const rows = await db
        .select({
          id: tenants.id,
          name: tenants.name,
          sealed: tenants.httpsokApiKeySealed,
          caChoices: tenants.defaultCaChoices,
          createdAt: tenants.createdAt,
        })
        .from(tenants)
        .orderBy(asc(tenants.createdAt), asc(tenants.id));
      return {
        tenants: rows.map((t) => ({
          id: t.id,
          name: t.name,
          hasOwnApiKey: t.sealed !== null,
          caChoices: t.caChoices,
          createdAt: t.createdAt.toISOString(),
        })),
      };
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
};
