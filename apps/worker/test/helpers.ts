import { randomBytes } from 'node:crypto';
import { type Clock, type Config, loadConfig } from '@certq/core';
import {
  createDb,
  type DbHandle,
  insertOrders,
  type Order,
  type OrderRequest,
  orderEvents,
  orders,
  tenants,
} from '@certq/db';
import type { DnsResolver } from '@certq/dns';
import { createSimulator, type Simulator, type SimulatorInit } from '@certq/simulator';
import {
  test as baseTest,
  certqSettings,
  createTestDatabase,
  createTestRedis,
  type TestDatabase,
  type TestRedis,
  waitFor,
} from '@certq/testing';
import { createQueues, enqueueOrders, type Queues } from '@certq/workflow';
import { and, count, eq, inArray, sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { expect, inject } from 'vitest';
import { startWorker, type WorkerHandle } from '../src';

type OrderExtra = Partial<Pick<OrderRequest, 'algorithm' | 'ca' | 'caChoices'>>;

/** A clock tests can move forward; starts at real time and follows it. */
export function movableClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    advance: (ms) => {
      offset += ms;
    },
  };
}

export interface Workbench {
  database: TestDatabase;
  redis: TestRedis;
  sim: Simulator;
  simUrl: string;
  config: Config;
  env: Record<string, string>;
  db: DbHandle;
  queues: Queues;
  redisClient: Redis;
  tenantId: string;
  clock: ReturnType<typeof movableClock>;
  worker?: WorkerHandle;
  startWorker(overrides?: { lockDurationMs?: number; dns?: DnsResolver }): Promise<WorkerHandle>;
  order(domains: string[], extra?: OrderExtra): Promise<Order>;
  orders(list: string[][], extra?: OrderExtra): Promise<Order[]>;
  reload(id: string): Promise<Order>;
  /** How many of the bench's orders are in `status` now. */
  countIn(status: Order['status']): Promise<number>;
  waitForStatus(ids: string[], statuses: Order['status'][], timeoutMs?: number): Promise<Order[]>;
  close(): Promise<void>;
}

/** Real Postgres (own database), real Redis (own prefix), the simulator over HTTP, and the worker. */
export interface WorkbenchOptions {
  sim?: SimulatorInit;
  env?: Record<string, string>;
}

export async function createWorkbench(options: WorkbenchOptions = {}): Promise<Workbench> {
  const database = await createTestDatabase();
  const redis = createTestRedis();
  const sim = createSimulator({ issueSeconds: 0, ...options.sim });
  const simUrl = await sim.listen();
  const places = {
    databaseUrl: database.url,
    redisUrl: redis.url,
    redisPrefix: redis.prefix,
    httpsokUrl: simUrl,
  };
  const env = certqSettings(places, {
    UPSTREAM_MAX_RPS: '500',
    WORKER_CONCURRENCY: '20',
    WORKER_METRICS_PORT: '0',
    // certq's own DNS checks go to the test setup's private named, never the machine's resolver.
    DNS_RESOLVERS: inject('certq').dnsResolvers,
    ...options.env,
  });
  const config = loadConfig(env, { requireSecrets: true });
  const db = createDb(database.url);
  const redisClient = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queues = createQueues(redisClient, redis.prefix);
  const [tenant] = await db.db
    .insert(tenants)
    .values({ name: `tenant-${randomBytes(4).toString('hex')}`, tokenHash: randomBytes(32).toString('hex') })
    .returning();
  const clock = movableClock();
  const bench: Workbench = {
    database,
    redis,
    sim,
    simUrl,
    config,
    env,
    db,
    queues,
    redisClient,
    tenantId: tenant!.id,
    clock,
    async startWorker(overrides = {}) {
      bench.worker = await startWorker({
        config,
        clock,
        logger: pino({ level: process.env.CERTQ_TEST_LOG ?? 'silent' }),
        lockDurationMs: overrides.lockDurationMs ?? 5000,
        stalledIntervalMs: 1000,
        dns: overrides.dns,
      });
      return bench.worker;
    },
    async order(domains, extra = {}) {
      return (await bench.orders([domains], extra))[0]!;
    },
    async orders(list, extra = {}) {
      const { orders: created } = await insertOrders(
        db.db,
        list.map((domains) => ({ tenantId: tenant!.id, domains, ...extra })),
      );
      const rows = created.map((c) => c.order);
      await enqueueOrders(queues, rows);
      return rows;
    },
    async countIn(status) {
      const [row] = await db.db.select({ n: count() }).from(orders).where(eq(orders.status, status));
      return row!.n;
    },
    async reload(id) {
      const [row] = await db.db.select().from(orders).where(eq(orders.id, id));
      return row!;
    },
    async waitForStatus(ids, statuses, timeoutMs = 60_000) {
      const summary = async () => {
        const rows = await db.db.select().from(orders).where(inArray(orders.id, ids));
        const counts: Record<string, number> = {};
        for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1;
        const stuck = rows.filter((r) => !statuses.includes(r.status)).slice(0, 3);
        return JSON.stringify({
          counts,
          stuck: stuck.map((r) => ({
            id: r.id,
            status: r.status,
            lastError: r.lastError,
            next: r.nextAttemptAt,
            polled: r.lastPolledAt,
            stageAttempts: r.stageAttempts,
          })),
        });
      };
      return waitFor(
        async () => {
          const rows = await db.db.select().from(orders).where(inArray(orders.id, ids));
          return rows.length === ids.length && rows.every((r) => statuses.includes(r.status))
            ? rows
            : undefined;
        },
        { timeoutMs, intervalMs: 100, message: `${ids.length} orders to reach ${statuses.join('/')}` },
      ).catch(async (error) => {
        throw new Error(`${(error as Error).message}: ${await summary()}`);
      });
    },
    async close() {
      await bench.worker?.close();
      await queues.close();
      redisClient.disconnect();
      await db.close();
      await sim.close();
      await redis.flush();
      await database.drop();
    },
  };
  return bench;
}

