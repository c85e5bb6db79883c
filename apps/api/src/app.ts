import { randomUUID } from 'node:crypto';
import {
  parseEncryptionKey,
  parseTrustProxy,
  REDACT_CENSOR,
  REDACT_PATHS,
  SAFE_ERROR_SERIALIZERS,
} from '@certq/core';
import { createDnsResolver, type DnsResolver } from '@certq/dns';
import { type OwnershipProofs, ownershipKey } from '@certq/workflow';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { pino } from 'pino';
import { createDelivery, type Delivery } from './delivery/index';
import type { ApiDeps } from './deps';
import { type ApiStats, createApiStats } from './observability/stats';
import { auditPlugin } from './plugins/audit';
import { AuditBuffer } from './plugins/audit-buffer';
import { authPlugin } from './plugins/auth';
import { clientErrorHandler, errorsPlugin, frameworkErrorHandler } from './plugins/errors';
import { safeRequestUrl } from './plugins/log-safety';
import { openapiPlugin } from './plugins/openapi';
import { securityPlugin } from './plugins/security';
import { auditRoutes } from './routes/audit/index';
import { callbacksRoutes } from './routes/callbacks/index';
import { certificatesRoutes } from './routes/certificates/index';
import { consoleRoutes } from './routes/console/index';
import { domainsRoutes } from './routes/domains/index';
import { edgeTokensRoutes } from './routes/edge-tokens/index';
import { healthRoutes } from './routes/health/index';
import { observabilityRoutes } from './routes/observability/index';
import { ordersRoutes } from './routes/orders/index';
import { renewalsRoutes } from './routes/renewals/index';
import { tenantsRoutes } from './routes/tenants/index';
import { tlsRoutes } from './routes/tls/index';
import { tokensRoutes } from './routes/tokens/index';
import { webhooksRoutes } from './routes/webhooks/index';

export type { ApiDeps } from './deps';

declare module 'fastify' {
  interface FastifyInstance {
    /** Edge tokens, the change-feed follower and the TLS cache (see delivery/). */
    delivery: Delivery;
    /** Registries /metrics serves besides its own (route groups add theirs). */
    metricRegistries: import('prom-client').Registry[];
    /** The one stats snapshot of this process: /v1/stats, /metrics and /admin read it (see createApiStats). */
    stats: ApiStats;
  }
}

export function createApiLogger(level: string) {
  return pino({
    level,
    redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR },
    serializers: SAFE_ERROR_SERIALIZERS,
  });
}

/**
 * The HTTP API as a Fastify instance, not yet listening. Route groups are plugins in `routes/`, each
 * with its zod schemas (request validation, response serialisation and the OpenAPI document all come
 * from them); cross-cutting concerns are plugins in `plugins/`.
 *
 * Route conventions: `config: { auth: 'none' | 'any' | 'admin' }` (default 'any': authenticated),
 * `config: { rateLimit: false }` to opt out of the per-token limit; throw `ApiError` for 4xx.
 */
export async function buildApp(given: ApiDeps): Promise<FastifyInstance> {
  const { config } = given;
  const deps: ApiDeps = { ...given, ownership: given.ownership ?? ownershipProofsFrom(config) };
  const logger = deps.logger === undefined ? createApiLogger(config.LOG_LEVEL) : deps.logger;
  const requestTimeout = config.REQUEST_TIMEOUT_MS;
  const app = Fastify({
    // Behind a proxy (TRUST_PROXY): request.ip — per-IP limits, audit rows — is the client's address.
    trustProxy: parseTrustProxy(config.TRUST_PROXY),
    // A request must arrive whole within REQUEST_TIMEOUT_MS (a body trickled byte by byte is cut off
    // with 408); Node checks every connectionsCheckingInterval, so keep that a fraction of the timeout.
    requestTimeout,
    http: {
      requestTimeout,
      headersTimeout: Math.min(60_000, requestTimeout),
      connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(requestTimeout / 4))),
    },
    // A socket silent this long (no request, no answer in progress) is closed.
    connectionTimeout: Math.max(120_000, requestTimeout * 2),
    keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT_MS,
    clientErrorHandler,
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
  app.decorate(
    'stats',
    createApiStats(deps.db, config, (error) =>
      app.log.error({ err: error }, 'stats snapshot refresh failed'),
    ),
  );
  // Long-polls of the change feed would hold a shutdown up for their whole wait: answer them now.
  app.addHook('preClose', async () => delivery.follower.stopWaiting());
  app.addHook('onClose', async () => delivery.close());
  await app.register(errorsPlugin);
  await app.register(authPlugin, {
    db: deps.db,
    adminToken: config.ADMIN_TOKEN,
    edgeTokens: delivery.edgeTokens,
    viewerToken: config.VIEWER_TOKEN,
    redis: deps.redis,
    redisPrefix: config.REDIS_PREFIX,
    failuresPerMinute: config.AUTH_FAILURES_PER_MINUTE,
  });
  await app.register(securityPlugin, {
    redis: deps.redis,
    redisPrefix: config.REDIS_PREFIX,
    ratePerMinute: config.RATE_LIMIT_PER_MINUTE,
  });
  await app.register(auditPlugin, { db: deps.db });
  const keyReads = new AuditBuffer(deps.db, logger || undefined);
  app.decorate('keyReads', keyReads);
  // After in-flight requests: their reads are in the buffer, written before the pool closes.
  app.addHook('onClose', async () => keyReads.close());
  await app.register(openapiPlugin);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        // Rebuilt from the parsed route: secrets in path parameters and the query never reach the log.
        url: safeRequestUrl(request),
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request completed',
    );
  });

  // ── route groups ──
  for (const routes of [
    healthRoutes,
    tenantsRoutes,
    ordersRoutes,
    certificatesRoutes,
    callbacksRoutes,
    observabilityRoutes,
    renewalsRoutes,
    webhooksRoutes,
    consoleRoutes,
    edgeTokensRoutes,
    tlsRoutes,
    tokensRoutes,
    auditRoutes,
    domainsRoutes,
  ])
    await app.register(routes, { deps });

  // ── extension point: more route groups go here, each a plugin taking `{ deps }` ──
  // Registered after openapiPlugin, they appear in /docs/json automatically.

  return app as unknown as FastifyInstance;
}

/**
 * Ownership records are checked by certq's own resolvers (DNS_RESOLVERS), never by httpsok; the resolver
 * is made on the first proof needed (orders that conflict with another tenant's names are rare).
 */
function ownershipProofsFrom(config: ApiDeps['config']): OwnershipProofs | undefined {
  if (!config.ENCRYPTION_KEY) return undefined;
  let resolver: DnsResolver | undefined;
  return {
    key: ownershipKey(parseEncryptionKey(config.ENCRYPTION_KEY)),
    async lookupTxt(name) {
      resolver ??= createDnsResolver({
        servers: config.DNS_RESOLVERS,
        ratePerSecond: config.DNS_RESOLVER_MAX_QPS,
      });
      const outcome = await resolver.txt(name);
      return outcome.kind === 'answer' ? outcome.value : [];
    },
  };
}
