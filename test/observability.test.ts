import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiMetrics, type Stats } from '@certq/api';
import type { Database } from '@certq/db';
import { requireBinary } from '@certq/testing/probes';
import { createWorkerMetrics } from '@certq/worker';
import type { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';

/**
 * The dashboards and alerts may only use metrics the code exports. The names come from the real
 * registries (the worker's and the API's), rendered to the Prometheus text format and read back with a
 * small exposition parser; the rules are checked with promtool (Debian's `prometheus`; without it those
 * tests fail saying so). The running processes' /metrics go through promtool in metrics-exposition.test.ts.
 */
const root = join(import.meta.dirname, '..');

interface Family {
  type: string;
  samples: string[];
}

/** A strict-enough reader of the text exposition format: HELP/TYPE lines, then samples of that family. */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const name = /[a-zA-Z_:][a-zA-Z0-9_:]*/.source;
  const labelValue = /"(?:[^"\\]|\\.)*"/.source;
  const sample = new RegExp(
    `^(${name})(\\{(?:[a-zA-Z_][a-zA-Z0-9_]*=${labelValue},?)*\\})? (\\S+)( -?\\d+)?$`,
  );
  // Go's ParseFloat, as Prometheus reads values: decimals, exponents, NaN and ±Inf in any case.
  const value = /^[+-]?((\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|inf|infinity)$|^nan$/i;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      if (families.has(type[1]!)) throw new Error(`duplicate TYPE for ${type[1]}`);
      families.set(type[1]!, { type: type[2]!, samples: [] });
      continue;
    }
    if (/^# HELP \S+ .*$/.test(line)) continue;
    const match = sample.exec(line);
    if (!match || !value.test(match[3]!)) throw new Error(`not a valid exposition line: ${line}`);
    const sampleName = match[1]!;
    const family =
      families.get(sampleName) ?? families.get(sampleName.replace(/_(bucket|sum|count|created)$/, ''));
    if (!family) throw new Error(`sample ${sampleName} has no TYPE line`);
    family.samples.push(sampleName);
  }
  return families;
}

/** The API's gauges read Postgres and Redis at scrape time: answer them with fixed rows. */
function fakeApiSources() {
  const db = {
    async execute(query: unknown) {
      const text = JSON.stringify(query);
      if (text.includes('min(not_after))::float8')) return { rows: [{ tenant_id: 't1', expires: 1 }] };
      if (text.includes('not_after)::float8')) {
        return {
          rows: [{ id: 'c1', tenant_id: 't1', domain: 'example.com', expires: Date.now() / 1000 + 86400 }],
        };
      }
      return { rows: [{ n: 1 }] };
    },
  } as unknown as Database;
  const queue = {
    name: 'verify',
    async getJobCounts() {
      return { waiting: 2, active: 1, delayed: 4 };
    },
  } as unknown as Queue;
  const stats = async (): Promise<Stats> => ({
    orders: { byStatus: { issued: 3 }, byTenant: [] },
    certificates: {
      current: 1,
      byDaysToExpiry: { expired: 0, '0-7': 1, '8-30': 0, '31-60': 0, '61+': 0 },
      soonestExpiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      renewalsDue: 1,
      expiring: 1,
      renewalOverdue: 0,
    },
    capacity: {
      ceilingRps: 20,
      projected: [{ day: '2026-01-01', renewals: 10, upstreamCalls: 30 }],
      peakShare: 0,
    },
    failures: [],
    dnsWaiting: { byStatus: {} },
    upstream: { windowMinutes: 60, calls: 3, issued: 1, callsPerIssued: 3, byReason: [] },
    generatedAt: new Date().toISOString(),
  });
  // Every optional family switched on, so the dashboards may reference any of them.
  return { db, queues: () => [queue], stats, tenantLabels: true, certificateWindowDays: 30 };
}

async function exportedFamilies(): Promise<{ texts: string[]; families: Map<string, Family> }> {
  const worker = createWorkerMetrics();
  worker.jobDuration.observe({ stage: 'verify' }, 0.1);
  worker.upstreamRequests.inc({ endpoint: 'dv', outcome: 'ok' });
  worker.upstreamCalls.inc({ endpoint: 'dv', reason: 'first' });
  const api = createApiMetrics(fakeApiSources());
  const texts = [await worker.registry.metrics(), await api.registry.metrics()];
  const families = new Map<string, Family>();
  // Two processes, two expositions: parse each on its own.
  for (const text of texts) for (const [name, family] of parseExposition(text)) families.set(name, family);
  return { texts, families };
}

