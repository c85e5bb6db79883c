import {
  CAPACITY_HORIZON_DAYS,
  type Config,
  peakShare,
  RENEW_SHARE_LEFT,
  RENEW_SHARE_LEFT_SHORT,
  SHORT_LIFETIME_MS,
  upstreamCallsPerRenewal,
} from '@certq/core';
import { type Database, readUpstreamUsage } from '@certq/db';
import { expiringAt, HAS_ACTIVE_ORDER, RENEWABLE, renewalOverdueAt } from '@certq/workflow';
import { sql } from 'drizzle-orm';
import { z } from 'zod';

export const StatsSchema = z.object({
  orders: z.object({
    byStatus: z.record(z.string(), z.number()),
    byTenant: z.array(
      z.object({ tenantId: z.string(), tenantName: z.string(), byStatus: z.record(z.string(), z.number()) }),
    ),
  }),
  certificates: z.object({
    current: z.number(),
    /** Current certificates by days left: expired, 0–7, 8–30, 31–60, 61+. */
    byDaysToExpiry: z.record(z.string(), z.number()),
    /** notAfter of the current certificate that expires first; null when there is none. */
    soonestExpiresAt: z.string().nullable(),
    /** Certificates past their renewal time (renew_at) with no active order for their domain set. */
    renewalsDue: z.number(),
    /** Current certificates, not expired, with less than a sixth of their own lifetime left. */
    expiring: z.number(),
    /** Renewable certificates past their renewal time by more than the margin, no renewal under way. */
    renewalOverdue: z.number(),
  }),
  capacity: z
    .object({
      ceilingRps: z.number().describe('UPSTREAM_MAX_RPS: requests per second httpsok takes from certq'),
      projected: z
        .array(
          z.object({
            day: z.string().describe('UTC day, YYYY-MM-DD; the first is today from now on'),
            renewals: z
              .number()
              .describe('renewals projected that day (renew_at, then again one lifetime on)'),
            upstreamCalls: z.number().describe('renewals × upstream calls per renewal (3, 2 with callbacks)'),
          }),
        )
        .describe('the next 30 days'),
      peakShare: z.number().describe('peak projected daily calls / (ceilingRps × 86400), over the 30 days'),
    })
    .describe("renewal demand projected from the current certificates' renewal times and lifetimes"),
  failures: z.array(z.object({ reason: z.string(), count: z.number() })),
  /** Domains of verifying orders by certq's own DNS check: pending, missing, wrong_target, caa_forbidden, lookup_failed, ok. */
  dnsWaiting: z
    .object({ byStatus: z.record(z.string(), z.number()) })
    .describe("domains of verifying orders by the local DNS check's status"),
  /**
   * httpsok calls over the last hour, as the workers counted them: per issued certificate, and by endpoint
   * (dv, apply, get) and reason (first, confirming, split_horizon, apply, issuing, issued, failed, adoption,
   * error, retry). callsPerIssued is null while nothing was issued.
   */
  upstream: z.object({
    windowMinutes: z.number(),
    calls: z.number(),
    issued: z.number(),
    callsPerIssued: z.number().nullable(),
    byReason: z.array(z.object({ endpoint: z.string(), reason: z.string(), calls: z.number() })),
  }),
  /** When these counts were read from Postgres: they may be up to 2 × STATS_MAX_AGE_MS old. */
  generatedAt: z.string(),
});
export type Stats = z.infer<typeof StatsSchema>;

/** The window of `upstream` in /v1/stats. */
const UPSTREAM_WINDOW_MINUTES = 60;

export const EXPIRY_BUCKETS = ['expired', '0-7', '8-30', '31-60', '61+'] as const;

export interface CapacityOptions {
  /** UPSTREAM_MAX_RPS. */
  ceilingRps: number;
  /** Upstream calls one renewal costs (@certq/core upstreamCallsPerRenewal). */
  callsPerRenewal: number;
}

/**
 * Renewals of the next CAPACITY_HORIZON_DAYS UTC days: each renewable certificate at its renew_at (today
 * if passed), then again every renewal period (@certq/core renewalPeriodMs: the renewed certificate is
 * taken to last as long), so short lifetimes recur within the horizon. Certificates are grouped by
 * renewal minute and period first, so the expansion is per group, not per certificate; periods under a
 * minute are counted as a minute.
 */
