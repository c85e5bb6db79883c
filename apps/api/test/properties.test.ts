import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { type HttpResult, it, type TestApi } from './helpers';

/** Strings that look like domains some of the time, and like trouble the rest. */
const domainish = fc.oneof(
  fc.domain(),
  fc.domain().map((d) => `*.${d}`),
  fc.domain().map((d) => d.toUpperCase()),
  fc.domain().map((d) => `${d}.`),
  fc.ipV4(),
  fc.ipV6(),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => `${s}.example`),
  fc.constantFrom('', '.', '*', '*.', 'a..b', '-a.com', 'a-.com', 'xn--.com', `${'a'.repeat(64)}.com`),
);

/** Replaced with the test tenant's id at send time (the tenant does not exist yet when this is built). */
const TENANT = '$TENANT$';

const validOrder = fc.record(
  {
    domains: fc.array(
      fc.oneof(
        fc.domain(),
        fc.domain().map((d) => `*.${d}`),
      ),
      { minLength: 1, maxLength: 4 },
    ),
    algorithm: fc.constantFrom('ECC', 'RSA'),
    ca: fc.constantFrom('google', 'letsencrypt', 'zerossl'),
    tenantId: fc.constant(TENANT),
  },
  { requiredKeys: ['domains'] },
);

const mangledOrder = fc.record(
  {
    domains: fc.oneof(fc.array(domainish, { maxLength: 5 }), fc.jsonValue()),
    algorithm: fc.oneof(fc.constantFrom('ECC', 'RSA', 'ecc', ''), fc.jsonValue()),
    ca: fc.oneof(fc.constantFrom('google', 'letsencrypt', 'zerossl', 'GOOGLE'), fc.jsonValue()),
    tenantId: fc.oneof(fc.uuid(), fc.string(), fc.jsonValue()),
    extra: fc.jsonValue(),
  },
  { requiredKeys: [] },
);

const orderish = fc.oneof(validOrder, mangledOrder);

const anyBody = fc.oneof(
  { weight: 3, arbitrary: orderish.map((b) => JSON.stringify(b)) },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.json() },
);

const bulkBody = fc.oneof(
  fc.record({ orders: fc.array(validOrder, { maxLength: 6 }) }).map((b) => JSON.stringify(b)),
  fc
    .record({ orders: fc.array(orderish, { maxLength: 6 }) }, { requiredKeys: [] })
    .map((b) => JSON.stringify(b)),
  fc.jsonValue().map((v) => JSON.stringify({ orders: v })),
  anyBody,
);

async function state(api: TestApi) {
  return [await api.countOrders(), await api.countJobs()];
}

async function checkAnswer(api: TestApi, send: () => Promise<HttpResult>) {
  const before = await state(api);
  const res = await send();
  if (res.status >= 500) throw new Error(`answered ${res.status}: ${res.text}`);
  if (res.status >= 400) {
    expect(res.body?.error?.code, res.text).toEqual(expect.any(String));
    expect(await state(api)).toEqual(before);
  } else {
    expect([200, 202]).toContain(res.status);
  }
}

/**
 * Whatever a client sends, the API answers 2xx or 4xx — never 5xx — and a 4xx leaves no trace:
 * no order row, no queued job.
 */
describe('arbitrary bodies', () => {
  for (const [path, bodies] of [
    ['/v1/orders', anyBody],
    ['/v1/orders/bulk', bulkBody],
  ] as const) {
    it(`POST ${path} never answers 5xx, and a 4xx stores nothing`, async ({ api, tenantA: tenant }) => {
      await fc.assert(
        fc.asyncProperty(bodies, fc.boolean(), async (raw, asAdmin) => {
          await checkAnswer(api, () =>
            api.request('POST', path, {
              token: asAdmin ? api.config.ADMIN_TOKEN : tenant.token,
              raw: raw.replaceAll(TENANT, tenant.id),
            }),
          );
        }),
        { numRuns: 150 },
      );
    });
  }

  it('query strings and path ids never cause a 5xx', async ({ api, tenantA: tenant }) => {
    const queryValue = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.integer().map(String),
      fc.uuid(),
      fc.domain(),
    );
    const query = fc.dictionary(
      fc.constantFrom(
        'status',
        'domain',
        'limit',
        'cursor',
        'tenantId',
        'includeHistory',
        'expiringWithinDays',
        'x',
      ),
      queryValue,
      { maxKeys: 4 },
    );
    const pathId = fc.oneof(fc.uuid(), fc.string({ maxLength: 60 }));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/v1/orders', '/v1/certificates', '/v1/orders/', '/v1/certificates/'),
        query,
        pathId,
        async (base, params, id) => {
          const path = base.endsWith('/')
            ? `${base}${encodeURIComponent(id)}`
            : `${base}?${new URLSearchParams(params).toString()}`;
          const res = await api.tenantRequest(tenant.token, 'GET', path);
          if (res.status >= 500) throw new Error(`GET ${path} answered ${res.status}: ${res.text}`);
          if (res.status >= 400) expect(res.body?.error?.code, res.text).toEqual(expect.any(String));
        },
      ),
      { numRuns: 150 },
    );
  });
});
