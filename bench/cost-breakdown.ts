import { randomBytes } from 'node:crypto';
import { startApi } from '@certq/api';
import { createDb, insertOrders, tenants } from '@certq/db';
import { startWorker } from '@certq/worker';
import { createQueues, enqueueOrders } from '@certq/workflow';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { type BenchEnvironment, benchConfig, NO_UPSTREAM } from './lib';
import { createPrivateRedisEnvironment, openWorkerComparison, waitForOrdersSettled } from './worker-runs';

/**
 * Where the cost of an order goes. Not part of `pnpm bench`: a tool for reading costs.
 * - `npx tsx bench/cost-breakdown.ts worker [orders]`: runs `orders` (default 1,000) through certq's
 *   worker and then through the minimal workflow;
 * - `npx tsx bench/cost-breakdown.ts api [requests]`: sends `requests` (default 2,000) `POST /v1/orders`
 *   one at a time to the API (in this process), with and without an Idempotency-Key;
 * each on a private Redis, printing per order: every SQL statement by its text, every Redis command the
 * process sent by name (BullMQ's scripts by their script name), and every command Redis executed (INFO
 * commandstats, which also counts each call made inside a Lua script).
 */
const MODE = process.argv[2] === 'api' ? 'api' : 'worker';
const ORDERS = Number(process.argv[3] ?? (MODE === 'api' ? 2000 : 1000));
const CONCURRENCY = 50;

const sql = new Map<string, number>();
const sent = new Map<string, number>();
const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const config = args[0] as string | { text: string };
  const text = typeof config === 'string' ? config : config.text;
  bump(sql, text.replace(/\s+/g, ' ').slice(0, 160));
  return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof originalQuery;

const originalSend = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (this: Redis, command, ...rest) {
  let name = command.name;
  if (name === 'evalsha' || name === 'eval') {
    const sha = String(command.args[0]);
    const scripts = (this as unknown as { scriptsSet: Record<string, { sha: string }> }).scriptsSet;
    const script = Object.entries(scripts).find(([, s]) => s.sha === sha)?.[0];
    name = `${name} ${script ?? (name === 'eval' ? 'inline' : sha.slice(0, 8))}`;
  }
  bump(sent, name);
  return originalSend.call(this, command, ...rest);
} as typeof originalSend;

async function commandstats(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const stats = new Map<string, number>();
  for (const m of info.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) stats.set(m[1]!, Number(m[2]));
  return stats;
}

function print(title: string, map: Map<string, number>, before = new Map<string, number>()) {
  const rows = [...map]
    .map(([k, v]) => [k, (v - (before.get(k) ?? 0)) / ORDERS] as const)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((s, [, v]) => s + v, 0);
  console.log(`\n## ${title}: ${total.toFixed(2)} per order`);
  for (const [k, v] of rows) console.log(`${v.toFixed(3).padStart(8)}  ${k}`);
}

if (MODE === 'api') {
  const env = await createPrivateRedisEnvironment();
  try {
    await breakDownApi(env);
  } finally {
    await env.cleanup();
  }
  process.exit(0);
}

async function breakDownApi(env: BenchEnvironment) {
  const adminToken = randomBytes(16).toString('hex');
  const api = await startApi({
    config: benchConfig(env, NO_UPSTREAM, {
      ADMIN_TOKEN: adminToken,
      RATE_LIMIT_PER_MINUTE: String(1_000_000_000),
    }),
    logger: false,
    host: '127.0.0.1',
    port: 0,
  });
  const redis = new Redis(env.redisUrl);
  try {
    const post = (token: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${api.url}/v1/orders`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    const tenant = (await (
      await fetch(`${api.url}/v1/tenants`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'bench' }),
      })
    ).json()) as { token: string };
    for (let i = 0; i < 100; i++) await post(tenant.token, { domains: [`warm${i}.bench.example.com`] });
    for (const idempotent of [false, true]) {
      sql.clear();
      sent.clear();
      const before = await commandstats(redis);
      for (let i = 0; i < ORDERS; i++) {
        const res = await post(
          tenant.token,
          { domains: [`${idempotent ? 'k' : 'p'}${i}.bench.example.com`] },
          idempotent ? { 'idempotency-key': `key-${i}` } : {},
        );
        if (res.status !== 202) throw new Error(`POST /v1/orders answered ${res.status}`);
      }
      const what = idempotent ? 'POST /v1/orders with an Idempotency-Key' : 'POST /v1/orders';
      print(`${what}: SQL statements`, sql);
      print(`${what}: Redis commands sent`, sent);
      print(`${what}: Redis commands executed`, await commandstats(redis), before);
    }
  } finally {
    redis.disconnect();
    await api.close();
  }
}

const { env, config, runMinimal, close } = await openWorkerComparison({ concurrency: CONCURRENCY });
const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
try {
  const db = createDb(env.databaseUrl);
  const [tenant] = await db.db.insert(tenants).values({ name: 'bench', tokenHash: 'bench' }).returning();
  const queues = createQueues(redis, env.prefix);
  const { orders } = await insertOrders(
    db.db,
    Array.from({ length: ORDERS }, (_, k) => ({
      tenantId: tenant!.id,
      domains: [`o${k}.bench.example.com`],
    })),
  );
  await enqueueOrders(
    queues,
    orders.map((o) => o.order),
  );
  sql.clear();
  sent.clear();
  const statsBefore = await commandstats(redis);
  const worker = await startWorker({ config, logger: pino({ level: 'silent' }) });
  const started = performance.now();
  await waitForOrdersSettled(db.pool, ORDERS, 100);
  console.log(`certq: ${ORDERS} orders in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const ourSql = new Map(sql);
  const ourSent = new Map(sent);
  const ourStats = await commandstats(redis);
  await worker.close();
  await queues.close();
  await db.close();
  print('certq: SQL statements', ourSql);
  print('certq: Redis commands sent', ourSent);
  print('certq: Redis commands executed (commandstats, scripts included)', ourStats, statsBefore);

  sql.clear();
  sent.clear();
  const minimalBefore = await commandstats(redis);
  await runMinimal({ orders: ORDERS });
  print('minimal: SQL statements', sql);
  print('minimal: Redis commands sent', sent);
  print('minimal: Redis commands executed', await commandstats(redis), minimalBefore);
} finally {
  redis.disconnect();
  await close();
}
process.exit(0);
