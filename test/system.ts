import { loadConfig } from '@certq/core';
import { startWorker, type WorkerHandle } from '@certq/worker';
import { pino } from 'pino';
import { inject } from 'vitest';
import type { TestApi } from '../apps/api/test/helpers';

/**
 * The worker of a whole-system test, beside a test API: the same database, Redis prefix, admin token
 * and encryption key, httpsok's callbacks sent to that API, DNS checks to the test setup's named.
 * `env` holds what the test adds (the upstream, poll intervals).
 */
export function startSystemWorker(api: TestApi, env: Record<string, string>): Promise<WorkerHandle> {
  const config = loadConfig({
    DATABASE_URL: api.env.database.url,
    REDIS_URL: api.env.testRedis.url,
    REDIS_PREFIX: api.env.testRedis.prefix,
    ADMIN_TOKEN: api.config.ADMIN_TOKEN,
    ENCRYPTION_KEY: api.config.ENCRYPTION_KEY,
    PUBLIC_BASE_URL: api.url,
    UPSTREAM_MAX_RPS: '200',
    LOG_LEVEL: 'silent',
    DNS_RESOLVERS: inject('certq').dnsResolvers,
    ...env,
  });
  return startWorker({ config, logger: pino({ level: 'silent' }) });
}
