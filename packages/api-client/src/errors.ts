/*
 * One error type for every call that did not end in a clean `code: 0` answer.
 * Callers (the worker) branch on `retryable`, `rateLimited` and `authFailed`,
 * not on message text.
 *
 * Secrecy: the API key must never reach logs. The client never hands it to
 * this module except as a value to scrub, and the error keeps no reference to
 * the request, its headers or the raw undici error (`cause` is a sanitised copy).
 */

export type HttpsokEndpoint = 'verify' | 'apply' | 'getApply';

export type HttpsokErrorKind = 'upstream' | 'http' | 'timeout' | 'network' | 'invalid_response';

export interface HttpsokErrorInit {
  kind: HttpsokErrorKind;
  endpoint: HttpsokEndpoint;
  msg: string;
  code?: number | null;
  traceId?: string | null;
  httpStatus?: number | null;
  retryable: boolean;
  rateLimited?: boolean;
  authFailed?: boolean;
  /** From a `Retry-After` header, when the upstream sent one. */
  retryAfterMs?: number | null;
  cause?: unknown;
  /** Strings (the API key) to scrub from every text the error carries. */
  secrets?: readonly string[];
}

export interface HttpsokErrorJSON {
  name: 'HttpsokError';
  message: string;
  kind: HttpsokErrorKind;
  endpoint: HttpsokEndpoint;
  code: number | null;
  msg: string;
  traceId: string | null;
  httpStatus: number | null;
  retryable: boolean;
  rateLimited: boolean;
  authFailed: boolean;
  retryAfterMs: number | null;
}

const REDACTED = '[redacted]';

/** Replaces every occurrence of each secret (of a length worth scrubbing) in `text`. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    // A one- or two-character "secret" would shred unrelated text; real keys are long.
    if (secret.length >= 4) out = out.split(secret).join(REDACTED);
  }
  return out;
}

/**
 * Rebuilds an arbitrary thrown value as a plain Error holding only its name,
 * `code` and scrubbed message (and, recursively, its cause): undici errors can
 * carry sockets and request objects we do not want to serialise.
 */
export function sanitizeCause(value: unknown, secrets: readonly string[] = [], depth = 0): Error | undefined {
  if (value === undefined || value === null) return undefined;
  if (!(value instanceof Error)) return new Error(redact(String(value), secrets));
  const copy = new Error(redact(value.message, secrets));
  copy.name = value.name;
  copy.stack = `${copy.name}: ${copy.message}`;
  const code = (value as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') {
    (copy as Error & { code?: string | number }).code = code;
  }
  if (depth < 3 && value.cause !== undefined) {
    const inner = sanitizeCause(value.cause, secrets, depth + 1);
    if (inner) copy.cause = inner;
  }
  return copy;
}

function describe(init: HttpsokErrorInit, msg: string): string {
  const head = `httpsok ${init.endpoint}`;
  const trace = init.traceId ? ` (traceId ${init.traceId})` : '';
  switch (init.kind) {
    case 'upstream':
      return `${head}: upstream code ${init.code}: ${msg}${trace}`;
    case 'http':
      return `${head}: HTTP ${init.httpStatus}: ${msg}${trace}`;
    case 'timeout':
      return `${head}: timed out: ${msg}`;
    case 'network':
      return `${head}: network error: ${msg}`;
    case 'invalid_response':
      return `${head}: invalid response: ${msg}${trace}`;
  }
}

export class HttpsokError extends Error {
  declare readonly name: 'HttpsokError';
  readonly kind: HttpsokErrorKind;
  readonly endpoint: HttpsokEndpoint;
  /** The envelope's `code`, when a JSON envelope was received. */
  readonly code: number | null;
  /** The upstream's `msg`, or our description of what went wrong. */
  readonly msg: string;
  readonly traceId: string | null;
  readonly httpStatus: number | null;
  /** Whether trying the same request again later may succeed. */
  readonly retryable: boolean;
  /** `code` 429 or HTTP 429: the upstream asked us to slow down. */
  readonly rateLimited: boolean;
  /** `code` 401 or HTTP 401: the API key was refused; retrying will not help. */
  readonly authFailed: boolean;
  readonly retryAfterMs: number | null;

  constructor(init: HttpsokErrorInit) {
    const secrets = init.secrets ?? [];
    const msg = redact(init.msg, secrets);
    const traceId = init.traceId ? redact(init.traceId, secrets) : null;
    super(describe({ ...init, traceId }, msg));
    this.kind = init.kind;
    this.endpoint = init.endpoint;
    this.code = init.code ?? null;
    this.msg = msg;
    this.traceId = traceId;
    this.httpStatus = init.httpStatus ?? null;
    this.retryable = init.retryable;
    this.rateLimited = init.rateLimited ?? false;
    this.authFailed = init.authFailed ?? false;
    this.retryAfterMs = init.retryAfterMs ?? null;
    const cause = sanitizeCause(init.cause, secrets);
    if (cause) {
      // Non-enumerable like a native `cause`, so JSON.stringify skips it; util.inspect shows the sanitised copy.
      Object.defineProperty(this, 'cause', {
        value: cause,
        writable: true,
        configurable: true,
        enumerable: false,
      });
    }
  }

  toJSON(): HttpsokErrorJSON {
    return {
      name: this.name,
      message: this.message,
      kind: this.kind,
      endpoint: this.endpoint,
      code: this.code,
      msg: this.msg,
      traceId: this.traceId,
      httpStatus: this.httpStatus,
      retryable: this.retryable,
      rateLimited: this.rateLimited,
      authFailed: this.authFailed,
      retryAfterMs: this.retryAfterMs,
    };
  }
}

// On the prototype rather than as a field, so the stack captured by Error's constructor already says HttpsokError.
Object.defineProperty(HttpsokError.prototype, 'name', {
  value: 'HttpsokError',
  configurable: true,
  writable: true,
});

export function isHttpsokError(value: unknown): value is HttpsokError {
  return value instanceof HttpsokError;
}
