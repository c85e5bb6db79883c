import { ConfigError, loadConfig } from '@certq/core';
import { createApiLogger } from './app';
import { startApi } from './server';

/** Production entry: `tsx src/main.ts`. Configuration comes from the environment only. */
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env, { requireSecrets: true });
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

const logger = createApiLogger(config.LOG_LEVEL);
const api = await startApi({ config, logger, migrate: true });
logger.info({ url: api.url, docs: `${api.url}/docs` }, 'certq API listening');

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // A hung close must not keep the process alive forever.
    setTimeout(() => process.exit(1), 15_000).unref();
    api.close().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'error while shutting down');
        process.exit(1);
      },
    );
  });
}
