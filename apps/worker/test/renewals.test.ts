import {
  MAX_JOB_PRIORITY,
  PRIORITY,
  PRIORITY_LANE_WIDTH,
  QUEUE_NAMES,
  RENEWAL_SPREAD_MAX_MS,
  renewalTime,
  renewalWindowStart,
  stageJobId,
} from '@certq/core';
import { certificates, insertOrders, orders } from '@certq/db';
import { waitFor } from '@certq/testing';
import { Queue } from 'bullmq';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { explainRenewalScan, scanRenewals, type WorkerContext } from '../src';
import { test, type Workbench } from './helpers';
import {
  createTenant,
  DAY_MS,
  HOUR_MS,
  scanContext,
  seedCertificates,
  startRenewalWorker,
  unique,
} from './renewal-helpers';

/** `setup(env)`: a workbench and a scan context on it, both closed when the test ends. */
const it = test.extend('setup', async ({ workbench }, { onCleanup }) => {
  const contexts: WorkerContext[] = [];
  onCleanup(async () => {
    for (const ctx of contexts) await ctx.close();
  });
  return async (env: Record<string, string> = {}) => {
    const bench = await workbench({ env });
    const ctx = scanContext(bench);
    contexts.push(ctx);
    return { bench, ctx };
  };
});

const at = (b: Workbench, ms: number) => new Date(b.clock.now().getTime() + ms);

async function renewalsOf(b: Workbench, certificateIds: string[]) {
  return b.db.db.select().from(orders).where(inArray(orders.renewalOfCertificateId, certificateIds));
}

