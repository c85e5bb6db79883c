import { stageJobId } from '@certq/core';
import { idempotencyKeys, lockOrder, orderDns, orderEvents, orders, transitionOrder } from '@certq/db';
import { and, asc, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { it, type TestApi, uniqueDomain } from './helpers';

async function failOrder(api: TestApi, id: string, applyId: string | null = null) {
  await api.env.handle.db.transaction(async (tx) => {
    const order = await lockOrder(tx, id);
    await transitionOrder(tx, {
      order: order!,
      to: 'failed',
      set: { lastError: 'upstream said no', applyId },
    });
  });
}

const ORDER_KEYS = [
  'algorithm',
  'applyId',
  'attempts',
  'ca',
  'caChoices',
  'certificateId',
  'createdAt',
  'dns',
  'domains',
  'id',
  'kind',
  'lastError',
  'progress',
  'renewalReason',
  'status',
  'tenantId',
  'updatedAt',
];

describe('POST /v1/orders', () => {
  it('stores the order, queues its verify job and answers 202 with the order object', async ({
    api,
    tenantA,
    asA,
  }) => {
    const domain = uniqueDomain();
    const res = await asA('POST', '/v1/orders', { domains: [domain], algorithm: 'RSA', ca: 'letsencrypt' });
    expect(res.status).toBe(202);
    expect(Object.keys(res.body).sort()).toEqual(ORDER_KEYS);
    expect(res.body).toMatchObject({
      tenantId: tenantA.id,
      kind: 'new',
      domains: [domain],
      algorithm: 'RSA',
      ca: 'letsencrypt',
      status: 'verifying',
      applyId: null,
      progress: 0,
      dns: [],
      attempts: 1,
      lastError: null,
      certificateId: null,
    });
    expect(new Date(res.body.createdAt).toISOString()).toBe(res.body.createdAt);
    const job = await api.queues.verify.getJob(stageJobId('verify', res.body.id, 1));
    expect(job?.data).toEqual({ orderId: res.body.id, run: 1 });
  });

  it('normalises domains: IDN to punycode, lower case, trailing dot, duplicates removed', async ({ asA }) => {
    const suffix = uniqueDomain('n');
    const res = await asA('POST', '/v1/orders', {
      domains: [`Bücher.${suffix}.`, `WWW.${suffix.toUpperCase()}`, `www.${suffix}`, `*.${suffix}`],
    });
    expect(res.status).toBe(202);
    expect(res.body.domains).toEqual([`xn--bcher-kva.${suffix}`, `www.${suffix}`, `*.${suffix}`]);
    expect(res.body.algorithm).toBe('ECC');
    expect(res.body.ca).toBe('google');
  });

  const label63 = 'a'.repeat(63);
  const tooLong = `${Array.from({ length: 4 }, () => label63).join('.')}.com`; // 259 characters
  it.for([
    ['no domains', { domains: [] }, 'domains'],
    ['101 domains', { domains: Array.from({ length: 101 }, (_, i) => `d${i}.example.com`) }, 'at most 100'],
    ['an IPv4 address', { domains: ['ok.example.com', '192.168.1.1'] }, 'domains[1]: IP addresses'],
    ['an IPv6 address', { domains: ['::1'] }, 'domains[0]: IP addresses'],
    ['a wildcard in the middle', { domains: ['a.*.example.com'] }, 'domains[0]: a wildcard'],
    ['a partial wildcard', { domains: ['foo*.example.com'] }, 'foo*.example.com'],
    ['a label over 63', { domains: [`${'b'.repeat(64)}.example.com`] }, 'longer than 63'],
    ['a name over 237 (no room for its _acme-challenge record)', { domains: [tooLong] }, 'longer than 237'],
    ['a single label', { domains: ['localhost'] }, 'two labels'],
    ['an empty domain', { domains: [''] }, 'empty domain'],
    ['domains as a string', { domains: 'example.com' }, 'domains'],
    ['a number as domain', { domains: [42] }, 'domains[0]'],
    ['null domains', { domains: null }, 'domains'],
    ['an unknown algorithm', { domains: ['x.example.com'], algorithm: 'DSA' }, 'algorithm'],
    ['an unknown CA', { domains: ['x.example.com'], ca: 'verisign' }, 'ca'],
    ['an unknown field', { domains: ['x.example.com'], priority: 1 }, 'priority'],
    ['a non-UUID tenantId', { domains: ['x.example.com'], tenantId: 'abc' }, 'tenantId'],
    ['an array body', [{ domains: ['x.example.com'] }], '(root)'],
    ['a string body', 'example.com', '(root)'],
    // Hidden characters: IDNA and URL parsing would drop them and order another name.
    ['a newline inside a name', { domains: ['ex\nample.com'] }, 'control character U+000A at position 3'],
    ['a tab inside a name', { domains: ['ex\tample.com'] }, 'control character U+0009 at position 3'],
    ['a NUL', { domains: ['example.com\u0000'] }, 'control character U+0000 at position 12'],
    ['a trailing newline', { domains: ['example.com\n'] }, 'control character U+000A'],
    ['a soft hyphen', { domains: ['ex\u00adample.com'] }, 'invisible character U+00AD at position 3'],
    ['a zero-width space', { domains: ['exa\u200bmple.com'] }, 'invisible character U+200B at position 4'],
    ['a zero-width joiner where CONTEXTJ refuses it', { domains: ['a\u200d.example.com'] }, 'CheckJoiners'],
    [
      'a right-to-left override',
      { domains: ['\u202eexample.com'] },
      'invisible character U+202E at position 1',
    ],
    ['a byte-order mark', { domains: ['\ufeffexample.com'] }, 'invisible character U+FEFF'],
    ['a variation selector', { domains: ['exa\ufe0fmple.com'] }, 'invisible character U+FE0F'],
    ['a space inside a name', { domains: ['exa mple.com'] }, 'white space U+0020 at position 4'],
    ['a no-break space inside', { domains: ['exa\u00a0mple.com'] }, 'white space U+00A0 at position 4'],
  ])(
    'answers 400 for %s, naming the problem, and stores nothing',
    async ([_label, body, mention], { api, asA }) => {
      const [ordersBefore, jobsBefore] = [await api.countOrders(), await api.countJobs()];
      const res = await asA('POST', '/v1/orders', body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
      expect(res.body.error.message).toContain(mention);
      expect(res.body.error.details.issues.length).toBeGreaterThan(0);
      expect([await api.countOrders(), await api.countJobs()]).toEqual([ordersBefore, jobsBefore]);
    },
  );

  it.for<[string, string, string, number, string]>([
    ['malformed JSON', '{"domains": ["a.example.com"', 'application/json', 400, 'invalid_json'],
    ['an empty JSON body', '', 'application/json', 400, 'invalid_json'],
    ['a huge number', '{"domains": 1e999999}', 'application/json', 400, 'validation_failed'],
    [
      'prototype poisoning',
      '{"__proto__": {"x": 1}, "domains": ["p.example.com"]}',
      'application/json',
      400,
      'invalid_json',
    ],
    ['text/plain', '{"domains": ["a.example.com"]}', 'text/plain', 415, 'unsupported_media_type'],
    ['a form', 'domains=a.example.com', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type'],
  ])(
    'answers %s with %s and the error shape, storing nothing',
    async ([_label, raw, type, status, code], { api, tenantA }) => {
      const [ordersBefore, jobsBefore] = [await api.countOrders(), await api.countJobs()];
      const res = await api.request('POST', '/v1/orders', {
        token: tenantA.token,
        raw,
        headers: { 'content-type': type },
      });
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect([await api.countOrders(), await api.countJobs()]).toEqual([ordersBefore, jobsBefore]);
    },
  );

  it('answers 400 when there is no body at all', async ({ api, tenantA }) => {
    const res = await api.request('POST', '/v1/orders', { token: tenantA.token });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
  });

  it('answers 413 with the error shape for a body over BODY_LIMIT_BYTES, storing nothing', async ({
    api,
    tenantA,
  }) => {
    const ordersBefore = await api.countOrders();
    const padding = 'x'.repeat(api.config.BODY_LIMIT_BYTES);
    const res = await api.request('POST', '/v1/orders', {
      token: tenantA.token,
      raw: JSON.stringify({ domains: ['big.example.com'], padding }),
    });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
    expect(await api.countOrders()).toBe(ordersBefore);
  });

  it('lets the operator order for a tenant named in the body', async ({ api, tenantB }) => {
    const domain = uniqueDomain();
    const res = await api.adminRequest('POST', '/v1/orders', { domains: [domain], tenantId: tenantB.id });
    expect(res.status).toBe(202);
    expect(res.body.tenantId).toBe(tenantB.id);
    const missing = await api.adminRequest('POST', '/v1/orders', { domains: [uniqueDomain()] });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toMatch(/^tenantId: required/);
    const unknown = await api.adminRequest('POST', '/v1/orders', {
      domains: [uniqueDomain()],
      tenantId: '7a1c0d5e-1111-4222-8333-944445555666',
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/unknown tenant/);
  });

  it("refuses a tenant's order for another tenant, accepts its own id", async ({ tenantA, tenantB, asA }) => {
    const other = await asA('POST', '/v1/orders', { domains: [uniqueDomain()], tenantId: tenantB.id });
    expect(other.status).toBe(400);
    expect(other.body.error.message).toContain('tenantId');
    const own = await asA('POST', '/v1/orders', { domains: [uniqueDomain()], tenantId: tenantA.id });
    expect(own.status).toBe(202);
  });
});

describe('duplicate active orders', () => {
  it('returns the existing active order with 200 for the same domain set, in any order and case', async ({
    api,
    asA,
    asB,
  }) => {
    const [d1, d2] = [uniqueDomain(), uniqueDomain()];
    const first = await asA('POST', '/v1/orders', { domains: [d1, d2] });
    expect(first.status).toBe(202);
    const [ordersBefore, jobsBefore] = [await api.countOrders(), await api.countJobs()];
    const again = await asA('POST', '/v1/orders', { domains: [d2.toUpperCase(), `${d1}.`] });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(again.body.domains).toEqual([d1, d2]);
    expect([await api.countOrders(), await api.countJobs()]).toEqual([ordersBefore, jobsBefore]);
    // Another tenant's identical set is refused: while A uses the names they are A's.
    const b = await asB('POST', '/v1/orders', { domains: [d1, d2] });
    expect(b.status).toBe(409);
    expect(b.body.error.code).toBe('domain_owned_by_another_tenant');
  });

  it('creates a new order once the previous one ended', async ({ asA }) => {
    const domain = uniqueDomain();
    const first = await asA('POST', '/v1/orders', { domains: [domain] });
    expect((await asA('DELETE', `/v1/orders/${first.body.id}`)).status).toBe(200);
    const second = await asA('POST', '/v1/orders', { domains: [domain] });
    expect(second.status).toBe(202);
    expect(second.body.id).not.toBe(first.body.id);
  });

  it('creates only one order when the same set is ordered concurrently', async ({ asA }) => {
    const domain = uniqueDomain();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => asA('POST', '/v1/orders', { domains: [domain] })),
    );
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.status === 202)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(7);
  });
});

describe('Idempotency-Key', () => {
  it('returns the same order for the same key and body, 409 for another body', async ({ api, asA, asB }) => {
    const key = `key-${uniqueDomain()}`;
    const body = { domains: [uniqueDomain()] };
    const first = await asA('POST', '/v1/orders', body, { 'idempotency-key': key });
    expect(first.status).toBe(202);
    const ordersBefore = await api.countOrders();
    const replay = await asA('POST', '/v1/orders', body, { 'idempotency-key': key });
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(first.body.id);
    // Same request, written differently (case, defaults spelled out): still the same request.
    const respelled = await asA(
      'POST',
      '/v1/orders',
      { domains: [body.domains[0]!.toUpperCase()], algorithm: 'ECC', ca: 'google' },
      { 'idempotency-key': key },
    );
    expect(respelled.body.id).toBe(first.body.id);
    const other = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] }, { 'idempotency-key': key });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    expect(await api.countOrders()).toBe(ordersBefore);
    // Keys are per tenant: B may use the same key for its own order.
    const b = await asB('POST', '/v1/orders', { domains: [uniqueDomain()] }, { 'idempotency-key': key });
    expect(b.status).toBe(202);
  });

  it('replays the original order even after it was cancelled', async ({ asA }) => {
    const key = `key-${uniqueDomain()}`;
    const body = { domains: [uniqueDomain()] };
    const first = await asA('POST', '/v1/orders', body, { 'idempotency-key': key });
    await asA('DELETE', `/v1/orders/${first.body.id}`);
    const replay = await asA('POST', '/v1/orders', body, { 'idempotency-key': key });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ id: first.body.id, status: 'cancelled' });
  });

  it('creates exactly one order for concurrent requests with one key and one body', async ({
    api,
    env,
    tenantA,
    asA,
  }) => {
    const key = `key-${uniqueDomain()}`;
    const body = { domains: [uniqueDomain()] };
    const before = await api.countOrders();
    const results = await Promise.all(
      Array.from({ length: 10 }, () => asA('POST', '/v1/orders', body, { 'idempotency-key': key })),
    );
    expect(results.every((r) => r.status === 200 || r.status === 202)).toBe(true);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(await api.countOrders()).toBe(before + 1);
    const rows = await env.handle.db
      .select()
      .from(idempotencyKeys)
      .where(and(eq(idempotencyKeys.tenantId, tenantA.id), eq(idempotencyKeys.key, key)));
    expect(rows).toHaveLength(1);
  });

  it('creates at most one order for concurrent requests with one key and different bodies', async ({
    api,
    asA,
  }) => {
    const key = `key-${uniqueDomain()}`;
    const before = await api.countOrders();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        asA('POST', '/v1/orders', { domains: [uniqueDomain()] }, { 'idempotency-key': key }),
      ),
    );
    expect(results.filter((r) => r.status === 202)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(9);
    expect(await api.countOrders()).toBe(before + 1);
  });

  it('answers 400 for a malformed key', async ({ asA }) => {
    const res = await asA(
      'POST',
      '/v1/orders',
      { domains: [uniqueDomain()] },
      { 'idempotency-key': 'k'.repeat(256) },
    );
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain('Idempotency-Key');
  });
});

