import type { IncomingMessage, ServerResponse } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';
import type { Redis } from 'ioredis';
import { ApiError } from './errors';

declare module 'fastify' {
  interface RouteShorthandOptions {
    /** This route's security headers: `false` for none; options are merged over the defaults. */
    helmet?: false | HelmetOptions;
  }
  interface FastifyContextConfig {
    /** The security headers of the route, computed when it is added (null: none). */
    securityHeaders?: Record<string, string> | null;
  }
}

// JSON answers need no CSP beyond the defaults; the docs UI sets its own (see openapi.ts).
// No upgrade-insecure-requests: the API is often reached over plain http inside a cluster.
const HELMET_OPTIONS: HelmetOptions = {
  contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
};

/**
 * The headers helmet sets with `options`, computed once: helmet builds its middleware (CSP directives
 * parsed and checked) at every call, which @fastify/helmet did for every request.
 */
function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, () => {});
  return headers;
}

export interface SecurityOptions extends Record<string, unknown> {
  redis: Redis;
  redisPrefix: string;
  ratePerMinute: number;
}

/**
 * Security headers and per-token rate limiting. The limiter counts in Redis (shared by every API
 * replica) under `<REDIS_PREFIX>:ratelimit:`; its key is the caller's principal (one per token), or
 * the IP for anonymous calls. It runs after auth (route-level hooks follow the app-level auth hook),
 * so unknown tokens cannot mint fresh buckets. When Redis is unreachable requests pass unlimited:
 * taking orders matters more than counting them. Routes opt out with `config: { rateLimit: false }`.
 */
export const securityPlugin = fp<SecurityOptions>(
  async (app: FastifyInstance, options) => {
    const defaultHeaders = helmetHeaders(HELMET_OPTIONS);
    app.addHook('onRoute', (route) => {
      const { helmet: own } = route;
      if (own === undefined) return;
      route.config = {
        ...route.config,
        securityHeaders: own === false ? null : helmetHeaders({ ...HELMET_OPTIONS, ...own } as HelmetOptions),
      };
    });
    // Also on answers without a route (404): the defaults.
    app.addHook('onRequest', (request, reply, done) => {
      const headers = request.routeOptions.config.securityHeaders;
      if (headers !== null) reply.headers(headers ?? defaultHeaders);
      done();
    });
    await app.register(rateLimit, {
      global: true,
      max: options.ratePerMinute,
      timeWindow: 60_000,
      redis: options.redis,
      nameSpace: `${options.redisPrefix}:ratelimit:`,
      skipOnError: true,
      keyGenerator: (request) => {
        const p = request.principal;
        if (p?.kind === 'admin' || p?.kind === 'viewer') return p.kind;
        if (p?.kind === 'tenant') return `tenant:${p.tenantId}`;
        if (p?.kind === 'edge') return `edge:${p.tokenId}`;
        return `ip:${request.ip}`;
      },
      errorResponseBuilder: (_request, context) =>
        new ApiError(429, 'rate_limited', `rate limit exceeded, retry in ${context.after}`, {
          limitPerMinute: context.max,
          retryAfterSeconds: Math.ceil(context.ttl / 1000),
        }),
    });
    // Authenticated answers are per-caller and may hold secrets: never cache them on the way.
    app.addHook('onSend', async (request, reply) => {
      if (request.principal && !reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    });
  },
  { name: 'certq-security' },
);
