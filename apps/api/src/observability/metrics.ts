import { CAPACITY_ALERT_DAYS, ORDER_STATUSES, peakShare } from '@certq/core';
import { collectProcessMetrics } from '@certq/core/process-metrics';
import type { Database } from '@certq/db';
import type { Queue } from 'bullmq';
import { sql } from 'drizzle-orm';
import { Counter, Gauge, type GaugeConfiguration, Histogram, Registry } from 'prom-client';
import { EXPIRY_BUCKETS, type Stats } from './stats';

const JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed', 'paused'] as const;

export interface ApiMetricsOptions {
  db: Database;
  queues: () => Queue[];
  /** The shared stats snapshot (see StatsSnapshot): orders by status, expiry buckets, renewals due. */
  stats: () => Promise<Stats>;
  /** Tenant ids and domains in labels (METRICS_TENANT_LABELS); default none. */
  tenantLabels?: boolean;
  /** Per-certificate series for current certificates expiring within this many days; 0: none. */
  certificateWindowDays?: number;
  /** Cap on per-certificate and per-tenant series (METRICS_CERTIFICATE_SERIES_MAX). */
  seriesMax?: number;
  /** How long one gauge may take to read before the scrape goes on without it (default 2 s). */
  collectTimeoutMs?: number;
  /** Told when a gauge could not be read (its source slow or down); the scrape goes on without it. */
  onCollectError?: (metric: string, error: unknown) => void;
}

/**
 * The API's Prometheus metrics. Counts that live in Postgres and Redis (orders by status, queue jobs,
 * certificate expiry) are read at scrape time — the Postgres ones from the stats snapshot — so every
 * API replica reports the same truth and nothing resets on restart; scrape one replica, or aggregate
 * with max(). The series count is bounded whatever the number of certificates: aggregates by
 * default; per-tenant and per-certificate series only when a setting asks, and capped.
 */
