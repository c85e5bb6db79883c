import { randomBytes } from 'node:crypto';
import { waitFor } from '@certq/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestEnv,
  insertCertificate,
  startTestApi,
  type TestApi,
  type TestEnv,
  uniqueDomain,
} from './helpers';

/*
 * The rest of the second hostile review (issue 23): token rotation, audit rows, one failed-login
 * throttle for every door, and the low findings. Each test failed on the main before the fix.
 */
let env: TestEnv;
let api: TestApi;
const VIEWER = `viewer-${randomBytes(16).toString('hex')}`;
const from = () => ({ 'x-forwarded-for': `203.0.113.${Math.floor(Math.random() * 250) + 1}` });
const basic = (token: string) => `Basic ${Buffer.from(`op:${token}`).toString('base64')}`;
const consoleCall = (
  method: string,
  path: string,
  form?: Record<string, string>,
  token = api.config.ADMIN_TOKEN!,
) =>
  api.request(method, path, {
    headers: {
      authorization: basic(token),
      'hx-request': 'true',
      ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(form ? { raw: new URLSearchParams(form).toString() } : {}),
  });
const auditOf = async (query: string) =>
  (await api.adminRequest('GET', `/v1/audit?limit=100&${query}`)).body.entries as {
    actor: string;
    action: string;
    subjectId: string | null;
    tenantId: string | null;
    detail: Record<string, unknown>;
  }[];

beforeAll(async () => {
  env = await createTestEnv();
  api = await startTestApi(env, {
    env: { VIEWER_TOKEN: VIEWER, TRUST_PROXY: '127.0.0.1', AUTH_FAILURES_PER_MINUTE: '60' },
  });
});
afterAll(async () => {
  await api.close();
  await env.close();
});

describe('token rotation', () => {
  it('a rotated-out token still authenticates but cannot rotate; rotations name both token ids', async () => {
    const tenant = await api.createTenant();
    const rotated = await api.tenantRequest(tenant.token, 'POST', '/v1/token/rotate', { graceSeconds: 600 });
    expect(rotated.status).toBe(200);
    expect((await api.tenantRequest(tenant.token, 'GET', '/v1/orders')).status).toBe(200);
    const takeover = await api.tenantRequest(tenant.token, 'POST', '/v1/token/rotate', { graceSeconds: 0 });
    expect(takeover.status).toBe(403);
    // The owner's new token still works; it can rotate.
    expect((await api.tenantRequest(rotated.body.token, 'GET', '/v1/orders')).status).toBe(200);
    const again = await api.tenantRequest(rotated.body.token, 'POST', '/v1/token/rotate', {});
    expect(again.status).toBe(200);

    const rows = await auditOf(`action=token.rotate&tenantId=${tenant.id}`);
    expect(rows).toHaveLength(2);
    const [second, first] = rows as [(typeof rows)[0], (typeof rows)[0]];
    expect(first.detail).toMatchObject({
      graceSeconds: 600,
      previousTokenId: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(second.detail.previousTokenId).toBe(first.detail.newTokenId);
    expect(JSON.stringify(rows)).not.toContain(rotated.body.token);
  });
});

describe('audit', () => {
  it('records every private-key read of the TLS route, by the viewer and the operator, off the handshake path', async () => {
    const tenant = await api.createTenant();
    const name = uniqueDomain('tls-audit');
    const cert = await insertCertificate(api, tenant, { domains: [name] });
    for (const token of [VIEWER, api.config.ADMIN_TOKEN!]) {
      const byId = await api.request('GET', `/v1/tls/certificate?certificate_id=${cert.id}`, { token });
      expect(byId.status).toBe(200);
      expect(byId.text).toContain(cert.privateKey.trim());
    }
    for (let i = 0; i < 3; i++)
      expect(
        (await api.request('GET', `/v1/tls/certificate?server_name=${name}`, { token: VIEWER })).status,
      ).toBe(200);
    const rows = await waitFor(
      async () => {
        const found = await auditOf(`action=private_key.read&tenantId=${tenant.id}`);
        return found.length >= 3 ? found : undefined;
      },
      { message: 'the key reads audited' },
    );
    const summary = rows.map((r) => `${r.actor} ${r.subjectId} ${r.detail.by} ${r.detail.count}`).sort();
    expect(summary).toEqual(
      [
        `admin ${cert.id} certificate_id 1`,
        `viewer ${cert.id} certificate_id 1`,
        `viewer ${cert.id} server_name 3`,
      ].sort(),
    );
  });

  it('records console actions: single ones with their subject, bulk ones with the count and the filter', async () => {
    const tenant = await api.createTenant();
    const one = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', {
      domains: [uniqueDomain('c1')],
    });
    const cancelled = await consoleCall('POST', `/admin/orders/${one.body.id}/cancel`);
    expect(cancelled.status).toBe(200);
    for (let i = 0; i < 3; i++)
      await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain('bulk')] });
    const bulk = await consoleCall('POST', '/admin/bulk', {
      action: 'cancel',
      tenant: tenant.id,
      status: 'verifying',
    });
    expect(bulk.status, bulk.text).toBe(200);
    const single = (await auditOf('action=order.cancel')).find((r) => r.subjectId === one.body.id);
    expect(single).toMatchObject({
      actor: 'admin',
      tenantId: tenant.id,
      detail: { via: 'console', to: 'cancelled' },
    });
    const [bulkRow] = await auditOf('action=bulk.cancel');
    expect(bulkRow).toMatchObject({
      actor: 'admin',
      detail: { via: 'console', count: 3, filter: { tenant: tenant.id, status: 'verifying' } },
    });
  });
});

