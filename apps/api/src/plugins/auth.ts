import { type AuthThrottle, createAuthThrottle, hashToken, safeEqual } from '@certq/core';
import { type Database, tenants } from '@certq/db';
import { suspendedError } from '@certq/workflow';
import { and, eq, gt, isNull, or } from 'drizzle-orm';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { EDGE_TOKEN_PREFIX, type EdgeTokenStore } from '../delivery/edge-tokens';
import { ApiError, notFound } from './errors';

/**
 * `admin`: the operator (ADMIN_TOKEN). `viewer`: a read-only operator (VIEWER_TOKEN): reads what the
 * operator reads (private-key reads audited as `viewer`), and every write answers 403. `tenant`: one
 * tenant's token. `edge`: a TLS server or agent: read-only, delivery routes only; `tenantIds` null =
 * every tenant.
 */
export type Principal =
  | { kind: 'admin' }
  | { kind: 'viewer' }
  | {
      kind: 'tenant';
      tenantId: string;
      /** The token is the rotated-out one, in its grace period: it works, but cannot rotate again. */
      inGrace?: boolean;
      /** An id of the token used (a prefix of its hash): audit rows of rotations name both tokens. */
      tokenId: string;
    }
  | { kind: 'edge'; tokenId: string; tenantIds: string[] | null };

/**
 * Who may call a route, set per route as `config: { auth }`:
 * - `none`: public (health, callbacks — the secret in the path is the auth —, docs);
 * - `any` (the default, so a route nobody thought about is never public): operator or tenant token;
 * - `admin`: the operator token only (the viewer too, read-only); a tenant token gets 404, as if the
 *   route did not exist;
 * - `edge`: the operator (or viewer) or an edge token (TLS servers fetching keys); a tenant token gets 403.
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
  interface FastifyInstance {
    /** Forget cached tokens of a tenant here and in every API replica (after rotation or revocation). */
    invalidateTenantTokens(tenantId: string): Promise<void>;
    /** The failed-login throttle every door shares (see @certq/core auth-throttle). */
    authThrottle: AuthThrottle;
  }
}

/** The id audit rows give a tenant token: the first 16 hex digits of its SHA-256 (never the token). */
export const tokenIdOf = (tokenHash: string) => tokenHash.slice(0, 16);

/** The audit-log actor: `admin`, `viewer` or `tenant:<id>`. */
export function actorOf(principal: Principal): string {
  if (principal.kind === 'edge') return `edge:${principal.tokenId}`;
  return principal.kind === 'tenant' ? `tenant:${principal.tenantId}` : principal.kind;
}

/** The principal of an authenticated route (the auth hook has run). */
export function principalOf(request: { principal: Principal | null }): Principal {
  if (!request.principal) throw new ApiError(401, 'unauthorized', 'a bearer token is required');
  return request.principal;
}

/**
 * The tenant an authenticated principal is confined to, or undefined for the operator (and viewer).
 * Edge tokens never reach routes that use this (the auth hook refuses them); see `tenantsVisibleTo`.
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

export const readOnly = () =>
  new ApiError(403, 'forbidden', 'the viewer token is read-only: this request would change state');

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
export const isReadMethod = (method: string) => READ_METHODS.has(method);

/**
 * The 401 of the operator's browser pages (/admin, bull-board): the challenge makes a browser ask
 * for the token (as the Basic password); scripts send it as a Bearer token.
 */
export function operatorTokenRequired(reply: FastifyReply): ApiError {
  reply.header('www-authenticate', 'Basic realm="certq admin", charset="UTF-8"');
  return new ApiError(
    401,
    'unauthorized',
    'the operator token is required (Bearer, or Basic with it as password)',
  );
}

const CACHE_TTL_MS = 30_000;
const CACHE_MAX = 10_000;

export { FAILURE_COUNT_TTL_MS } from '@certq/core';

/** 429 for an address past the failed-login limit (every door calls this before looking at a token). */
export async function refuseThrottled(
  throttle: AuthThrottle,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const retryAfter = await throttle.retryAfter(request.ip);
  if (retryAfter === undefined) return;
  reply.header('retry-after', String(retryAfter));
  throw new ApiError(429, 'rate_limited', 'too many failed authentications from this address', {
    retryAfterSeconds: retryAfter,
  });
}

export interface AuthOptions extends Record<string, unknown> {
  db: Database;
  adminToken: string | undefined;
  edgeTokens: EdgeTokenStore;
  viewerToken?: string | undefined;
  /** Failed-authentication counters and the cross-replica cache invalidation channel. */
  redis?: Redis;
  redisPrefix?: string;
  /** Failed authentications per client address per minute; then 429 before any token lookup. */
  failuresPerMinute?: number;
}

/**
 * Bearer auth. Tenant tokens are stored only as SHA-256 hashes: a token is hashed, looked up by its
 * hash (the current one, or the previous one within its rotation grace period; none after a
 * revocation) and compared in constant time. A suspended tenant's token still reads; its writes answer
 * 403 tenant_suspended (suspension clears the cache like a revocation). Known hashes are cached for at most 30 s and never past
 * a previous token's grace; rotation and revocation clear the cache here and, through Redis pub/sub,
 * in every replica at once (with Redis away, other replicas honour them within 30 s).
 *
 * Failed authentications are counted per client address in Redis before any lookup: past the limit a
 * client gets 429 without a database query, whatever token it sends. An address's count is read from
 * Redis at most once a second (FAILURE_COUNT_TTL_MS) rather than at every request; a failure counted
 * here updates it at once, so only failures counted by other replicas take up to that second to apply.
 */
