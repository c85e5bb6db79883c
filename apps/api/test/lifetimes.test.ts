import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectStats } from '../src/observability/stats';
import { capacityChart } from '../src/routes/console/templates';
import { createTestEnv, type TestEnv } from './helpers';

const DAY = 86_400_000;
const HOUR = 3_600_000;
let env: TestEnv;
let tenantId: string;

beforeAll(async () => {
  env = await createTestEnv();
  const { rows } = await env.handle.pool.query<{ id: string }>(
    `insert into tenants (name, token_hash) values ('lifetimes', md5(random()::text)) returning id`,
  );
  tenantId = rows[0]!.id;
});
afterAll(async () => {
  await env?.close();
});

/** A current certificate (and the issued order it came from), with the given times; `active`: a renewal under way. */
async function certificate(c: { notBefore: Date; notAfter: Date; renewAt: Date; active?: boolean }) {
  const domain = `${randomUUID()}.lifetimes.example.com`;
  const { rows } = await env.handle.pool.query<{ id: string }>(
    `insert into orders (tenant_id, domains, domains_key, status, apply_id, progress)
     values ($1, array[$2], $2, 'issued', $3, 100) returning id`,
    [tenantId, domain, `a-${domain}`],
  );
  await env.handle.pool.query(
    `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
       not_before, not_after, renew_at, fingerprint, certificate_pem, private_key_sealed)
     values ($1, $2, array[$3], $3, 'a', 'ECC', 'google', $4, $5, $6, 'fp', 'pem', 'sealed')`,
    [tenantId, rows[0]!.id, domain, c.notBefore, c.notAfter, c.renewAt],
  );
  if (c.active)
    await env.handle.pool.query(
      `insert into orders (tenant_id, domains, domains_key, kind, renewal_reason) values ($1, array[$2], $2, 'renewal', 'nearing_expiry')`,
      [tenantId, domain],
    );
}

const lasting = (now: Date, days: number, left: number) => ({
  notBefore: new Date(now.getTime() - (days - left) * DAY),
  notAfter: new Date(now.getTime() + left * DAY),
});

describe('lifetime-relative certificate counts', () => {
  it('expiring: less than a sixth of its own lifetime left; overdue: past renew_at by the margin, nothing under way', async () => {
    const now = new Date('2027-01-10T12:00:00Z');
    const far = new Date(now.getTime() + 10 * DAY);
    // 6 days with 5 left: within 7 days of expiry, yet fresh. With 0.9 left: expiring.
    await certificate({ ...lasting(now, 6, 5), renewAt: far });
    await certificate({ ...lasting(now, 6, 0.9), renewAt: far });
    // 90 days with 14 left: expiring (under 15). With 20 left: not.
    await certificate({ ...lasting(now, 90, 14), renewAt: far });
    await certificate({ ...lasting(now, 90, 20), renewAt: far });
    // Past renew_at by 2 h: overdue; by 30 min: only due; by 2 h with a renewal under way: fine.
    await certificate({ ...lasting(now, 90, 40), renewAt: new Date(now.getTime() - 2 * HOUR) });
    await certificate({ ...lasting(now, 90, 40), renewAt: new Date(now.getTime() - HOUR / 2) });
    await certificate({ ...lasting(now, 90, 40), renewAt: new Date(now.getTime() - 2 * HOUR), active: true });
    // A 45-minute certificate 5 minutes past its renewal time: the margin is a twentieth (2.25 min).
    await certificate({
      notBefore: new Date(now.getTime() - 35 * 60_000),
      notAfter: new Date(now.getTime() + 10 * 60_000),
      renewAt: new Date(now.getTime() - 5 * 60_000),
    });
    const stats = await collectStats(env.handle.db, { now });
    expect(stats.certificates).toMatchObject({ current: 8, expiring: 2, renewalOverdue: 2, renewalsDue: 3 });
    expect(stats.certificates.byDaysToExpiry['0-7']).toBe(3);
  });
});

describe('capacity projection', () => {
  it('projects renewals per UTC day from renew_at, short lifetimes again every period, against the ceiling', async () => {
    // A year on: the certificates above have expired and count for nothing.
    const now = new Date('2028-01-01T06:00:00Z');
    // Ten 6-day certificates renewing in an hour: again every 3 days (half of 6), 10 times in 30 days.
    for (let i = 0; i < 10; i++)
      await certificate({ ...lasting(now, 6, 3.1), renewAt: new Date(now.getTime() + HOUR) });
    // One 90-day certificate renewing on day 10: once (its next renewal is 60 days later).
    await certificate({ ...lasting(now, 90, 40), renewAt: new Date(now.getTime() + 10 * DAY) });
    // One 90-day certificate 60 days from its renewal time: beyond the horizon.
    await certificate({ ...lasting(now, 90, 89), renewAt: new Date(now.getTime() + 59 * DAY) });
    const { capacity } = await collectStats(env.handle.db, {
      now,
      capacity: { ceilingRps: 20, callsPerRenewal: 3 },
    });
    expect(capacity.ceilingRps).toBe(20);
    expect(capacity.projected).toHaveLength(30);
    expect(capacity.projected[0]).toEqual({ day: '2028-01-01', renewals: 10, upstreamCalls: 30 });
    const byDay = capacity.projected.map((d) => d.renewals);
    expect(byDay.filter((n) => n > 0)).toEqual([10, 10, 10, 10, 1, 10, 10, 10, 10, 10, 10]);
    expect(byDay[3]).toBe(10);
    expect(byDay[10]).toBe(1);
    expect(byDay.reduce((a, b) => a + b, 0)).toBe(101);
    expect(capacity.peakShare).toBeCloseTo(30 / (20 * 86_400));
    // The console's chart: one bar per day under the ceiling line; a day above 80 % is drawn as such.
    const chart = String(capacityChart(capacity));
    expect(chart.match(/<rect class="under"/g)).toHaveLength(30);
    const crowded = { ...capacity, projected: [{ day: '2028-01-01', renewals: 5e5, upstreamCalls: 1.5e6 }] };
    expect(String(capacityChart(crowded))).toContain('<rect class="over"');
  });
});