describe('GET /v1/orders/{id}', () => {
  it('shows the order with its DNS instructions in domain order', async ({ env, asA }) => {
    const [d1, d2] = [uniqueDomain(), uniqueDomain()];
    const created = await asA('POST', '/v1/orders', { domains: [d1, d2] });
    await env.handle.db.insert(orderDns).values([
      {
        orderId: created.body.id,
        domain: d2,
        host: '_acme-challenge.x',
        hostValue: 'b.httpsok.com',
        valid: true,
      },
      {
        orderId: created.body.id,
        domain: d1,
        host: '_acme-challenge',
        hostValue: 'a.httpsok.com',
        valid: false,
      },
    ]);
    const res = await asA('GET', `/v1/orders/${created.body.id}`);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(ORDER_KEYS);
    const checked = { status: 'pending', found: null, reason: null, checkedAt: expect.any(String) };
    expect(res.body.dns).toEqual([
      { domain: d1, host: '_acme-challenge', hostValue: 'a.httpsok.com', valid: false, ...checked },
      { domain: d2, host: '_acme-challenge.x', hostValue: 'b.httpsok.com', valid: true, ...checked },
    ]);
    expect(new Date(res.body.dns[0].checkedAt).toISOString()).toBe(res.body.dns[0].checkedAt);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('answers 404 for unknown ids, ids that are not UUIDs and other tenants’ orders', async ({
    api,
    asA,
    asB,
  }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    for (const path of [
      '/v1/orders/5f0c6a8e-2b1d-4c3e-9f4a-0123456789ab',
      '/v1/orders/not-a-uuid',
      '/v1/orders/123',
      `/v1/orders/${created.body.id}x`,
      `/v1/orders/${'a'.repeat(2000)}`,
    ]) {
      const res = await asA('GET', path);
      expect(res.status, path).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
    expect((await asB('GET', `/v1/orders/${created.body.id}`)).status).toBe(404);
    expect((await api.adminRequest('GET', `/v1/orders/${created.body.id}`)).status).toBe(200);
  });
});

describe('GET /v1/orders', () => {
  it('pages through every order newest first, without duplicates or omissions', async ({ api }) => {
    const tenant = await api.createTenant();
    // Singly created orders, then a bulk whose orders share one created_at (ties broken by id).
    const single: string[] = [];
    for (let i = 0; i < 9; i++)
      single.push(
        (await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain()] })).body.id,
      );
    const bulk = await api.tenantRequest(tenant.token, 'POST', '/v1/orders/bulk', {
      orders: Array.from({ length: 14 }, () => ({ domains: [uniqueDomain()] })),
    });
    expect(bulk.status).toBe(202);
    const all = new Set([...single, ...bulk.body.orders.map((o: { id: string }) => o.id)]);

    const seen: string[] = [];
    const stamps: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=4&cursor=${cursor}` : '?limit=4';
      const res = await api.tenantRequest(tenant.token, 'GET', `/v1/orders${query}`);
      expect(res.status).toBe(200);
      expect(res.body.orders.length).toBeLessThanOrEqual(4);
      for (const o of res.body.orders) {
        seen.push(o.id);
        stamps.push(o.createdAt);
      }
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(6);
    expect(seen).toHaveLength(all.size);
    expect(new Set(seen)).toEqual(all);
    expect([...stamps].sort().reverse()).toEqual(stamps);
    // The singles came before the bulk: the newest page starts with the bulk's orders.
    expect(single).toContain(seen[seen.length - 1]);
  });

  it('filters by status and by domain, and confines a tenant to its own orders', async ({
    api,
    tenantA,
    tenantB,
    asA,
    asB,
  }) => {
    const shared = uniqueDomain('shared');
    const a1 = await asA('POST', '/v1/orders', { domains: [shared] });
    const a2 = await asA('POST', '/v1/orders', { domains: [shared, uniqueDomain()] });
    const ofB = uniqueDomain('of-b');
    const b1 = await asB('POST', '/v1/orders', { domains: [ofB] });
    await asA('DELETE', `/v1/orders/${a2.body.id}`);

    const byDomain = await asA('GET', `/v1/orders?domain=${shared.toUpperCase()}.`);
    expect(byDomain.body.orders.map((o: { id: string }) => o.id).sort()).toEqual(
      [a1.body.id, a2.body.id].sort(),
    );
    const cancelled = await asA('GET', `/v1/orders?domain=${shared}&status=cancelled`);
    expect(cancelled.body.orders.map((o: { id: string }) => o.id)).toEqual([a2.body.id]);
    const forB = await asB('GET', `/v1/orders?domain=${ofB}`);
    expect(forB.body.orders.map((o: { id: string }) => o.id)).toEqual([b1.body.id]);
    expect((await asB('GET', `/v1/orders?domain=${shared}`)).body.orders).toEqual([]);
    // A tenant naming another tenant gets nothing of it.
    const sneaky = await asB('GET', `/v1/orders?tenantId=${tenantA.id}`);
    expect(sneaky.body.orders).toEqual([]);
    // The operator sees all tenants, and may narrow to one.
    const admin = await api.adminRequest('GET', `/v1/orders?domain=${shared}`);
    expect(admin.body.orders).toHaveLength(2);
    const adminB = await api.adminRequest('GET', `/v1/orders?domain=${ofB}&tenantId=${tenantB.id}`);
    expect(adminB.body.orders.map((o: { id: string }) => o.id)).toEqual([b1.body.id]);
  });

  it.for([
    ['limit=0'],
    ['limit=101'],
    ['limit=abc'],
    ['limit=1e400'],
    ['status=done'],
    ['cursor=garbage'],
    [
      `cursor=${Buffer.from('["2024-02-30T00:00:00.000000Z","5f0c6a8e-2b1d-4c3e-9f4a-0123456789ab"]').toString('base64url')}`,
    ],
    [`cursor=${Buffer.from('["2024-01-01T00:00:00.000000Z","nope"]').toString('base64url')}`],
    [`cursor=${Buffer.from('{"t":1}').toString('base64url')}`],
    ['domain=1.2.3.4'],
    ['tenantId=abc'],
    ['unknown=1'],
    ['limit=1&limit=2'],
  ])('answers 400 for %s', async ([query], { asA }) => {
    const res = await asA('GET', `/v1/orders?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
  });
});

