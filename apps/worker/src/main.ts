import { ConfigError, createAuthThrottle, createRedisConnection, loadConfig } from '@certq/core';
import { createLogger } from './logger';
import { createWorkerMetrics } from './metrics';
import { startMetricsServer } from './metrics-server';
import { startWorker } from './runner';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env, { requireSecrets: true });
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
}
const logger = createLogger(config.LOG_LEVEL);
const metrics = createWorkerMetrics();
const handle = await startWorker({ config, logger, metrics });

// Bound like the API (HOST), never wider; /metrics needs METRICS_TOKEN or the operator token.
const server =
  config.WORKER_METRICS_PORT > 0
    ? await startMetricsServer({
        registry: metrics.registry,
        port: config.WORKER_METRICS_PORT,
        host: config.HOST,
        config,
        // The same failed-login count as the API's doors: one Redis key per client address.
        throttle: createAuthThrottle({
          redis: throttleRedis(),
          prefix: config.REDIS_PREFIX,
          failuresPerMinute: config.AUTH_FAILURES_PER_MINUTE,
        }),
      })
    : undefined;
if (server) logger.info({ url: server.url }, 'worker metrics listening');

/** Its own connection that fails fast: a metrics scrape never waits on Redis. */
function throttleRedis() {
  const redis = createRedisConnection(config.REDIS_URL!, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    commandTimeout: 1000,
  });
  redis.on('error', () => {});
  return redis;
}

let stopping = false;
const stop = (signal: string) => {
  if (stopping) {
    logger.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal }, 'draining: no new jobs, finishing the ones in hand');
  server?.close();
  handle.close().then(
    () => process.exit(0),
    (error) => {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
