import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { generateToken, hashToken } from '@certq/core';
import { createDb, type DbHandle, orders } from '@certq/db';
import { freePort } from '@certq/testing';
import { eq } from 'drizzle-orm';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect } from 'vitest';
import { insertCertificate, it, startTestApi, type TestApi, uniqueDomain } from './helpers';

describe('health', () => {
  it('answers /healthz and /readyz without a token', async ({ api }) => {
    expect((await api.request('GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await api.request('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
  });

  describe('with Redis unreachable', () => {
    let down: TestApi;
    let deadRedis: Redis;
    it.beforeAll(async ({ env }) => {
      const deadUrl = `redis://127.0.0.1:${await freePort()}`;
      deadRedis = new Redis(deadUrl, {
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        retryStrategy: () => 1000,
      });
      down = await startTestApi(env, { redis: deadRedis, queueRedisUrl: deadUrl, enqueueTimeoutMs: 200 });
    });
    it.afterAll(async () => {
      await down?.close();
      deadRedis?.disconnect();
    });

    it('/readyz answers 503 naming Redis', async () => {
      const res = await down.request('GET', '/readyz');
      expect(res.status).toBe(503);
      expect(res.body.error).toMatchObject({
        code: 'unavailable',
        message: expect.stringContaining('redis'),
        details: { postgres: 'ok', redis: expect.not.stringMatching(/^ok$/) },
      });
    });

    it('/metrics still answers 200: the queue gauge left out of the scrape and counted', async () => {
      const first = await down.request('GET', '/metrics', { token: down.config.ADMIN_TOKEN });
      expect(first.status).toBe(200);
      // The failure is counted as it happens, so the next scrape shows it.
      const res = await down.request('GET', '/metrics', { token: down.config.ADMIN_TOKEN });
      expect(res.status).toBe(200);
      expect(res.text).toMatch(/certq_metrics_collect_failures_total\{metric="certq_queue_jobs"\} [1-9]/);
      expect(res.text).toContain('certq_orders{status="verifying"}');
      expect(res.text).not.toContain('certq_queue_jobs{');
    });

    it('still accepts orders (202, stored in Postgres) for the reconciler to enqueue', async ({
      api,
      env,
    }) => {
      const tenant = await api.createTenant();
      const res = await down.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain()] });
      expect(res.status).toBe(202);
      const [row] = await env.handle.db.select().from(orders).where(eq(orders.id, res.body.id));
      expect(row!.status).toBe('verifying');
    });
  });

  describe('with Postgres unreachable', () => {
    let down: TestApi;
    let deadDb: DbHandle;
    it.beforeAll(async ({ env }) => {
      deadDb = createDb(`postgres://postgres@127.0.0.1:${await freePort()}/nothing`);
      down = await startTestApi(env, { db: deadDb.db });
    });
    it.afterAll(async () => {
      await down?.close();
      await deadDb?.close();
    });

    it('answers 503 unavailable, not 500, and /readyz names Postgres', async () => {
      const ready = await down.request('GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.error.details).toMatchObject({
        redis: 'ok',
        postgres: expect.not.stringMatching(/^ok$/),
      });
      const list = await down.adminRequest('GET', '/v1/orders');
      expect(list.status).toBe(503);
      expect(list.body.error.code).toBe('unavailable');
      expect(list.headers.get('retry-after')).toBe('5');
      // A tenant token cannot be checked without Postgres: 503 too, never a false 401.
      const tenant = await down.request('GET', '/v1/orders', { token: 'cq_whatever' });
      expect(tenant.status).toBe(503);
    });
  });
});

