import { randomBytes } from 'node:crypto';
import { type RunningApi, startApi } from '@certq/api';
import { loadConfig, registeredDomain } from '@certq/core';
import { createSimulator, type Simulator } from '@certq/simulator';
import {
  createTestDatabase,
  createTestRedis,
  type NamedServer,
  requestJson,
  startNamed,
  type TestDatabase,
  waitFor,
} from '@certq/testing';
import { startWorker, type WorkerHandle } from '@certq/worker';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver } from '../apps/worker/test/webhook-receiver';

/*
 * Domain ownership across tenants, end to end: the simulator verifies by real DNS (SIM_VERIFY=dns) against
 * a bind9 `named` that certq's own checks (DNS_RESOLVERS) ask too. Both tenants share the operator's
 * httpsok key, so the CNAME httpsok checks is the same for both: once A's record is in place, B's order
 * for the same name would verify — what stops it is certq's ownership rule.
 */

// biome-ignore lint/suspicious/noExplicitAny: test responses are inspected field by field
type Body = any;
interface Tenant {
  id: string;
  token: string;
}

let named: NamedServer;
let database: TestDatabase;
let redis: ReturnType<typeof createTestRedis>;
let sim: Simulator;
let api: RunningApi;
let worker: WorkerHandle;
let adminToken: string;
let receiver: Awaited<ReturnType<typeof startReceiver>>;

const call = (token: string, method: string, path: string, body?: unknown) =>
  requestJson(method, `${api.url}${path}`, { token, body });

async function createTenant(): Promise<Tenant> {
  const res = await call(adminToken, 'POST', '/v1/tenants', {
    name: `own-${randomBytes(5).toString('hex')}`,
  });
  expect(res.status).toBe(201);
  const tenant = res.body as Tenant;
  expect((await call(tenant.token, 'PUT', '/v1/webhook', { url: receiver.url })).status).toBe(200);
  return tenant;
}

/** Creates every CNAME the order asks for, as the tenant would at its DNS host. */
async function placeRecords(order: Body) {
  for (const item of order.dns as { domain: string; host: string; hostValue: string }[]) {
    const registered = registeredDomain(item.domain) ?? item.domain.replace(/^\*\./, '');
    const name = item.host.endsWith(registered) ? item.host : `${item.host}.${registered}`;
    await named.setCname(name, item.hostValue);
  }
}

