import { randomBytes, randomUUID } from 'node:crypto';
import { domainSetKey, PRIORITY } from '@certq/core';
import { certificates, orders } from '@certq/db';
import { createSimulator, type Simulator } from '@certq/simulator';
import { startWorker, type WorkerHandle } from '@certq/worker';
import { and, eq, inArray } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, startTestApi, type TestApi, type TestEnv } from '../apps/api/test/helpers';

const DAY = 86_400_000;

let env: TestEnv;
let api: TestApi;
let sim: Simulator;
let worker: WorkerHandle | undefined;
type Tenant = { id: string; token: string };
let a: Tenant;
let b: Tenant;
let c: Tenant;
const tag = randomBytes(3).toString('hex');

beforeAll(async () => {
  env = await createTestEnv();
  sim = createSimulator({ issueSeconds: 0 });
  const simUrl = await sim.listen();
  api = await startTestApi(env, {
    env: {
      HTTPSOK_BASE_URL: simUrl,
      HTTPSOK_API_KEY: 'test-operator-key',
      UPSTREAM_MAX_RPS: '500',
      WORKER_METRICS_PORT: '0',
    },
  });
  [a, b, c] = [await api.createTenant(), await api.createTenant(), await api.createTenant()];
});
afterAll(async () => {
  await worker?.close();
  await api?.close();
  await sim?.close();
  await env?.close();
});

/** Current certificates as the worker would have stored them (placeholder PEM and key). */
async function seed(tenantId: string, list: { domains: string[]; days: number }[]): Promise<string[]> {
  const rows = list.map((x) => ({ ...x, orderId: randomUUID(), id: randomUUID() }));
  await env.handle.db.insert(orders).values(
    rows.map((r) => ({
      id: r.orderId,
      tenantId,
      domains: r.domains,
      domainsKey: domainSetKey(r.domains),
      status: 'issued' as const,
      applyId: `seed-${r.orderId}`,
      progress: 100,
      certificateId: r.id,
    })),
  );
  await env.handle.db.insert(certificates).values(
    rows.map((r) => ({
      id: r.id,
      tenantId,
      orderId: r.orderId,
      domains: r.domains,
      domainsKey: domainSetKey(r.domains),
      applyId: `seed-${r.orderId}`,
      algorithm: 'ECC' as const,
      ca: 'google' as const,
      notBefore: new Date(Date.now() - 60 * DAY),
      notAfter: new Date(Date.now() + r.days * DAY),
      fingerprint: randomBytes(32).toString('hex'),
      certificatePem: '-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n',
      privateKeySealed: 'placeholder',
    })),
  );
  return rows.map((r) => r.id);
}

const d = (name: string) => `${name}.${tag}.example.com`;

describe('POST /v1/renewals (bulk, operator)', () => {
  let expiring: string[];
  let batchId: string;

  it('renews the matching current certificates of three tenants, interleaved by tenant', async () => {
    expiring = [
      ...(await seed(a.id, [
        { domains: [d('a1'), d('www.a1')], days: 10 },
        { domains: [d('a2')], days: 12 },
      ])),
      ...(await seed(b.id, [{ domains: [d('b1')], days: 5 }])),
      ...(await seed(c.id, [{ domains: [d('c1')], days: 20 }])),
    ];
    // Outside the filter: a's third certificate expires in 60 days.
    await seed(a.id, [{ domains: [d('a3')], days: 60 }]);
    const res = await api.adminRequest('POST', '/v1/renewals', {
      tenantIds: [a.id, b.id, c.id],
      expiringWithinDays: 30,
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ batchId: expect.any(String), enqueued: 4, skipped: 0 });
    batchId = res.body.batchId;
    const created = await env.handle.db.select().from(orders).where(eq(orders.renewalBatchId, batchId));
    expect(created.map((o) => o.renewalOfCertificateId).sort()).toEqual([...expiring].sort());
    expect(created.every((o) => o.kind === 'renewal' && o.status === 'verifying')).toBe(true);
    expect(created.every((o) => o.renewalReason === 'manual')).toBe(true);
    const shown = await api.adminRequest('GET', `/v1/orders/${created[0]!.id}`);
    expect(shown.body).toMatchObject({ kind: 'renewal', renewalReason: 'manual' });
    // Each tenant's first renewal gets the base renewal priority; a's second one comes after.
    const byTenant = (t: Tenant) =>
      created
        .filter((o) => o.tenantId === t.id)
        .map((o) => o.priority)
        .sort();
    expect(byTenant(a)).toEqual([PRIORITY.renewal, PRIORITY.renewal + 1]);
    expect(byTenant(b)).toEqual([PRIORITY.renewal]);
    expect(byTenant(c)).toEqual([PRIORITY.renewal]);
    // Queued, after every new order (interactive and bulk lanes).
    const job = await api.queues.verify.getJob(`verify-${created[0]!.id}-r1`);
    expect(job?.opts.priority).toBeGreaterThanOrEqual(PRIORITY.renewal);
    expect(PRIORITY.renewal).toBeGreaterThan(PRIORITY.bulk);
  });

  it('asked again while those renewals run, it enqueues nothing', async () => {
    const res = await api.adminRequest('POST', '/v1/renewals', {
      tenantIds: [a.id, b.id, c.id],
      expiringWithinDays: 30,
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ enqueued: 0, skipped: 4 });
    const progress = await api.adminRequest('GET', `/v1/renewals/${batchId}`);
    expect(progress.status).toBe(200);
    expect(progress.body).toEqual({
      batchId,
      total: 4,
      issued: 0,
      failed: 0,
      cancelled: 0,
      inFlight: 4,
      createdAt: expect.any(String),
    });
  });

  it('the batch progress reaches all issued once the worker has run them', async () => {
    worker = await startWorker({
      config: api.config,
      logger: pino({ level: 'silent' }),
      scheduleRenewalScan: false,
      lockDurationMs: 5000,
      stalledIntervalMs: 1000,
    });
    await expect
      .poll(async () => (await api.adminRequest('GET', `/v1/renewals/${batchId}`)).body, {
        timeout: 30_000,
        interval: 200,
      })
      .toMatchObject({ total: 4, issued: 4, failed: 0, inFlight: 0 });
    const certs = await env.handle.db.select().from(certificates).where(inArray(certificates.id, expiring));
    expect(certs.every((x) => !x.isCurrent)).toBe(true);
    const renewed = await env.handle.db
      .select()
      .from(certificates)
      .where(and(inArray(certificates.tenantId, [a.id, b.id, c.id]), eq(certificates.isCurrent, true)));
    // a1, a2, a3 (untouched), b1, c1: one current certificate per domain set.
    expect(renewed).toHaveLength(5);
    // The new certificates are 90 days out: asking again finds nothing to renew.
    const again = await api.adminRequest('POST', '/v1/renewals', {
      tenantIds: [a.id, b.id, c.id],
      expiringWithinDays: 30,
    });
    expect(again.body).toMatchObject({ enqueued: 0, skipped: 0 });
  });
});

