import { generateToken, hashToken } from '@certq/core';
import { tenants, violatedConstraint } from '@certq/db';
import { asc } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { writeAudit } from '../../plugins/audit';
import { ApiError, errorResponses } from '../../plugins/errors';
import { Timestamp } from '../../schemas';

const INVISIBLE_NAMES: Record<number, string> = {
  173: 'SOFT HYPHEN',
  1564: 'ARABIC LETTER MARK',
  8203: 'ZERO WIDTH SPACE',
  8204: 'ZERO WIDTH NON-JOINER',
  8205: 'ZERO WIDTH JOINER',
  8206: 'LEFT-TO-RIGHT MARK',
  8207: 'RIGHT-TO-LEFT MARK',
  8234: 'LEFT-TO-RIGHT EMBEDDING',
  8235: 'RIGHT-TO-LEFT EMBEDDING',
  8236: 'POP DIRECTIONAL FORMATTING',
  8237: 'LEFT-TO-RIGHT OVERRIDE',
  8238: 'RIGHT-TO-LEFT OVERRIDE',
  8288: 'WORD JOINER',
  8294: 'LEFT-TO-RIGHT ISOLATE',
  8295: 'RIGHT-TO-LEFT ISOLATE',
  8296: 'FIRST STRONG ISOLATE',
  8297: 'POP DIRECTIONAL ISOLATE',
  65279: 'ZERO WIDTH NO-BREAK SPACE',
};

/**
 * Bidi overrides and invisible characters make one name look like another (or reorder what an
 * operator reads): refused, naming the character and where it is (1-based, in code points).
 * Format characters (\p{Cf}) cover them all, plus fillers that render as nothing.
 */
/** Not format characters, but render as nothing. */
const FILLERS = new Set([0x034f, 0x115f, 0x1160, 0x17b4, 0x17b5, 0x180e, 0x3164, 0xffa0]);

export function invisibleCharacter(name: string): string | undefined {
  let position = 0;
  for (const char of name) {
    position++;
    const cp = char.codePointAt(0)!;
    if (/\p{Cf}/u.test(char) || FILLERS.has(cp)) {
      const hex = cp.toString(16).toUpperCase().padStart(4, '0');
      const label = INVISIBLE_NAMES[cp] ? ` (${INVISIBLE_NAMES[cp]})` : '';
      return `must not contain invisible or bidirectional-control characters: U+${hex}${label} at position ${position}`;
    }
  }
  return undefined;
}

export const TenantInputSchema = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters')
    .superRefine((name, ctx) => {
      const problem = invisibleCharacter(name);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
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
