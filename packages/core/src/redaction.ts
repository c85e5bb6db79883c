/**
 * Log paths that may hold a secret, for pino's `redact` in every process (API, worker, launcher): one
 * list, so a secret kept out of one process's logs is kept out of all of them. Secrets that travel in
 * URLs (callback secrets, `?token=`) are removed from the parsed route before a line is written.
 */
export const REDACT_PATHS = [
  'apiKey',
  'httpsokApiKey',
  'privateKey',
  'token',
  'secret',
  '*.apiKey',
  '*.httpsokApiKey',
  '*.privateKey',
  '*.token',
  '*.secret',
  'headers.authorization',
  'headers.openapikey',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.openapikey',
  'req.headers.cookie',
] as const;

export const REDACT_CENSOR = '[redacted]';