describe('POST /v1/renewals filters and scope', () => {
  it('by domain: certificates containing any of the (normalised) names', async () => {
    await seed(b.id, [
      { domains: [d('shared-x'), d('b-only')], days: 70 },
      { domains: [d('b-other')], days: 70 },
    ]);
    const res = await api.adminRequest('POST', '/v1/renewals', {
      domains: [d('SHARED-X').toUpperCase() + '.', d('nothing-here')],
    });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ enqueued: 1, skipped: 0 });
    const [order] = await env.handle.db
      .select()
      .from(orders)
      .where(eq(orders.renewalBatchId, res.body.batchId));
    expect(order!.domains).toEqual([d('shared-x'), d('b-only')]);
  });

  it('a tenant renews only its own certificates; another tenant’s id answers 404', async () => {
    await seed(c.id, [{ domains: [d('c-own')], days: 80 }]);
    const own = await api.tenantRequest(c.token, 'POST', '/v1/renewals', {
      domains: [d('c-own'), d('b-other')],
    });
    expect(own.status).toBe(202);
    // b-other matches the filter but belongs to b: not touched.
    expect(own.body).toMatchObject({ enqueued: 1, skipped: 0 });
    const mine = await api.tenantRequest(c.token, 'GET', `/v1/renewals/${own.body.batchId}`);
    expect(mine.status).toBe(200);
    expect((await api.tenantRequest(b.token, 'GET', `/v1/renewals/${own.body.batchId}`)).status).toBe(404);
    expect((await api.adminRequest('GET', `/v1/renewals/${own.body.batchId}`)).status).toBe(200);
    const foreign = await api.tenantRequest(c.token, 'POST', '/v1/renewals', { tenantIds: [b.id] });
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('not_found');
    const self = await api.tenantRequest(c.token, 'POST', '/v1/renewals', { tenantIds: [c.id] });
    expect(self.status).toBe(202);
    const batch = await env.handle.db
      .select()
      .from(orders)
      .where(eq(orders.renewalBatchId, self.body.batchId));
    expect(batch.every((o) => o.tenantId === c.id)).toBe(true);
  });

  it('rejects bad input with 400 and unknown batches with 404', async () => {
    const badDomain = await api.adminRequest('POST', '/v1/renewals', {
      domains: ['ok.example.com', 'not a domain'],
    });
    expect(badDomain.status).toBe(400);
    expect(badDomain.body.error.message).toMatch(/^domains\[1\]/);
    const unknownTenant = await api.adminRequest('POST', '/v1/renewals', { tenantIds: [randomUUID()] });
    expect(unknownTenant.status).toBe(400);
    expect(unknownTenant.body.error.message).toMatch(/tenantIds\[0\]: unknown tenant/);
    expect((await api.adminRequest('POST', '/v1/renewals', { expiringWithinDays: -1 })).status).toBe(400);
    expect((await api.adminRequest('POST', '/v1/renewals', { extra: true })).status).toBe(400);
    expect((await api.request('POST', '/v1/renewals', { body: {} })).status).toBe(401);
    expect((await api.adminRequest('GET', `/v1/renewals/${randomUUID()}`)).status).toBe(404);
    expect((await api.adminRequest('GET', '/v1/renewals/not-a-uuid')).status).toBe(404);
  });
});
