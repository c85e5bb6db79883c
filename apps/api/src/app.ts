import { randomUUID } from 'node:crypto';
import { REDACT_CENSOR, REDACT_PATHS } from '@certq/core';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { pino } from 'pino';
import { createDelivery, type Delivery } from './delivery/index';
import type { ApiDeps } from './deps';
import { authPlugin } from './plugins/auth';
import { errorsPlugin, frameworkErrorHandler } from './plugins/errors';
import { openapiPlugin } from './plugins/openapi';
import { securityPlugin } from './plugins/security';
import { callbacksRoutes, redactCallbackUrl } from './routes/callbacks/index';
import { certificatesRoutes } from './routes/certificates/index';
import { consoleRoutes } from './routes/console/index';
import { edgeTokensRoutes } from './routes/edge-tokens/index';
import { healthRoutes } from './routes/health/index';
import { observabilityRoutes } from './routes/observability/index';
import { ordersRoutes } from './routes/orders/index';
import { renewalsRoutes } from './routes/renewals/index';
import { tenantsRoutes } from './routes/tenants/index';
import { tlsRoutes } from './routes/tls/index';
import { webhooksRoutes } from './routes/webhooks/index';

export type { ApiDeps } from './deps';

declare module 'fastify' {
  interface FastifyInstance {
    /** Edge tokens, the change-feed follower and the TLS cache (see delivery/). */
    delivery: Delivery;
    /** Registries /metrics serves besides its own (route groups add theirs). */
    metricRegistries: import('prom-client').Registry[];
  }
}

/** A request URL as we log it: no callback secret, no `token` query parameter (Caddy sends one). */
export function redactUrl(url: string): string {
  return redactCallbackUrl(url).replace(/([?&]token=)[^&#]*/gi, '$1[redacted]');
}

export function createApiLogger(level: string) {
  return pino({ level, redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR } });
}

/**
 * The HTTP API as a Fastify instance, not yet listening. Route groups are plugins in `routes/`, each
 * with its zod schemas (request validation, response serialisation and the OpenAPI document all come
 * from them); cross-cutting concerns are plugins in `plugins/`.
 *
 * Route conventions: `config: { auth: 'none' | 'any' | 'admin' }` (default 'any': authenticated),
 * `config: { rateLimit: false }` to opt out of the per-token limit; throw `ApiError` for 4xx.
 */
export async function buildApp(deps: ApiDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const logger = deps.logger === undefined ? createApiLogger(config.LOG_LEVEL) : deps.logger;
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    // We log one line per request ourselves, with the callback secret redacted from the URL.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { maxParamLength: 300 },
    // Unique across replicas and restarts (audit rows keep it); echoed as x-request-id.
    genReqId: () => randomUUID(),
    frameworkErrors: frameworkErrorHandler,
  }).withTypeProvider<ZodTypeProvider>();
  // JSON only: other bodies answer 415 rather than reaching a handler as text.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // ── cross-cutting plugins (order matters: errors, then auth before the rate limiter) ──
  const delivery = createDelivery({
    db: deps.db,
    secrets: deps.secrets,
    databaseUrl: config.DATABASE_URL,
    logger,
  });
  await delivery.start();
  app.decorate('delivery', delivery);
  app.decorate('metricRegistries', [delivery.edgeTokens.registry]);
  // Long-polls of the change feed would hold a shutdown up for their whole wait: answer them now.
  app.addHook('preClose', async () => delivery.follower.stopWaiting());
  app.addHook('onClose', async () => delivery.close());
  await app.register(errorsPlugin);
  await app.register(authPlugin, {
    db: deps.db,
    adminToken: config.ADMIN_TOKEN,
    edgeTokens: delivery.edgeTokens,
  });
  await app.register(securityPlugin, {
    redis: deps.redis,
    redisPrefix: config.REDIS_PREFIX,
    ratePerMinute: config.RATE_LIMIT_PER_MINUTE,
  });
  await app.register(openapiPlugin);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: redactUrl(request.url),
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request completed',
    );
  });

  // ── route groups ──
  const routeOptions = { deps };
  await app.register(healthRoutes, routeOptions);
  await app.register(tenantsRoutes, routeOptions);
  await app.register(ordersRoutes, routeOptions);
  await app.register(certificatesRoutes, routeOptions);
  await app.register(callbacksRoutes, routeOptions);
  await app.register(observabilityRoutes, routeOptions);
  await app.register(renewalsRoutes, routeOptions);
  await app.register(webhooksRoutes, routeOptions);
  await app.register(consoleRoutes, routeOptions);
  await app.register(edgeTokensRoutes, routeOptions);
  await app.register(tlsRoutes, routeOptions);

  // ── extension point: more route groups go here, each a plugin taking `{ deps }` ──
  // Registered after openapiPlugin, they appear in /docs/json automatically.

  return app as unknown as FastifyInstance;
}
