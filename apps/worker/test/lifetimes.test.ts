import { ACTIVE_STATUSES, lifetimeMs } from '@certq/core';
import { certificates, orders } from '@certq/db';
import { and, eq, inArray, isNotNull, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { scanRenewals } from '../src';
import { test, type Workbench } from './helpers';
import { DAY_MS, HOUR_MS, startRenewalWorker, unique } from './renewal-helpers';

/**
 * Renewal by each certificate's own lifetime, end to end and time-compressed: the simulator issues
 * 6-day (letsencrypt), 45-day (google) and 90-day (zerossl) certificates on the test's clock, and the
 * clock jumps from one renewal time to the next while the real worker renews through the simulator.
 */
describe('renewals over simulated lifetimes', () => {
  test('each certificate renewed once per lifetime, at its share of it; a same-hour batch spread', async ({
    workbench,
  }) => {
    let clock: Workbench['clock'] | undefined;
    const b = await workbench({
      sim: {
        certLifetimeMs: { letsencrypt: 6 * DAY_MS, google: 45 * DAY_MS, zerossl: 90 * DAY_MS },
        now: () => (clock?.now() ?? new Date()).getTime(),
      },
    });
    clock = b.clock;
    const worker = await startRenewalWorker(b);
    const tag = unique('life');
    const first = [
      await b.order([`six.${tag}.example.com`], { ca: 'letsencrypt' }),
      await b.order([`ff.${tag}.example.com`], { ca: 'google' }),
      // ZeroSSL gives a day's certificates the same expiry hour: a batch issued together.
      ...(await b.orders(
        Array.from({ length: 8 }, (_, i) => [`z${i}.${tag}.example.com`]),
        { ca: 'zerossl' },
      )),
    ];
    await b.waitForStatus(
      first.map((o) => o.id),
      ['issued'],
    );
    const start = b.clock.now().getTime();

    // The batch's renewal times are spread over the first part of the window, not one moment.
    const batch = await b.db.db
      .select()
      .from(certificates)
      .where(and(eq(certificates.ca, 'zerossl'), eq(certificates.isCurrent, true)));
    const offsets = batch.map((c) => (c.renewAt.getTime() - c.notBefore.getTime()) / lifetimeMs(c));
    expect(Math.min(...offsets)).toBeGreaterThanOrEqual(2 / 3 - 1e-6);
    expect(Math.max(...offsets)).toBeLessThanOrEqual(2 / 3 + 2 / 90 + 1e-6);
    const spreadHours =
      (Math.max(...batch.map((c) => c.renewAt.getTime())) -
        Math.min(...batch.map((c) => c.renewAt.getTime()))) /
      HOUR_MS;
    expect(spreadHours).toBeGreaterThan(4);

    // Jump from one renewal time to the next for 65 days, renewing what is due each time.
    const renewedAt = new Map<string, number>();
    const horizon = start + 65 * DAY_MS;
    for (let jumps = 0; jumps < 200; jumps++) {
      const [next] = await b.db.db
        .select({ at: sql<Date>`min(${certificates.renewAt})`.mapWith(certificates.renewAt) })
        .from(certificates)
        .where(eq(certificates.isCurrent, true));
      const target = Math.max(b.clock.now().getTime(), next!.at.getTime()) + 60_000;
      if (target > horizon) break;
      b.clock.advance(target - b.clock.now().getTime());
      const scan = await scanRenewals(worker.ctx);
      expect(scan.created).toBeGreaterThan(0);
      const created = await b.db.db
        .select({ id: orders.id, of: orders.renewalOfCertificateId })
        .from(orders)
        .where(and(isNotNull(orders.renewalOfCertificateId), inArray(orders.status, [...ACTIVE_STATUSES])));
      for (const o of created) if (!renewedAt.has(o.of!)) renewedAt.set(o.of!, b.clock.now().getTime());
      await b.waitForStatus(
        created.map((o) => o.id),
        ['issued'],
      );
    }

    // Every renewal happened at its share of the certificate's lifetime (a half under 10 days, two
    // thirds otherwise, plus the spread), never twice for one certificate, and the chain is unbroken.
    const all = await b.db.db.select().from(certificates);
    const byId = new Map(all.map((c) => [c.id, c]));
    const renewals = await b.db.db
      .select({ of: orders.renewalOfCertificateId, reason: orders.renewalReason })
      .from(orders)
      .where(isNotNull(orders.renewalOfCertificateId));
    expect(renewals.length).toBe(new Set(renewals.map((r) => r.of)).size);
    expect(renewals.every((r) => r.reason === 'nearing_expiry')).toBe(true);
    const perCa: Record<string, number[]> = { letsencrypt: [], google: [], zerossl: [] };
    for (const [certificateId, at] of renewedAt) {
      const c = byId.get(certificateId)!;
      perCa[c.ca!]!.push((at - c.notBefore.getTime()) / lifetimeMs(c));
    }
    const within = (shares: number[], from: number, to: number) => shares.every((s) => s >= from && s <= to);
    expect(within(perCa.letsencrypt!, 0.5, 0.56), JSON.stringify(perCa.letsencrypt)).toBe(true);
    expect(within(perCa.google!, 2 / 3, 0.71), JSON.stringify(perCa.google)).toBe(true);
    expect(within(perCa.zerossl!, 2 / 3, 0.7), JSON.stringify(perCa.zerossl)).toBe(true);
    // 65 days: a 6-day certificate every ~3 days, a 45-day one at ~30 and ~60, the 90-day ones once.
    expect(perCa.letsencrypt!.length).toBeGreaterThanOrEqual(20);
    expect(perCa.letsencrypt!.length).toBeLessThanOrEqual(22);
    expect(perCa.google!.length).toBe(2);
    expect(perCa.zerossl!.length).toBe(8);
    // Each domain set still has one current certificate, none expired on the way.
    const current = all.filter((c) => c.isCurrent);
    expect(current).toHaveLength(10);
    expect(current.every((c) => c.notAfter.getTime() > b.clock.now().getTime())).toBe(true);
  }, 120_000);
});