describe('renewal scanner', () => {
  it('renews a certificate 29 days from expiry; not one 31 days out, nor an expired one', async ({
    setup,
  }) => {
    const { bench: b, ctx: c } = await setup();
    const [due, notYet, expired] = await seedCertificates(b.db.db, [
      {
        tenantId: b.tenantId,
        domains: ['due.example.com', '*.due.example.com'],
        notAfter: at(b, 29 * DAY_MS),
        algorithm: 'RSA',
        ca: 'letsencrypt',
      },
      { tenantId: b.tenantId, domains: ['later.example.com'], notAfter: at(b, 31 * DAY_MS) },
      { tenantId: b.tenantId, domains: ['gone.example.com'], notAfter: at(b, -DAY_MS) },
    ]);
    const result = await scanRenewals(c);
    expect(result).toMatchObject({ ran: true, due: 1, created: 1, skipped: 0, batches: 1 });
    const created = await renewalsOf(b, [due!, notYet!, expired!]);
    expect(created).toHaveLength(1);
    const [order] = created;
    expect(order).toMatchObject({
      tenantId: b.tenantId,
      kind: 'renewal',
      renewalReason: 'nearing_expiry',
      domains: ['due.example.com', '*.due.example.com'],
      algorithm: 'RSA',
      ca: 'letsencrypt',
      status: 'verifying',
      renewalOfCertificateId: due,
      renewalBatchId: null,
      priority: PRIORITY.renewal,
    });
    // Its first job is queued with the order's priority, after the new orders' lanes.
    const job = await b.queues.verify.getJob(stageJobId('verify', order!.id, 1));
    expect(job?.opts.priority).toBe(PRIORITY.renewal);
    expect(PRIORITY.renewal).toBeGreaterThan(PRIORITY.bulk);
  });

  it('renews when a third of the lifetime is left (half under 10 days), not on a fixed window', async ({
    setup,
  }) => {
    const { bench: b, ctx: c } = await setup();
    const issuedAt = (daysAgo: number) => at(b, -daysAgo * DAY_MS);
    const [sixDue, sixEarly, fortyFiveDue, fortyFiveEarly] = await seedCertificates(b.db.db, [
      // 6 days: due at day 3 (half).
      {
        tenantId: b.tenantId,
        domains: ['six-due.example.com'],
        notBefore: issuedAt(3.1),
        notAfter: at(b, 2.9 * DAY_MS),
      },
      {
        tenantId: b.tenantId,
        domains: ['six-early.example.com'],
        notBefore: issuedAt(2.9),
        notAfter: at(b, 3.1 * DAY_MS),
      },
      // 45 days: due at day 30; a fixed 30-day window would have renewed it at day 15.
      {
        tenantId: b.tenantId,
        domains: ['ff-due.example.com'],
        notBefore: issuedAt(30.1),
        notAfter: at(b, 14.9 * DAY_MS),
      },
      {
        tenantId: b.tenantId,
        domains: ['ff-early.example.com'],
        notBefore: issuedAt(16),
        notAfter: at(b, 29 * DAY_MS),
      },
    ]);
    expect(await scanRenewals(c)).toMatchObject({ due: 2, created: 2 });
    const created = await renewalsOf(b, [sixDue!, sixEarly!, fortyFiveDue!, fortyFiveEarly!]);
    expect(created.map((o) => o.renewalOfCertificateId).sort()).toEqual([sixDue, fortyFiveDue].sort());
    expect(created.every((o) => o.renewalReason === 'nearing_expiry')).toBe(true);
  });

  it('a renewal keeps the CA list of the order it renews', async ({ setup }) => {
    const { bench: b, ctx: c } = await setup();
    const [certificateId] = await seedCertificates(b.db.db, [
      {
        tenantId: b.tenantId,
        domains: ['choices.example.com'],
        notAfter: at(b, 10 * DAY_MS),
        ca: 'letsencrypt',
      },
    ]);
    // The order tried google first, then issued with letsencrypt.
    const [cert] = await b.db.db.select().from(certificates).where(eq(certificates.id, certificateId!));
    await b.db.db
      .update(orders)
      .set({ caChoices: ['google', 'letsencrypt'] })
      .where(eq(orders.id, cert!.orderId!));
    expect(await scanRenewals(c)).toMatchObject({ created: 1 });
    const [renewal] = await renewalsOf(b, [certificateId!]);
    expect(renewal).toMatchObject({ caChoices: ['google', 'letsencrypt'], ca: 'google' });
  });

  it("a certificate stored without a renewal time gets the lifetime rule's (migration trigger, same as @certq/core)", async ({
    setup,
  }) => {
    const { bench: b } = await setup();
    const lifetimes = [
      90 * 60_000,
      6 * DAY_MS,
      9.9 * DAY_MS,
      10 * DAY_MS,
      45 * DAY_MS,
      90 * DAY_MS,
      398 * DAY_MS,
    ];
    const notBefore = new Date('2026-03-01T00:00:00Z');
    for (const lifetime of lifetimes) {
      for (const draw of [0, 0.5, 0.999]) {
        const notAfter = new Date(notBefore.getTime() + lifetime);
        const { rows } = await b.db.pool.query<{ at: Date }>('select certq_renewal_time($1, $2, $3) as at', [
          notBefore,
          notAfter,
          draw,
        ]);
        const expected = renewalTime({ notBefore, notAfter }, { random: () => draw });
        expect(
          Math.abs(rows[0]!.at.getTime() - expected.getTime()),
          `${lifetime} ms, ${draw}`,
        ).toBeLessThanOrEqual(1);
      }
    }
    // An insert that gives none (a seed, an older writer) gets one from the trigger, in its window.
    const [order] = await insertOrders(b.db.db, [
      { tenantId: b.tenantId, domains: ['trigger.example.com'] },
    ]).then((r) => r.orders.map((o) => o.order));
    const { rows } = await b.db.pool.query<{ renew_at: Date; not_before: Date; not_after: Date }>(
      `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca, not_before,
         not_after, fingerprint, certificate_pem, private_key_sealed)
       values ($1, $2, '{trigger.example.com}', 'trigger.example.com', 'a1', 'ECC', 'google', $3, $4, 'f', 'pem', 'k')
       returning renew_at, not_before, not_after`,
      [b.tenantId, order!.id, notBefore, new Date(notBefore.getTime() + 90 * DAY_MS)],
    );
    const start = renewalWindowStart({ notBefore: rows[0]!.not_before, notAfter: rows[0]!.not_after });
    const offset = rows[0]!.renew_at.getTime() - start.getTime();
    expect(offset).toBeGreaterThanOrEqual(0);
    expect(offset).toBeLessThanOrEqual(RENEWAL_SPREAD_MAX_MS);
  });

  it('gives a certificate being renewed no second order, nor one whose domain set has an active order', async ({
    setup,
  }) => {
    const { bench: b, ctx: c } = await setup();
    const [renewing, busy] = await seedCertificates(b.db.db, [
      { tenantId: b.tenantId, domains: ['renewing.example.com'], notAfter: at(b, 20 * DAY_MS) },
      { tenantId: b.tenantId, domains: ['busy.example.com'], notAfter: at(b, 20 * DAY_MS) },
    ]);
    // Someone already ordered busy.example.com again (a new order, still active).
    await insertOrders(b.db.db, [{ tenantId: b.tenantId, domains: ['busy.example.com'] }]);
    expect(await scanRenewals(c)).toMatchObject({ due: 1, created: 1 });
    expect(await scanRenewals(c)).toMatchObject({ due: 0, created: 0 });
    expect(await renewalsOf(b, [renewing!, busy!])).toHaveLength(1);
    // Another tenant's certificate for the same names is its own business.
    const other = await createTenant(b.db.db);
    await seedCertificates(b.db.db, [
      { tenantId: other.id, domains: ['renewing.example.com'], notAfter: at(b, 20 * DAY_MS) },
    ]);
    expect(await scanRenewals(c)).toMatchObject({ due: 1, created: 1 });
  });

  it('interleaves tenants: priority = PRIORITY.renewal + position in the tenant renewal backlog', async ({
    setup,
  }) => {
    const { bench: b, ctx: c } = await setup();
    const big = await createTenant(b.db.db);
    const small = await createTenant(b.db.db);
    // `big` already has one active renewal: its new ones queue behind it.
    await insertOrders(b.db.db, [{ tenantId: big.id, domains: ['old.big.example.com'], kind: 'renewal' }]);
    await seedCertificates(b.db.db, [
      ...[1, 2, 3].map((i) => ({
        tenantId: big.id,
        domains: [`b${i}.big.example.com`],
        notAfter: at(b, i * DAY_MS),
      })),
      ...[1, 2].map((i) => ({
        tenantId: small.id,
        domains: [`s${i}.small.example.com`],
        notAfter: at(b, (i + 3) * DAY_MS),
      })),
    ]);
    await scanRenewals(c);
    const rows = await b.db.db
      .select({ tenantId: orders.tenantId, domains: orders.domains, priority: orders.priority })
      .from(orders)
      .where(and(eq(orders.kind, 'renewal'), sql`${orders.renewalOfCertificateId} is not null`));
    const priorities = (tenantId: string) =>
      rows
        .filter((r) => r.tenantId === tenantId)
        .map((r) => r.priority)
        .sort((x, y) => x - y);
    const r = PRIORITY.renewal;
    expect(priorities(big.id)).toEqual([r + 1, r + 2, r + 3]);
    expect(priorities(small.id)).toEqual([r, r + 1]);
    // A place past the lane's width is clamped to its last number, which BullMQ still accepts.
    expect(PRIORITY.renewal + PRIORITY_LANE_WIDTH - 1).toBeLessThanOrEqual(MAX_JOB_PRIORITY);
  });

  it('pages through the due certificates in bounded batches and spreads first runs at the upstream rate', async ({
    setup,
  }) => {
    const { bench: b, ctx: c } = await setup({ UPSTREAM_MAX_RPS: '10' });
    const ids = await seedCertificates(
      b.db.db,
      Array.from({ length: 50 }, (_, i) => ({
        tenantId: b.tenantId,
        domains: [`p${i}.page.example.com`],
        notAfter: at(b, (10 + (i % 7)) * DAY_MS),
      })),
    );
    const now = b.clock.now();
    expect(await scanRenewals(c, { batchSize: 7, now })).toMatchObject({
      due: 50,
      created: 50,
      batches: 8,
    });
    const created = await renewalsOf(b, ids);
    expect(new Set(created.map((o) => o.renewalOfCertificateId)).size).toBe(50);
    // 50 renewals at 10 requests/s: first runs spread over 5 s, not all at once.
    const offsets = created.map((o) => o.nextAttemptAt.getTime() - now.getTime());
    expect(Math.min(...offsets)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...offsets)).toBeLessThanOrEqual(5000);
    expect(Math.max(...offsets) - Math.min(...offsets)).toBeGreaterThan(2000);
    // Each job waits for its own moment.
    const job = await b.queues.verify.getJob(stageJobId('verify', created[0]!.id, 1));
    expect(job!.delay).toBeGreaterThanOrEqual(0);
  });

  it('reads the certificates through the renewal-time index (EXPLAIN)', async ({ setup }) => {
    const { bench: b, ctx: c } = await setup();
    // 2,000 current certificates, 10% inside the window: the planner's choice is realistic.
    await seedCertificates(
      b.db.db,
      Array.from({ length: 2000 }, (_, i) => ({
        tenantId: b.tenantId,
        domains: [`e${i}.explain.example.com`],
        notAfter: at(b, (i % 10 === 0 ? 15 : 45 + (i % 40)) * DAY_MS),
      })),
    );
    await b.db.db.execute(sql`analyze certificates`);
    await b.db.db.execute(sql`analyze orders`);
    const now = b.clock.now();
    const first = await explainRenewalScan(c.db, now);
    expect(first.usesRenewAtIndex, first.plan).toBe(true);
    const next = await explainRenewalScan(c.db, now, {
      cursor: { renewAt: now.toISOString(), id: '00000000-0000-0000-0000-000000000000' },
    });
    expect(next.usesRenewAtIndex, next.plan).toBe(true);
    expect(await scanRenewals(c)).toMatchObject({ due: 200, created: 200 });
  });

  it('one scan at a time across workers (advisory lock)', async ({ setup }) => {
    const { bench: b, ctx: c } = await setup();
    await seedCertificates(b.db.db, [
      { tenantId: b.tenantId, domains: ['locked.example.com'], notAfter: at(b, 5 * DAY_MS) },
    ]);
    const holder = await b.db.pool.connect();
    try {
      await holder.query('begin');
      await holder.query("select pg_advisory_xact_lock(hashtext('certq:renewal-scan'))");
      expect(await scanRenewals(c)).toMatchObject({ ran: false, created: 0 });
      await holder.query('commit');
    } finally {
      holder.release();
    }
    expect(await scanRenewals(c)).toMatchObject({ ran: true, created: 1 });
  });
});

