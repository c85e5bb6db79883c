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
      config: { auth: 'none', rateLimit: false },
      schema: {
        operationId: 'receiveHttpsokCallback',
        tags: ['callbacks'],
        summary: 'httpsok issued-callback receiver',
        description:
          'The notifyUrl given to httpsok. Unauthenticated: the unguessable secret in the path is the ' +
          "credential (unknown secret: 404). The posted body is never read: the order's poll is brought " +
          'forward and a worker fetches the application from httpsok (the 10 s floor still holds) before ' +
          `anything is stored. Body limit ${CALLBACK_BODY_LIMIT / 1024} KiB.`,
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
      const result = await nudgeFromCallback(deps, request.params.secret, request.log);
      if (result.status !== 'accepted') throw notFound('callback');
      request.log.info({ orderId: result.orderId, nudged: result.nudged }, 'httpsok callback accepted');
      return { ok: true as const };
    },
  );
};
