import { hashToken } from '@certq/core';
import { tenants } from '@certq/db';
import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { it } from './helpers';

function expectError(res: { status: number; body: unknown }, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.body).toMatchObject({ error: { code, message: expect.any(String) } });
}

describe('POST /v1/tenants', () => {
  it('creates a tenant, shows its token once and stores only the token hash and the sealed key', async ({
    api,
    env,
  }) => {
    const res = await api.adminRequest('POST', '/v1/tenants', { name: 'acme', httpsokApiKey: 'key-123' });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: expect.any(String), name: 'acme', token: expect.stringMatching(/^cq_/) });
    const [row] = await env.handle.db.select().from(tenants).where(eq(tenants.id, res.body.id));
    expect(row!.tokenHash).toBe(hashToken(res.body.token));
    expect(JSON.stringify(row)).not.toContain(res.body.token);
    expect(row!.httpsokApiKeySealed).not.toContain('key-123');
    expect(api.secrets.open(row!.httpsokApiKeySealed!)).toBe('key-123');
    // The token works.
    const own = await api.tenantRequest(res.body.token, 'GET', '/v1/orders');
    expect(own.status).toBe(200);
  });

  it('answers 409 for a duplicate name', async ({ api }) => {
    await api.createTenant('dup-name');
    expectError(await api.adminRequest('POST', '/v1/tenants', { name: 'dup-name' }), 409, 'conflict');
  });

  it.for([
    ['no name', {}],
    ['empty name', { name: '  ' }],
    ['wrong type', { name: 42 }],
    ['unknown field', { name: 'x-unknown', admin: true }],
    ['empty key', { name: 'x-key', httpsokApiKey: '' }],
    ['control characters', { name: 'a\u0000b' }],
  ])('answers 400 for %s and stores nothing', async ([_label, body], { api, env }) => {
    const before = (await env.handle.db.select().from(tenants)).length;
    expectError(await api.adminRequest('POST', '/v1/tenants', body), 400, 'validation_failed');
    expect((await env.handle.db.select().from(tenants)).length).toBe(before);
  });

  it('is for the operator only: a tenant token gets 404, no token 401', async ({ api }) => {
    const tenant = await api.createTenant();
    expectError(
      await api.tenantRequest(tenant.token, 'POST', '/v1/tenants', { name: 'sneaky' }),
      404,
      'not_found',
    );
    expectError(await api.request('POST', '/v1/tenants', { body: { name: 'anon' } }), 401, 'unauthorized');
  });
});

describe('GET /v1/tenants', () => {
  it('lists tenants without secrets', async ({ api }) => {
    const withKey = await api.createTenant('listed-with-key', 'secret-key-value');
    const without = await api.createTenant('listed-without-key');
    const res = await api.adminRequest('GET', '/v1/tenants');
    expect(res.status).toBe(200);
    const byName = new Map(res.body.tenants.map((t: { name: string }) => [t.name, t]));
    expect(byName.get('listed-with-key')).toEqual({
      id: withKey.id,
      name: 'listed-with-key',
      hasOwnApiKey: true,
      caChoices: null,
      status: 'active',
      suspendedAt: null,
      stopServing: false,
      deletedAt: null,
      createdAt: expect.any(String),
    });
    expect(byName.get('listed-without-key')).toMatchObject({ id: without.id, hasOwnApiKey: false });
    expect(res.text).not.toContain('secret-key-value');
    expect(res.text).not.toContain(withKey.token);
    expect(res.text).not.toMatch(/tokenHash|Sealed/);
  });

  it('is for the operator only', async ({ api }) => {
    const tenant = await api.createTenant();
    expectError(await api.tenantRequest(tenant.token, 'GET', '/v1/tenants'), 404, 'not_found');
  });
});

describe('authentication', () => {
  it.for<[string, Record<string, string>]>([
    ['no header', {}],
    ['unknown token', { authorization: 'Bearer cq_not-a-real-token' }],
    ['another scheme', { authorization: 'Basic YWRtaW46YWRtaW4=' }],
    ['empty bearer', { authorization: 'Bearer ' }],
    ['oversized token', { authorization: `Bearer ${'x'.repeat(4000)}` }],
  ])('answers 401 with the error shape for %s', async ([_label, headers], { api }) => {
    const res = await api.request('GET', '/v1/orders', { headers });
    expectError(res, 401, 'unauthorized');
  });

  it('accepts the operator token and tenant tokens', async ({ api }) => {
    expect((await api.adminRequest('GET', '/v1/orders')).status).toBe(200);
    const tenant = await api.createTenant();
    expect((await api.tenantRequest(tenant.token, 'GET', '/v1/orders')).status).toBe(200);
  });

  it('answers 404 with the error shape for an unknown route, authenticated or not', async ({ api }) => {
    expectError(await api.request('GET', '/v1/nope'), 404, 'not_found');
    expectError(await api.adminRequest('GET', '/v1/nope'), 404, 'not_found');
  });
});
