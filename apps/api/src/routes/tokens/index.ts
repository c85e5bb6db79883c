import { generateToken, hashToken } from '@certq/core';
import { tenants } from '@certq/db';
import { eq, sql } from 'drizzle-orm';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { writeAudit } from '../../plugins/audit';
import { principalOf, tenantScope, tokenIdOf } from '../../plugins/auth';
import { ApiError, badRequest, errorResponses, notFound } from '../../plugins/errors';
import { IdParams } from '../../schemas';
import { DEFAULT_GRACE_SECONDS, RotatedTokenSchema, RotateInputSchema } from './schemas';

/**
 * Tenant token lifecycle. Rotation issues a new token; the old one stays valid for a grace period
 * (default a day, at most a week; only the latest old token is kept, so rotating again ends the
 * previous grace). Revocation refuses the tenant's tokens at once until the operator rotates. Both
 * clear the API's token cache in every replica (see plugins/auth.ts).
 */
export const tokensRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const { db } = deps;

  async function rotate(request: FastifyRequest, tenantId: string, graceSeconds: number) {
    const token = generateToken('cq');
    const newHash = hashToken(token);
    const [before] = await db
      .select({ tokenHash: tenants.tokenHash, revokedAt: tenants.tokenRevokedAt })
      .from(tenants)
      .where(eq(tenants.id, tenantId));
    if (!before) throw notFound('tenant');
    const [row] = await db
      .update(tenants)
      .set({
        // A revoked token gets no grace: it is already refused.
        previousTokenHash: sql`case when ${tenants.tokenRevokedAt} is null and ${graceSeconds} > 0 then ${tenants.tokenHash} end`,
        previousTokenExpiresAt: sql`case when ${tenants.tokenRevokedAt} is null and ${graceSeconds} > 0 then now() + make_interval(secs => ${graceSeconds}) end`,
        tokenHash: newHash,
        tokenRevokedAt: null,
        updatedAt: new Date(),
      })
      .where(eq(tenants.id, tenantId))
      .returning({ until: tenants.previousTokenExpiresAt });
    if (!row) throw notFound('tenant');
    await app.invalidateTenantTokens(tenantId);
    const previousTokenValidUntil = row.until?.toISOString() ?? null;
    await writeAudit(db, request, {
      action: 'token.rotate',
      tenantId,
      subjectId: tenantId,
      detail: {
        previousTokenId: tokenIdOf(before.tokenHash),
        newTokenId: tokenIdOf(newHash),
        graceSeconds,
        previousTokenValidUntil,
        wasRevoked: before.revokedAt !== null,
      },
    });
    return { token, previousTokenValidUntil };
  }

  app.post(
    '/v1/token/rotate',
    {
      schema: {
        operationId: 'rotateOwnToken',
        tags: ['tenants'],
        summary: 'Rotate your token (tenant)',
        description: `A new token, shown once; the one used for this call stays valid for graceSeconds (default ${DEFAULT_GRACE_SECONDS}).`,
        body: RotateInputSchema,
        response: { 200: RotatedTokenSchema, ...errorResponses(400, 401, 403, 415, 429) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const scope = tenantScope(principal);
      if (!scope)
        throw badRequest('the operator rotates a tenant’s token with POST /v1/tenants/{id}/token/rotate');
      // A rotated-out token must not mint a successor (and end the owner's new token's grace with it).
      if (principal.kind === 'tenant' && principal.inGrace)
        throw new ApiError(
          403,
          'forbidden',
          'this token was rotated out and only works until its grace period ends: rotate with the current token',
        );
      return rotate(request, scope, request.body?.graceSeconds ?? DEFAULT_GRACE_SECONDS);
    },
  );

  app.post(
    '/v1/tenants/:id/token/rotate',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'rotateTenantToken',
        tags: ['tenants'],
        summary: 'Rotate a tenant’s token (operator)',
        description: 'Also ends a revocation: the new token works, the revoked one never again.',
        params: IdParams,
        body: RotateInputSchema,
        response: { 200: RotatedTokenSchema, ...errorResponses(400, 401, 403, 404, 415, 429) },
      },
    },
    async (request) =>
      rotate(request, request.params.id, request.body?.graceSeconds ?? DEFAULT_GRACE_SECONDS),
  );

  app.post(
    '/v1/tenants/:id/token/revoke',
    {
      config: { auth: 'admin' },
      schema: {
        operationId: 'revokeTenantToken',
        tags: ['tenants'],
        summary: 'Revoke a tenant’s tokens (operator)',
        description: 'The current and any rotated-out token are refused at once; rotate to issue a new one.',
        params: IdParams,
        response: { 204: z.null(), ...errorResponses(401, 403, 404, 429) },
      },
    },
    async (request, reply) => {
      const [prior] = await db
        .select({ previous: tenants.previousTokenHash })
        .from(tenants)
        .where(eq(tenants.id, request.params.id));
      const [row] = await db
        .update(tenants)
        .set({
          tokenRevokedAt: new Date(),
          previousTokenHash: null,
          previousTokenExpiresAt: null,
          updatedAt: new Date(),
        })
        .where(eq(tenants.id, request.params.id))
        .returning({ id: tenants.id, tokenHash: tenants.tokenHash });
      if (!row) throw notFound('tenant');
      await app.invalidateTenantTokens(row.id);
      await writeAudit(db, request, {
        action: 'token.revoke',
        tenantId: row.id,
        subjectId: row.id,
        detail: {
          revokedTokenIds: [
            tokenIdOf(row.tokenHash),
            ...(prior?.previous ? [tokenIdOf(prior.previous)] : []),
          ],
        },
      });
      return reply.code(204).send(null);
    },
  );
};
