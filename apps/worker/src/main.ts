import { createServer } from 'node:http';
import { ConfigError, loadConfig } from '@certq/core';
import { createLogger } from './logger';
import { createWorkerMetrics } from './metrics';
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

const metricsPort = config.WORKER_METRICS_PORT;
const server =
  metricsPort > 0
    ? createServer(async (req, res) => {
        if (req.url === '/metrics') {
          res.setHeader('content-type', metrics.registry.contentType);
          res.end(await metrics.registry.metrics());
        } else if (req.url === '/healthz') {
          res.end('ok');
        } else {
          res.statusCode = 404;
          res.end();
        }
      }).listen(metricsPort, () => logger.info({ port: metricsPort }, 'worker metrics listening'))
    : undefined;

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
