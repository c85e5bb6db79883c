import { hashToken, safeEqual } from '@certq/core';
import { type Database, tenants } from '@certq/db';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { EDGE_TOKEN_PREFIX, type EdgeTokenStore } from '../delivery/edge-tokens';
import { ApiError, notFound } from './errors';

export type Principal =
  | { kind: 'admin' }
  | { kind: 'tenant'; tenantId: string }
  /** A TLS server or agent: read-only, delivery routes only; `tenantIds` null = every tenant. */
  | { kind: 'edge'; tokenId: string; tenantIds: string[] | null };

/**
 * Who may call a route, set per route as `config: { auth }`:
 * - `none`: public (health, callbacks — the secret in the path is the auth —, docs);
 * - `any` (the default, so a route nobody thought about is never public): operator or tenant token;
 * - `admin`: the operator token only; a tenant token gets 404, as if the route did not exist;
 * - `edge`: the operator or an edge token (TLS servers fetching keys); a tenant token gets 403.
 * Edge tokens are refused (403) everywhere except on routes with `config: { edgeTokens: true }`, and
 * may come as a `token` query parameter only where `config: { tokenInQuery: true }` (Caddy sends no
 * headers); such URLs are redacted from our logs (see app.ts).
 */
export type AuthMode = 'none' | 'any' | 'admin' | 'edge';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    auth?: AuthMode;
    edgeTokens?: boolean;
    tokenInQuery?: boolean;
  }
}

/** The audit-log actor: `admin` or `tenant:<id>`. */
export function actorOf(principal: Principal): string {
  if (principal.kind === 'edge') return `edge:${principal.tokenId}`;
  return principal.kind === 'admin' ? 'admin' : `tenant:${principal.tenantId}`;
}

/** The principal of an authenticated route (the auth hook has run). */
export function principalOf(request: { principal: Principal | null }): Principal {
  if (!request.principal) throw new ApiError(401, 'unauthorized', 'a bearer token is required');
  return request.principal;
}

/**
 * The tenant an authenticated principal is confined to, or undefined for the operator. Edge tokens
 * never reach routes that use this (the auth hook refuses them); see `tenantsVisibleTo`.
 */
export function tenantScope(principal: Principal): string | undefined {
  if (principal.kind === 'edge') throw new ApiError(403, 'forbidden', 'an edge token cannot use this route');
  return principal.kind === 'tenant' ? principal.tenantId : undefined;
}

/** The tenants a principal may see: null for every tenant. */
export function tenantsVisibleTo(principal: Principal): string[] | null {
  if (principal.kind === 'tenant') return [principal.tenantId];
  if (principal.kind === 'edge') return principal.tenantIds;
  return null;
}

const edgeOnlyHere = () =>
  new ApiError(
    403,
    'forbidden',
    'an edge token can only be used on GET /v1/tls/certificate and GET /v1/certificates/changes',
  );

const unauthorized = () =>
  new ApiError(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)');

const CACHE_TTL_MS = 30_000;
const CACHE_MAX = 10_000;

export interface AuthOptions extends Record<string, unknown> {
  db: Database;
  adminToken: string | undefined;
  edgeTokens: EdgeTokenStore;
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
      const { config } = request.routeOptions;
      const header = request.headers.authorization;
      const match = typeof header === 'string' ? /^Bearer +([!-~]{1,512})\s*$/i.exec(header) : null;
      let token = match?.[1];
      if (!token && config.tokenInQuery) {
        const fromQuery = (request.query as Record<string, unknown> | undefined)?.token;
        if (typeof fromQuery === 'string' && /^[!-~]{1,512}$/.test(fromQuery)) token = fromQuery;
      }
      if (!token) throw unauthorized();
      if (options.adminToken && safeEqual(token, options.adminToken)) {
        request.principal = { kind: 'admin' };
      } else if (token.startsWith(`${EDGE_TOKEN_PREFIX}_`)) {
        const edge = await options.edgeTokens.lookup(hashToken(token));
        if (!edge) throw unauthorized();
        if (!config.edgeTokens) throw edgeOnlyHere();
        request.principal = { kind: 'edge', tokenId: edge.tokenId, tenantIds: edge.tenantIds };
        options.edgeTokens.recordUse(edge.tokenId, request.routeOptions.url ?? 'unmatched');
      } else {
        const tenantId = await tenantFor(hashToken(token));
        if (!tenantId) throw unauthorized();
        request.principal = { kind: 'tenant', tenantId };
      }
      if (mode === 'admin' && request.principal.kind !== 'admin') throw notFound('route');
      if (mode === 'edge' && request.principal.kind === 'tenant')
        throw new ApiError(403, 'forbidden', 'this route takes an edge token (or the operator token)');
    });
  },
  { name: 'certq-auth' },
);
