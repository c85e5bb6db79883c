import { randomBytes } from 'node:crypto';
import { createRedisConnection, loadConfig } from '@certq/core';
import { createDb, type DbHandle, findOrder, insertOrders, orderEvents, orders, tenants } from '@certq/db';
import { createSimulator, type Simulator } from '@certq/simulator';
import { certqSettings, createTestDatabase, type TestDatabase, waitFor } from '@certq/testing';
import {
  type PgBouncerServer,
  type RedisClusterServer,
  startPgBouncer,
  startRedisCluster,
} from '@certq/testing/servers';
import { createQueues, enqueueOrders, type Queues } from '@certq/workflow';
import { and, inArray, sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnWorker } from './process';

/**
 * certq on the engines users scale out with: a real three-master Redis Cluster (hash-tagged
 * prefix) and PgBouncer in transaction pooling mode (two server connections for everything), with
 * two worker processes sharing the work. Every order issued, each stage transition once, each
 * domain set applied once, no poll inside the upstream's 10 s floor.
 */
let database: TestDatabase;
let cluster: RedisClusterServer;
let bouncer: PgBouncerServer;
let sim: Simulator;
let direct: DbHandle;
let redis: Redis;
let queues: Queues;
let env: Record<string, string>;

beforeAll(async () => {
  database = await createTestDatabase();
  [cluster, bouncer] = await Promise.all([
    startRedisCluster(),
    startPgBouncer(database.url, { poolSize: 2 }),
  ]);
  sim = createSimulator({ issueSeconds: 1, latencyMs: 5 });
  const simUrl = await sim.listen();
  const prefix = `{certq-${randomBytes(4).toString('hex')}}`;
  env = certqSettings(
    { databaseUrl: bouncer.url, redisUrl: cluster.url, redisPrefix: prefix, httpsokUrl: simUrl },
    {
      DATABASE_PREPARED_STATEMENTS: 'false',
      LOG_LEVEL: 'info',
      UPSTREAM_MAX_RPS: '500',
      WORKER_CONCURRENCY: '10',
      WORKER_METRICS_PORT: '0',
      WORKER_LOCK_DURATION_MS: '10000',
    },
  );
  direct = createDb(database.url);
  redis = createRedisConnection(cluster.url, { maxRetriesPerRequest: null });
  queues = createQueues(redis, prefix);
}, 60_000);

afterAll(async () => {
  await queues?.close();
  redis?.disconnect();
  await direct?.close();
  await sim?.close();
  await bouncer?.stop();
  await cluster?.stop();
  await database?.drop();
});

describe('scale-out: Redis Cluster, PgBouncer (transaction mode), two worker processes', () => {
  it('refuses a cluster prefix without a hash tag, and defaults to {certq}', () => {
    expect(() => loadConfig({ REDIS_URL: cluster.url, REDIS_PREFIX: 'certq' })).toThrow(/hash tag/);
    expect(loadConfig({ REDIS_URL: cluster.url }).REDIS_PREFIX).toBe('{certq}');
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).REDIS_PREFIX).toBe('certq');
  });

  it('issues every order exactly once through the cluster and the pooler', async () => {
    const [tenant] = await direct.db
      .insert(tenants)
      .values({ name: 'scale-out', tokenHash: randomBytes(32).toString('hex') })
      .returning();
    const requests = Array.from({ length: 60 }, (_, i) => ({
      tenantId: tenant!.id,
      domains: [`s${i}.scale-out.example.com`],
    }));
    const { orders: created } = await insertOrders(direct.db, requests);
    const ids = created.map((o) => o.order.id);
    await enqueueOrders(
      queues,
      created.map((o) => o.order),
    );
    // The queues' keys really are spread over the cluster under one slot: every key carries the tag.
    const a = spawnWorker(env);
    const b = spawnWorker(env);
    try {
      await waitFor(
        async () => {
          const { rows } = await direct.pool.query(
            "select count(*)::int as n from orders where id = any($1) and status in ('issued', 'failed')",
            [ids],
          );
          return rows[0].n === ids.length ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 250, message: 'every order finished' },
      );
    } finally {
      a.kill('SIGTERM');
      b.kill('SIGTERM');
    }
    expect([await a.exited, await b.exited]).toEqual([0, 0]);
    const statuses = await direct.db
      .select({ status: orders.status, n: sql<number>`count(*)::int` })
      .from(orders)
      .where(inArray(orders.id, ids))
      .groupBy(orders.status);
    expect(statuses).toEqual([{ status: 'issued', n: ids.length }]);
    const transitions = await direct.db
      .select({ orderId: orderEvents.orderId, n: sql<number>`count(*)::int` })
      .from(orderEvents)
      .where(
        and(inArray(orderEvents.orderId, ids), sql`${orderEvents.fromStatus} <> ${orderEvents.toStatus}`),
      )
      .groupBy(orderEvents.orderId, orderEvents.fromStatus, orderEvents.toStatus);
    expect(transitions).toHaveLength(ids.length * 3);
    expect(transitions.every((t) => t.n === 1)).toBe(true);
    const stats = sim.stats();
    expect(stats.tooFrequent).toBe(0);
    for (const r of requests) expect(stats.appliesByDomains[r.domains.join(',')], r.domains[0]).toBe(1);
    // No key certq wrote lacks the hash tag (each master scanned).
    for (const port of cluster.ports) {
      const { Redis: Plain } = await import('ioredis');
      const node = new Plain(port, '127.0.0.1');
      const keys = await node.keys('*');
      node.disconnect();
      expect(keys.filter((k) => !k.startsWith(env.REDIS_PREFIX!))).toEqual([]);
    }
  }, 180_000);

  it('without DATABASE_PREPARED_STATEMENTS=false, named statements break under transaction pooling; with it they do not', async () => {
    const [tenant] = await direct.db
      .insert(tenants)
      .values({ name: 'prepared', tokenHash: randomBytes(32).toString('hex') })
      .returning();
    const { orders: created } = await insertOrders(direct.db, [
      { tenantId: tenant!.id, domains: ['p.example.com'] },
    ]);
    const id = created[0]!.order.id;
    const run = async (preparedStatements: boolean) => {
      const handle = createDb(bouncer.url, { max: 6, preparedStatements });
      try {
        const results = await Promise.allSettled(Array.from({ length: 60 }, () => findOrder(handle.db, id)));
        return results.filter((r) => r.status === 'rejected').length;
      } finally {
        await handle.close();
      }
    };
    expect(await run(false)).toBe(0);
    expect(await run(true)).toBeGreaterThan(0);
  });
});
