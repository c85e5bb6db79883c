import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, type Dispatcher, request } from 'undici';
import type { z } from 'zod';
import { type HttpsokEndpoint, HttpsokError, type HttpsokErrorInit, type HttpsokErrorKind } from './errors';
import { refusedAsUnverified } from './failure';
import {
  type ApplicationData,
  applicationDataSchema,
  applyDataSchema,
  describeIssues,
  type Envelope,
  envelopeSchema,
  type FailedApplicationData,
  type IssuedApplicationData,
  type IssuingApplicationData,
  type VerifyConfig,
  verifyDataSchema,
} from './schemas';

export const DEFAULT_BASE_URL = 'https://openapi.httpsok.com';
export const DEFAULT_TIMEOUT_MS = 15_000;
/** Retries (after the first try) of `verify`, full-jitter exponential backoff. */
export const DEFAULT_RETRY: RetryOptions = { attempts: 2, baseMs: 250, maxMs: 5_000 };
/** Certificates are a few KiB; anything this large is not an httpsok answer. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export type Algorithm = 'ECC' | 'RSA';
export type CertificateAuthority = 'google' | 'letsencrypt' | 'zerossl';
const ALGORITHMS: readonly string[] = ['ECC', 'RSA'];
const CAS: readonly string[] = ['google', 'letsencrypt', 'zerossl'];

export interface RetryOptions {
  /** Retries after the first try (0 disables retrying). */
  attempts: number;
  /** Upper bound of the first retry's random delay; doubles per retry. */
  baseMs: number;
  /** Cap on any single delay. */
  maxMs: number;
}

export interface ResponseInfo {
  endpoint: HttpsokEndpoint;
  outcome: 'ok' | 'error';
  httpStatus?: number;
  /** The envelope's `code`, when a JSON envelope was received. */
  code?: number;
  durationMs: number;
  traceId?: string;
  /** Set when outcome is 'error'. */
  errorKind?: HttpsokErrorKind;
  /** 1 for the first try of a call, 2 for its first retry, … */
  attempt: number;
}

export interface HttpsokHooks {
  /** Awaited before every HTTP attempt, retries included (e.g. a cluster-wide rate limiter). If it throws, the call fails with that error. */
  beforeRequest?(endpoint: HttpsokEndpoint): Promise<void> | void;
  /** Called after every attempt (e.g. metrics). Exceptions it throws are swallowed. */
  onResponse?(info: ResponseInfo): void;
}

export interface HttpsokClientOptions {
  apiKey: string;
  baseUrl?: string;
  /** Overall limit for one HTTP attempt: connect, headers and body. */
  timeoutMs?: number;
  /** A shared undici dispatcher; the client then does not close it. Default: its own keep-alive Agent. */
  dispatcher?: Dispatcher;
  /** Retry policy of `verify` (the only endpoint retried automatically). */
  retry?: Partial<RetryOptions>;
  hooks?: HttpsokHooks;
}

export interface VerifyResult {
  /** True only when every domain's record is valid. */
  valid: boolean;
  configs: VerifyConfig[];
  traceId: string | null;
}

export interface ApplyRequest {
  domainList: string[];
  algorithm?: Algorithm;
  ca?: CertificateAuthority;
  notifyUrl?: string;
}

export interface ApplyResult {
  /** Always a string, whatever type the upstream used. */
  applyId: string;
  traceId: string | null;
}

type WithTrace<T> = T & { traceId: string | null };
export type IssuingApplication = WithTrace<IssuingApplicationData>;
export type IssuedApplication = WithTrace<IssuedApplicationData>;
export type FailedApplication = WithTrace<FailedApplicationData>;
export type Application = IssuingApplication | IssuedApplication | FailedApplication;