export const authPlugin = fp<AuthOptions>(
  async (app: FastifyInstance, options) => {
    const cache = new Map<
      string,
      { tenantId: string; inGrace: boolean; suspendedAt: Date | null; expires: number }
    >();
    const prefix = options.redisPrefix ?? 'certq';
    const channel = `${prefix}:auth:invalidate`;
    app.decorate(
      'authThrottle',
      createAuthThrottle({
        redis: options.redis,
        prefix,
        failuresPerMinute: options.failuresPerMinute ?? 30,
      }),
    );

    const forget = (tenantId: string) => {
      for (const [hash, entry] of cache) if (entry.tenantId === tenantId) cache.delete(hash);
    };

    // Cross-replica invalidation: a subscriber connection of its own (subscribers cannot run commands).
    const subscriber = options.redis?.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    if (subscriber) {
      subscriber.on('error', () => {});
      subscriber.on('message', (_channel, tenantId: string) => forget(tenantId));
      subscriber.subscribe(channel).catch(() => {});
      app.addHook('onClose', async () => {
        subscriber.disconnect();
      });
    }
    app.decorate('invalidateTenantTokens', async (tenantId: string) => {
      forget(tenantId);
      await options.redis?.publish(channel, tenantId).catch(() => {});
    });

    async function tenantFor(
      tokenHash: string,
    ): Promise<{ tenantId: string; inGrace: boolean; suspendedAt: Date | null } | undefined> {
      const hit = cache.get(tokenHash);
      if (hit && hit.expires > Date.now()) return hit;
      const now = new Date();
      const [row] = await options.db
        .select({
          id: tenants.id,
          tokenHash: tenants.tokenHash,
          previousTokenHash: tenants.previousTokenHash,
          previousTokenExpiresAt: tenants.previousTokenExpiresAt,
          suspendedAt: tenants.suspendedAt,
        })
        .from(tenants)
        .where(
          and(
            isNull(tenants.tokenRevokedAt),
            or(
              eq(tenants.tokenHash, tokenHash),
              and(eq(tenants.previousTokenHash, tokenHash), gt(tenants.previousTokenExpiresAt, now)),
            ),
          ),
        );
      if (!row) return undefined;
      const current = safeEqual(row.tokenHash, tokenHash);
      if (!current && !(row.previousTokenHash && safeEqual(row.previousTokenHash, tokenHash)))
        return undefined;
      let expires = Date.now() + CACHE_TTL_MS;
      if (!current && row.previousTokenExpiresAt)
        expires = Math.min(expires, row.previousTokenExpiresAt.getTime());
      if (cache.size >= CACHE_MAX) cache.clear();
      const found = { tenantId: row.id, inGrace: !current, suspendedAt: row.suspendedAt, expires };
      cache.set(tokenHash, found);
      return found;
    }

    const fail = async (ip: string) => {
      await app.authThrottle.fail(ip);
      return unauthorized();
    };

    app.decorateRequest('principal', null);
    app.addHook('onRequest', async (request, reply) => {
      if (request.is404) return;
      const mode = request.routeOptions.config.auth ?? 'any';
      if (mode === 'none') return;
      await refuseThrottled(app.authThrottle, request, reply);
      const { config } = request.routeOptions;
      const header = request.headers.authorization;
      const match = typeof header === 'string' ? /^Bearer +([!-~]{1,512})\s*$/i.exec(header) : null;
      let token = match?.[1];
      if (!token && config.tokenInQuery) {
        const fromQuery = (request.query as Record<string, unknown> | undefined)?.token;
        if (typeof fromQuery === 'string' && /^[!-~]{1,512}$/.test(fromQuery)) token = fromQuery;
      }
      if (!token) throw await fail(request.ip);
      if (options.adminToken && safeEqual(token, options.adminToken)) {
        request.principal = { kind: 'admin' };
      } else if (options.viewerToken && safeEqual(token, options.viewerToken)) {
        request.principal = { kind: 'viewer' };
      } else if (token.startsWith(`${EDGE_TOKEN_PREFIX}_`)) {
        const edge = await options.edgeTokens.lookup(hashToken(token));
        if (!edge) throw await fail(request.ip);
        if (!config.edgeTokens) throw edgeOnlyHere();
        request.principal = { kind: 'edge', tokenId: edge.tokenId, tenantIds: edge.tenantIds };
        options.edgeTokens.recordUse(edge.tokenId, request.routeOptions.url ?? 'unmatched');
      } else {
        const hash = hashToken(token);
        const found = await tenantFor(hash);
        if (!found) throw await fail(request.ip);
        request.principal = {
          kind: 'tenant',
          tenantId: found.tenantId,
          tokenId: tokenIdOf(hash),
          ...(found.inGrace ? { inGrace: true } : {}),
        };
        if (found.suspendedAt && !isReadMethod(request.method))
          throw suspendedError({ id: found.tenantId, suspendedAt: found.suspendedAt, deletedAt: null });
      }
      const { kind } = request.principal;
      if (mode === 'admin' && kind !== 'admin' && kind !== 'viewer') throw notFound('route');
      if (mode === 'edge' && kind === 'tenant')
        throw new ApiError(403, 'forbidden', 'this route takes an edge token (or the operator token)');
      if (kind === 'viewer' && !isReadMethod(request.method)) throw readOnly();
    });
  },
  { name: 'certq-auth' },
);
