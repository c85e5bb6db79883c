import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { it, uniqueDomain } from '../../../apps/api/test/helpers';
import { generateSdkFiles } from '../scripts/codegen';
import { CertqApiError, createCertqClient, OPERATIONS, unwrap } from '../src';

describe('@certq/sdk', () => {
  it('is generated from the live /docs/json: regenerate with `pnpm --filter @certq/sdk generate`', async ({
    api,
  }) => {
    const served = await api.request('GET', '/docs/json');
    expect(served.status).toBe(200);
    const expected = await generateSdkFiles(served.body);
    const dir = join(import.meta.dirname, '..', 'src', 'generated');
    for (const [name, content] of Object.entries(expected)) {
      const committed = await readFile(join(dir, name), 'utf8');
      // One assertion per file, so a stale SDK names the file to regenerate.
      expect(
        committed,
        `packages/sdk/src/generated/${name} is stale: run pnpm --filter @certq/sdk generate`,
      ).toBe(content);
    }
    // Every operation of the document is a method of the client.
    const client = createCertqClient({ baseUrl: api.url });
    for (const id of Object.keys(OPERATIONS))
      expect(typeof client[id as keyof typeof OPERATIONS]).toBe('function');
  });

  it('creates a tenant, orders with its token and reads the order back, typed end to end', async ({
    api,
  }) => {
    const admin = createCertqClient({ baseUrl: `${api.url}/`, token: api.config.ADMIN_TOKEN });
    const tenant = await unwrap(admin.createTenant({ body: { name: `sdk-${Date.now()}` } }));
    expect(tenant.token).toBeTruthy();

    const client = createCertqClient({ baseUrl: api.url, token: tenant.token });
    const domain = uniqueDomain('sdk');
    const created = await client.createOrder({
      body: { domains: [domain.toUpperCase()] },
      params: { header: { 'idempotency-key': 'sdk-test-1' } },
    });
    expect(created.response.status).toBe(202);
    const order = created.data!;
    expect(order.domains).toEqual([domain]);
    expect(order.status).toBe('verifying');

    const again = await unwrap(client.getOrder({ params: { path: { id: order.id } } }));
    expect(again.id).toBe(order.id);
    const page = await unwrap(client.listOrders({ params: { query: { domain, limit: 10 } } }));
    expect(page.orders.map((o) => o.id)).toEqual([order.id]);
  });

  it('turns an error answer into a CertqApiError with the status, code and details', async ({ api }) => {
    const admin = createCertqClient({ baseUrl: api.url, token: api.config.ADMIN_TOKEN });
    const missing = unwrap(
      admin.getOrder({ params: { path: { id: '00000000-0000-4000-8000-000000000000' } } }),
    );
    await expect(missing).rejects.toMatchObject({ status: 404, code: 'not_found' });
    const invalid = await unwrap(
      admin.createOrdersBulk({ body: { orders: [{ domains: ['ok.example.com'] }, { domains: ['-bad-'] }] } }),
    ).catch((error: unknown) => error);
    expect(invalid).toBeInstanceOf(CertqApiError);
    expect(invalid).toMatchObject({ status: 400, code: 'validation_failed' });
    const anonymous = createCertqClient({ baseUrl: api.url });
    await expect(unwrap(anonymous.listTenants())).rejects.toMatchObject({ status: 401 });
  });
});
