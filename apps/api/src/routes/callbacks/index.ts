import { nudgeFromCallback } from '@certq/workflow';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteOptions } from '../../deps';
import { errorResponses, notFound } from '../../plugins/errors';

export const CALLBACK_BODY_LIMIT = 256 * 1024;
export const CALLBACK_PATH_PREFIX = '/v1/callbacks/httpsok/';

/** The secret in a callback URL, for logs: the path is the credential. */
export function redactCallbackUrl(url: string): string {
  return url.startsWith(CALLBACK_PATH_PREFIX) ? `${CALLBACK_PATH_PREFIX}[redacted]` : url;
}

export const callbacksRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { deps }) => {
  app.post(
    '/v1/callbacks/httpsok/:secret',
    {
      bodyLimit: CALLBACK_BODY_LIMIT,
      // Per client address: the secret in the path is the credential, so guessing is throttled too.
      config: {
        auth: 'none',
        rateLimit: {
          max: deps.config.RATE_LIMIT_PER_MINUTE,
          timeWindow: 60_000,
          keyGenerator: (request) => `callback-ip:${request.ip}`,
        },
      },
      schema: {
        operationId: 'receiveHttpsokCallback',
        tags: ['callbacks'],
        summary: 'httpsok issued-callback receiver',
        description:
          'The notifyUrl given to httpsok. Unauthenticated: the unguessable secret in the path is the ' +
          'credential (unknown secret: 404). The body is unsigned: only the application id it names (`id`) ' +
          'is read, as a hint. An order still applying records it, and its apply task re-fetches and checks ' +
          "the application before adopting it; an issuing order's poll is brought forward. Either way a " +
          'worker fetches the application from httpsok (the 10 s floor still holds) before anything is ' +
          `stored. Body limit ${CALLBACK_BODY_LIMIT / 1024} KiB.`,
        security: [],
        params: z.object({ secret: z.string() }),
        body: z.unknown(),
        response: {
          200: z.object({ ok: z.literal(true) }),
          ...errorResponses(400, 404, 413, 415),
        },
      },
    },
    async (request) => {
      // The body is unsigned: only the application id it names is taken, as a hint the worker checks.
      const body = request.body as { id?: unknown } | null;
      const id = body && typeof body === 'object' ? body.id : undefined;
      const announced =
        (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) ||
        (typeof id === 'string' && /^\d{1,20}$/.test(id))
          ? String(id)
          : undefined;
      const result = await nudgeFromCallback(deps, request.params.secret, request.log, announced);
      if (result.status !== 'accepted') throw notFound('callback');
      request.log.info({ orderId: result.orderId, nudged: result.nudged }, 'httpsok callback accepted');
      return { ok: true as const };
    },
  );
};
