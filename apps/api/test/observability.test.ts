import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stats, StatsSnapshot } from '../src/observability/stats';
import { createTestEnv, startTestApi, type TestApi, type TestEnv, uniqueDomain } from './helpers';

let env: TestEnv;
let api: TestApi;
const METRICS_TOKEN = `metrics-${randomBytes(12).toString('hex')}`;
const scrape = () => api.request('GET', '/metrics', { token: METRICS_TOKEN });

beforeAll(async () => {
  env = await createTestEnv();
  // A snapshot read at every request, so counts move at once (the cached default is tested below).
  api = await startTestApi(env, { env: { METRICS_TOKEN, STATS_MAX_AGE_MS: '0' } });
});
afterAll(async () => {
  await api?.close();
  await env?.close();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text exposition format (what `promtool check metrics` checks for
 * syntax): every sample line parses, every family has HELP and TYPE before its samples, names follow
 * the naming rules, counters end in _total.
 */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      expect(meta[2]).toMatch(name);
      if (meta[1] === 'HELP') helps.add(meta[2]!);
      else {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(meta[3]);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(sample, `unparsable line: ${line}`).not.toBeNull();
    const [, metric, rawLabels = '', value] = sample!;
    const labels: Record<string, string> = {};
    for (const match of rawLabels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[match[1]!] = match[2]!;
    const family = [...types.keys()].find(
      (f) =>
        metric === f ||
        (metric!.startsWith(f) && /^_(bucket|sum|count|total)$/.test(metric!.slice(f.length))),
    );
    expect(family, `sample ${metric} has no TYPE`).toBeDefined();
    expect(helps.has(family!), `${family} has no HELP`).toBe(true);
    // Go's ParseFloat (Prometheus' parser) takes NaN and Inf in any case.
    expect(/^[+-]?(inf|nan)$/i.test(value!) || !Number.isNaN(Number(value)), `${metric} value ${value}`).toBe(
      true,
    );
    samples.push({ name: metric!, labels, value: Number(value) });
  }
  for (const [family, type] of types) if (type === 'counter') expect(family).toMatch(/_total$/);
  return { samples, types };
}

const value = (samples: Sample[], name: string, labels: Record<string, string>) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe('GET /metrics', () => {
  it('is valid exposition text with certq metrics that move as orders flow', async () => {
    const before = parseExposition((await scrape()).text);
    for (const family of [
      'certq_queue_jobs',
      'certq_orders',
      'certq_renewals_due',
      'certq_http_request_duration_seconds',
      'certq_api_process_cpu_seconds_total',
    ]) {
      expect(before.types.has(family), family).toBe(true);
    }
    const verifyingBefore = value(before.samples, 'certq_orders', { status: 'verifying' }) ?? 0;
    const tenant = await api.createTenant();
    for (let i = 0; i < 3; i++) {
      expect(
        (await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain()] })).status,
      ).toBe(202);
    }
    const res = await scrape();
    expect(res.headers.get('content-type')).toContain('text/plain');
    const after = parseExposition(res.text).samples;
    expect(value(after, 'certq_orders', { status: 'verifying' })).toBe(verifyingBefore + 3);
    const queued = after
      .filter((s) => s.name === 'certq_queue_jobs' && s.labels.queue === 'certq-verify')
      .reduce((sum, s) => sum + s.value, 0);
    expect(queued).toBeGreaterThanOrEqual(3);
    // Route patterns, never raw URLs, in labels.
    const routes = after
      .filter((s) => s.name === 'certq_http_request_duration_seconds_count')
      .map((s) => s.labels.route);
    expect(routes).toContain('/v1/orders');
    expect(routes.some((r) => r?.includes(tenant.id))).toBe(false);
    expect(res.text).not.toContain(tenant.token);
  });

  it('answers only to METRICS_TOKEN or the operator token', async () => {
    const anonymous = await api.request('GET', '/metrics');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe('unauthorized');
    expect(anonymous.text).not.toContain('certq_orders');
    const tenant = await api.createTenant();
    expect((await api.request('GET', '/metrics', { token: tenant.token })).status).toBe(401);
    expect((await api.request('GET', '/metrics', { token: `${METRICS_TOKEN}x` })).status).toBe(401);
    expect((await scrape()).status).toBe(200);
    expect((await api.adminRequest('GET', '/metrics')).status).toBe(200);
  });

  it('carries no tenant data in labels by default, and a bounded set of series', async () => {
    const tenant = await api.createTenant('labels-tenant');
    const domain = uniqueDomain('labels');
    await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [domain] });
    // A current certificate of that tenant, expiring tomorrow.
    await env.handle.pool.query(
      `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
         not_before, not_after, fingerprint, certificate_pem, private_key_sealed)
       select tenant_id, id, domains, domains_key, 'a1', algorithm, ca, now(), now() + interval '1 day',
         'fp', 'pem', 'sealed' from orders where tenant_id = $1`,
      [tenant.id],
    );
    const res = await scrape();
    expect(res.status).toBe(200);
    expect(res.text).not.toContain(tenant.id);
    expect(res.text).not.toContain(domain);
    const { samples } = parseExposition(res.text);
    expect(value(samples, 'certq_certificates', { expires_in_days: '0-7' })).toBeGreaterThanOrEqual(1);
    const soonest = value(samples, 'certq_certificate_soonest_expiration_timestamp_seconds', {});
    expect(soonest).toBeLessThanOrEqual(Date.now() / 1000 + 86_400 + 1);
    expect(samples.some((s) => s.name === 'certq_certificate_expiration_timestamp_seconds')).toBe(false);
  });

  it('per-certificate series only inside METRICS_CERTIFICATE_WINDOW_DAYS, tenant labels only when asked', async () => {
    const windowed = await startTestApi(env, {
      env: {
        METRICS_TOKEN,
        STATS_MAX_AGE_MS: '0',
        METRICS_CERTIFICATE_WINDOW_DAYS: '7',
        METRICS_TENANT_LABELS: 'true',
      },
    });
    try {
      const tenant = await api.createTenant('window-tenant');
      for (const days of [2, 40]) {
        await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain(`w${days}`)] });
        await env.handle.pool.query(
          `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
             not_before, not_after, fingerprint, certificate_pem, private_key_sealed)
           select tenant_id, id, domains, domains_key, 'a1', algorithm, ca, now(), now() + make_interval(days => $2),
             'fp', 'pem', 'sealed' from orders o where tenant_id = $1
             and not exists (select 1 from certificates c where c.order_id = o.id)`,
          [tenant.id, days],
        );
      }
      const { rows } = await env.handle.pool.query(
        'select id, not_after from certificates where tenant_id = $1 order by not_after',
        [tenant.id],
      );
      const res = await windowed.request('GET', '/metrics', { token: METRICS_TOKEN });
      const perCertificate = parseExposition(res.text).samples.filter(
        (s) => s.name === 'certq_certificate_expiration_timestamp_seconds',
      );
      const ids = perCertificate.map((s) => s.labels.certificate_id);
      expect(ids).toContain(rows[0].id);
      expect(ids).not.toContain(rows[1].id);
      expect(perCertificate.find((s) => s.labels.certificate_id === rows[0].id)?.labels.tenant_id).toBe(
        tenant.id,
      );
    } finally {
      await windowed.close();
    }
  });
});

