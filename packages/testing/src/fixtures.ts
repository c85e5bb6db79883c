import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDb } from '@certq/db';
import { test as base } from 'vitest';
import { createTestDatabase, createTestRedis } from './isolation';

/**
 * The fixtures every test file builds on (vitest's `test.extend`): a test names what it needs and gets
 * it; each file gets its own database and Redis key prefix, made the first time a test asks and
 * dropped when the file ends. Apps extend this `test` with their own (the API, the workbench).
 */
export const test = base
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
  .extend('database', { scope: 'file' }, async ({}, { onCleanup }) => {
    const database = await createTestDatabase();
    onCleanup(() => database.drop());
    return database;
  })
  // biome-ignore lint/correctness/noEmptyPattern: as above
  .extend('testRedis', { scope: 'file' }, async ({}, { onCleanup }) => {
    const testRedis = createTestRedis();
    onCleanup(() => testRedis.flush());
    return testRedis;
  })
  /** A pool on the file's database (closed before the database is dropped). */
  .extend('db', { scope: 'file' }, async ({ database }, { onCleanup }) => {
    const handle = createDb(database.url);
    onCleanup(() => handle.close());
    return handle;
  })
  /** A temp folder for the file's files (CSV imports, agent outputs), removed when the file ends. */
  // biome-ignore lint/correctness/noEmptyPattern: as above
  .extend('tmpDir', { scope: 'file' }, async ({}, { onCleanup }) => {
    const dir = await mkdtemp(join(tmpdir(), 'certq-test-'));
    onCleanup(() => rm(dir, { recursive: true, force: true }));
    return dir;
  });

export const it = test;
