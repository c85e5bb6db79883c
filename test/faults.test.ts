import { randomBytes } from 'node:crypto';
import { type RunningApi, startApi } from '@certq/api';
import { type Config, loadConfig } from '@certq/core';
import { createDb, type DbHandle, migrate, orders } from '@certq/db';
import { createSimulator, type Simulator } from '@certq/simulator';
import {
  type FaultProxy,
  freePort,
  hostPort,
  type PrivatePostgres,
  type PrivateRedis,
  startFaultProxy,
  startPrivatePostgres,
  startPrivateRedis,
  waitFor,
} from '@certq/testing';
import { startWorker, type WorkerHandle } from '@certq/worker';
import { inArray } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Production faults, for real: a private Postgres and a private Redis (with AOF) that the test
 * stops, restarts and cuts off, each behind a fault proxy (as is the simulator), with the API and
 * the worker running through the proxies as they would across a network.
 */
let postgres: PrivatePostgres;
let redis: PrivateRedis;
let sim: Simulator;
let pgProxy: FaultProxy;
let redisProxy: FaultProxy;
let simProxy: FaultProxy;
let api: RunningApi;
let worker: WorkerHandle;
let db: DbHandle;
let config: Config;
let tenantToken: string;

beforeAll(async () => {
  [postgres, redis] = await Promise.all([startPrivatePostgres(), startPrivateRedis()]);
  const databaseUrl = postgres.url.replace(/\/postgres$/, '/certq');
  const admin = createDb(postgres.url, { max: 1 });
  await admin.pool.query('create database certq');
  await admin.close();
  await migrate(databaseUrl);
  sim = createSimulator({ issueSeconds: 1 });
  const simUrl = await sim.listen();
  [pgProxy, redisProxy, simProxy] = await Promise.all([
    startFaultProxy(hostPort(databaseUrl)),
    startFaultProxy(hostPort(redis.url)),
    startFaultProxy(hostPort(simUrl)),
  ]);
  const apiPort = await freePort();
  config = loadConfig(
    {
      // Callbacks on: httpsok (the simulator) announces issued applications to the API.
      PUBLIC_BASE_URL: `http://127.0.0.1:${apiPort}`,
      // Scaled from 15 min: how long a lost apply waits for its callback before applying again.
      APPLY_ADOPT_WAIT_MS: '60000',
      DATABASE_URL: pgProxy.url(databaseUrl),
      REDIS_URL: redisProxy.url(redis.url),
      REDIS_PREFIX: 'faults',
      HTTPSOK_BASE_URL: simProxy.url(simUrl),
      HTTPSOK_API_KEY: 'faults-operator-key',
      ADMIN_TOKEN: randomBytes(16).toString('hex'),
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      UPSTREAM_TIMEOUT_MS: '1500',
      // Retry delays capped at the upstream's floor, so recovery after a fault takes seconds, not minutes.
      VERIFY_MAX_DELAY_MS: '10000',
      UPSTREAM_MAX_RPS: '200',
      RATE_LIMIT_PER_MINUTE: '1000000',
      RECONCILE_INTERVAL_MS: '2000',
      LOG_LEVEL: 'silent',
      WORKER_METRICS_PORT: '0',
    },
    { requireSecrets: true },
  );
  db = createDb(databaseUrl, { max: 2 }); // direct, not through the proxy: the test's own view
  api = await startApi({ config, logger: false, host: '127.0.0.1', port: apiPort });
  worker = await startWorker({
    config,
    logger: pino({ level: process.env.CERTQ_TEST_LOG ?? 'silent' }),
    lockDurationMs: 5000,
    stalledIntervalMs: 1000,
    scheduleRenewalScan: false,
  });
  const tenant = await call('POST', '/v1/tenants', { name: 'faults' }, config.ADMIN_TOKEN);
  tenantToken = (tenant.body as { token: string }).token;
}, 120_000);