describe('renewals through the simulator', () => {
  it('a renewal issued: the new certificate is current, the old one stays as history', async ({ setup }) => {
    const { bench: b } = await setup();
    const worker = await startRenewalWorker(b);
    const first = await b.order(['renew.example.com', 'www.renew.example.com']);
    const [issued] = await b.waitForStatus([first.id], ['issued']);
    const oldId = issued!.certificateId!;
    await b.db.db
      .update(certificates)
      .set({ notAfter: at(b, 29 * DAY_MS), renewAt: b.clock.now() })
      .where(eq(certificates.id, oldId));
    expect(await scanRenewals(worker.ctx)).toMatchObject({ created: 1 });
    const [renewal] = await renewalsOf(b, [oldId]);
    const [done] = await b.waitForStatus([renewal!.id], ['issued', 'failed']);
    expect(done).toMatchObject({ status: 'issued', kind: 'renewal', renewalOfCertificateId: oldId });
    const certs = await b.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.domainsKey, 'renew.example.com,www.renew.example.com'));
    const current = certs.filter((x) => x.isCurrent);
    expect(current).toHaveLength(1);
    expect(current[0]!.id).toBe(done!.certificateId);
    expect(current[0]!.orderId).toBe(renewal!.id);
    expect(certs.find((x) => x.id === oldId)).toMatchObject({ isCurrent: false });
    expect(current[0]!.notAfter.getTime()).toBeGreaterThan(Date.now() + 89 * DAY_MS);
    // The new certificate is far from expiry: nothing more to renew.
    expect(await scanRenewals(worker.ctx)).toMatchObject({ due: 0, created: 0 });
  });

  it('a failing renewal backs off 1 h, 2 h, 4 h; the backoff survives a restart; retried until expiry', async ({
    setup,
  }) => {
    const { bench: b } = await setup({ RENEW_SCAN_INTERVAL_MS: '1000' });
    let worker = await startRenewalWorker(b);
    const domain = `${unique('r')}.fail.test`;
    const [certId] = await seedCertificates(b.db.db, [
      { tenantId: b.tenantId, domains: [domain], notAfter: at(b, 29 * DAY_MS) },
    ]);
    const certificate = async () =>
      (await b.db.db.select().from(certificates).where(eq(certificates.id, certId!)))[0]!;
    const seen = new Set<string>();
    const failOnce = async (expectedFailures: number, backoffMs: number) => {
      const renewal = await waitFor(
        async () => (await renewalsOf(b, [certId!])).find((o) => !seen.has(o.id)),
        { message: 'a renewal order' },
      );
      seen.add(renewal.id);
      const [failed] = await b.waitForStatus([renewal.id], ['failed', 'issued']);
      expect(failed!.status).toBe('failed');
      expect(failed!.lastError).toMatch(/httpsok failed the application/);
      const cert = await certificate();
      expect(cert.renewalFailures).toBe(expectedFailures);
      const wait = cert.renewalNotBefore!.getTime() - b.clock.now().getTime();
      expect(wait).toBeGreaterThan(backoffMs - 60_000);
      expect(wait).toBeLessThanOrEqual(backoffMs);
      return cert.renewalNotBefore!;
    };

    expect(await scanRenewals(worker.ctx)).toMatchObject({ created: 1 });
    let notBefore = await failOnce(1, HOUR_MS);
    // Backed off: nothing until renewalNotBefore.
    expect(await scanRenewals(worker.ctx)).toMatchObject({ created: 0 });
    b.clock.advance(HOUR_MS - 5 * 60_000);
    expect(await scanRenewals(worker.ctx)).toMatchObject({ created: 0 });
    b.clock.advance(5 * 60_000 + 1000);
    expect(await scanRenewals(worker.ctx)).toMatchObject({ created: 1 });
    notBefore = await failOnce(2, 2 * HOUR_MS);

    // Restart, this time with the periodic scan (every second): the backoff is in Postgres, so the
    // scans that run right away create nothing before renewalNotBefore.
    await worker.close();
    worker = await startRenewalWorker(b, { scheduleRenewalScan: true });
    const scans = new Queue(QUEUE_NAMES.maintenance, { connection: b.redisClient, prefix: b.redis.prefix });
    try {
      await waitFor(async () => ((await scans.getJobCounts('completed')).completed ?? 0) >= 2, {
        message: 'two scheduled scans',
      });
    } finally {
      await scans.close();
    }
    expect(await renewalsOf(b, [certId!])).toHaveLength(2);
    expect((await certificate()).renewalNotBefore).toEqual(notBefore);
    // Past the backoff, the scheduled scan renews again: it fails, and the next wait is 4 h.
    b.clock.advance(2 * HOUR_MS + 1000);
    await failOnce(3, 4 * HOUR_MS);

    // Retried until the certificate expires, then left alone.
    b.clock.advance(29 * DAY_MS);
    expect(await scanRenewals(worker.ctx)).toMatchObject({ due: 0, created: 0 });
  }, 60_000);
});