async function waitIssued(tenant: Tenant, orderId: string) {
  let last: Body;
  const order = await waitFor(
    async () => {
      const res = await call(tenant.token, 'GET', `/v1/orders/${orderId}`);
      last = res.body;
      if (res.body?.status === 'failed') throw new Error(`order failed: ${res.body.lastError}`);
      return res.body?.status === 'issued' ? res.body : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100, message: `issuance of ${orderId}` },
  ).catch((error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(last)}`);
  });
  const cert = await call(tenant.token, 'GET', `/v1/certificates/${order.certificateId}`);
  return { id: cert.body.id as string, fingerprint: cert.body.fingerprint as string };
}

async function issue(tenant: Tenant, domains: string[]) {
  const placed = await call(tenant.token, 'POST', '/v1/orders', { domains });
  expect(placed.status, placed.text).toBe(202);
  const instructed = await waitFor(
    async () => {
      const res = await call(tenant.token, 'GET', `/v1/orders/${placed.body.id}`);
      return res.body?.dns?.length === domains.length ? res.body : undefined;
    },
    { message: 'DNS instructions' },
  );
  await placeRecords(instructed);
  return waitIssued(tenant, placed.body.id);
}

beforeAll(async () => {
  named = await startNamed();
  database = await createTestDatabase();
  redis = createTestRedis();
  receiver = await startReceiver();
  sim = createSimulator({ issueSeconds: 0, verify: 'dns', dnsResolver: named.address });
  const simUrl = await sim.listen();
  adminToken = `admin-${randomBytes(12).toString('hex')}`;
  const config = loadConfig({
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: redis.prefix,
    HTTPSOK_BASE_URL: simUrl,
    HTTPSOK_API_KEY: 'shared-operator-key',
    ADMIN_TOKEN: adminToken,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    DNS_RESOLVERS: named.address,
    DNS_CHECK_INTERVAL_MS: '200',
    WEBHOOK_ALLOW_PRIVATE: 'true',
    UPSTREAM_MAX_RPS: '500',
    RATE_LIMIT_PER_MINUTE: '1000000',
    LOG_LEVEL: 'silent',
    WORKER_METRICS_PORT: '0',
  });
  api = await startApi({ config, logger: false, host: '127.0.0.1', port: 0 });
  worker = await startWorker({ config, logger: pino({ level: 'silent' }) });
});
afterAll(async () => {
  await worker?.close();
  await api?.close();
  await sim?.close();
  await receiver?.close();
  await redis?.flush();
  await database?.drop();
  await named?.stop();
});

const edgeGet = (token: string, name: string) =>
  call(token, 'GET', `/v1/tls/certificate?server_name=${encodeURIComponent(name)}`);

/** Waits until the TLS route serves `expected` (a certificate id, or 204) for `name`: API replicas learn
 * of a change from the feed (NOTIFY at commit), so their cache follows within milliseconds. */
async function expectServed(token: string, name: string, expected: string | 204) {
  let last: string | number | null = null;
  await waitFor(
    async () => {
      const res = await edgeGet(token, name);
      last = res.status === 200 ? res.headers.get('x-certq-certificate-id') : res.status;
      return last === expected;
    },
    { timeoutMs: 5000, message: `${name} served as ${expected}` },
  ).catch(() => expect(last, name).toBe(expected));
}

describe('a name belongs to one tenant at a time', () => {
  it('refuses another tenant until it proves control in DNS, then transfers the name', async () => {
    const base = `own-${randomBytes(4).toString('hex')}.example.com`;
    const shared = `www.${base}`;
    const otherOfA = `shop-${randomBytes(4).toString('hex')}.example.com`;
    const a = await createTenant();
    const b = await createTenant();
    const [certA, certAOther] = await Promise.all([issue(a, [shared]), issue(a, [otherOfA])]);
    const edge = (await call(adminToken, 'POST', '/v1/edge-tokens', { name: 'shared edge' })).body // every tenant
      .token as string;
    await expectServed(edge, shared, certA.id);

    // The same name, a wildcard covering it, a set including it, a bulk item: 409, naming no tenant.
    const attempts = [
      await call(b.token, 'POST', '/v1/orders', { domains: [shared] }),
      await call(b.token, 'POST', '/v1/orders', { domains: [`*.${base}`] }),
      await call(b.token, 'POST', '/v1/orders', { domains: [`api.${base}`, shared] }),
      await call(b.token, 'POST', '/v1/orders/bulk', {
        orders: [{ domains: [`fine-${base}`] }, { domains: [shared] }],
      }),
    ];
    for (const refused of attempts) {
      expect(refused.status, refused.text).toBe(409);
      expect(refused.body.error.code).toBe('domain_owned_by_another_tenant');
      expect(refused.text).not.toContain(a.id);
    }
    expect(attempts[0]!.body.error.details.domains).toEqual([
      { name: shared, record: { type: 'TXT', name: `_certq-owner.${shared}`, value: expect.any(String) } },
    ]);
    // Only the requested names concerned: `api.` is free.
    expect(attempts[2]!.body.error.details.domains.map((d: Body) => d.name)).toEqual([shared]);
    expect(attempts[1]!.body.error.details.domains[0].record.name).toBe(`_certq-owner.${base}`);
    expect(attempts[3]!.body.error.details.index).toBe(1);
    // A public suffix, or a wildcard directly under one, is no one's: refused as input before ownership.
    for (const domains of [['co.uk'], ['*.co.uk']]) {
      const suffix = await call(b.token, 'POST', '/v1/orders', { domains });
      expect(suffix.status, suffix.text).toBe(400);
    }
    // Nothing was stored for B: not even the bulk's free item.
    expect((await call(b.token, 'GET', '/v1/orders')).body.orders).toEqual([]);

    const ownership = await call(b.token, 'GET', `/v1/domains/${shared}/ownership`);
    expect(ownership.body).toMatchObject({ holder: 'another_tenant', tenantId: null, recordFound: false });
    const record = ownership.body.record;
    expect(record).toEqual(attempts[0]!.body.error.details.domains[0].record);
    // Per tenant: A's record for the same name is another value.
    const ofA = await call(a.token, 'GET', `/v1/domains/${shared}/ownership`);
    expect(ofA.body.holder).toBe('you');
    expect(ofA.body.record.value).not.toBe(record.value);

    // A's value in the record proves nothing for B.
    await named.update([`update add ${record.name}. 0 TXT "${ofA.body.record.value}"`]);
    expect((await call(b.token, 'POST', '/v1/orders', { domains: [shared] })).status).toBe(409);

    await named.deleteRecords(record.name, 'TXT');
    await named.update([`update add ${record.name}. 0 TXT "${record.value}"`]);
    expect((await call(b.token, 'GET', `/v1/domains/${shared}/ownership`)).body.recordFound).toBe(true);
    const placed = await call(b.token, 'POST', '/v1/orders', { domains: [shared] });
    expect(placed.status, placed.text).toBe(202);

    // A's certificate stopped being served at once, its other one goes on.
    await expectServed(edge, shared, 204);
    await expectServed(edge, otherOfA, certAOther.id);
    expect((await call(a.token, 'GET', `/v1/domains/${shared}/ownership`)).body.holder).toBe(
      'another_tenant',
    );
    expect((await call(a.token, 'POST', '/v1/orders', { domains: [shared] })).status).toBe(409);

    // Both tenants told, signed like every webhook.
    const events = await waitFor(
      () => {
        const found = receiver.received
          .map((r) => ({ headers: r.headers, body: JSON.parse(r.body) }))
          .filter((r) => r.body.event.startsWith('domain.'));
        return found.length >= 2 ? found : undefined;
      },
      { message: 'both domain webhooks' },
    );
    const byEvent = Object.fromEntries(events.map((e) => [e.body.event, e]));
    expect(byEvent['domain.transferred_out']!.body).toMatchObject({
      tenantId: a.id,
      data: { domains: [shared], via: 'dns_proof', stoppedCertificateIds: [certA.id] },
    });
    expect(byEvent['domain.transferred_in']!.body).toMatchObject({
      tenantId: b.id,
      data: { domains: [shared] },
    });
    for (const e of events) expect(e.headers['x-certq-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);

    // The audit says who, from whom, to whom and why.
    const audit = await call(adminToken, 'GET', '/v1/audit?limit=100');
    const transfer = audit.body.entries.find((e: Body) => e.action === 'domain.transfer');
    expect(transfer).toMatchObject({
      actor: `tenant:${b.id}`,
      tenantId: b.id,
      detail: { domains: [shared], fromTenantId: a.id, toTenantId: b.id, via: 'dns_proof' },
    });

    // B's order goes on (its CNAME is the one A placed), is issued and served; A's other name stays A's.
    const certB = await waitIssued(b, placed.body.id);
    await expectServed(edge, shared, certB.id);
    await expectServed(edge, otherOfA, certAOther.id);

    // The change feed a shared agent follows: A's removal for the name, then B's certificate.
    const feed = await call(edge, 'GET', '/v1/certificates/changes?cursor=0');
    const forShared = feed.body.changes.filter((c: Body) => c.domains.includes(shared));
    expect(forShared.map((c: Body) => [c.certificateId, c.change])).toEqual([
      [certA.id, 'current'],
      [certA.id, 'replaced'],
      [certB.id, 'current'],
    ]);

    // The operator can move it back explicitly: B's certificate stops, the audit names the operator.
    // (B's record gone: a record in place would prove the name B's again.)
    await named.deleteRecords(record.name, 'TXT');
    const moved = await call(adminToken, 'POST', `/v1/domains/${shared}/transfer`, {
      tenantId: a.id,
      reason: 'dispute settled by support ticket 1234',
    });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toMatchObject({ takenFrom: [{ name: shared, previousTenantId: b.id }] });
    expect(moved.body.stoppedCertificateIds).toEqual([certB.id]);
    await expectServed(edge, shared, 204);
    expect((await call(b.token, 'POST', '/v1/orders', { domains: [shared] })).status).toBe(409);
    const operatorRow = (await call(adminToken, 'GET', '/v1/audit?limit=100')).body.entries.find(
      (e: Body) => e.action === 'domain.transfer' && e.actor === 'admin',
    );
    expect(operatorRow.detail).toMatchObject({ via: 'operator', fromTenantId: b.id, toTenantId: a.id });
    expect(
      (await call(b.token, 'POST', `/v1/domains/${shared}/transfer`, { tenantId: b.id, reason: 'x' })).status,
    ).toBe(404);
  });

  it('lets a name go once its tenant no longer uses it', async () => {
    const zone = `free-${randomBytes(4).toString('hex')}.example.com`;
    const name = `www.${zone}`;
    const a = await createTenant();
    const b = await createTenant();
    const first = await call(a.token, 'POST', '/v1/orders', { domains: [name] });
    expect(first.status).toBe(202);
    expect((await call(b.token, 'POST', '/v1/orders', { domains: [name] })).status).toBe(409);
    expect((await call(a.token, 'DELETE', `/v1/orders/${first.body.id}`)).status).toBe(200);
    expect((await call(b.token, 'POST', '/v1/orders', { domains: [`*.${zone}`] })).status).toBe(202);
  });

  it('lets exactly one of two tenants racing for a fresh name have it', async () => {
    const name = `race-${randomBytes(4).toString('hex')}.example.com`;
    const [c, d] = [await createTenant(), await createTenant()];
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        call((i % 2 ? c : d).token, 'POST', '/v1/orders', {
          domains: i % 3 ? [name] : [`*.${name}`, name],
        }).then((r) => ({ tenant: i % 2 ? c.id : d.id, status: r.status })),
      ),
    );
    const winners = new Set(answers.filter((a) => a.status === 202 || a.status === 200).map((a) => a.tenant));
    expect(winners.size).toBe(1);
    const loser = [c.id, d.id].find((id) => !winners.has(id));
    expect(answers.filter((a) => a.tenant === loser).every((a) => a.status === 409)).toBe(true);
  });
});