afterAll(async () => {
  // Nothing is held any more: whatever a fault left hanging is dropped before shutting down.
  for (const proxy of [pgProxy, redisProxy, simProxy]) proxy?.restore();
  const timed = async (what: string, p: Promise<unknown> | undefined) => {
    const started = Date.now();
    const slow = setTimeout(() => console.warn(`[faults] closing ${what} still running after 5 s`), 5000);
    await p?.catch(() => {});
    clearTimeout(slow);
    if (Date.now() - started > 5000) console.warn(`[faults] closing ${what} took ${Date.now() - started} ms`);
  };
  // The worker's close() used to hang here: a connection lost under BEGIN leaked its pool slot and
  // pool.end() waited for it forever (see packages/db/test/pool-faults.test.ts).
  await timed('worker', worker?.close());
  await timed('api', api?.close());
  await timed('db', db?.close());
  await timed('proxies', Promise.all([pgProxy?.close(), redisProxy?.close(), simProxy?.close()]));
  await timed('simulator', sim?.close());
  await timed('servers', Promise.all([postgres?.close(), redis?.close()]));
});

async function call(method: string, path: string, body?: unknown, token = tenantToken) {
  const response = await fetch(`${api.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

let counter = 0;
/** Domains of accepted orders, in order. */
const acceptedDomains: string[] = [];
const domain = () => `f${++counter}-${randomBytes(3).toString('hex')}.example.com`;

/**
 * A client that posts an order every `everyMs` until stopped, counting answers by status and timing
 * the 503 spell; every accepted order id is kept.
 */
function startClient(everyMs = 100) {
  const statuses: Record<number, number> = {};
  const accepted: string[] = [];
  let first503: number | undefined;
  let last503: number | undefined;
  let missingRetryAfter = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const name = domain();
        const res = await call('POST', '/v1/orders', { domains: [name] });
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status === 202) {
          accepted.push((res.body as { id: string }).id);
          acceptedDomains.push(name);
        }
        if (res.status === 503) {
          first503 ??= Date.now();
          last503 = Date.now();
          if (!res.headers.get('retry-after')) missingRetryAfter++;
        }
      } catch {
        statuses[0] = (statuses[0] ?? 0) + 1; // no answer at all (timeout)
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    statuses,
    accepted,
    get unavailableMs() {
      return first503 === undefined ? 0 : last503! - first503;
    },
    get missingRetryAfter() {
      return missingRetryAfter;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function allIssued(ids: string[], timeoutMs = 60_000) {
  return waitFor(
    async () => {
      const rows = await db.db
        .select({ id: orders.id, status: orders.status })
        .from(orders)
        .where(inArray(orders.id, ids));
      const failed = rows.filter((r) => r.status === 'failed');
      if (failed.length) throw new Error(`orders failed: ${failed.map((f) => f.id).join(', ')}`);
      return rows.length === ids.length && rows.every((r) => r.status === 'issued') ? rows : undefined;
    },
    { timeoutMs, intervalMs: 250, message: `${ids.length} orders issued` },
  );
}

/** Every domain posted since `from` applied exactly once; no poll inside the upstream's floor, ever. */
function expectEachAppliedOnce(from: number) {
  const stats = sim.stats();
  for (const name of acceptedDomains.slice(from)) expect(stats.appliesByDomains[name] ?? 0, name).toBe(1);
  expect(stats.tooFrequent).toBe(0);
}

describe('Postgres goes away and comes back', () => {
  it('API answers 503 + Retry-After (never 500), /readyz names postgres; the worker pauses and resumes; nothing fails or repeats', async () => {
    const from = acceptedDomains.length;
    const client = startClient();
    await waitFor(() => client.accepted.length >= 15, { message: 'orders before the outage' });

    // A network cut: every connection dropped, new ones refused, for 5 s.
    pgProxy.refuse();
    const outageStarted = Date.now();
    const ready = await fetch(`${api.url}/readyz`);
    expect(ready.status).toBe(503);
    const readyBody = (await ready.json()) as { error: { message: string; details: Record<string, string> } };
    expect(readyBody.error.message).toContain('postgres');
    expect(readyBody.error.details.redis).toBe('ok');
    await waitFor(() => worker.gate.down, { message: 'the worker notices the outage', timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, Math.max(0, 5000 - (Date.now() - outageStarted))));
    pgProxy.restore();
    await waitFor(() => !worker.gate.down, { message: 'the worker resumes by itself', timeoutMs: 15_000 });
    const resumedAfterMs = Date.now() - outageStarted - 5000;

    // A crash restart of the server itself.
    await waitFor(() => client.accepted.length >= 30, { message: 'orders after the cut' });
    postgres.restart('immediate');
    await new Promise((r) => setTimeout(r, 1500));
    await client.stop();

    expect(client.statuses[500] ?? 0).toBe(0);
    expect(client.statuses[0] ?? 0).toBe(0);
    expect(client.statuses[503] ?? 0).toBeGreaterThan(0);
    expect(client.missingRetryAfter).toBe(0);
    await allIssued(client.accepted);
    expectEachAppliedOnce(from);
    console.info(
      `[faults] postgres: ${client.accepted.length} orders accepted, answers ${JSON.stringify(client.statuses)}, ` +
        `503 spell ${client.unavailableMs} ms, worker resumed ${resumedAfterMs} ms after restore, gate closed ${worker.gate.outages}×`,
    );
  }, 120_000);
});

describe('Redis goes away and comes back', () => {
  it('the API keeps accepting orders (rows first), the worker reconnects; a restart with AOF loses nothing', async () => {
    const from = acceptedDomains.length;
    const client = startClient();
    await waitFor(() => client.accepted.length >= 5, { message: 'orders before the outage' });
    redisProxy.refuse();
    const before = client.accepted.length;
    await new Promise((r) => setTimeout(r, 3000));
    const duringOutage = client.accepted.length - before;
    redisProxy.restore();
    await waitFor(() => client.accepted.length >= before + duringOutage + 5, { message: 'orders after' });
    await redis.restart();
    await new Promise((r) => setTimeout(r, 1500));
    await client.stop();
    expect(duringOutage).toBeGreaterThan(5); // accepted while Redis was away
    expect(client.statuses[500] ?? 0).toBe(0);
    await allIssued(client.accepted);
    expectEachAppliedOnce(from);
    console.info(
      `[faults] redis: ${client.accepted.length} orders, ${duringOutage} accepted during the outage, answers ${JSON.stringify(client.statuses)}`,
    );
  });
});

describe('an upstream that hangs', () => {
  it('timeouts hold, the poll floor holds, every order is issued once when it answers again', async () => {
    const ids: string[] = [];
    const from = acceptedDomains.length;
    for (let i = 0; i < 10; i++) {
      const name = domain();
      const res = await call('POST', '/v1/orders', { domains: [name] });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
      acceptedDomains.push(name);
    }
    simProxy.hang();
    const heapBefore = process.memoryUsage().heapUsed;
    // Timeouts hold: requests give up, so held connections do not pile up over the hang.
    await new Promise((r) => setTimeout(r, 3000));
    const heldAt3s = simProxy.openConnections;
    await new Promise((r) => setTimeout(r, 3000));
    const heldDuringHang = simProxy.openConnections;
    expect(heldDuringHang).toBeLessThanOrEqual(heldAt3s + 10);
    simProxy.restore();
    simProxy.cut(); // whatever was held is dropped, as a hung peer's connections eventually are
    const hangEnded = Date.now();
    await allIssued(ids, 90_000);
    expectEachAppliedOnce(from);
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
    console.info(
      `[faults] hang: 10 orders issued in ${Date.now() - hangEnded} ms after the hang, ${heldAt3s} connections held after 3 s of hang, ${heldDuringHang} after 6 s, heap +${heapGrowthMb.toFixed(1)} MB`,
    );
    expect(heapGrowthMb).toBeLessThan(100);
  }, 150_000);
});