export function createApiMetrics(options: ApiMetricsOptions) {
  const registry = new Registry();
  const seriesMax = options.seriesMax ?? 1000;
  const windowDays = options.certificateWindowDays ?? 0;
  const tenantLabels = options.tenantLabels ?? false;
  const collectTimeoutMs = options.collectTimeoutMs ?? 2000;
  collectProcessMetrics(registry, 'certq_api_');
  const collectFailures = new Counter({
    name: 'certq_metrics_collect_failures_total',
    help: 'Scrapes that served a gauge empty because its source (Postgres, Redis) failed or was too slow.',
    labelNames: ['metric'] as const,
    registers: [registry],
  });
  /**
   * A gauge read at scrape time. When its source fails or takes over collectTimeoutMs (a Redis that is
   * down leaves BullMQ waiting for a connection), the scrape still answers: this gauge comes out
   * empty and certq_metrics_collect_failures_total counts it (a 500 would hide every other metric).
   */
  const gauge = (
    config: Omit<GaugeConfiguration<string>, 'collect' | 'registers'> & {
      collect(this: Gauge): Promise<void>;
    },
  ) =>
    new Gauge({
      ...config,
      registers: [registry],
      async collect() {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            config.collect.call(this),
            new Promise((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`not read within ${collectTimeoutMs} ms`)),
                collectTimeoutMs,
              );
            }),
          ]);
        } catch (error) {
          this.reset();
          collectFailures.inc({ metric: config.name });
          options.onCollectError?.(config.name, error);
        } finally {
          clearTimeout(timer);
        }
      },
    });
  const httpDuration = new Histogram({
    name: 'certq_http_request_duration_seconds',
    help: 'HTTP requests served by the API, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  gauge({
    name: 'certq_queue_jobs',
    help: 'BullMQ jobs by queue and state.',
    labelNames: ['queue', 'state'] as const,
    async collect() {
      const all = await Promise.all(
        options.queues().map(async (q) => [q.name, await q.getJobCounts(...JOB_STATES)] as const),
      );
      this.reset();
      for (const [queue, counts] of all) {
        for (const state of JOB_STATES) this.set({ queue, state }, counts[state] ?? 0);
      }
    },
  });
  // The gauges of one scrape are collected together: they share one read of the snapshot (with
  // STATS_MAX_AGE_MS=0 each would otherwise aggregate the tables on its own).
  let reading: Promise<Stats> | undefined;
  const snapshot = () => {
    reading ??= options.stats().finally(() => {
      reading = undefined;
    });
    return reading;
  };
  /** A gauge read from the stats snapshot at scrape time, one series per value of its one label. */
  const statsGauge = (
    name: string,
    help: string,
    label: string,
    read: (stats: Stats) => [string, number][],
  ) =>
    gauge({
      name,
      help,
      labelNames: [label],
      async collect() {
        const series = read(await snapshot());
        this.reset();
        for (const [value, count] of series) this.set({ [label]: value }, count);
      },
    });
  statsGauge(
    'certq_orders',
    'Orders by status (from Postgres, through the stats snapshot).',
    'status',
    (stats) => ORDER_STATUSES.map((status) => [status, stats.orders.byStatus[status] ?? 0]),
  );
  statsGauge(
    'certq_certificates',
    'Current certificates by days left until expiry (expired, 0-7, 8-30, 31-60, 61+).',
    'expires_in_days',
    (stats) => EXPIRY_BUCKETS.map((bucket) => [bucket, stats.certificates.byDaysToExpiry[bucket] ?? 0]),
  );
  gauge({
    name: 'certq_certificate_soonest_expiration_timestamp_seconds',
    help: 'notAfter of the current certificate that expires first, as a Unix timestamp (absent when none).',
    async collect() {
      const stats = await snapshot();
      this.reset();
      if (stats.certificates.soonestExpiresAt)
        this.set(Date.parse(stats.certificates.soonestExpiresAt) / 1000);
    },
  });
  gauge({
    name: 'certq_renewals_due',
    help: 'Current certificates past their renewal time (renew_at) with no active order for their domain set.',
    async collect() {
      this.set((await snapshot()).certificates.renewalsDue);
    },
  });
  gauge({
    name: 'certq_certificates_expiring',
    help: 'Current certificates, not expired, with less than a sixth of their own lifetime (notAfter - notBefore) left.',
    async collect() {
      this.set((await snapshot()).certificates.expiring);
    },
  });
  gauge({
    name: 'certq_certificates_renewal_overdue',
    help: 'Current certificates past their renewal time by more than an hour (a twentieth of a shorter lifetime) with no renewal under way.',
    async collect() {
      this.set((await snapshot()).certificates.renewalOverdue);
    },
  });
  gauge({
    name: 'certq_capacity_projected_share',
    help: 'Peak projected daily renewal demand over the next 7 days as a share of the upstream ceiling (UPSTREAM_MAX_RPS × 86400 requests a day).',
    async collect() {
      const { capacity } = await snapshot();
      this.set(peakShare(capacity.projected, capacity.ceilingRps, CAPACITY_ALERT_DAYS));
    },
  });
  if (tenantLabels) {
    gauge({
      name: 'certq_tenant_certificate_soonest_expiration_timestamp_seconds',
      help: 'Per tenant (the METRICS_CERTIFICATE_SERIES_MAX tenants expiring first), the notAfter of its current certificate that expires first.',
      labelNames: ['tenant_id'] as const,
      async collect() {
        const { rows } = await options.db.execute<{ tenant_id: string; expires: number }>(sql`
          select tenant_id, extract(epoch from min(not_after))::float8 as expires
          from certificates where is_current group by tenant_id order by 2 limit ${seriesMax}`);
        this.reset();
        for (const row of rows) this.set({ tenant_id: row.tenant_id }, Number(row.expires));
      },
    });
  }
  // cert-manager's convention, bounded: one series per current certificate expiring within the
  // window (soonest first, at most seriesMax), its notAfter as a Unix timestamp.
  const perCertificateLabels = tenantLabels
    ? (['certificate_id', 'tenant_id', 'domain'] as const)
    : (['certificate_id'] as const);
  gauge({
    name: 'certq_certificate_expiration_timestamp_seconds',
    help: 'Expiry (notAfter) of each current certificate expiring within METRICS_CERTIFICATE_WINDOW_DAYS (none by default), as a Unix timestamp.',
    labelNames: perCertificateLabels,
    async collect() {
      this.reset();
      if (windowDays <= 0) return;
      const { rows } = await options.db.execute<{
        id: string;
        tenant_id: string;
        domain: string;
        expires: number;
      }>(sql`
        select id, tenant_id, domains[1] as domain, extract(epoch from not_after)::float8 as expires
        from certificates
        where is_current and not_after <= now() + make_interval(days => ${windowDays})
        order by not_after, id limit ${seriesMax}`);
      for (const row of rows) {
        const labels: Record<string, string> = { certificate_id: row.id };
        if (tenantLabels) Object.assign(labels, { tenant_id: row.tenant_id, domain: row.domain });
        this.set(labels, Number(row.expires));
      }
    },
  });
  return { registry, httpDuration };
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;
