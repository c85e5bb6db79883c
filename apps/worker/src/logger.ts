import { SAFE_ERROR_SERIALIZERS } from '@certq/core';
import { type Logger, pino } from 'pino';

/** Paths that may hold a secret; pino replaces them before a line is written. */
export const REDACT_PATHS = [
  'apiKey',
  'httpsokApiKey',
  'privateKey',
  'token',
  '*.apiKey',
  '*.privateKey',
  '*.token',
  'headers.authorization',
  'headers.openapikey',
  'req.headers.authorization',
];

export function createLogger(level = process.env.LOG_LEVEL ?? 'info', name = 'certq-worker'): Logger {
  return pino({
    name,
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: SAFE_ERROR_SERIALIZERS,
  });
}