export interface DispatcherOptions {
  /** Sockets per origin. */
  connections?: number;
  keepAliveTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/** A keep-alive Agent suited to the upstream; share one between many clients via `dispatcher` or `withApiKey`. */
export function createHttpsokDispatcher(options: DispatcherOptions = {}): Agent {
  return new Agent({
    connections: options.connections ?? 32,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 10_000,
    keepAliveMaxTimeout: 60_000,
    connect: { timeout: options.connectTimeoutMs ?? 10_000 },
  });
}

/** Full jitter (AWS architecture blog): uniform in [0, min(cap, base·2^retry)]. */
export function fullJitterDelay(
  retry: number,
  policy: RetryOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

function normalizeBaseUrl(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError('HttpsokClient: baseUrl is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError('HttpsokClient: baseUrl must be http(s)');
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new TypeError('HttpsokClient: baseUrl must not carry credentials, a query or a fragment');
  }
  // A path prefix (a proxy mount) is kept; endpoint paths are appended to it.
  return url.href.replace(/\/+$/, '');
}

function validateApiKey(apiKey: unknown): string {
  // The message deliberately never repeats the value.
  if (typeof apiKey !== 'string' || apiKey.trim() === '') {
    throw new TypeError('HttpsokClient: apiKey must be a non-empty string');
  }
  // A CR/LF would be header injection; undici would reject it with an error we do not control.
  for (let i = 0; i < apiKey.length; i++) {
    const c = apiKey.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw new TypeError('HttpsokClient: apiKey contains control characters');
  }
  return apiKey;
}

function validateDomainList(domainList: unknown): string[] {
  if (
    !Array.isArray(domainList) ||
    domainList.length === 0 ||
    !domainList.every((d) => typeof d === 'string' && d.trim() !== '')
  ) {
    throw new TypeError('HttpsokClient: domainList must be a non-empty array of non-empty strings');
  }
  return domainList as string[];
}

function parseRetryAfter(value: string | string[] | undefined): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

class ResponseTooLargeError extends Error {}

async function readText(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    // Throwing inside for-await destroys the stream, releasing the socket.
    if (size > MAX_RESPONSE_BYTES)
      throw new ResponseTooLargeError(`response body exceeds ${MAX_RESPONSE_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
// Programming or lifecycle errors: trying again cannot help.
const FATAL_CODES = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_DESTROYED', 'UND_ERR_CLOSED']);

type Parser<T> = z.ZodType<T, unknown>;

interface Call<T> {
  endpoint: HttpsokEndpoint;
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  data: Parser<T>;
}

/**
 * Typed client of the httpsok OpenAPI. Only `verify` retries by itself: a
 * repeated `apply` creates a second paid application, and a repeated
 * `getApply` within 10 s breaks the upstream's polling rule, so those retries
 * are the caller's (the worker's) to schedule.
 */
export class HttpsokClient {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly retry: Readonly<RetryOptions>;
  // Private fields: invisible to util.inspect, JSON.stringify and error serialisation.
  readonly #apiKey: string;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #hooks: HttpsokHooks;
  #closed = false;

  constructor(options: HttpsokClientOptions) {
    this.#apiKey = validateApiKey(options.apiKey);
    this.baseUrl = normalizeBaseUrl(options.baseUrl ?? DEFAULT_BASE_URL);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) {
      throw new RangeError('HttpsokClient: timeoutMs must be a positive number');
    }
    const retry = { ...DEFAULT_RETRY, ...options.retry };
    if (
      !Number.isInteger(retry.attempts) ||
      retry.attempts < 0 ||
      !(retry.baseMs >= 0) ||
      !(retry.maxMs >= 0)
    ) {
      throw new RangeError('HttpsokClient: retry needs attempts >= 0 (integer), baseMs >= 0, maxMs >= 0');
    }
    this.retry = Object.freeze(retry);
    this.#hooks = options.hooks ?? {};
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher = options.dispatcher ?? createHttpsokDispatcher();
  }

  /**
   * A client for another account (a tenant's own key) sharing this client's
   * dispatcher, base URL, timeout, retry policy and hooks. Cheap: no sockets
   * are created. The derived client never closes the shared dispatcher; closing
   * the client that owns it ends both.
   */
  withApiKey(apiKey: string): HttpsokClient {
    return new HttpsokClient({
      apiKey,
      baseUrl: this.baseUrl,
      timeoutMs: this.timeoutMs,
      retry: this.retry,
      hooks: this.#hooks,
      dispatcher: this.#dispatcher,
    });
  }

  /** POST /v1/cert/dv. An unverified domain is a normal answer (`valid: false`), not an error. */
  async verify(domainList: string[]): Promise<VerifyResult> {
    const domains = validateDomainList(domainList);
    const call: Call<z.output<typeof verifyDataSchema>> = {
      endpoint: 'verify',
      method: 'POST',
      path: '/v1/cert/dv',
      body: { domainList: domains },
      data: verifyDataSchema,
    };
    for (let retry = 0; ; retry++) {
      try {
        const { data, traceId } = await this.#attempt(call, retry + 1);
        return { valid: data.valid, configs: data.configs, traceId };
      } catch (error) {
        if (!(error instanceof HttpsokError) || !error.retryable || retry >= this.retry.attempts) throw error;
        let delay = fullJitterDelay(retry, this.retry);
        if (error.retryAfterMs !== null)
          delay = Math.max(delay, Math.min(error.retryAfterMs, this.retry.maxMs));
        await sleep(delay);
      }
    }
  }

  /** POST /v1/cert/apply. Never retried: on any error the caller must find out whether an application exists. */
  async apply(req: ApplyRequest): Promise<ApplyResult> {
    const domainList = validateDomainList(req.domainList);
    if (req.algorithm !== undefined && !ALGORITHMS.includes(req.algorithm)) {
      throw new TypeError('HttpsokClient: algorithm must be ECC or RSA');
    }
    if (req.ca !== undefined && !CAS.includes(req.ca)) {
      throw new TypeError('HttpsokClient: ca must be google, letsencrypt or zerossl');
    }
    const body: Record<string, unknown> = { domainList };
    if (req.algorithm !== undefined) body['algorithm'] = req.algorithm;
    if (req.ca !== undefined) body['ca'] = req.ca;
    if (req.notifyUrl !== undefined) body['notifyUrl'] = req.notifyUrl;
    const { data, traceId } = await this.#attempt(
      { endpoint: 'apply', method: 'POST', path: '/v1/cert/apply', body, data: applyDataSchema },
      1,
    );
    return { applyId: data, traceId };
  }

  /**
   * GET /v1/cert/apply/{id}. Not retried: the upstream wants >= 10 s between
   * requests for one id, failed ones included, so the caller schedules the next try.
   */
  async getApply(id: string): Promise<Application> {
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
      throw new TypeError('HttpsokClient: id must be a non-empty string of letters, digits, "-" or "_"');
    }
    const { data, traceId } = await this.#attempt<ApplicationData>(
      {
        endpoint: 'getApply',
        method: 'GET',
        path: `/v1/cert/apply/${encodeURIComponent(id)}`,
        data: applicationDataSchema,
      },
      1,
    );
    return { ...data, traceId };
  }

  /** Closes the dispatcher if this client created it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  /** One HTTP exchange: hooks, request, classification. Throws HttpsokError for every failure. */
  async #attempt<T>(call: Call<T>, attempt: number): Promise<{ data: T; traceId: string | null }> {
    if (this.#closed) {
      throw this.#error({
        kind: 'network',
        endpoint: call.endpoint,
        msg: 'client is closed',
        retryable: false,
      });
    }
    await this.#hooks.beforeRequest?.(call.endpoint);
    const started = performance.now();
    const report = (info: Omit<ResponseInfo, 'endpoint' | 'durationMs' | 'attempt'>) => {
      try {
        this.#hooks.onResponse?.({
          endpoint: call.endpoint,
          durationMs: performance.now() - started,
          attempt,
          ...info,
        });
      } catch {
        // Metrics must never turn a good answer into a failure.
      }
    };
    try {
      const result = await this.#exchange(call);
      report({ outcome: 'ok', httpStatus: result.httpStatus, code: 0, ...optionalTrace(result.traceId) });
      return { data: result.data, traceId: result.traceId };
    } catch (error) {
      const e =
        error instanceof HttpsokError
          ? error
          : this.#error({
              kind: 'network',
              endpoint: call.endpoint,
              msg: 'unexpected client failure',
              retryable: false,
              cause: error,
            });
      report({
        outcome: 'error',
        errorKind: e.kind,
        ...(e.httpStatus !== null ? { httpStatus: e.httpStatus } : {}),
        ...(e.code !== null ? { code: e.code } : {}),
        ...optionalTrace(e.traceId),
      });
      throw e;
    }
  }

  async #exchange<T>(call: Call<T>): Promise<{ data: T; traceId: string | null; httpStatus: number }> {
    const { endpoint } = call;
    const signal = AbortSignal.timeout(this.timeoutMs);
    let httpStatus: number | null = null;
    let retryAfterMs: number | null = null;
    let text: string;
    try {
      const response = await request(`${this.baseUrl}${call.path}`, {
        method: call.method,
        dispatcher: this.#dispatcher,
        headers: {
          OpenApiKey: this.#apiKey,
          'Content-Type': 'application/json',
          Accept: 'application/json',
        },
        ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}),
        signal,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      httpStatus = response.statusCode;
      retryAfterMs = parseRetryAfter(response.headers['retry-after']);
      text = await readText(response.body);
    } catch (error) {
      throw this.#transportError(endpoint, error, signal, httpStatus);
    }

    const envelope = parseEnvelope(text);

    if (httpStatus < 200 || httpStatus > 299) {
      const code = envelope.ok ? envelope.value.code : null;
      throw this.#error({
        kind: 'http',
        endpoint,
        httpStatus,
        code,
        msg: (envelope.ok && envelope.value.msg) || `HTTP status ${httpStatus}`,
        traceId: envelope.ok ? (envelope.value.traceId ?? null) : null,
        retryable: httpStatus >= 500 || httpStatus === 429 || httpStatus === 408,
        rateLimited: httpStatus === 429 || code === 429,
        authFailed: httpStatus === 401 || code === 401,
        retryAfterMs,
      });
    }

    if (!envelope.ok) {
      throw this.#error({
        kind: 'invalid_response',
        endpoint,
        httpStatus,
        msg: envelope.reason,
        retryable: true,
      });
    }
    const { code, msg, traceId = null } = envelope.value;
    if (code !== 0) {
      throw this.#error({
        kind: 'upstream',
        endpoint,
        httpStatus,
        code,
        msg: msg || `upstream code ${code}`,
        traceId,
        retryable: envelopeCodeRetryable(code, msg),
        rateLimited: code === 429,
        authFailed: code === 401,
        retryAfterMs,
      });
    }

    const parsed = call.data.safeParse(envelope.value.data);
    if (!parsed.success) {
      throw this.#error({
        kind: 'invalid_response',
        endpoint,
        httpStatus,
        traceId,
        msg: `data does not match the expected schema: ${describeIssues(parsed.error)}`,
        retryable: true,
      });
    }
    return { data: parsed.data, traceId, httpStatus };
  }

  #transportError(
    endpoint: HttpsokEndpoint,
    error: unknown,
    signal: AbortSignal,
    httpStatus: number | null,
  ): HttpsokError {
    if (error instanceof ResponseTooLargeError) {
      return this.#error({
        kind: 'invalid_response',
        endpoint,
        httpStatus,
        msg: error.message,
        retryable: true,
      });
    }
    const code = (error as { code?: unknown } | null)?.code;
    const codeText = typeof code === 'string' ? code : '';
    if (signal.aborted || TIMEOUT_CODES.has(codeText)) {
      return this.#error({
        kind: 'timeout',
        endpoint,
        httpStatus,
        msg: signal.aborted ? `no complete answer within ${this.timeoutMs} ms` : codeText,
        retryable: true,
        cause: error,
      });
    }
    const message = error instanceof Error ? error.message : String(error);
    return this.#error({
      kind: 'network',
      endpoint,
      httpStatus,
      msg: codeText && !message.includes(codeText) ? `${codeText}: ${message}` : message,
      retryable: !FATAL_CODES.has(codeText),
      cause: error,
    });
  }

  #error(init: Omit<HttpsokErrorInit, 'secrets'>): HttpsokError {
    return new HttpsokError({ ...init, secrets: [this.#apiKey] });
  }
}

/**
 * Whether the same request may succeed later: not when the key was refused (401), nor when the
 * request itself was refused (another 4xx-like code, or a domain the upstream does not see verified:
 * it needs something else done first). 429 and unknown codes are transient.
 */
function envelopeCodeRetryable(code: number, msg: string | null | undefined): boolean {
  if (code === 429) return true;
  if (code >= 400 && code < 500) return false;
  return !refusedAsUnverified(msg ?? '');
}

function optionalTrace(traceId: string | null): { traceId?: string } {
  return traceId ? { traceId } : {};
}

type EnvelopeParse = { ok: true; value: Envelope } | { ok: false; reason: string };

function parseEnvelope(text: string): EnvelopeParse {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // A snippet helps diagnose proxies' HTML error pages. A truncated JSON body is not
    // quoted: it could be an issued certificate with its private key.
    const trimmed = text.trim();
    const snippet =
      trimmed.startsWith('{') || trimmed.startsWith('[') ? '' : `: ${JSON.stringify(trimmed.slice(0, 120))}`;
    return { ok: false, reason: `body is not JSON (${text.length} chars)${snippet}` };
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) {
    return { ok: false, reason: `body is not an httpsok envelope: ${describeIssues(parsed.error)}` };
  }
  return { ok: true, value: parsed.data };
}
