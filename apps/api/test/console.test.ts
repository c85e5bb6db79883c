import { randomBytes } from 'node:crypto';
import { edgeTokens, lockOrder, orderEvents, transitionOrder } from '@certq/db';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, startTestApi, type TestApi, type TestEnv } from './helpers';

/**
 * The console's HTTP side without a browser (test/console.test.ts drives it in Chromium): the domain
 * search's three forms, bad filters answered 400 in the page, the action guards (HX-Request, viewer,
 * workflow refusals) and a bulk retry from its count to its progress.
 */
let env: TestEnv;
let api: TestApi;
const viewerToken = `viewer-${randomBytes(16).toString('hex')}`;
const zone = `z${randomBytes(4).toString('hex')}.example.com`;
let tenant: { id: string; name: string };
const ids: Record<string, string> = {};

const basic = (token: string) => `Basic ${Buffer.from(`op:${token}`).toString('base64')}`;
const get = (path: string, token = api.config.ADMIN_TOKEN!) =>
  api.request('GET', path, { headers: { authorization: basic(token) } });
const post = (
  path: string,
  options: { token?: string; htmx?: boolean; form?: Record<string, string> } = {},
) =>
  api.request('POST', path, {
    headers: {
      authorization: basic(options.token ?? api.config.ADMIN_TOKEN!),
      'content-type': 'application/x-www-form-urlencoded',
      ...(options.htmx === false ? {} : { 'hx-request': 'true' }),
    },
    raw: new URLSearchParams(options.form ?? {}).toString(),
  });
const found = (text: string) => Object.keys(ids).filter((k) => text.includes(`data-order="${ids[k]}"`));

async function fail(id: string) {
  await env.handle.db.transaction(async (tx) => {
    const order = await lockOrder(tx, id);
    await transitionOrder(tx, { order: order!, to: 'failed', set: { lastError: 'test: failed' } });
  });
}

beforeAll(async () => {
  env = await createTestEnv();
  api = await startTestApi(env, { extraConfig: { VIEWER_TOKEN: viewerToken } });
  tenant = await api.createTenant();
  const place = async (name: string, domains: string[]) => {
    const res = await api.adminRequest('POST', '/v1/orders', { tenantId: tenant.id, domains });
    expect(res.status).toBe(202);
    ids[name] = res.body.id;
  };
  await place('wildcard', [`*.shop.${zone}`, `shop.${zone}`]);
  await place('plain', [`blog.${zone}`]);
  await place('deep', [`a.deep.${zone}`]);
  await place('other', [`shop.other-${zone}`]);
  await fail(ids.plain!);
  await fail(ids.deep!);
});
afterAll(async () => {
  await api?.close();
  await env?.close();
});

