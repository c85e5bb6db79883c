import { createDb, type DbHandle } from '@certq/db';
import { createTestDatabase, createTestRedis, type TestDatabase, type TestRedis } from '@certq/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { createQueues, type Queues } from '../src';

// Live bindings: set by useWorkflowEnv's beforeAll, read by the tests of the file that called it.
export let database: TestDatabase;
export let testRedis: TestRedis;
export let handle: DbHandle;
export let redis: Redis;
export let queues: Queues;

/** The test file's own database, Redis prefix, pool and queues, made before its tests and closed after. */
export function useWorkflowEnv(): void {
  beforeAll(async () => {
    database = await createTestDatabase();
    testRedis = createTestRedis();
    handle = createDb(database.url);
    redis = new Redis(testRedis.url, { maxRetriesPerRequest: null });
    queues = createQueues(redis, testRedis.prefix);
  });
  afterAll(async () => {
    await queues.close();
    redis.disconnect();
    await handle.close();
    await testRedis.flush();
    await database.drop();
  });
}