/** One single-domain order per name: o0.<tag>.example.com, o1.… */
export const names = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => [`o${i}.${tag}.example.com`]);

/**
 * One application per order, plus at most one for each apply whose outcome a crash made unknowable.
 * Returns how many duplicate applications there were in all.
 */
export async function appliesAccountedFor(b: Workbench, ids: string[]) {
  const unknown = await b.db.db
    .select({ orderId: orderEvents.orderId, n: sql<number>`count(*)::int` })
    .from(orderEvents)
    .where(and(inArray(orderEvents.orderId, ids), eq(orderEvents.type, 'apply_outcome_unknown')))
    .groupBy(orderEvents.orderId);
  const repeats = new Map(unknown.map((u) => [u.orderId, u.n]));
  const rows = await b.db.db.select().from(orders).where(inArray(orders.id, ids));
  const stats = b.sim.stats();
  let duplicates = 0;
  for (const row of rows) {
    const applies = stats.appliesByDomains[row.domains.join(',')] ?? 0;
    expect(applies, row.domains.join(',')).toBeGreaterThanOrEqual(1);
    expect(applies, row.domains.join(',')).toBeLessThanOrEqual(1 + (repeats.get(row.id) ?? 0));
    duplicates += applies - 1;
  }
  return duplicates;
}

/**
 * The worker tests' fixtures: `workbench(options)` builds a workbench (its own database, Redis prefix
 * and simulator) and closes it, with its worker, when the test ends, passed or failed.
 */
// biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern
export const test = baseTest.extend('workbench', async ({}, { onCleanup }) => {
  const made: Workbench[] = [];
  onCleanup(async () => {
    for (const bench of made.reverse()) await bench.close();
  });
  return async (options: WorkbenchOptions = {}) => {
    const bench = await createWorkbench(options);
    made.push(bench);
    return bench;
  };
});
export const it = test;

/** What every fault test ends with: each order issued, none applied twice, no application polled early. */
export async function expectIssuedOnce(bench: Workbench, ids: string[], timeoutMs = 60_000) {
  const done = await bench.waitForStatus(ids, ['issued', 'failed'], timeoutMs);
  expect(done.every((o) => o.status === 'issued')).toBe(true);
  expect(bench.sim.stats().tooFrequent).toBe(0);
  expect(await appliesAccountedFor(bench, ids)).toBe(0);
}
