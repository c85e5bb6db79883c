import { generateToken, hashToken } from '@certq/core';
import { tenants, violatedConstraint } from '@certq/db';
import { asc } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { ApiError, errorResponses } from '../../plugins/errors';
import { Timestamp } from '../../schemas';

export const TenantInputSchema = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
  httpsokApiKey: z
    .string()
    .trim()
    .min(1)
    .max(512)
    .optional()
    .describe("the tenant's own httpsok OpenApiKey (stored encrypted); default: the operator's"),
});

export const TenantSchema = z.object({
  id: z.string(),
  name: z.string(),
  hasOwnApiKey: z.boolean(),
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
      const { name, httpsokApiKey } = request.body;
      try {
        const [tenant] = await db
          .insert(tenants)
          .values({
            name,
            tokenHash: hashToken(token),
            httpsokApiKeySealed: httpsokApiKey === undefined ? null : secrets.seal(httpsokApiKey),
          })
          .returning({ id: tenants.id, name: tenants.name });
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
        response: {
          200: z.object({ tenants: z.array(TenantSchema) }),
          ...errorResponses(401, 404, 429),
        },
      },
    },
    async () => {
      const rows = await db
        .select({
          id: tenants.id,
          name: tenants.name,
          sealed: tenants.httpsokApiKeySealed,
          createdAt: tenants.createdAt,
        })
        .from(tenants)
        .orderBy(asc(tenants.createdAt), asc(tenants.id));
      return {
        tenants: rows.map((t) => ({
          id: t.id,
          name: t.name,
          hasOwnApiKey: t.sealed !== null,
          createdAt: t.createdAt.toISOString(),
        })),
      };
    },
  );
};