describe('stats snapshot', () => {
  const stats = (n: number) => ({ generatedAt: String(n) }) as unknown as Stats;

  it('is reused while fresh, refreshed in the background when stale, awaited when older than twice the age', async () => {
    let now = 0;
    let computed = 0;
    let release: (() => void) | undefined;
    const snapshot = new StatsSnapshot(
      async () => {
        computed++;
        if (computed === 2) await new Promise<void>((r) => (release = r));
        return stats(computed);
      },
      1000,
      () => {},
      () => now,
    );
    expect((await snapshot.get()).generatedAt).toBe('1');
    now = 999;
    expect((await snapshot.get()).generatedAt).toBe('1');
    // Stale: the old snapshot at once, one refresh in the background however many ask.
    now = 1500;
    expect((await snapshot.get()).generatedAt).toBe('1');
    expect((await snapshot.get()).generatedAt).toBe('1');
    expect(computed).toBe(2);
    release!();
    await new Promise((r) => setImmediate(r));
    expect((await snapshot.get()).generatedAt).toBe('2');
    // Too old to serve: the request waits for a fresh one.
    now = 1500 + 2001;
    expect((await snapshot.get()).generatedAt).toBe('3');
  });

  it('GET /v1/stats is served from the snapshot by default (STATS_MAX_AGE_MS)', async () => {
    const cached = await startTestApi(env);
    try {
      const first = await cached.adminRequest('GET', '/v1/stats');
      const tenant = await api.createTenant();
      await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain()] });
      const second = await cached.adminRequest('GET', '/v1/stats');
      expect(second.body.generatedAt).toBe(first.body.generatedAt);
      expect(second.body.orders.byStatus).toEqual(first.body.orders.byStatus);
    } finally {
      await cached.close();
    }
  });

  it('/admin reads the snapshot /v1/stats took, not one of its own', async () => {
    const cached = await startTestApi(env);
    try {
      await cached.adminRequest('GET', '/v1/stats');
      // Ordered after the snapshot: a console with its own (cold) snapshot would list this tenant.
      const tenant = await api.createTenant(`after-snapshot-${randomBytes(4).toString('hex')}`);
      await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain()] });
      const page = await cached.request('GET', '/admin', {
        headers: { authorization: `Bearer ${cached.config.ADMIN_TOKEN}` },
      });
      expect(page.status).toBe(200);
      expect(page.text).toContain('id="chart-expiring"');
      expect(page.text).not.toContain(tenant.name);
    } finally {
      await cached.close();
    }
  });
});

