import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { metricsAuthorized, QUEUE_NAMES, safeEqual } from '@certq/core';
import { Queue } from 'bullmq';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { RouteOptions } from '../../deps';
import { createApiMetrics } from '../../observability/metrics';
import { type Stats, StatsSchema } from '../../observability/stats';
import { isReadMethod, operatorTokenRequired, readOnly, refuseThrottled } from '../../plugins/auth';
import { ApiError, errorResponses } from '../../plugins/errors';

/**
 * What an operator watches: Prometheus metrics at /metrics, counts at /v1/stats and the queue dashboard
 * (bull-board) at /admin/queues (the console at /admin is routes/console/). The dashboard is for
 * browsers, which cannot send a bearer token by themselves: it also takes HTTP Basic auth with the
 * operator token as the password (any user name), and answers 401 with a Basic challenge.
 */
// Not encapsulated (like fastify-plugin): the request-duration hook must see every route of the app.
export const observabilityRoutes = fp<RouteOptions>(
  async (root, { deps }) => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const { config } = deps;
    // Dashboards show every certq queue: the stage queues the API produces to, plus the worker's own.
    const extraQueues = [QUEUE_NAMES.webhooks, QUEUE_NAMES.maintenance].map(
      (name) => new Queue(name, { connection: deps.redis, prefix: config.REDIS_PREFIX }),
    );
    const allQueues = () => [...deps.queues.all(), ...extraQueues];
    app.addHook('onClose', async () => {
      await Promise.all(extraQueues.map((q) => q.close()));
    });

    const metrics = createApiMetrics({
      db: deps.db,
      queues: allQueues,
      stats: () => app.stats.get(),
      tenantLabels: config.METRICS_TENANT_LABELS,
      certificateWindowDays: config.METRICS_CERTIFICATE_WINDOW_DAYS,
      seriesMax: config.METRICS_CERTIFICATE_SERIES_MAX,
      onCollectError: (metric, error) =>
        app.log.warn({ err: error, metric }, 'metric left out of this scrape'),
    });
    app.addHook('onResponse', async (request, reply) => {
      // The route pattern, never the raw URL (ids and callback secrets would explode the label set).
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.httpDuration.observe(
        { method: request.method, route, status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    });

    app.get(
      '/metrics',
      { config: { auth: 'none', rateLimit: false }, schema: { hide: true } },
      async (request, reply) => {
        // Never anonymous: the metrics describe every tenant's workload (METRICS_TOKEN, or the operator).
        await refuseThrottled(app.authThrottle, request, reply);
        if (!metricsAuthorized(request.headers.authorization, config)) {
          if (request.headers.authorization !== undefined) await app.authThrottle.fail(request.ip);
          reply.header('www-authenticate', 'Bearer realm="certq metrics"');
          throw new ApiError(401, 'unauthorized', 'METRICS_TOKEN or the operator token is required');
        }
        reply.header('content-type', metrics.registry.contentType);
        const own = await metrics.registry.metrics();
        const more = await Promise.all(app.metricRegistries.map((r) => r.metrics()));
        return [own, ...more].join('\n');
      },
    );

    app.get(
      '/v1/stats',
      {
        config: { auth: 'admin' },
        schema: {
          operationId: 'getStats',
          tags: ['operator'],
          summary: 'Counts by status and tenant, certificates by days to expiry, failures by reason',
          description:
            'Read from a snapshot shared with /metrics and /admin, refreshed in the background when older than ' +
            'STATS_MAX_AGE_MS (default 15 s): at most twice that old; `generatedAt` says when it was read.',
          response: { 200: StatsSchema, ...errorResponses(401, 404) },
        },
      },
      async (_request, reply) => {
        // Already validated and serialized with the snapshot: a JSON string is sent as it is.
        // (The typed reply only knows the schema's object; the raw string is its serialization.)
        const body: unknown = app.stats.json(await app.stats.get());
        return reply.type('application/json; charset=utf-8').send(body as Stats);
      },
    );

    await app.register(async (admin) => {
      admin.addHook('onRoute', (route) => {
        // Per client address (browsers poll the dashboard's API every few seconds).
        const rateLimit = {
          max: config.RATE_LIMIT_PER_MINUTE,
          timeWindow: 60_000,
          keyGenerator: (r: FastifyRequest) => `admin-ip:${r.ip}`,
        };
        route.config = { ...(route.config as object), auth: 'none', rateLimit } as typeof route.config;
        route.schema = { ...(route.schema ?? {}), hide: true };
        // bull-board's page runs an inline bootstrap script; the default CSP would block it.
        (route as { helmet?: unknown }).helmet = { contentSecurityPolicy: false };
      });
      admin.addHook('onRequest', async (request, reply) => {
        await refuseThrottled(app.authThrottle, request, reply);
        const kind = operatorKind(request, config.ADMIN_TOKEN, config.VIEWER_TOKEN);
        if (!kind) {
          if (request.headers.authorization !== undefined) await app.authThrottle.fail(request.ip);
          throw operatorTokenRequired(reply);
        }
        request.principal = { kind };
        if (isReadMethod(request.method)) {
          // The viewer's dashboard is the read-only board.
          if (
            kind === 'viewer' &&
            request.url.startsWith('/admin/queues') &&
            !request.url.startsWith(READ_ONLY_BOARD)
          )
            return reply.redirect(request.url.replace('/admin/queues', READ_ONLY_BOARD), 302);
          return;
        }
        if (kind === 'viewer') throw readOnly();
        assertSameOrigin(request);
      });

      for (const [basePath, readOnlyMode] of [
        ['/admin/queues', false],
        [READ_ONLY_BOARD, true],
      ] as const) {
        const board = new FastifyAdapter();
        board.setBasePath(basePath);
        createBullBoard({
          queues: allQueues().map((q) => new BullMQAdapter(q, { readOnlyMode })),
          serverAdapter: board,
          options: { uiConfig: { boardTitle: readOnlyMode ? 'certq queues (read-only)' : 'certq queues' } },
        });
        // bull-board's own errors (and our hooks' 401/403 inside its routes) in certq's error shape.
        board.setErrorHandler(((error: Error & { statusCode?: number; code?: string }) => {
          if (error instanceof ApiError)
            return {
              status: error.statusCode,
              body: { error: { code: error.code, message: error.message } },
            };
          const status =
            typeof error.statusCode === 'number' && error.statusCode < 500 ? error.statusCode : 500;
          return {
            status,
            body: {
              error: {
                code: status === 500 ? 'internal' : 'bad_request',
                message: status === 500 ? 'internal server error' : error.message,
              },
            },
          };
        }) as Parameters<FastifyAdapter['setErrorHandler']>[0]);
        await admin.register(board.registerPlugin(), { prefix: basePath });
      }
    });
  },
  { name: 'certq-observability' },
);

/** The viewer's queue dashboard: bull-board in its read-only mode (no buttons, no write routes). */
export const READ_ONLY_BOARD = '/admin/queues-readonly';

/**
 * A state-changing dashboard request must come from the dashboard itself. Browsers resend cached
 * Basic credentials on a cross-site form POST (no preflight needed), so Basic alone proves nothing:
 * we ask for a same-origin Origin/Sec-Fetch-Site, or a header no cross-site form can set
 * (`x-certq-admin`), or a Bearer token (never sent by a browser on its own).
 */
function assertSameOrigin(request: FastifyRequest): void {
  const authorization = request.headers.authorization ?? '';
  if (/^Bearer /i.test(authorization) || request.headers['x-certq-admin'] !== undefined) return;
  const site = request.headers['sec-fetch-site'];
  if (site === 'same-origin') return;
  const origin = request.headers.origin;
  if (typeof origin === 'string' && site === undefined) {
    try {
      if (new URL(origin).host === request.host) return;
    } catch {
      // not a URL: refused below
    }
  }
  throw new ApiError(
    403,
    'cross_site_refused',
    'dashboard changes must come from the dashboard itself (same origin)',
  );
}

function operatorKind(
  request: FastifyRequest,
  adminToken: string | undefined,
  viewerToken: string | undefined,
): 'admin' | 'viewer' | undefined {
  const header = request.headers.authorization ?? '';
  let presented = /^Bearer +([!-~]{1,512})\s*$/i.exec(header)?.[1];
  if (!presented) {
    const basic = /^Basic +([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header)?.[1];
    if (!basic) return undefined;
    const decoded = Buffer.from(basic, 'base64').toString('utf8');
    if (!decoded.includes(':')) return undefined;
    presented = decoded.slice(decoded.indexOf(':') + 1);
  }
  if (adminToken && safeEqual(presented, adminToken)) return 'admin';
  if (viewerToken && safeEqual(presented, viewerToken)) return 'viewer';
  return undefined;
}
