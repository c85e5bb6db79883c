import { type Config, createRedisConnection, secretBoxFromConfig } from '@certq/core';
import { createDb, migrate } from '@certq/db';
import { createQueues } from '@certq/workflow';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp, createApiLogger } from './app';
import type { ApiDeps } from './deps';

export interface StartApiOptions {
  /** An already-loaded config; DATABASE_URL, REDIS_URL and ENCRYPTION_KEY must be set. */
  config: Config;
  /** Default: pino at config.LOG_LEVEL with secrets redacted; `false` for silence. */
  logger?: Logger | false;
  /** Apply the database migrations first (main.ts does; a launcher that migrated already need not). */
  migrate?: boolean;
  /** Override config.HOST / config.PORT (port 0: any free port). */
  host?: string;
  port?: number;
  /** Passed to buildApp (tests, benchmarks). */
  overrides?: Partial<Pick<ApiDeps, 'enqueueTimeoutMs'>>;
}

export interface RunningApi {
  url: string;
  app: FastifyInstance;
  /** Stops taking requests, lets in-flight ones finish, then closes Redis and Postgres. */
  close(): Promise<void>;
}

function required(config: Config, key: 'DATABASE_URL' | 'REDIS_URL' | 'ENCRYPTION_KEY'): string {
  const value = config[key];
  if (!value) throw new Error(`${key} is required to start the API`);
  return value;
}

export async function startApi(options: StartApiOptions): Promise<RunningApi> {
  const { config } = options;
  const databaseUrl = required(config, 'DATABASE_URL');
  const redisUrl = required(config, 'REDIS_URL');
  required(config, 'ENCRYPTION_KEY');
  const secrets = secretBoxFromConfig(config);
  const logger = options.logger === undefined ? createApiLogger(config.LOG_LEVEL) : options.logger;
  if (options.migrate) await migrate(databaseUrl);

  const db = createDb(databaseUrl, {
    applicationName: 'certq-api',
    max: config.DATABASE_POOL_SIZE,
    preparedStatements: config.DATABASE_PREPARED_STATEMENTS,
  });
  // Rate limiting and readiness: fail fast rather than queue commands while Redis is away.
  const redis = createRedisConnection(redisUrl, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    commandTimeout: 1000,
  });
  // Producers only (no blocking commands): fail fast too; enqueueSafely bounds the wait anyway.
  const queueRedis = createRedisConnection(redisUrl, {
    maxRetriesPerRequest: null,
    enableOfflineQueue: false,
  });
  const quiet = () => {}; // connection errors surface in /readyz and in enqueue warnings
  redis.on('error', quiet);
  queueRedis.on('error', quiet);
  const queues = createQueues(queueRedis, config.REDIS_PREFIX);
  const app = await buildApp({
    db: db.db,
    redis,
    queues,
    secrets,
    config,
    logger,
    ...options.overrides,
  });
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      await app.close();
      await queues.close().catch(() => {});
      redis.disconnect();
      queueRedis.disconnect();
      await db.close();
    })();
    return closed;
  };
  try {
    const url = await app.listen({ host: options.host ?? config.HOST, port: options.port ?? config.PORT });
    return { url, app, close };
  } catch (error) {
    await close();
    throw error;
  }
}
