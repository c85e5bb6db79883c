import { hashToken, safeEqual } from '@certq/core';
import { type Database, tenants } from '@certq/db';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ApiError, notFound } from './errors';

export type Principal = { kind: 'admin' } | { kind: 'tenant'; tenantId: string };

/**
 * Who may call a route, set per route as `config: { auth }`:
 * - `none`: public (health, callbacks — the secret in the path is the auth —, docs);
 * - `any` (the default, so a route nobody thought about is never public): operator or tenant token;
 * - `admin`: the operator token only; a tenant token gets 404, as if the route did not exist.
 */
export type AuthMode = 'none' | 'any' | 'admin';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    auth?: AuthMode;
  }
}

/** The audit-log actor: `admin` or `tenant:<id>`. */
export function actorOf(principal: Principal): string {
  return principal.kind === 'admin' ? 'admin' : `tenant:${principal.tenantId}`;
}

/** The principal of an authenticated route (the auth hook has run). */
export function principalOf(request: { principal: Principal | null }): Principal {
  if (!request.principal) throw new ApiError(401, 'unauthorized', 'a bearer token is required');
  return request.principal;
}

/** The tenant an authenticated principal is confined to, or undefined for the operator. */
export function tenantScope(principal: Principal): string | undefined {
  return principal.kind === 'tenant' ? principal.tenantId : undefined;
}

const unauthorized = () =>
  new ApiError(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)');

const CACHE_TTL_MS = 30_000;
const CACHE_MAX = 10_000;

export interface AuthOptions extends Record<string, unknown> {
  db: Database;
  adminToken: string | undefined;
}

/**
 * Bearer auth. Tenant tokens are stored only as SHA-256 hashes: a token is hashed, looked up by its
 * hash and compared in constant time. Known hashes are cached for 30 s (tenants and tokens are never
 * deleted or rotated today; whoever adds that must clear this cache).
 */
export const authPlugin = fp<AuthOptions>(
  async (app: FastifyInstance, options) => {
    const cache = new Map<string, { tenantId: string; expires: number }>();

    async function tenantFor(tokenHash: string): Promise<string | undefined> {
      const hit = cache.get(tokenHash);
      if (hit && hit.expires > Date.now()) return hit.tenantId;
      const [row] = await options.db
        .select({ id: tenants.id, tokenHash: tenants.tokenHash })
        .from(tenants)
        .where(eq(tenants.tokenHash, tokenHash));
      if (!row || !safeEqual(row.tokenHash, tokenHash)) return undefined;
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(tokenHash, { tenantId: row.id, expires: Date.now() + CACHE_TTL_MS });
      return row.id;
    }

    app.decorateRequest('principal', null);
    app.addHook('onRequest', async (request) => {
      if (request.is404) return;
      const mode = request.routeOptions.config.auth ?? 'any';
      if (mode === 'none') return;
      const header = request.headers.authorization;
      const match = typeof header === 'string' ? /^Bearer +([!-~]{1,512})\s*$/i.exec(header) : null;
      const token = match?.[1];
      if (!token) throw unauthorized();
      if (options.adminToken && safeEqual(token, options.adminToken)) {
        request.principal = { kind: 'admin' };
      } else {
        const tenantId = await tenantFor(hashToken(token));
        if (!tenantId) throw unauthorized();
        request.principal = { kind: 'tenant', tenantId };
      }
      if (mode === 'admin' && request.principal.kind !== 'admin') throw notFound('route');
    });
  },
  { name: 'certq-auth' },
);
