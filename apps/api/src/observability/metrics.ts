import { ORDER_STATUSES } from '@certq/core';
import type { Database } from '@certq/db';
import type { Queue } from 'bullmq';
import { sql } from 'drizzle-orm';
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

const JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed', 'paused'] as const;

/**
 * The API's Prometheus metrics. Counts that live in Postgres and Redis (orders by status, queue jobs,
 * certificate expiry) are read at scrape time, so every API replica reports the same truth and nothing
 * resets on restart; scrape one replica, or aggregate with max().
 */
export function createApiMetrics(options: { db: Database; queues: () => Queue[]; renewBeforeDays: number }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'certq_api_' });
  const httpDuration = new Histogram({
    name: 'certq_http_request_duration_seconds',
    help: 'HTTP requests served by the API, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new Gauge({
    name: 'certq_queue_jobs',
    help: 'BullMQ jobs by queue and state.',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
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
  new Gauge({
    name: 'certq_orders',
    help: 'Orders by status (from Postgres).',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const { rows } = await options.db.execute<{ status: string; n: number }>(
        sql`select status, count(*)::int as n from orders group by status`,
      );
      this.reset();
      for (const status of ORDER_STATUSES)
        this.set({ status }, rows.find((r) => r.status === status)?.n ?? 0);
    },
  });
  // cert-manager's convention: one series per current certificate, its notAfter as a Unix timestamp.
  new Gauge({
    name: 'certq_certificate_expiration_timestamp_seconds',
    help: 'Expiry (notAfter) of each current certificate, as a Unix timestamp.',
    labelNames: ['certificate_id', 'tenant_id', 'domain'] as const,
    registers: [registry],
    async collect() {
      const { rows } = await options.db.execute<{
        id: string;
        tenant_id: string;
        domain: string;
        expires: number;
      }>(
        sql`select id, tenant_id, domains[1] as domain, extract(epoch from not_after)::float8 as expires
            from certificates where is_current`,
      );
      this.reset();
      for (const row of rows) {
        this.set(
          { certificate_id: row.id, tenant_id: row.tenant_id, domain: row.domain },
          Number(row.expires),
        );
      }
    },
  });
  new Gauge({
    name: 'certq_renewals_due',
    help: 'Current certificates inside the renewal window (RENEW_BEFORE_DAYS) with no active order for their domain set.',
    registers: [registry],
    async collect() {
      const { rows } = await options.db.execute<{ n: number }>(sql`
        select count(*)::int as n from certificates c
        where c.is_current and c.not_after <= now() + make_interval(days => ${options.renewBeforeDays})
          and not exists (select 1 from orders o where o.tenant_id = c.tenant_id and o.domains_key = c.domains_key
                          and o.status in ('verifying', 'applying', 'issuing'))`);
      this.set(rows[0]?.n ?? 0);
    },
  });
  return { registry, httpDuration };
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;
