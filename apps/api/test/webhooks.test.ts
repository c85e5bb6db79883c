import { randomUUID } from 'node:crypto';
import { recordWebhookEvent, tenants } from '@certq/db';
import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { it, type TestApi } from './helpers';

async function stored(api: TestApi, tenantId: string) {
  const [row] = await api.env.handle.db
    .select({ url: tenants.webhookUrl, sealed: tenants.webhookSecretSealed })
    .from(tenants)
    .where(eq(tenants.id, tenantId));
  return row!;
}

describe('webhook settings', () => {
  it('a tenant sets its webhook: the secret is returned once and stored sealed; a new PUT makes a new one', async ({
    api,
    tenantA: a,
    tenantB: b,
  }) => {
    const res = await api.tenantRequest(a.token, 'PUT', '/v1/webhook', {
      url: 'https://hooks.example.com/certq',
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      url: 'https://hooks.example.com/certq',
      secret: expect.stringMatching(/^whsec_/),
    });
    const row = await stored(api, a.id);
    expect(row.url).toBe('https://hooks.example.com/certq');
    expect(row.sealed).not.toContain(res.body.secret);
    expect(api.secrets.open(row.sealed!)).toBe(res.body.secret);
    const again = await api.tenantRequest(a.token, 'PUT', '/v1/webhook', {
      url: 'https://hooks.example.com/v2',
    });
    expect(again.body.secret).not.toBe(res.body.secret);
    expect(api.secrets.open((await stored(api, a.id)).sealed!)).toBe(again.body.secret);
    expect((await stored(api, b.id)).url).toBeNull();
  });

  it('the operator sets and removes any tenant’s webhook; tenants cannot use that route', async ({
    api,
    tenantA: a,
    tenantB: b,
  }) => {
    const res = await api.adminRequest('PUT', `/v1/tenants/${b.id}/webhook`, {
      url: 'http://hooks-b.example.com:8080/hook',
    });
    expect(res.status).toBe(200);
    expect((await stored(api, b.id)).url).toBe('http://hooks-b.example.com:8080/hook');
    expect(
      (await api.adminRequest('PUT', `/v1/tenants/${randomUUID()}/webhook`, { url: 'https://x.example.com' }))
        .status,
    ).toBe(404);
    expect(
      (
        await api.tenantRequest(a.token, 'PUT', `/v1/tenants/${b.id}/webhook`, {
          url: 'https://x.example.com',
        })
      ).status,
    ).toBe(404);
    // The tenant route is for tenants: the operator names the tenant.
    expect((await api.adminRequest('PUT', '/v1/webhook', { url: 'https://x.example.com' })).status).toBe(400);
    expect((await api.adminRequest('DELETE', `/v1/tenants/${b.id}/webhook`)).status).toBe(204);
    expect(await stored(api, b.id)).toEqual({ url: null, sealed: null });
    expect((await api.adminRequest('DELETE', `/v1/tenants/${randomUUID()}/webhook`)).status).toBe(404);
  });

  it('refuses URLs that are not http(s)', async ({ api, tenantA: a }) => {
    for (const url of [
      'ftp://example.com/x',
      'not a url',
      'javascript:alert(1)',
      `https://x.example.com/${'a'.repeat(2100)}`,
    ]) {
      const res = await api.tenantRequest(a.token, 'PUT', '/v1/webhook', { url });
      expect(res.status, url).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    expect((await api.tenantRequest(a.token, 'PUT', '/v1/webhook', {})).status).toBe(400);
  });

  it('a tenant removes its webhook', async ({ api, tenantA: a }) => {
    expect((await api.tenantRequest(a.token, 'DELETE', '/v1/webhook')).status).toBe(204);
    expect(await stored(api, a.id)).toEqual({ url: null, sealed: null });
  });
});

describe('GET /v1/webhook-deliveries', () => {
  it('lists a tenant’s own deliveries, newest first, paginated; the operator sees all', async ({
    api,
    env,
    tenantA: a,
    tenantB: b,
  }) => {
    await api.tenantRequest(a.token, 'PUT', '/v1/webhook', { url: 'https://hooks.example.com/a' });
    await api.adminRequest('PUT', `/v1/tenants/${b.id}/webhook`, { url: 'https://hooks.example.com/b' });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        (await recordWebhookEvent(env.handle.db, {
          tenantId: a.id,
          event: 'order.failed',
          data: { n: i },
        }))!,
      );
    }
    const other = await recordWebhookEvent(env.handle.db, {
      tenantId: b.id,
      event: 'certificate.issued',
      data: {},
    });

    const first = await api.tenantRequest(a.token, 'GET', '/v1/webhook-deliveries?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.deliveries.map((x: { id: string }) => x.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.deliveries[0]).toMatchObject({
      tenantId: a.id,
      event: 'order.failed',
      status: 'pending',
      attempts: 0,
      lastStatusCode: null,
      deliveredAt: null,
      payload: { id: ids[2], event: 'order.failed', tenantId: a.id, data: { n: 2 } },
    });
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await api.tenantRequest(
      a.token,
      'GET',
      `/v1/webhook-deliveries?limit=2&cursor=${first.body.nextCursor}`,
    );
    expect(second.body.deliveries.map((x: { id: string }) => x.id)).toEqual([ids[0]]);
    expect(second.body.nextCursor).toBeNull();

    const all = await api.adminRequest('GET', '/v1/webhook-deliveries?limit=100');
    expect(all.body.deliveries.map((x: { id: string }) => x.id)).toEqual(
      expect.arrayContaining([...ids, other]),
    );
    const onlyB = await api.adminRequest('GET', `/v1/webhook-deliveries?tenantId=${b.id}`);
    expect(onlyB.body.deliveries.map((x: { id: string }) => x.id)).toEqual([other]);
    const delivered = await api.tenantRequest(a.token, 'GET', '/v1/webhook-deliveries?status=delivered');
    expect(delivered.body.deliveries).toEqual([]);
    expect((await api.tenantRequest(a.token, 'GET', '/v1/webhook-deliveries?cursor=garbage')).status).toBe(
      400,
    );
  });
});
