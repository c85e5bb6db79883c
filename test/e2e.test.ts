import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkIssuedCertificate } from '@certq/api-client';
import { createSimulator, type Simulator } from '@certq/simulator';
import type { WorkerHandle } from '@certq/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as apiTest from '../apps/api/test/helpers';
import { startSystemWorker } from './system';

let env: apiTest.TestEnv;
let api: apiTest.TestApi;
let sim: Simulator;
let worker: WorkerHandle;
/** Where the API process is told httpsok lives: any request it receives is a bug (the API never calls httpsok). */
let tripwire: Server;
const tripwireHits: string[] = [];

/**
 * The whole system over real HTTP: an order placed with the API is verified, applied and polled by
 * the worker against the simulator; httpsok's callback comes back to the API.
 */
beforeAll(async () => {
  env = await apiTest.createTestEnv();
  // Issuance takes 12 s and scheduled polls are a minute apart, so an order issued in between was
  // completed by the callback.
  sim = createSimulator({ issueSeconds: 12 });
  const simUrl = await sim.listen();
  const upstream = { HTTPSOK_BASE_URL: simUrl, HTTPSOK_API_KEY: 'e2e-operator-key' };
  tripwire = createServer((req, res) => {
    tripwireHits.push(`${req.method} ${req.url}`);
    res.end();
  });
  await new Promise<void>((resolve) => tripwire.listen(0, '127.0.0.1', resolve));
  const tripwireUrl = `http://127.0.0.1:${(tripwire.address() as AddressInfo).port}`;
  api = await apiTest.startTestApi(env, { env: { ...upstream, HTTPSOK_BASE_URL: tripwireUrl } });
  worker = await startSystemWorker(api, { ...upstream, POLL_INTERVAL_MS: '60000' });
});
afterAll(async () => {
  await worker?.close();
  await api?.close();
  await sim?.close();
  tripwire?.close();
  await env?.close();
});

describe('end to end', () => {
  it('order over HTTP → issued by callback → certificate and key downloadable and matching', async () => {
    const tenant = await api.createTenant();
    const domains = [`*.${apiTest.uniqueDomain('e2e')}`];
    domains.push(domains[0]!.slice(2));
    const callback = once(sim.events, 'callback');
    const placed = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains, algorithm: 'RSA' });
    expect(placed.status).toBe(202);
    expect(placed.body).toMatchObject({ status: 'verifying', kind: 'new', algorithm: 'RSA', attempts: 1 });

    const [{ url: callbackUrl }] = await callback;
    expect(callbackUrl.startsWith(`${api.url}/v1/callbacks/httpsok/cb_`)).toBe(true);
    await expect
      .poll(
        async () =>
          (await api.tenantRequest(tenant.token, 'GET', `/v1/orders/${placed.body.id}`)).body.status,
        {
          timeout: 20_000,
        },
      )
      .toBe('issued');
    const order = (await api.tenantRequest(tenant.token, 'GET', `/v1/orders/${placed.body.id}`)).body;
    expect(order).toMatchObject({ progress: 100, lastError: null });
    expect(order.applyId).toMatch(/^\d+$/);
    expect(order.dns.map((d: { domain: string }) => d.domain).sort()).toEqual([...domains].sort());
    // Issued by the poll the callback brought forward (the worker's), the only one: the scheduled one
    // is a safety net a minute away; the API process itself sent nothing upstream.
    const stats = sim.stats();
    expect(tripwireHits).toEqual([]);
    expect(stats.get).toBe(1);
    expect(stats.callbacks).toBe(1);
    expect(stats.tooFrequent).toBe(0);

    const certificate = await api.tenantRequest(
      tenant.token,
      'GET',
      `/v1/certificates/${order.certificateId}`,
    );
    expect(certificate.status).toBe(200);
    const key = await api.tenantRequest(
      tenant.token,
      'GET',
      `/v1/certificates/${order.certificateId}/private-key`,
    );
    expect(key.status).toBe(200);
    expect(key.body.privateKey).toContain('BEGIN RSA PRIVATE KEY');
    expect(
      checkIssuedCertificate({
        certificate: certificate.body.certificatePem,
        privateKey: key.body.privateKey,
        domains,
      }),
    ).toMatchObject({ ok: true });

    // A replayed or forged callback changes nothing: the body is never trusted.
    const forged = {
      id: Number(order.applyId),
      status: 1,
      certificate: 'forged',
      privateKey: 'forged',
      domains: domains.join(','),
    };
    for (const body of [forged, {}]) {
      const replay = await api.request('POST', new URL(callbackUrl).pathname, { body });
      expect(replay.status).toBe(200);
    }
    const after = await api.tenantRequest(tenant.token, 'GET', `/v1/certificates/${order.certificateId}`);
    expect(after.body.certificatePem).toBe(certificate.body.certificatePem);
    expect(sim.stats().get).toBe(1);
    expect(tripwireHits).toEqual([]);

    // Another tenant sees none of it.
    const other = await api.createTenant();
    expect((await api.tenantRequest(other.token, 'GET', `/v1/orders/${order.id}`)).status).toBe(404);
    expect(
      (await api.tenantRequest(other.token, 'GET', `/v1/certificates/${order.certificateId}/private-key`))
        .status,
    ).toBe(404);
  }, 60_000);
});