describe('operator views', () => {
  it('GET /v1/stats: counts by status and tenant, for the operator only', async () => {
    const tenant = await api.createTenant('stats-tenant');
    await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain()] });
    const stats = await api.adminRequest('GET', '/v1/stats');
    expect(stats.status).toBe(200);
    expect(stats.body.orders.byStatus.verifying).toBeGreaterThanOrEqual(1);
    expect(
      stats.body.orders.byTenant.find((t: { tenantName: string }) => t.tenantName === 'stats-tenant')
        .byStatus,
    ).toEqual({ verifying: 1 });
    expect(Object.keys(stats.body.certificates.byDaysToExpiry)).toEqual([
      'expired',
      '0-7',
      '8-30',
      '31-60',
      '61+',
    ]);
    expect((await api.tenantRequest(tenant.token, 'GET', '/v1/stats')).status).toBe(404);
    expect((await api.request('GET', '/v1/stats')).status).toBe(401);
  });

  it('/admin and /admin/queues refuse without the operator token and ask browsers for it', async () => {
    for (const path of ['/admin', '/admin/queues', '/admin/queues/api/queues']) {
      const anonymous = await api.request('GET', path);
      expect(anonymous.status, path).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm="certq admin"/);
      const tenant = await api.createTenant();
      expect(
        (await api.request('GET', path, { headers: { authorization: `Bearer ${tenant.token}` } })).status,
      ).toBe(401);
      const wrong = Buffer.from('admin:not-the-token').toString('base64');
      expect((await api.request('GET', path, { headers: { authorization: `Basic ${wrong}` } })).status).toBe(
        401,
      );
    }
  });

  it('/admin renders the counts and /admin/queues lists every certq queue', async () => {
    const basic = `Basic ${Buffer.from(`operator:${api.config.ADMIN_TOKEN}`).toString('base64')}`;
    const page = await api.request('GET', '/admin', { headers: { authorization: basic } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.text).toContain('id="chart-expiring"');
    // Renewal demand vs the upstream ceiling, drawn on the server.
    expect(page.text).toMatch(/<figure class="capacity">[\s\S]*<line class="ceiling"/);
    expect(page.text).toContain('href="/admin/queues"');
    const board = await api.request('GET', '/admin/queues', { headers: { authorization: basic } });
    expect(board.status).toBe(200);
    expect(board.text).toContain('<div id="root">');
    const listed = await api.request('GET', '/admin/queues/api/queues', {
      headers: { authorization: `Bearer ${api.config.ADMIN_TOKEN}` },
    });
    expect(listed.status).toBe(200);
    const names = (listed.body.queues as { name: string }[]).map((q) => q.name).sort();
    expect(names).toEqual([
      'certq-apply',
      'certq-maintenance',
      'certq-poll',
      'certq-verify',
      'certq-webhooks',
    ]);
    // Job payloads carry ids, never secrets.
    expect(listed.text).not.toContain(api.config.ADMIN_TOKEN);
  });
});
