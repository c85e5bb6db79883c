import { createDb, idempotencyKeys, orders, tenants } from '@certq/db';
import { and, eq, sql } from 'drizzle-orm';
import type { PoolClient } from 'pg';
import { describe, expect, it } from 'vitest';
import { createOrder } from '../src';
import { database, handle, queues, useWorkflowEnv } from './helpers';

useWorkflowEnv();

describe('createOrder with an Idempotency-Key', () => {
  it('tries again when another order takes the set between the key claim and the insert', async () => {
    const [tenant] = await handle.db
      .insert(tenants)
      .values({ name: 'race', tokenHash: 'hash-race' })
      .returning();
    const domain = 'race.example.com';
    // Another request's order for the set, inserted and not yet committed: the keyed statement cannot see
    // it when it claims the key, and its insert waits on the set's unique index for that commit.
    // Its own pool: the keyed request must not wait for a connection this one holds.
    const otherHandle = createDb(database.url, { max: 1 });
    const other = await otherHandle.pool.connect();
    try {
      await other.query('begin');
      const inserted = await other.query<{ id: string }>(
        `insert into orders (tenant_id, domains, domains_key) values ($1, $2, $3) returning id`,
        [tenant!.id, [domain], domain],
      );
      const keyed = createOrder(
        { db: handle.db, queues },
        { tenantId: tenant!.id, domains: [domain] },
        {
          idempotencyKey: 'race-key',
        },
      );
      await Promise.race([
        waitForLockWait(other),
        keyed.then((r) => {
          throw new Error(`finished without waiting: ${JSON.stringify(r)}`);
        }),
      ]);
      await other.query('commit');
      const result = await keyed;
      expect(result).toEqual({ created: false, orderId: inserted.rows[0]!.id });
      const keys = await handle.db
        .select({ orderId: idempotencyKeys.orderId })
        .from(idempotencyKeys)
        .where(and(eq(idempotencyKeys.tenantId, tenant!.id), eq(idempotencyKeys.key, 'race-key')));
      expect(keys).toEqual([{ orderId: inserted.rows[0]!.id }]);
      const count = await handle.db
        .select({ n: sql<number>`count(*)::int` })
        .from(orders)
        .where(eq(orders.tenantId, tenant!.id));
      expect(count[0]!.n).toBe(1);
    } finally {
      other.release();
      await otherHandle.close();
    }
  });
});

/** Until some other session of this database waits for a lock (the keyed insert, on the set's index). */
async function waitForLockWait(client: PoolClient): Promise<void> {
  for (;;) {
    const { rows } = await client.query(
      `select 1 from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
         and wait_event_type = 'Lock'`,
    );
    if (rows.length) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}