/** Every certq_* name an expression uses (histogram series resolve to their family). */
function referencedMetrics(expression: string): string[] {
  return [...expression.matchAll(/\bcertq_[a-z0-9_]+\b/g)].map((m) => m[0]);
}

function isExported(name: string, families: Map<string, Family>): boolean {
  if (families.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  const family = families.get(base);
  return family !== undefined && (family.type === 'histogram' || family.type === 'summary');
}

// biome-ignore lint/suspicious/noExplicitAny: dashboard JSON is walked generically
function collectExpressions(node: any, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) collectExpressions(item, out);
  else if (node && typeof node === 'object') {
    if (typeof node.expr === 'string') out.push(node.expr);
    for (const value of Object.values(node)) collectExpressions(value, out);
  }
  return out;
}

function balanced(expression: string): boolean {
  const pairs: Record<string, string> = { ')': '(', '}': '{', ']': '[' };
  const stack: string[] = [];
  let quoted = false;
  for (const char of expression) {
    if (char === '"') quoted = !quoted;
    if (quoted) continue;
    if ('({['.includes(char)) stack.push(char);
    else if (char in pairs && stack.pop() !== pairs[char]) return false;
  }
  return stack.length === 0 && !quoted;
}

describe('metrics the code exports', () => {
  it('render as valid Prometheus text with the documented families', async () => {
    const { families } = await exportedFamilies();
    for (const name of [
      'certq_jobs_total',
      'certq_job_duration_seconds',
      'certq_upstream_requests_total',
      'certq_upstream_request_duration_seconds',
      'certq_reconciler_repairs_total',
      'certq_apply_unknown_outcome_total',
      'certq_orders_finished_total',
      'certq_queue_jobs',
      'certq_orders',
      'certq_certificate_expiration_timestamp_seconds',
      'certq_renewals_due',
      'certq_renewal_scan_due',
      'certq_worker_process_cpu_seconds_total',
    ]) {
      expect(families.has(name), name).toBe(true);
    }
    expect(families.get('certq_job_duration_seconds')?.samples).toContain(
      'certq_job_duration_seconds_bucket',
    );
    expect(families.get('certq_certificate_expiration_timestamp_seconds')?.samples.length).toBe(1);
  });
});

