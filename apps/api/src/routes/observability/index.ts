import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { QUEUE_NAMES, safeEqual } from '@certq/core';
import { Queue } from 'bullmq';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { RouteOptions } from '../../deps';
import { createApiMetrics } from '../../observability/metrics';
import { collectStats, StatsSchema } from '../../observability/stats';
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
      renewBeforeDays: config.RENEW_BEFORE_DAYS,
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
      async (_request, reply) => {
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
          response: { 200: StatsSchema, ...errorResponses(401, 404) },
        },
      },
      async () => collectStats(deps.db),
    );

    await app.register(async (admin) => {
      admin.addHook('onRoute', (route) => {
        route.config = { ...(route.config as object), auth: 'none', rateLimit: false } as typeof route.config;
        route.schema = { ...(route.schema ?? {}), hide: true };
        // bull-board's page runs an inline bootstrap script; the default CSP would block it.
        (route as { helmet?: unknown }).helmet = { contentSecurityPolicy: false };
      });
      admin.addHook('onRequest', async (request, reply) => {
        if (!isOperator(request, config.ADMIN_TOKEN)) {
          reply.header('www-authenticate', 'Basic realm="certq admin", charset="UTF-8"');
          throw new ApiError(
            401,
            'unauthorized',
            'the operator token is required (Bearer, or Basic with it as password)',
          );
        }
      });

      const board = new FastifyAdapter();
      board.setBasePath('/admin/queues');
      createBullBoard({
        queues: allQueues().map((q) => new BullMQAdapter(q, { readOnlyMode: false })),
        serverAdapter: board,
        options: { uiConfig: { boardTitle: 'certq queues' } },
      });
      await admin.register(board.registerPlugin(), { prefix: '/admin/queues' });
    });
  },
  { name: 'certq-observability' },
);

function isOperator(request: FastifyRequest, adminToken: string | undefined): boolean {
  if (!adminToken) return false;
  const header = request.headers.authorization ?? '';
  const bearer = /^Bearer +([!-~]{1,512})\s*$/i.exec(header)?.[1];
  if (bearer) return safeEqual(bearer, adminToken);
  const basic = /^Basic +([A-Za-z0-9+/=]{1,1024})\s*$/i.exec(header)?.[1];
  if (!basic) return false;
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  const password = decoded.slice(decoded.indexOf(':') + 1);
  return decoded.includes(':') && safeEqual(password, adminToken);
}
