import { randomBytes } from 'node:crypto';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { z } from 'zod';
import type { Envelope } from './types';

/** The upstream's answer envelope, and JSON parsing/error handling shared by every route. */

function traceId(): string {
  return randomBytes(16).toString('hex');
}

export function envelope<T>(code: number, msg: string, data: T): Envelope<T> {
  return { code, msg, data, traceId: traceId() };
}

export const ok = <T>(data: T) => envelope(0, 'success', data);
export const fail = (code: number, msg: string) => envelope(code, msg, null);

export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid request';
  const path = issue.path.join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}

/**
 * JSON bodies (an empty one allowed, e.g. POST /_sim/reset with a JSON content type); under `/v1/` errors
 * answer HTTP 200 with the envelope as the provider does, elsewhere a plain `{error}`.
 */
export function installHttpBasics(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      const error = new Error('body is not valid JSON') as FastifyError;
      error.statusCode = 400;
      done(error, undefined);
    }
  });

  app.setErrorHandler((error: FastifyError, req, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) req.log.error({ err: error }, 'request failed');
    if (req.url.startsWith('/v1/')) {
      return status < 500
        ? reply.code(200).send(fail(status, error.message))
        : reply.code(500).send(fail(500, 'internal error'));
    }
    return reply.code(status).send({ error: status < 500 ? error.message : 'internal error' });
  });

  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/v1/')) return reply.code(404).send(fail(404, 'not found'));
    return reply.code(404).send({ error: 'not found' });
  });
}