describe('operator changes', () => {
  it('name their subject and what changed, old and new, never a secret', async () => {
    const tenant = await api.createTenant();
    const first = await api.adminRequest('PUT', `/v1/tenants/${tenant.id}/webhook`, {
      url: 'https://one.example.com/hook',
    });
    expect(first.status).toBe(200);
    await api.adminRequest('PUT', `/v1/tenants/${tenant.id}/webhook`, {
      url: 'https://two.example.com/hook',
    });
    await api.adminRequest('PUT', `/v1/tenants/${tenant.id}/ca-choices`, {
      caChoices: ['letsencrypt', 'google'],
    });
    const rows = await auditOf(`tenantId=${tenant.id}`);
    const webhook = rows.filter((r) => r.action === 'webhook.set');
    expect(webhook[0]).toMatchObject({
      subjectId: tenant.id,
      detail: {
        changes: {
          webhookUrl: { old: 'https://one.example.com/hook', new: 'https://two.example.com/hook' },
          webhookSecret: { old: '[set]', new: '[changed]' },
        },
      },
    });
    expect(rows.find((r) => r.action === 'tenant.ca_choices')?.detail).toMatchObject({
      changes: { caChoices: { old: null, new: ['letsencrypt', 'google'] } },
    });
    expect(JSON.stringify(rows)).not.toContain(first.body.secret);
  });
});

describe('one failed-login throttle for every door', () => {
  it('60 wrong tokens on /admin: 429 there and at every other door, the right token included', async () => {
    const ip = { 'x-forwarded-for': '198.51.100.77' };
    for (let i = 0; i < 60; i++) {
      const wrong = await api.request('GET', '/admin', {
        headers: { ...ip, authorization: basic(`wrong-${i}`) },
      });
      expect(wrong.status).toBe(401);
    }
    const right = { ...ip, authorization: basic(api.config.ADMIN_TOKEN!) };
    const bearer = { ...ip, authorization: `Bearer ${api.config.ADMIN_TOKEN!}` };
    const answers = {
      admin: (await api.request('GET', '/admin', { headers: right })).status,
      queues: (await api.request('GET', '/admin/queues', { headers: right })).status,
      metrics: (await api.request('GET', '/metrics', { headers: bearer })).status,
      api: (await api.request('GET', '/v1/tenants', { headers: bearer })).status,
    };
    expect(answers).toEqual({ admin: 429, queues: 429, metrics: 429, api: 429 });
    // Another address is not affected.
    expect(
      (await api.request('GET', '/metrics', { headers: { ...from(), authorization: bearer.authorization } }))
        .status,
    ).toBe(200);
  });

  it('counts wrong tokens at /metrics and bull-board too', async () => {
    const ip = { 'x-forwarded-for': '198.51.100.78' };
    for (let i = 0; i < 30; i++)
      await api.request('GET', '/metrics', { headers: { ...ip, authorization: `Bearer wrong-${i}` } });
    for (let i = 0; i < 30; i++)
      await api.request('GET', '/admin/queues', { headers: { ...ip, authorization: basic(`wrong-${i}`) } });
    expect(
      (
        await api.request('GET', '/v1/tenants', {
          headers: { ...ip, authorization: `Bearer ${api.config.ADMIN_TOKEN}` },
        })
      ).status,
    ).toBe(429);
  });
});

