import { randomBytes } from 'node:crypto';
import {
  type Config,
  createSecretBox,
  domainSetKey,
  loadConfig,
  parseEncryptionKey,
  type ResolveAll,
  type SecretBox,
} from '@certq/core';
import { certificates, createDb, type Database, type DbHandle, orders } from '@certq/db';
import {
  test as baseTest,
  createTestDatabase,
  createTestRedis,
  type HttpResult,
  type RequestOptions,
  requestJson,
  type TestDatabase,
  type TestRedis,
} from '@certq/testing';
import { createQueues, type Queues } from '@certq/workflow';
import { count } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { inject } from 'vitest';
import { buildApp } from '../src';

/** One test file's private Postgres database and Redis prefix. */
export interface TestEnv {
  database: TestDatabase;
  testRedis: TestRedis;
  handle: DbHandle;
  close(): Promise<void>;
}

export async function createTestEnv(): Promise<TestEnv> {
  const database = await createTestDatabase();
  const testRedis = createTestRedis();
  const handle = createDb(database.url, { max: 10 });
  return {
    database,
    testRedis,
    handle,
    async close() {
      await handle.close();
      await database.drop();
      await testRedis.flush();
    },
  };
}

export type { HttpResult, RequestOptions };

export interface TestApi {
  url: string;
  app: FastifyInstance;
  env: TestEnv;
  config: Config;
  queues: Queues;
  secrets: SecretBox;
  redis: Redis;
  request(method: string, path: string, options?: RequestOptions): Promise<HttpResult>;
  adminRequest(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<HttpResult>;
  tenantRequest(
    token: string,
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<HttpResult>;
  createTenant(name?: string, httpsokApiKey?: string): Promise<{ id: string; name: string; token: string }>;
  countOrders(): Promise<number>;
  /** Jobs in any state across the stage queues. */
  countJobs(): Promise<number>;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Environment overrides (strings, as in process.env), e.g. `{ RATE_LIMIT_PER_MINUTE: '3' }`. */
  env?: Record<string, string>;
  /** A Redis for rate limiting and readiness (default: the test Redis). */
  redis?: Redis;
  /** A Redis URL for the queues (default: the test Redis). */
  queueRedisUrl?: string;
  enqueueTimeoutMs?: number;
  /** Default: no logging. */
  logger?: Logger;
  /** Default: the env's database. */
  db?: Database;
  /** Merged into the loaded configuration (settings the schema may not know yet, e.g. VIEWER_TOKEN). */
  extraConfig?: Record<string, unknown>;
  /** How webhook host names resolve (default: names under example.com/.test resolve to a public address). */
  resolveAll?: ResolveAll;
}

/**
 * No test may reach real DNS: webhook hosts resolve through this. Names under example.com (and .test)
 * get a public address nothing ever connects to (the API only checks; the worker delivers).
 */
export const testResolveAll: ResolveAll = async (host) => {
  if (/(^|\.)example\.com$|\.test$/.test(host)) return [{ address: '93.184.215.14', family: 4 }];
  throw Object.assign(new Error(`${host} does not resolve in tests`), { code: 'ENOTFOUND' });
};

let tenantCounter = 0;

/** Boots the API on a random port over the env's database and Redis prefix, with fresh secrets. */
export async function startTestApi(env: TestEnv, options: StartOptions = {}): Promise<TestApi> {
  const config = loadConfig({
    DATABASE_URL: env.database.url,
    REDIS_URL: env.testRedis.url,
    REDIS_PREFIX: env.testRedis.prefix,
    ADMIN_TOKEN: `admin-${randomBytes(16).toString('hex')}`,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    HTTPSOK_BASE_URL: 'http://127.0.0.1:9',
    LOG_LEVEL: 'silent',
    RATE_LIMIT_PER_MINUTE: '1000000',
    DNS_RESOLVERS: inject('certq').dnsResolvers,
    ...options.env,
  });
  Object.assign(config, options.extraConfig);
  const secrets = createSecretBox(parseEncryptionKey(config.ENCRYPTION_KEY!));
  const ownRedis = options.redis === undefined;
  const redis =
    options.redis ??
    new Redis(env.testRedis.url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: 1000,
    });
  redis.on('error', () => {});
  const queueRedis = new Redis(options.queueRedisUrl ?? env.testRedis.url, {
    maxRetriesPerRequest: null,
    enableOfflineQueue: false,
  });
  queueRedis.on('error', () => {});
  const queues = createQueues(queueRedis, env.testRedis.prefix);
  if (ownRedis) await new Promise((resolve) => redis.once('ready', resolve));
  const app = await buildApp({
    db: options.db ?? env.handle.db,
    redis,
    queues,
    secrets,
    config,
    logger: options.logger ?? false,
    enqueueTimeoutMs: options.enqueueTimeoutMs,
    resolveAll: options.resolveAll ?? testResolveAll,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });

  const request = (method: string, path: string, opts: RequestOptions = {}) =>
    requestJson(method, `${url}${path}`, opts);

  const api: TestApi = {
    url,
    app,
    env,
    config,
    queues,
    secrets,
    redis,
    request,
    adminRequest: (method, path, body, headers) =>
      request(method, path, { token: config.ADMIN_TOKEN, body, headers }),
    tenantRequest: (token, method, path, body, headers) => request(method, path, { token, body, headers }),
    async createTenant(
      name = `tenant-${process.pid}-${++tenantCounter}-${randomBytes(3).toString('hex')}`,
      key,
    ) {
      const res = await api.adminRequest('POST', '/v1/tenants', { name, httpsokApiKey: key });
      if (res.status !== 201) throw new Error(`creating a tenant answered ${res.status}: ${res.text}`);
      return res.body;
    },
    async countOrders() {
      const [row] = await env.handle.db.select({ n: count() }).from(orders);
      return row!.n;
    },
    async countJobs() {
      let total = 0;
      for (const queue of queues.all()) {
        const counts = await queue.getJobCounts();
        total += Object.values(counts).reduce((a, b) => a + b, 0);
      }
      return total;
    },
    async close() {
      await app.close();
      await queues.close();
      if (ownRedis) redis.disconnect();
      queueRedis.disconnect();
    },
  };
  return api;
}

/** A unique, valid domain for this test run. */
let domainCounter = 0;
export function uniqueDomain(label = 'd'): string {
  return `${label}${++domainCounter}-${randomBytes(4).toString('hex')}.example.com`;
}

/** Requests as one tenant: `(method, path, body?, headers?)`. */
function asTenant(api: TestApi, tenant: { token: string }) {
  return (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    api.tenantRequest(tenant.token, method, path, body, headers);
}

/** What the file's API is started with: options, or a function of the file's env (to use its database). */
export type ApiFixtureOptions = StartOptions | ((env: TestEnv) => StartOptions | Promise<StartOptions>);

/**
 * The API tests' fixtures, once per file: `env` (the file's database, Redis prefix and pool) and `api`
 * (the API on a random port over them); `tenant` is a fresh tenant for each test that asks. A file that
 * needs settings calls `apiTest({ env: { … } })`; `test` is `apiTest()`.
 */
export function apiTest(options: ApiFixtureOptions = {}) {
  return (
    baseTest
      .extend(
        'env',
        { scope: 'file' },
        async ({ database, testRedis, db }): Promise<TestEnv> => ({
          database,
          testRedis,
          handle: db,
          // The fixtures drop what they made; a test never closes the file's env itself.
          close: async () => {},
        }),
      )
      .extend('api', { scope: 'file' }, async ({ env }, { onCleanup }) => {
        const api = await startTestApi(env, typeof options === 'function' ? await options(env) : options);
        onCleanup(() => api.close());
        return api;
      })
      .extend('tenant', async ({ api }) => api.createTenant())
      // Two tenants shared by the file's tests (isolation tests need a second one), and requests as each.
      .extend('tenantA', { scope: 'file' }, async ({ api }) => api.createTenant())
      .extend('tenantB', { scope: 'file' }, async ({ api }) => api.createTenant())
      .extend('asA', { scope: 'file' }, async ({ api, tenantA }) => asTenant(api, tenantA))
      .extend('asB', { scope: 'file' }, async ({ api, tenantB }) => asTenant(api, tenantB))
  );
}
export const test = apiTest();
export const it = test;

const DAY_MS = 24 * 3600 * 1000;
export const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

/** A certificate row as the worker would store it, for an order created through the API. */
export async function insertCertificate(
  api: TestApi,
  tenant: { id: string; token: string },
  options: {
    domains?: string[];
    notAfterDays?: number;
    isCurrent?: boolean;
    /** Cancel the order through the API first (default), freeing its domain set; an audited action. */
    cancelOrder?: boolean;
    /**
     * Write a cancelled order row directly instead of ordering through the API, so no domain claim is
     * made: data as it stood before ownership existed (two tenants with the same name).
     */
    unclaimed?: boolean;
  } = {},
) {
  const domains = options.domains ?? [uniqueDomain('cert')];
  const order = options.unclaimed
    ? {
        body: (
          await api.env.handle.db
            .insert(orders)
            .values({ tenantId: tenant.id, domains, domainsKey: domainSetKey(domains), status: 'cancelled' })
            .returning({ id: orders.id })
        )[0]!,
      }
    : await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains });
  if ((options.cancelOrder ?? true) && !options.unclaimed)
    await api.tenantRequest(tenant.token, 'DELETE', `/v1/orders/${order.body.id}`);
  const privateKey = `-----BEGIN EC PRIVATE KEY-----\n${randomBytes(24).toString('base64')}\n-----END EC PRIVATE KEY-----\n`;
  const now = Date.now();
  const [row] = await api.env.handle.db
    .insert(certificates)
    .values({
      tenantId: tenant.id,
      orderId: order.body.id,
      domains,
      domainsKey: domainSetKey(domains),
      applyId: `apply-${order.body.id}`,
      algorithm: 'ECC',
      ca: 'google',
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + (options.notAfterDays ?? 89) * DAY_MS),
      fingerprint: randomBytes(32).toString('hex'),
      certificatePem: PEM + PEM,
      privateKeySealed: api.secrets.seal(privateKey),
      isCurrent: options.isCurrent ?? true,
    })
    .returning();
  return { ...row!, privateKey };
}