export async function projectRenewals(
  db: Database,
  now: Date,
  options: CapacityOptions,
): Promise<Stats['capacity']> {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const horizon = new Date(today + CAPACITY_HORIZON_DAYS * 86_400_000).toISOString();
  const at = now.toISOString();
  const { rows } = await db.execute<{ day: string; renewals: number }>(sql`
    with groups as (
      select date_trunc('minute', greatest(c.renew_at, ${at}::timestamptz)) as first,
        greatest(date_trunc('second', (c.not_after - c.not_before) * case
          when c.not_after - c.not_before < ${sql.raw(`interval '${SHORT_LIFETIME_MS} milliseconds'`)}
          then ${sql.raw(String(1 - RENEW_SHARE_LEFT_SHORT))} else ${sql.raw(String(1 - RENEW_SHARE_LEFT))} end),
          interval '1 minute') as period,
        count(*)::int as n
      from certificates c
      where ${RENEWABLE} and c.not_after > ${at}::timestamptz and c.renew_at < ${horizon}::timestamptz
      group by 1, 2
    ), occurrences as (
      select g.first + k * g.period as at, g.n from groups g
      cross join lateral generate_series(0,
        floor(extract(epoch from ${horizon}::timestamptz - g.first) / extract(epoch from g.period))::int) k
    )
    select to_char(at at time zone 'UTC', 'YYYY-MM-DD') as day, sum(n)::int as renewals
    from occurrences where at < ${horizon}::timestamptz group by 1`);
  const byDay = new Map(rows.map((r) => [r.day, r.renewals]));
  const projected = Array.from({ length: CAPACITY_HORIZON_DAYS }, (_, i) => {
    const day = new Date(today + i * 86_400_000).toISOString().slice(0, 10);
    const renewals = byDay.get(day) ?? 0;
    return { day, renewals, upstreamCalls: renewals * options.callsPerRenewal };
  });
  return { ceilingRps: options.ceilingRps, projected, peakShare: peakShare(projected, options.ceilingRps) };
}

/**
 * The operator's view of the orders themselves, straight from Postgres: grouped scans, no per-row
 * work in JavaScript. At a million orders and certificates this takes about a second (see
 * `pnpm bench scale`), so requests read it through a `StatsSnapshot`, not directly.
 */
export async function collectStats(
  db: Database,
  options: { now?: Date; capacity?: CapacityOptions } = {},
): Promise<Stats> {
  const now = options.now ?? new Date();
  // Grouped by tenant id first (an index-friendly aggregate), names joined to the groups only.
  const byTenant = await db.execute<{ tenant_id: string; name: string; status: string; n: number }>(sql`
    select g.tenant_id, t.name, g.status, g.n
    from (select tenant_id, status, count(*)::int as n from orders group by tenant_id, status) g
    join tenants t on t.id = g.tenant_id order by t.name, g.tenant_id`);
  const expiry = await db.execute<{ bucket: string; n: number; soonest: string | null }>(sql`
    select case
      when not_after <= ${now} then 'expired'
      when not_after <= ${now}::timestamptz + interval '7 days' then '0-7'
      when not_after <= ${now}::timestamptz + interval '30 days' then '8-30'
      when not_after <= ${now}::timestamptz + interval '60 days' then '31-60'
      else '61+' end as bucket, count(*)::int as n,
      to_char(min(not_after) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as soonest
    from certificates where is_current group by 1`);
  const due = await db.execute<{ due: number; expiring: number; overdue: number }>(sql`
    select count(*) filter (where c.renew_at <= ${now}::timestamptz and not ${HAS_ACTIVE_ORDER})::int as due,
      count(*) filter (where ${expiringAt(now)})::int as expiring,
      count(*) filter (where ${renewalOverdueAt(now)})::int as overdue
    from certificates c where ${RENEWABLE}`);
  const capacity = await projectRenewals(
    db,
    now,
    options.capacity ?? { ceilingRps: 20, callsPerRenewal: upstreamCallsPerRenewal(false) },
  );
  // The reason up to its first ':' or ';' drops per-order details (domains, ids), so equal causes group.
  const failures = await db.execute<{ reason: string; n: number }>(sql`
    select regexp_replace(coalesce(last_error, 'unknown'), '[:;].*$', '') as reason, count(*)::int as n
    from orders where status = 'failed' group by 1 order by 2 desc limit 20`);
  const dns = await db.execute<{ status: string; n: number }>(sql`
    select d.status, count(*)::int as n
    from order_dns d join orders o on o.id = d.order_id
    where o.status = 'verifying' group by 1`);

  const usage = await readUpstreamUsage(db, new Date(now.getTime() - UPSTREAM_WINDOW_MINUTES * 60_000));
  const calls = usage.counts.reduce((n, c) => n + c.calls, 0);

  const byStatus: Record<string, number> = {};
  const tenants = new Map<
    string,
    { tenantId: string; tenantName: string; byStatus: Record<string, number> }
  >();
  for (const row of byTenant.rows) {
    byStatus[row.status] = (byStatus[row.status] ?? 0) + row.n;
    let entry = tenants.get(row.tenant_id);
    if (!entry) {
      entry = { tenantId: row.tenant_id, tenantName: row.name, byStatus: {} };
      tenants.set(row.tenant_id, entry);
    }
    entry.byStatus[row.status] = row.n;
  }
  const byDaysToExpiry: Record<string, number> = Object.fromEntries(EXPIRY_BUCKETS.map((b) => [b, 0]));
  let soonest: string | null = null;
  for (const row of expiry.rows) {
    byDaysToExpiry[row.bucket] = row.n;
    if (row.soonest && (soonest === null || row.soonest < soonest)) soonest = row.soonest;
  }
  return {
    orders: { byStatus, byTenant: [...tenants.values()] },
    certificates: {
      current: Object.values(byDaysToExpiry).reduce((a, b) => a + b, 0),
      byDaysToExpiry,
      soonestExpiresAt: soonest,
      renewalsDue: due.rows[0]?.due ?? 0,
      expiring: due.rows[0]?.expiring ?? 0,
      renewalOverdue: due.rows[0]?.overdue ?? 0,
    },
    capacity,
    failures: failures.rows.map((r) => ({ reason: r.reason, count: r.n })),
    dnsWaiting: { byStatus: Object.fromEntries(dns.rows.map((r) => [r.status, r.n])) },
    upstream: {
      windowMinutes: UPSTREAM_WINDOW_MINUTES,
      calls,
      issued: usage.issued,
      callsPerIssued: usage.issued > 0 ? calls / usage.issued : null,
      byReason: usage.counts,
    },
    generatedAt: now.toISOString(),
  };
}

