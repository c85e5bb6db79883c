import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, startTestApi, type TestApi, type TestEnv, uniqueDomain } from './helpers';

let env: TestEnv;
let api: TestApi;

beforeAll(async () => {
  env = await createTestEnv();
  api = await startTestApi(env);
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
    const before = parseExposition((await api.request('GET', '/metrics')).text);
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
    const res = await api.request('GET', '/metrics');
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
