import type { Socket } from 'node:net';
import { isDatabaseUnavailable } from '@certq/db';
import { isWorkflowError, type WorkflowErrorCode } from '@certq/workflow';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';

/**
 * Every error answer has one shape: `{"error": {"code", "message", "details?"}}`.
 * Handlers throw `ApiError`; anything else a client can cause (bad JSON, wrong content type, body too
 * large, schema violations, rate limits) is mapped here to a 4xx. Only genuine faults answer 500, and
 * those never echo internals.
 */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const notFound = (what = 'resource') => new ApiError(404, 'not_found', `${what} not found`);
export const badRequest = (message: string, details?: unknown) =>
  new ApiError(400, 'validation_failed', message, details);

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().describe('machine-readable, e.g. validation_failed, not_found, conflict'),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: 'Error' });

const DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request (see error.details)',
  401: 'Missing or unknown bearer token',
  403: 'Not allowed for this token (the viewer token is read-only; edge tokens: delivery routes only)',
  404: 'Not found (or owned by another tenant)',
  409: 'Conflicts with the current state',
  413: 'Body too large',
  415: 'Unsupported content type',
  429: 'Rate limited',
  503: 'A dependency is unavailable',
};

/** Response schemas for the error statuses a route documents. */
export function errorResponses<const S extends number>(...statuses: S[]): Record<S, typeof ErrorSchema> {
  return Object.fromEntries(
    statuses.map((s) => [s, ErrorSchema.describe(DESCRIPTIONS[s] ?? 'Error')]),
  ) as Record<S, typeof ErrorSchema>;
}

/** `/orders/17/domains/2` → `orders[17].domains[2]`. */
export function formatPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number' || /^\d+$/.test(segment)) out += `[${segment}]`;
    else out += out ? `.${segment}` : segment;
  }
  return out;
}

const MAX_DETAILED_ISSUES = 50;

const FASTIFY_CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  408: 'request_timeout',
  409: 'conflict',
  411: 'length_required',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  422: 'unprocessable',
  429: 'rate_limited',
  431: 'headers_too_large',
};

function send(reply: FastifyReply, status: number, code: string, message: string, details?: unknown) {
  const body = { error: details === undefined ? { code, message } : { code, message, details } };
  return reply.code(status).send(body);
}

/** Input Postgres cannot store or compare (a NUL in a string, an invalid byte sequence): the client's. */
export function postgresRejectedInput(error: unknown): boolean {
  for (
    let e = error as { code?: unknown; cause?: unknown } | undefined, i = 0;
    e && i < 5;
    e = e.cause as typeof e, i++
  )
    if (e.code === '22021' || e.code === '22P05') return true;
  return false;
}
/** The HTTP status of each workflow refusal: the one place a workflow rule meets HTTP. */
export const WORKFLOW_STATUS: Readonly<Record<WorkflowErrorCode, number>> = {
  not_found: 404,
  unknown_tenant: 400,
  invalid_idempotency_key: 400,
  idempotency_key_reused: 409,
  not_retryable: 409,
  not_cancellable: 409,
  conflict: 409,
  not_verifying: 409,
  dns_check_too_soon: 429,
  tenant_suspended: 403,
  tenant_deleted: 409,
  domain_taken: 400,
  domain_owned_by_another_tenant: 409,
};

function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (isWorkflowError(error)) {
    // Client-input refusals keep the API's validation code, so clients see one code for bad input.
    const status = WORKFLOW_STATUS[error.code];
    const code = status === 400 ? 'validation_failed' : error.code;
    const retryAfter = error.details?.retryAfterSeconds;
    if (status === 429 && typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
    return send(reply, status, code, error.message, error.details);
  }
  if (error instanceof ApiError) {
    if (error.statusCode === 401 && !reply.hasHeader('www-authenticate'))
      reply.header('www-authenticate', 'Bearer realm="certq"');
    return send(reply, error.statusCode, error.code, error.message, error.details);
  }

  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = error.validationContext;
    // A malformed id in a path can name nothing that exists: the same 404 as an unknown id.
    if (where === 'params') return send(reply, 404, 'not_found', 'resource not found');
    const issues = error.validation.map((v) => {
      const segments = v.instancePath.split('/').filter(Boolean);
      return { path: formatPath(segments), code: v.keyword, message: v.message ?? 'invalid' };
    });
    const first = issues[0]!;
    const prefix = where === 'body' ? '' : `${where} `;
    return send(reply, 400, 'validation_failed', `${prefix}${first.path || '(root)'}: ${first.message}`, {
      in: where,
      issues: issues.slice(0, MAX_DETAILED_ISSUES),
      totalIssues: issues.length,
    });
  }

  const status = typeof error.statusCode === 'number' ? error.statusCode : 500;
  if (status >= 400 && status < 500) {
    if (
      error instanceof SyntaxError ||
      error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      error.code === 'FST_ERR_CTP_INVALID_JSON_BODY'
    )
      return send(
        reply,
        400,
        'invalid_json',
        'the body is not valid JSON (or carries __proto__/constructor keys)',
      );
    if (status === 413)
      return send(reply, 413, 'payload_too_large', 'the request body is larger than this endpoint accepts');
    if (status === 415)
      return send(reply, 415, 'unsupported_media_type', 'send the body as application/json');
    if (status === 429) return send(reply, 429, 'rate_limited', error.message || 'too many requests');
    // Fastify's own client errors (bad content length, prototype poisoning, …): their messages name
    // the problem without revealing anything internal.
    return send(reply, status, FASTIFY_CODES[status] ?? 'bad_request', error.message);
  }
  // Input Postgres cannot store (a NUL in a string, an invalid byte sequence) is the client's: 400.
  if (postgresRejectedInput(error))
    return send(
      reply,
      400,
      'validation_failed',
      'the request contains characters that cannot be stored (e.g. \\u0000)',
    );
  if (status === 503 || isDatabaseUnavailable(error)) {
    request.log.warn({ err: error }, 'dependency unavailable');
    reply.header('retry-after', '5');
    return send(reply, 503, 'unavailable', 'a dependency is unavailable, try again shortly');
  }
  request.log.error({ err: error }, 'request failed');
  return send(reply, 500, 'internal', 'internal server error');
}

/**
 * Errors Fastify raises before a route is chosen (a malformed URL, a path parameter longer than the
 * router accepts): the same shape. An over-long id can name nothing, so it answers 404 like any
 * unknown id.
 */
export function frameworkErrorHandler(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') return send(reply, 404, 'not_found', 'resource not found');
  const status = typeof error.statusCode === 'number' && error.statusCode < 500 ? error.statusCode : 400;
  return send(reply, status, FASTIFY_CODES[status] ?? 'bad_request', 'malformed request URL');
}

export const errorsPlugin = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler(handleError);
    app.setNotFoundHandler((_request, reply) => send(reply, 404, 'not_found', 'no such route'));
  },
  { name: 'certq-errors' },
);

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'the request headers are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'the request did not arrive in time'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'request_timeout', 'the request headers did not arrive in time'],
};

/**
 * Node's own answers to requests it cannot parse (400, 431) or that arrive too slowly (408), in
 * certq's error shape rather than Node's or Fastify's bare text.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, code, message] = CLIENT_ERRORS[error.code ?? ''] ?? [
    400,
    'bad_request',
    'malformed HTTP request',
  ];
  const body = JSON.stringify({ error: { code, message } });
  const reason =
    status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