describe('console search', () => {
  it('finds a name, the wildcard covering it, prefixes and every name under a domain', async () => {
    const search = async (q: string) =>
      found((await get(`/admin/orders/rows?q=${encodeURIComponent(q)}`)).text);
    expect(await search(`shop.${zone}`)).toEqual(['wildcard']);
    expect(await search(`www.shop.${zone}`)).toEqual(['wildcard']); // covered by *.shop.<zone>
    expect(await search(`blog.${zone.slice(0, 6)}*`)).toEqual(['plain']);
    expect((await search(`*.${zone}`)).sort()).toEqual(['deep', 'plain', 'wildcard']);
    expect(await search(`*.deep.${zone}`)).toEqual(['deep']);
    expect(await search(`nothing.${zone}`)).toEqual([]);
  });

  it('combines the domain with tenant (by name), status and kind', async () => {
    const res = await get(
      `/admin/orders?q=${encodeURIComponent(`*.${zone}`)}&tenant=${tenant.name}&status=failed&kind=new`,
    );
    expect(res.status).toBe(200);
    expect(found(res.text).sort()).toEqual(['deep', 'plain']);
  });

  it('answers a bad filter with 400 and says why, in the page', async () => {
    for (const [query, message] of [
      ['q=ab*', 'at least 3 characters'],
      ['q=*.', 'domain'],
      ['status=bogus', 'Invalid option'],
      ['from=yesterday', 'YYYY-MM-DDTHH:MM'],
      ['tenant=nobody-at-all', 'no tenant'],
    ] as const) {
      const res = await get(`/admin/orders?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.text, query).toContain(message);
      expect(res.headers.get('content-type')).toContain('text/html');
    }
  });
});

describe('console actions', () => {
  it('are refused without the HX-Request header the console sends (no cross-site form posts)', async () => {
    const res = await post(`/admin/orders/${ids.plain}/retry`, { htmx: false });
    expect(res.status).toBe(403);
    expect((await api.adminRequest('GET', `/v1/orders/${ids.plain}`)).body.status).toBe('failed');
  });

  it('are refused to the viewer (403), who still reads every page', async () => {
    expect((await get(`/admin/orders/${ids.plain}`, viewerToken)).status).toBe(200);
    expect((await get(`/admin/tenants/${tenant.id}`, viewerToken)).status).toBe(200);
    for (const path of [
      `/admin/orders/${ids.plain}/retry`,
      `/admin/orders/${ids.wildcard}/cancel`,
      '/admin/bulk',
    ]) {
      const res = await post(path, { token: viewerToken, form: { action: 'retry', status: 'failed' } });
      expect(res.status, path).toBe(403);
      expect(res.text).toContain('viewer');
    }
    expect((await api.adminRequest('GET', `/v1/orders/${ids.plain}`)).body.status).toBe('failed');
    expect((await api.adminRequest('GET', `/v1/orders/${ids.wildcard}`)).body.status).toBe('verifying');
  });

  it('shows the workflow’s refusal (409) when an order cannot take the action', async () => {
    const res = await post(`/admin/orders/${ids.wildcard}/retry`);
    expect(res.status).toBe(409);
    expect(res.text).toContain('only a failed order can be retried');
  });

  it('bulk-retries the failed orders of a filter: a count first, then progress to the end', async () => {
    const filter = `q=${encodeURIComponent(`*.${zone}`)}`;
    const preview = await get(`/admin/bulk/preview?${filter}&action=retry`);
    expect(preview.status).toBe(200);
    expect(preview.text).toMatch(/3 orders match: <b>2<\/b> failed orders will be retried/);
    const started = await post(`/admin/bulk?${filter}`, { form: { action: 'retry', expected: '2' } });
    expect(started.status).toBe(200);
    const jobId = /data-job="([0-9a-f-]{36})"/.exec(started.text)?.[1];
    expect(jobId).toBeDefined();
    await expect
      .poll(async () => (await get(`/admin/bulk/${jobId}`)).text, { timeout: 10_000 })
      .toMatch(/<b class="done">2<\/b> of <b class="total">2<\/b> done/);
    const done = (await get(`/admin/bulk/${jobId}`)).text;
    expect(done).toMatch(/data-status="verifying">.*verifying.* 2/s);
    for (const name of ['plain', 'deep']) {
      const order = (await api.adminRequest('GET', `/v1/orders/${ids[name]}`)).body;
      expect(order).toMatchObject({ status: 'verifying', attempts: 2 });
      const events = await env.handle.db
        .select()
        .from(orderEvents)
        .where(eq(orderEvents.orderId, ids[name]!));
      expect(events.find((e) => e.type === 'retried')?.detail).toMatchObject({ by: 'admin:console' });
    }
  });
});

describe('console edges', () => {
  it('lists each edge token’s last contact, the stale ones first and marked', async () => {
    const make = async (name: string) => (await api.adminRequest('POST', '/v1/edge-tokens', { name })).body;
    const fresh = await make(`edge-fresh-${zone}`);
    const stale = await make(`edge-stale-${zone}`);
    await env.handle.db
      .update(edgeTokens)
      .set({ lastSeenAt: new Date(Date.now() - 10 * 60_000) })
      .where(eq(edgeTokens.id, stale.id));
    await env.handle.db.update(edgeTokens).set({ lastSeenAt: new Date() }).where(eq(edgeTokens.id, fresh.id));
    const res = await get('/admin/edge-tokens', viewerToken);
    expect(res.status).toBe(200);
    expect(res.text).toContain('href="/admin/edge-tokens"');
    const staleAt = res.text.indexOf(`edge-stale-${zone}`);
    expect(staleAt).toBeGreaterThan(0);
    expect(staleAt).toBeLessThan(res.text.indexOf(`edge-fresh-${zone}`));
    expect(res.text.slice(staleAt).split('</tr>')[0]).toMatch(/10 min ago.*<strong>stale<\/strong>/s);
    expect(res.text.slice(res.text.indexOf(`edge-fresh-${zone}`)).split('</tr>')[0]).toMatch(
      /under a minute ago.*<td>ok<\/td>/s,
    );
    const listed = (await api.adminRequest('GET', '/v1/edge-tokens')).body.edgeTokens;
    expect(listed.find((t: { id: string }) => t.id === stale.id).lastSeenAt).toMatch(/^\d{4}-/);
  });
});
