import { randomUUID } from 'node:crypto';
import { REDACT_CENSOR, REDACT_PATHS } from '@certq/core';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { pino } from 'pino';
import type { ApiDeps } from './deps';
import { authPlugin } from './plugins/auth';
import { errorsPlugin, frameworkErrorHandler } from './plugins/errors';
import { openapiPlugin } from './plugins/openapi';
import { securityPlugin } from './plugins/security';
import { callbacksRoutes, redactCallbackUrl } from './routes/callbacks/index';
import { certificatesRoutes } from './routes/certificates/index';
import { consoleRoutes } from './routes/console/index';
import { healthRoutes } from './routes/health/index';
import { observabilityRoutes } from './routes/observability/index';
import { ordersRoutes } from './routes/orders/index';
import { renewalsRoutes } from './routes/renewals/index';
import { tenantsRoutes } from './routes/tenants/index';
import { webhooksRoutes } from './routes/webhooks/index';

export type { ApiDeps } from './deps';

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
  await app.register(errorsPlugin);
  await app.register(authPlugin, { db: deps.db, adminToken: config.ADMIN_TOKEN });
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
        url: redactCallbackUrl(request.url),
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

  // ── extension point: more route groups go here, each a plugin taking `{ deps }` ──
  // Registered after openapiPlugin, they appear in /docs/json automatically.

  return app as unknown as FastifyInstance;
}