describe('OpenAPI', () => {
  const SPEC_ROUTES: [string, string][] = [
    ['post', '/v1/tenants'],
    ['get', '/v1/tenants'],
    ['post', '/v1/orders'],
    ['post', '/v1/orders/bulk'],
    ['get', '/v1/orders/{id}'],
    ['get', '/v1/orders'],
    ['post', '/v1/orders/{id}/retry'],
    ['delete', '/v1/orders/{id}'],
    ['get', '/v1/certificates'],
    ['get', '/v1/certificates/{id}'],
    ['get', '/v1/certificates/{id}/private-key'],
    ['post', '/v1/callbacks/httpsok/{secret}'],
    ['get', '/healthz'],
    ['get', '/readyz'],
    // POST /v1/renewals, GET /metrics and /admin/queues belong to other plugins.
  ];

  it('serves an OpenAPI 3 document with every route of the contract, documented', async ({ api }) => {
    const res = await api.request('GET', '/docs/json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBeTruthy();
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    for (const [method, path] of SPEC_ROUTES) {
      const operation = doc.paths[path]?.[method];
      expect(operation, `${method} ${path}`).toBeDefined();
      expect(operation.summary, `${method} ${path}`).toBeTruthy();
      const statuses = Object.keys(operation.responses);
      expect(
        statuses.some((s) => s.startsWith('2')),
        `${method} ${path}`,
      ).toBe(true);
      for (const status of statuses) expect(operation.responses[status].description).toBeTruthy();
    }
    // Public routes say so; the rest inherit the bearer requirement.
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/v1/callbacks/httpsok/{secret}'].post.security).toEqual([]);
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    // Every reference resolves.
    const refs = [...res.text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(doc.components.schemas[ref], ref).toBeDefined();
    expect(doc.paths['/v1/orders'].post.description).toMatch(/200/);
  });

  it('serves the UI at /docs with a CSP that lets it load', async ({ api }) => {
    const page = await api.request('GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
    const bundle = await api.request('GET', '/docs/static/swagger-ui-bundle.js');
    expect(bundle.status).toBe(200);
  });
});

describe('HTTP hygiene', () => {
  it('sets security headers and a request id', async ({ api }) => {
    const res = await api.request('GET', '/healthz');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
    // Computed once, set on every answer, a route-less 404 included.
    const missing = await api.request('GET', '/no/such/route');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    const unauthorized = await api.request('GET', '/v1/orders');
    expect(unauthorized.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('answers deeply nested JSON with a 400', async ({ api }) => {
    const depth = 200_000;
    const nested = await api.request('POST', '/v1/orders', {
      token: api.config.ADMIN_TOKEN,
      raw: `{"domains":${'['.repeat(depth)}${']'.repeat(depth)}}`,
    });
    expect(nested.status).toBe(400);
    const nestedObject = await api.request('POST', '/v1/orders/bulk', {
      token: api.config.ADMIN_TOKEN,
      raw: `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
    });
    expect(nestedObject.status).toBe(400);
  });

  it('answers a malformed URL with 400 and the error shape', async ({ api }) => {
    const res = await api.adminRequest('GET', '/v1/orders/%E0%A4%A');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'bad_request', message: 'malformed request URL' } });
  });

  describe('rate limit', () => {
    let limited: TestApi;
    it.beforeAll(async ({ env }) => {
      limited = await startTestApi(env, { env: { RATE_LIMIT_PER_MINUTE: '3' } });
    });
    it.afterAll(async () => {
      await limited?.close();
    });

    it('answers 429 with the error shape per token, leaving other tokens and health alone', async ({
      api,
    }) => {
      const [t1, t2] = [await api.createTenant(), await api.createTenant()];
      for (let i = 0; i < 3; i++)
        expect((await limited.tenantRequest(t1.token, 'GET', '/v1/orders')).status).toBe(200);
      const res = await limited.tenantRequest(t1.token, 'GET', '/v1/orders');
      expect(res.status).toBe(429);
      expect(res.body.error).toMatchObject({ code: 'rate_limited', details: { limitPerMinute: 3 } });
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await limited.tenantRequest(t2.token, 'GET', '/v1/orders')).status).toBe(200);
      for (let i = 0; i < 5; i++) expect((await limited.request('GET', '/healthz')).status).toBe(200);
      // Counted in Redis under the configured prefix, so every replica shares the budget.
      const keys = await limited.redis.keys(`${limited.config.REDIS_PREFIX}:ratelimit:*`);
      expect(keys).toContain(`${limited.config.REDIS_PREFIX}:ratelimit:tenant:${t1.id}`);
    });
  });
});

describe('POST /v1/callbacks/httpsok/{secret}', () => {
  it('answers 404 for unknown or malformed secrets, without a token', async ({ api }) => {
    for (const secret of [generateToken('cb'), 'short', 'x'.repeat(200)]) {
      const res = await api.request('POST', `/v1/callbacks/httpsok/${secret}`, {
        body: { id: 1, status: 1 },
      });
      expect(res.status, secret).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
  });

  it("accepts a known secret's callback with 200 {ok: true}", async ({ api, env }) => {
    const tenant = await api.createTenant();
    const created = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', {
      domains: [uniqueDomain()],
    });
    const secret = generateToken('cb');
    await env.handle.db
      .update(orders)
      .set({ callbackSecretHash: hashToken(secret) })
      .where(eq(orders.id, created.body.id));
    const res = await api.request('POST', `/v1/callbacks/httpsok/${secret}`, { body: { id: 1, status: 1 } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
  });

  it('refuses bodies over 256 KiB with 413 and non-JSON with 415', async ({ api }) => {
    const secret = generateToken('cb');
    const big = await api.request('POST', `/v1/callbacks/httpsok/${secret}`, {
      raw: JSON.stringify({ certificate: 'x'.repeat(300 * 1024) }),
    });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('payload_too_large');
    const text = await api.request('POST', `/v1/callbacks/httpsok/${secret}`, {
      raw: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
  });
});

describe('logging', () => {
  it('never logs tokens, API keys, private keys or callback secrets', async ({ env }) => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logged = await startTestApi(env, { logger: pino({ level: 'trace' }, sink) });
    try {
      const apiKey = `httpsok-${randomBytes(8).toString('hex')}`;
      const tenantRes = await logged.adminRequest('POST', '/v1/tenants', {
        name: `logged-${randomBytes(4).toString('hex')}`,
        httpsokApiKey: apiKey,
      });
      const tenant = tenantRes.body as { id: string; token: string };
      const cert = await insertCertificate(logged, tenant);
      const privateKey = cert.privateKey;
      const key = await logged.tenantRequest(tenant.token, 'GET', `/v1/certificates/${cert.id}/private-key`);
      expect(key.body.privateKey).toBe(privateKey);
      const secret = generateToken('cb');
      await logged.request('POST', `/v1/callbacks/httpsok/${secret}`, { body: {} });
      await logged.request('GET', '/v1/orders', { token: `${tenant.token}x` });
      await logged.app.close();

      const output = lines.join('');
      expect(output).toContain('request completed');
      expect(output).toContain('/v1/callbacks/httpsok/[redacted]');
      for (const secretValue of [
        tenant.token,
        logged.config.ADMIN_TOKEN!,
        apiKey,
        privateKey.split('\n')[1]!,
        secret,
      ])
        expect(output).not.toContain(secretValue);
    } finally {
      await logged.close();
    }
  });
});
