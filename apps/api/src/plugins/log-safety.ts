/** What the function reads of a Fastify request (any server flavour). */
export interface LoggableRequest {
  url: string;
  is404: boolean;
  query: unknown;
  params: unknown;
  routeOptions: { url?: string };
}

/** Path parameters and query keys whose values are credentials. */
const SECRET_NAME = /secret|token|key|password|passwd|auth|signature|sig|code|session/i;
const REDACTED = '[redacted]';

/**
 * The URL of a request as it may be logged, rebuilt from what the router parsed rather than by
 * pattern-matching the raw URL (which `%68ttpsok`-style encodings escape): a matched route is logged
 * as its pattern with non-secret parameters filled in, the query with secret-named keys redacted;
 * an unmatched path loses its query and any segment long enough to be a credential.
 */
export function safeRequestUrl(request: LoggableRequest): string {
  const pattern = request.routeOptions.url;
  const query = request.query && typeof request.query === 'object' ? request.query : {};
  const qs = Object.entries(query as Record<string, unknown>)
    .map(
      ([k, v]) =>
        `${encodeURIComponent(k)}=${SECRET_NAME.test(k) ? REDACTED : encodeURIComponent(String(v))}`,
    )
    .join('&');
  if (pattern && !request.is404) {
    const params = (request.params ?? {}) as Record<string, unknown>;
    const path = pattern.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) =>
      SECRET_NAME.test(name) ? REDACTED : encodeURIComponent(String(params[name] ?? '')),
    );
    return qs ? `${path}?${qs}` : path;
  }
  const rawPath = request.url.split('?')[0] ?? '';
  return rawPath
    .slice(0, 300)
    .split('/')
    .map((segment) => (segment.length > 24 ? REDACTED : segment))
    .join('/');
}
