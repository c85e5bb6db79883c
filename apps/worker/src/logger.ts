import { REDACT_CENSOR, REDACT_PATHS } from '@certq/core';
import { type Logger, pino } from 'pino';

export function createLogger(level = process.env.LOG_LEVEL ?? 'info', name = 'certq-worker'): Logger {
  return pino({ name, level, redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR } });
}
