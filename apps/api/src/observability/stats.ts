import type { Database } from '@certq/db';
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
  }),
  failures: z.array(z.object({ reason: z.string(), count: z.number() })),
  /** Domains of verifying orders by certq's own DNS check: pending, missing, wrong_target, caa_forbidden, lookup_failed, ok. */
  dnsWaiting: z
    .object({ byStatus: z.record(z.string(), z.number()) })
    .describe("domains of verifying orders by the local DNS check's status"),
  generatedAt: z.string(),
});
export type Stats = z.infer<typeof StatsSchema>;

/** The operator's view of the orders themselves, straight from Postgres (three grouped queries). */
export async function collectStats(db: Database, now = new Date()): Promise<Stats> {
  const byTenant = await db.execute<{ tenant_id: string; name: string; status: string; n: number }>(sql`
    select o.tenant_id, t.name, o.status, count(*)::int as n
    from orders o join tenants t on t.id = o.tenant_id
    group by o.tenant_id, t.name, o.status order by t.name`);
  const expiry = await db.execute<{ bucket: string; n: number }>(sql`
    select case
      when not_after <= ${now} then 'expired'
      when not_after <= ${now}::timestamptz + interval '7 days' then '0-7'
      when not_after <= ${now}::timestamptz + interval '30 days' then '8-30'
      when not_after <= ${now}::timestamptz + interval '60 days' then '31-60'
      else '61+' end as bucket, count(*)::int as n
    from certificates where is_current group by 1`);
  // The reason up to its first ':' or ';' drops per-order details (domains, ids), so equal causes group.
  const failures = await db.execute<{ reason: string; n: number }>(sql`
    select regexp_replace(coalesce(last_error, 'unknown'), '[:;].*$', '') as reason, count(*)::int as n
    from orders where status = 'failed' group by 1 order by 2 desc limit 20`);
  const dns = await db.execute<{ status: string; n: number }>(sql`
    select d.status, count(*)::int as n
    from order_dns d join orders o on o.id = d.order_id
    where o.status = 'verifying' group by 1`);

  const byStatus: Record<string, number> = {};
  const tenants = new Map<
    string,
    { tenantId: string; tenantName: string; byStatus: Record<string, number> }
  >();
  for (const row of byTenant.rows) {
    byStatus[row.status] = (byStatus[row.status] ?? 0) + row.n;
    const entry = tenants.get(row.tenant_id) ?? {
      tenantId: row.tenant_id,
      tenantName: row.name,
      byStatus: {},
    };
    entry.byStatus[row.status] = row.n;
    tenants.set(row.tenant_id, entry);
  }
  const byDaysToExpiry: Record<string, number> = { expired: 0, '0-7': 0, '8-30': 0, '31-60': 0, '61+': 0 };
  for (const row of expiry.rows) byDaysToExpiry[row.bucket] = row.n;
  return {
    orders: { byStatus, byTenant: [...tenants.values()] },
    certificates: { current: Object.values(byDaysToExpiry).reduce((a, b) => a + b, 0), byDaysToExpiry },
    failures: failures.rows.map((r) => ({ reason: r.reason, count: r.n })),
    dnsWaiting: { byStatus: Object.fromEntries(dns.rows.map((r) => [r.status, r.n])) },
    generatedAt: now.toISOString(),
  };
}
