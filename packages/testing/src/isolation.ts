import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { inject } from 'vitest';
import { withDatabase } from './global-setup';

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/**
 * A private, migrated database for one test file, cloned from the template the global setup built
 * (CREATE DATABASE … TEMPLATE takes tens of milliseconds; migrating from scratch takes seconds).
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const { pgAdminUrl, templateDatabase } = inject('certq');
  const name = `certq_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgAdminUrl });
  await admin.connect();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`create database ${name} template ${templateDatabase}`);
        break;
      } catch (error) {
        // Postgres refuses to clone while another session copies the same template; try again shortly.
        if (attempt > 20 || !String((error as Error).message).includes('being accessed by other users'))
          throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
      }
    }
  } finally {
    await admin.end();
  }
  return {
    name,
    url: withDatabase(pgAdminUrl, name),
    async drop() {
      const client = new pg.Client({ connectionString: pgAdminUrl });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

export interface TestRedis {
  url: string;
  /** Key prefix for BullMQ and every other key this test file writes. */
  prefix: string;
  /** Deletes every key under the prefix. */
  flush(): Promise<void>;
}

export function createTestRedis(): TestRedis {
  const { redisUrl } = inject('certq');
  const prefix = `certq-test-${randomBytes(6).toString('hex')}`;
  return {
    url: redisUrl,
    prefix,
    async flush() {
      await deleteRedisKeys(redisUrl, prefix);
    },
  };
}

/** Deletes every key under `prefix` (SCAN + UNLINK: never FLUSHALL on a Redis others share). */
export async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
