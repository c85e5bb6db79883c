import { randomBytes } from 'node:crypto';
import { startApi } from '@certq/api';
import { loadConfig } from '@certq/core';
import { createDb, tenants } from '@certq/db';
import { createSimulator } from '@certq/simulator';
import { certqSettings } from '@certq/testing/standalone';
import { startWorker } from '@certq/worker';
import { createOrders, createQueues } from '@certq/workflow';
import { inArray, sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { type BenchRow, benchPlaces, createBenchEnvironment, percentile } from './lib';

const ORDERS = Number(process.env.BENCH_CALLBACK_ORDERS ?? 40);
/** Orders placed per second: spread out, as callbacks arrive in production, not one burst. */
const RATE = 4;

/**
 * Latency from httpsok's issued callback to the order being issued in Postgres. The API only brings
 * the poll forward; a worker then polls the application (the 10 s floor holds: issuance takes 12 s, so
 * the last poll was long enough ago) and stores the certificate. Scheduled polls are a minute apart,
 * so an order issued within seconds of its callback was completed by it.
 */
export async function run(): Promise<BenchRow[]> {
  const env = await createBenchEnvironment();
  const sim = createSimulator({ issueSeconds: 12 });
  const simUrl = await sim.listen();
  const completedAt = new Map<string, number>();
  sim.events.on('completed', ({ id }) => completedAt.set(String(id), Date.now()));
  const base = certqSettings(benchPlaces(env, simUrl), { HTTPSOK_API_KEY: 'bench' });
  const api = await startApi({
    config: loadConfig(base, { requireSecrets: true }),
    logger: false,
    port: 0,
    host: '127.0.0.1',
  });
  const worker = await startWorker({
    config: loadConfig(
      { ...base, PUBLIC_BASE_URL: api.url, POLL_INTERVAL_MS: '60000' },
      { requireSecrets: true },
    ),
    logger: pino({ level: 'silent' }),
  });
  const db = createDb(env.databaseUrl);
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const queues = createQueues(redis, env.prefix);
  try {
    const [tenant] = await db.db.insert(tenants).values({ name: 'bench', tokenHash: 'bench' }).returning();
    const ids: string[] = [];
    for (let i = 0; i < ORDERS; i++) {
      const [created] = await createOrders({ db: db.db, queues }, [
        { tenantId: tenant!.id, domains: [`cb${i}.${randomBytes(3).toString('hex')}.example.com`] },
      ]);
      ids.push(created!.order.id);
      await new Promise((r) => setTimeout(r, 1000 / RATE));
    }
    const deadline = Date.now() + 120_000;
    let issued: { applyId: string | null; at: Date }[] = [];
    while (Date.now() < deadline) {
      issued = await db.db
        .execute<{ applyId: string | null; at: Date }>(sql`
        select o.apply_id as "applyId", e.at from orders o
        join order_events e on e.order_id = o.id and e.to_status = 'issued' and e.from_status = 'issuing'
        where ${inArray(sql`o.id`, ids)}`)
        .then((r) => r.rows);
      if (issued.length === ORDERS) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const latencies = issued
      .map((o) => new Date(o.at).getTime() - (completedAt.get(String(o.applyId)) ?? Number.NaN))
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    const stats = sim.stats();
    const median = percentile(latencies, 50);
    return [
      {
        suite: 'callbacks',
        metric: `orders issued by callback (of ${ORDERS})`,
        value: latencies.length,
        unit: 'orders',
        goal: `= ${ORDERS}`,
        met: latencies.length === ORDERS,
      },
      {
        suite: 'callbacks',
        metric: 'callback → issued, median',
        value: median,
        unit: 'ms',
        goal: '< 1000',
        met: median < 1000,
      },
      { suite: 'callbacks', metric: 'callback → issued, p95', value: percentile(latencies, 95), unit: 'ms' },
      {
        suite: 'callbacks',
        metric: 'polls per order (floor held: early polls 0)',
        value: stats.get / ORDERS,
        unit: 'GET',
        goal: 'tooFrequent 0',
        met: stats.tooFrequent === 0,
      },
    ];
  } finally {
    await worker.close();
    await api.close();
    await queues.close();
    redis.disconnect();
    await db.close();
    await sim.close();
    await env.cleanup();
  }
}