describe('low findings', () => {
  it('the console answers 400, not 500, to a NUL in a filter and to an invalid bulk-preview filter', async () => {
    expect((await consoleCall('GET', '/admin/orders?tenant=%00')).status).toBe(400);
    expect((await consoleCall('GET', '/admin/certificates?tenant=%00')).status).toBe(400);
    expect((await consoleCall('GET', '/admin/bulk/preview?action=cancel&tenant=%00')).status).toBe(400);
    expect((await consoleCall('GET', '/admin/bulk/preview?action=cancel&q=%00')).status).toBe(400);
    expect((await consoleCall('GET', '/admin/bulk/preview?action=explode')).status).toBe(400);
    expect((await consoleCall('GET', '/admin/bulk/preview?action=cancel&from=yesterday')).status).toBe(400);
  });

  it('cursors above 2^53 are refused (400), never rounded', async () => {
    for (const path of [
      '/v1/certificates/changes?cursor=9007199254740993',
      '/v1/audit?cursor=9007199254740993',
    ])
      expect((await api.adminRequest('GET', path)).status, path).toBe(400);
    expect((await api.adminRequest('GET', '/v1/certificates/changes?cursor=9007199254740991')).status).toBe(
      200,
    );
  });

  it('a tenant’s nextCursor counts only its own changes, never the whole feed', async () => {
    const [a, b] = [await api.createTenant(), await api.createTenant()];
    const before = await api.request('GET', '/v1/certificates/changes?cursor=0', { token: b.token });
    for (let i = 0; i < 3; i++) await insertCertificate(api, a, { domains: [uniqueDomain('feed')] });
    const after = await api.request('GET', `/v1/certificates/changes?cursor=${before.body.nextCursor}`, {
      token: b.token,
    });
    expect(after.body).toEqual({ changes: [], nextCursor: before.body.nextCursor });
    const own = await insertCertificate(api, b, { domains: [uniqueDomain('feed-b')] });
    const mine = await api.request('GET', `/v1/certificates/changes?cursor=${before.body.nextCursor}`, {
      token: b.token,
    });
    expect(mine.body.changes.map((c: { certificateId: string }) => c.certificateId)).toEqual([own.id]);
    expect(mine.body.nextCursor).toBe(mine.body.changes[0].cursor);
  });

  it('an edge token revoked during an open long-poll ends that poll and gets no change', async () => {
    const tenant = await api.createTenant();
    const created = await api.adminRequest('POST', '/v1/edge-tokens', { name: 'revoked mid-poll' });
    const head = await api.request('GET', '/v1/certificates/changes?cursor=0&limit=1000', {
      token: created.body.token,
    });
    let cursor = head.body.nextCursor;
    while (head.body.changes.length === 1000) {
      const page = await api.request('GET', `/v1/certificates/changes?cursor=${cursor}&limit=1000`, {
        token: created.body.token,
      });
      cursor = page.body.nextCursor;
      if (page.body.changes.length < 1000) break;
    }
    const poll = api.request('GET', `/v1/certificates/changes?cursor=${cursor}&wait=30`, {
      token: created.body.token,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await api.adminRequest('DELETE', `/v1/edge-tokens/${created.body.id}`)).status).toBe(200);
    const started = Date.now();
    await insertCertificate(api, tenant, { domains: [uniqueDomain('after-revoke')] });
    const answer = await poll;
    expect(answer.status).toBe(401);
    expect(answer.text).not.toContain('after-revoke');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
