import { createTestDatabase, hostPort, startFaultProxy, type TestDatabase, waitFor } from '@certq/testing';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, isDatabaseUnavailable } from '../src';

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});

/**
 * A connection that dies under a transaction's BEGIN (a Postgres restart, a failover, a cut) must
 * give its pool slot back. drizzle-orm 0.45 sends BEGIN outside the try/finally that releases the
 * client (drizzle-team/drizzle-orm#6023, #6241), so each such death leaked a slot for the life of
 * the process: after DATABASE_POOL_SIZE of them every query timed out — the worker's outage gate
 * then never reopened — and `pool.end()` waited forever (the worker's close() hung after the fault
 * tests). patches/drizzle-orm*.patch moves BEGIN inside the try.
 */
describe('a connection lost under BEGIN', () => {
  it('gives the pool slot back: the next query runs and close() returns', async () => {
    const proxy = await startFaultProxy(hostPort(database.url));
    const handle = createDb(proxy.url(database.url), { max: 1 });
    try {
      await handle.db.execute(sql`select 1`); // the pool's one client, idle now
      proxy.hang(); // BEGIN reaches the proxy and goes no further…
      const transaction = handle.db.transaction(async (tx) => tx.execute(sql`select 1`));
      const failed = transaction.then(
        () => undefined,
        (error: unknown) => error,
      );
      await waitFor(() => proxy.heldChunks > 0, { message: 'BEGIN held by the proxy' });
      proxy.restore();
      proxy.cut(); // …and its connection is cut
      const error = await failed;
      expect(isDatabaseUnavailable(error)).toBe(true);

      // Without the fix the dead client still holds the only slot: this waits 10 s and times out.
      const { rows } = await handle.db.execute<{ one: number }>(sql`select 1 as one`);
      expect(rows).toEqual([{ one: 1 }]);
      expect(handle.pool.totalCount).toBe(1);
      expect(handle.pool.idleCount).toBe(1);
      await bounded(handle.close(), 3000, 'pool.end() after a lost BEGIN');
    } finally {
      await proxy.close();
    }
  }, 20_000);

  it('a transaction whose callback fails still rolls back and releases the client', async () => {
    const handle = createDb(database.url, { max: 1 });
    try {
      await expect(
        handle.db.transaction(async (tx) => {
          await tx.execute(sql`create temporary table t_rollback (x int)`);
          throw new Error('callback failed');
        }),
      ).rejects.toThrow('callback failed');
      // Rolled back: the temporary table does not exist on the (one) connection.
      const { rows } = await handle.db.execute<{ t: string | null }>(
        sql`select to_regclass('pg_temp.t_rollback')::text as t`,
      );
      expect(rows).toEqual([{ t: null }]);
      expect(handle.pool.idleCount).toBe(1);
    } finally {
      await bounded(handle.close(), 3000, 'pool.end()');
    }
  });
});

async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not return within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
