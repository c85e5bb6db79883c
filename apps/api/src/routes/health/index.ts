import { sql } from 'drizzle-orm';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { ErrorSchema, errorResponses } from '../../plugins/errors';

export const READY_CHECK_TIMEOUT_MS = 1500;

/** Resolves 'ok', or the reason the check failed or took longer than `ms`. */
async function check(probe: () => Promise<unknown>, ms = READY_CHECK_TIMEOUT_MS): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const attempt = probe();
  attempt.catch(() => {});
  try {
    await Promise.race([
      attempt,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
    return 'ok';
  } catch (error) {
    return (error as Error)?.message || 'failed';
  } finally {
    clearTimeout(timer);
  }
}

/** Any path answers 400 to a URL the router cannot decode (see frameworkErrorHandler). */
const MalformedUrl = ErrorSchema.describe('Malformed request URL');

export const healthRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  const open = { auth: 'none', rateLimit: false } as const;

  app.get(
    '/healthz',
    {
      config: open,
      schema: {
        operationId: 'getLiveness',
        tags: ['health'],
        summary: 'Liveness: the process answers',
        security: [],
        response: { 200: z.object({ status: z.literal('ok') }), 400: MalformedUrl },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: open,
      schema: {
        operationId: 'getReadiness',
        tags: ['health'],
        summary: 'Readiness: Postgres and Redis answer',
        description: '503 with error.details naming the dependency that failed.',
        security: [],
        response: {
          200: z.object({
            status: z.literal('ok'),
            checks: z.object({ postgres: z.string(), redis: z.string() }),
          }),
          400: MalformedUrl,
          ...errorResponses(503),
        },
      },
    },
    async (_request, reply) => {
      const [postgres, redis] = await Promise.all([
        check(() => deps.db.execute(sql`select 1`)),
        check(() => deps.redis.ping()),
      ]);
      if (postgres === 'ok' && redis === 'ok')
        return reply.send({ status: 'ok' as const, checks: { postgres, redis } });
      const failed = [postgres === 'ok' ? '' : 'postgres', redis === 'ok' ? '' : 'redis'].filter(Boolean);
      return reply.code(503).send({
        error: {
          code: 'unavailable',
          message: `not ready: ${failed.join(' and ')} unavailable`,
          details: { postgres, redis },
        },
      });
    },
  );
};