/**
 * A cached snapshot of `collectStats`, shared by `/v1/stats`, `/admin` and the API's Postgres
 * gauges, so neither a dashboard left open nor a scrape aggregates a million rows per request.
 * Older than `maxAgeMs`: answered from the snapshot while one refresh runs in the background (one
 * at a time per process); older than twice that (an API nobody asked for a while): the request
 * waits for a fresh one. So a snapshot served is at most 2 × maxAgeMs old. `maxAgeMs` 0 computes
 * it for every request.
 */
export class StatsSnapshot {
  private current?: { at: number; stats: Stats };
  private refreshing?: Promise<Stats>;

  constructor(
    private readonly compute: () => Promise<Stats>,
    private readonly maxAgeMs: number,
    private readonly onError: (error: unknown) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<Stats> {
    if (this.maxAgeMs === 0) return this.compute();
    const current = this.current;
    const age = current ? this.now() - current.at : Number.POSITIVE_INFINITY;
    if (current && age <= this.maxAgeMs) return current.stats;
    if (current && age <= 2 * this.maxAgeMs) {
      this.refresh().catch(this.onError);
      return current.stats;
    }
    return this.refresh();
  }

  refresh(): Promise<Stats> {
    this.refreshing ??= (async () => {
      try {
        const startedAt = this.now();
        const stats = await this.compute();
        this.current = { at: startedAt, stats };
        return stats;
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}

/**
 * The API process's one stats snapshot, shared by /v1/stats, /metrics and the /admin console (app.ts
 * decorates the app with it): each refresh aggregates a million rows (~1 s of Postgres), so two
 * snapshots meant twice that work, and a console opened after /v1/stats waited for its own cold
 * refresh (~1 s at a million certificates) although a fresh snapshot was at hand.
 * The JSON of /v1/stats is validated and serialized once per refresh (with the snapshot), not per
 * request: at ten thousand tenants it is ~1.1 MB.
 */
export interface ApiStats {
  get(): Promise<Stats>;
  /** `stats` as /v1/stats answers it (StatsSchema), serialized when the snapshot was taken. */
  json(stats: Stats): string;
}

export function createApiStats(
  db: Database,
  config: Pick<Config, 'STATS_MAX_AGE_MS' | 'UPSTREAM_MAX_RPS' | 'PUBLIC_BASE_URL'>,
  onError: (error: unknown) => void,
): ApiStats {
  const rendered = new WeakMap<Stats, string>();
  const snapshot = new StatsSnapshot(
    async () => {
      const stats = await collectStats(db, {
        capacity: {
          ceilingRps: config.UPSTREAM_MAX_RPS,
          callsPerRenewal: upstreamCallsPerRenewal(config.PUBLIC_BASE_URL !== undefined),
        },
      });
      rendered.set(stats, JSON.stringify(StatsSchema.parse(stats)));
      return stats;
    },
    config.STATS_MAX_AGE_MS,
    onError,
  );
  return {
    get: () => snapshot.get(),
    json: (stats) => rendered.get(stats) ?? JSON.stringify(StatsSchema.parse(stats)),
  };
}