describe('dashboards and alerts', () => {
  it('reference only exported metrics (Grafana dashboards)', async () => {
    const { families } = await exportedFamilies();
    const dir = join(root, 'infra/grafana/dashboards');
    const dashboards = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(dashboards.length).toBeGreaterThan(0);
    for (const file of dashboards) {
      const dashboard = JSON.parse(readFileSync(join(dir, file), 'utf8'));
      const expressions = collectExpressions(dashboard.panels);
      expect(expressions.length).toBeGreaterThan(10);
      for (const expression of expressions) {
        expect(balanced(expression), expression).toBe(true);
        for (const name of referencedMetrics(expression))
          expect(isExported(name, families), `${file}: ${name}`).toBe(true);
      }
      const ids = dashboard.panels.map((p: { id: number }) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
    }
  });

  it('reference only exported metrics (Prometheus alerts), each rule well formed', async () => {
    const { families } = await exportedFamilies();
    const rules = parse(readFileSync(join(root, 'infra/prometheus/alerts.yml'), 'utf8'));
    const all = rules.groups.flatMap((g: { rules: unknown[] }) => g.rules) as {
      alert: string;
      expr: string;
      labels: { severity: string };
      annotations: { summary: string };
    }[];
    expect(all.map((r) => r.alert)).toEqual(
      expect.arrayContaining([
        'CertqCertificateExpiring',
        'CertqRenewalOverdue',
        'CertqCapacityProjectedHigh',
        'CertqOrdersFailing',
        'CertqQueueBacklogGrowing',
        'CertqUpstreamErrors',
      ]),
    );
    for (const rule of all) {
      expect(rule.alert).toMatch(/^Certq[A-Za-z]+$/);
      expect(['critical', 'warning', 'info']).toContain(rule.labels.severity);
      expect(rule.annotations.summary).toBeTruthy();
      expect(balanced(rule.expr), rule.expr).toBe(true);
      for (const name of referencedMetrics(rule.expr))
        expect(isExported(name, families), `${rule.alert}: ${name}`).toBe(true);
    }
  });

  it('are valid PromQL (the dashboard queries checked as recording rules)', () => {
    const promtool = requireBinary('promtool', 'prometheus');
    const dir = join(root, 'infra/grafana/dashboards');
    const expressions = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .flatMap((f) => collectExpressions(JSON.parse(readFileSync(join(dir, f), 'utf8')).panels));
    const rules = {
      groups: [
        {
          name: 'dashboard',
          rules: expressions.map((expr, i) => ({
            record: `certq:dashboard_query_${i}`,
            expr: expr.replaceAll('$__rate_interval', '5m'),
          })),
        },
      ],
    };
    const tmp = mkdtempSync(join(tmpdir(), 'certq-promql-'));
    try {
      writeFileSync(join(tmp, 'rules.yml'), stringify(rules));
      const result = spawnSync(promtool, ['check', 'rules', join(tmp, 'rules.yml')], { encoding: 'utf8' });
      expect(result.status, result.stdout + result.stderr).toBe(0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('pass promtool check rules', () => {
    const promtool = requireBinary('promtool', 'prometheus');
    const result = spawnSync(promtool, ['check', 'rules', join(root, 'infra/prometheus/alerts.yml')], {
      encoding: 'utf8',
    });
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it('pass their promtool unit tests (infra/prometheus/alerts.test.yml)', () => {
    const promtool = requireBinary('promtool', 'prometheus');
    const result = spawnSync(promtool, ['test', 'rules', 'alerts.test.yml'], {
      cwd: join(root, 'infra/prometheus'),
      encoding: 'utf8',
    });
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it('scrape the API on its port and every worker on WORKER_METRICS_PORT', () => {
    const config = parse(readFileSync(join(root, 'infra/prometheus/prometheus.yml'), 'utf8'));
    expect(config.rule_files).toContain('/etc/prometheus/alerts.yml');
    const jobs = Object.fromEntries(
      config.scrape_configs.map((j: { job_name: string }) => [j.job_name, j]),
    ) as Record<
      string,
      { metrics_path: string; static_configs?: { targets: string[] }[]; dns_sd_configs?: { port: number }[] }
    >;
    expect(jobs['certq-api']?.metrics_path).toBe('/metrics');
    expect(jobs['certq-api']?.static_configs?.[0]?.targets).toEqual(['api:3000']);
    expect(jobs['certq-worker']?.metrics_path).toBe('/metrics');
    expect(jobs['certq-worker']?.dns_sd_configs?.[0]?.port).toBe(9464);
  });

  it('provision Grafana with the Prometheus datasource and the dashboards folder', () => {
    const datasources = parse(
      readFileSync(join(root, 'infra/grafana/provisioning/datasources/prometheus.yml'), 'utf8'),
    );
    expect(datasources.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
    const providers = parse(
      readFileSync(join(root, 'infra/grafana/provisioning/dashboards/certq.yml'), 'utf8'),
    );
    expect(providers.providers[0].options.path).toBe('/var/lib/grafana/dashboards');
  });
});

describe('the exposition parser', () => {
  it('rejects malformed text', () => {
    expect(() => parseExposition('certq_x 1')).toThrow(/no TYPE/);
    expect(() => parseExposition('# TYPE certq_x counter\ncertq_x{a="1" 1')).toThrow(/not a valid/);
    expect(() => parseExposition('# TYPE certq_x gauge\n# TYPE certq_x gauge')).toThrow(/duplicate/);
    expect(() => parseExposition('# TYPE certq_x gauge\ncertq_x one')).toThrow(/not a valid/);
    expect(
      parseExposition('# TYPE certq_x gauge\ncertq_x Nan\ncertq_x +Inf\ncertq_x 1.5e-3').get('certq_x')
        ?.samples,
    ).toHaveLength(3);
    const ok = parseExposition('# HELP certq_x help\n# TYPE certq_x counter\ncertq_x{a="b\\"c"} 1\n');
    expect(ok.get('certq_x')).toEqual({ type: 'counter', samples: ['certq_x'] });
  });
});
