import { randomBytes } from 'node:crypto';
import { createSecretBox, loadConfig, parseEncryptionKey } from '@certq/core';
import { createDb } from '@certq/db';
import { createQueues } from '@certq/workflow';
import { Redis } from 'ioredis';
import { buildApp } from './app';

function ready(redis: Redis, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`building the OpenAPI document needs Redis at ${url} (set REDIS_URL)`)),
      10_000,
    );
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export interface OpenApiDocumentOptions {
  /**
   * The queue dashboard registers BullMQ queues, which connect when created (and are closed again
   * without a command sent). Default: `REDIS_URL`, else the local default.
   */
  redisUrl?: string;
}

/**
 * The OpenAPI document exactly as `GET /docs/json` serves it, built in-process from the route
 * schemas without a database or a listening socket: what the lint check and the SDK generator
 * (`pnpm --filter @certq/sdk generate`) read. Postgres is never contacted (the pool is lazy);
 * Redis only for the queues' connection handshake.
 */
export async function buildOpenApiDocument(options: OpenApiDocumentOptions = {}): Promise<OpenApiDoc> {
  const redisUrl = options.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const config = loadConfig({
    DATABASE_URL: 'postgres://certq@127.0.0.1:9/unused',
    REDIS_URL: redisUrl,
    REDIS_PREFIX: 'certq-openapi-document',
    ADMIN_TOKEN: 'unused-admin-token',
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'silent',
  });
  const handle = createDb(config.DATABASE_URL!, { max: 1 });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  const queueRedis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queues = createQueues(queueRedis, config.REDIS_PREFIX);
  try {
    await Promise.all([redis, queueRedis].map((r) => ready(r, redisUrl)));
    const app = await buildApp({
      db: handle.db,
      redis,
      queues,
      secrets: createSecretBox(parseEncryptionKey(config.ENCRYPTION_KEY!)),
      config,
      logger: false,
    });
    try {
      const response = await app.inject({ method: 'GET', url: '/docs/json' });
      if (response.statusCode !== 200)
        throw new Error(`/docs/json answered ${response.statusCode}: ${response.body}`);
      return response.json();
    } finally {
      await app.close();
    }
  } finally {
    await queues.close();
    await handle.close();
    redis.disconnect();
    queueRedis.disconnect();
  }
}

/** The parts of an OpenAPI 3 document the checks look at; the rest passes through untyped. */
export interface OpenApiDoc {
  openapi: string;
  servers?: { url: string; description?: string }[];
  paths: Record<string, Record<string, { operationId?: string; responses?: Record<string, unknown> }>>;
  [key: string]: unknown;
}