describe('POST /v1/orders/{id}/retry', () => {
  it('starts a failed order again from verifying with a fresh run', async ({ api, env, tenantA, asA }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    const id = created.body.id;
    await failOrder(api, id, `apply-${id}`);
    const res = await asA('POST', `/v1/orders/${id}/retry`);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ id, status: 'verifying', attempts: 2, applyId: null, lastError: null });
    const [row] = await env.handle.db.select().from(orders).where(eq(orders.id, id));
    expect(row).toMatchObject({
      stageAttempts: 0,
      lastPolledAt: null,
      callbackSecretHash: null,
      progress: 0,
    });
    const events = await env.handle.db
      .select()
      .from(orderEvents)
      .where(eq(orderEvents.orderId, id))
      .orderBy(asc(orderEvents.id));
    expect(events.at(-1)).toMatchObject({
      type: 'retried',
      fromStatus: 'failed',
      toStatus: 'verifying',
      detail: { previousApplyId: `apply-${id}`, by: `tenant:${tenantA.id}` },
    });
    const job = await api.queues.verify.getJob(stageJobId('verify', id, 2));
    expect(job?.data).toEqual({ orderId: id, run: 2 });
  });

  it('answers 409 not_retryable for an order that is not failed', async ({ asA }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    const res = await asA('POST', `/v1/orders/${created.body.id}/retry`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('not_retryable');
    await asA('DELETE', `/v1/orders/${created.body.id}`);
    expect((await asA('POST', `/v1/orders/${created.body.id}/retry`)).body.error.code).toBe('not_retryable');
  });

  it('answers 409 conflict when another active order took the domain set meanwhile', async ({
    api,
    env,
    asA,
  }) => {
    const domain = uniqueDomain();
    const first = await asA('POST', '/v1/orders', { domains: [domain] });
    await failOrder(api, first.body.id);
    const second = await asA('POST', '/v1/orders', { domains: [domain] });
    expect(second.status).toBe(202);
    const res = await asA('POST', `/v1/orders/${first.body.id}/retry`);
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'conflict', details: { activeOrderId: second.body.id } });
    const [row] = await env.handle.db.select().from(orders).where(eq(orders.id, first.body.id));
    expect(row!.status).toBe('failed');
  });

  it("answers 404 for another tenant's order and for unknown ids", async ({ api, env, asA, asB }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    await failOrder(api, created.body.id);
    expect((await asB('POST', `/v1/orders/${created.body.id}/retry`)).status).toBe(404);
    expect((await asA('POST', '/v1/orders/not-a-uuid/retry')).status).toBe(404);
    const [row] = await env.handle.db.select().from(orders).where(eq(orders.id, created.body.id));
    expect(row!.status).toBe('failed');
    // The operator may retry any tenant's order.
    expect((await api.adminRequest('POST', `/v1/orders/${created.body.id}/retry`)).status).toBe(202);
  });
});

describe('DELETE /v1/orders/{id}', () => {
  it('cancels an active order and records who did', async ({ env, tenantA, asA }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    const res = await asA('DELETE', `/v1/orders/${created.body.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: created.body.id, status: 'cancelled' });
    const events = await env.handle.db
      .select()
      .from(orderEvents)
      .where(eq(orderEvents.orderId, created.body.id));
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'cancelled',
        toStatus: 'cancelled',
        detail: { by: `tenant:${tenantA.id}` },
      }),
    );
  });

  it('answers 409 for an order that already ended', async ({ api, asA }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    await asA('DELETE', `/v1/orders/${created.body.id}`);
    const again = await asA('DELETE', `/v1/orders/${created.body.id}`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('not_cancellable');
    const failed = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    await failOrder(api, failed.body.id);
    expect((await asA('DELETE', `/v1/orders/${failed.body.id}`)).status).toBe(409);
  });

  it("answers 404 for another tenant's order and leaves it alone", async ({ asA, asB }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    expect((await asB('DELETE', `/v1/orders/${created.body.id}`)).status).toBe(404);
    expect((await asA('GET', `/v1/orders/${created.body.id}`)).body.status).toBe('verifying');
  });
});
