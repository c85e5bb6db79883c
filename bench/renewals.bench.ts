import { randomBytes } from 'node:crypto';
import { loadConfig } from '@certq/core';
import { explainRenewalScan, scanRenewals } from '@certq/worker';
import { requestRenewals } from '@certq/workflow';
import type pg from 'pg';
import { type BenchRow, createBenchEnvironment } from './lib';
import { ONE_IN_TEN_DUE_NOT_AFTER, openScanContext, profiledScan } from './renewal-scan';

/**
 * The renewal scanner at scale: 100,000 current certificates across 1,000 tenants, 10% of them past
 * their renewal time. Measures one scan that creates and enqueues the 10,000
 * renewal orders — wall time and peak RSS, sampled every 10 ms — then a second scan with nothing left
 * to do (the periodic cost), and prints the EXPLAIN of the scan's page query to stderr.
 */

const SUITE = 'renewals';
const CERTIFICATES = Number(process.env.BENCH_RENEWAL_CERTIFICATES ?? 100_000);
const TENANTS = Number(process.env.BENCH_RENEWAL_TENANTS ?? 1_000);
const MB = 1024 * 1024;

async function seed(db: pg.Pool): Promise<void> {
  await db.query(`
    insert into tenants (name, token_hash)
    select 'bench-tenant-' || i, md5('bench-' || i) from generate_series(1, ${TENANTS}) i`);
  // Orders first (a certificate references the order that issued it), then their certificates:
  // one in ten expires within 1–29 days, the others in 31–89 days.
  await db.query(`
    with t as (select id, row_number() over (order by id) as n from tenants)
    insert into orders (tenant_id, domains, domains_key, status, apply_id, progress)
    select t.id, array['c' || i || '.bench.example.com'], 'c' || i || '.bench.example.com', 'issued', 'bench-' || i, 100
    from generate_series(1, ${CERTIFICATES}) i join t on t.n = (i % ${TENANTS}) + 1`);
  await db.query(`
    insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
      not_before, not_after, fingerprint, certificate_pem, private_key_sealed)
    select o.tenant_id, o.id, o.domains, o.domains_key, o.apply_id, 'ECC', 'google',
      now() - interval '60 days',
      ${ONE_IN_TEN_DUE_NOT_AFTER},
      md5(o.id::text),
      '-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n',
      'placeholder'
    from orders o`);
  await db.query(`update orders o set certificate_id = c.id from certificates c where c.order_id = o.id`);
  await db.query(`vacuum analyze`);
}

export async function run(): Promise<BenchRow[]> {
  const env = await createBenchEnvironment();
  const config = loadConfig({
    DATABASE_URL: env.databaseUrl,
    REDIS_URL: env.redisUrl,
    REDIS_PREFIX: env.prefix,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'silent',
    DNS_RESOLVERS: env.dnsResolvers,
  });
  const { ctx, pool, close: closeScanContext } = openScanContext(env, config);
  try {
    const seeding = Date.now();
    await seed(pool);
    process.stderr.write(
      `  seeded ${CERTIFICATES} certificates across ${TENANTS} tenants in ${((Date.now() - seeding) / 1000).toFixed(1)} s\n`,
    );

    const now = new Date();
    const explained = await explainRenewalScan(ctx.db, now, { analyze: true });
    const later = await explainRenewalScan(ctx.db, now, {
      cursor: {
        renewAt: new Date(now.getTime() - 14 * 86_400_000).toISOString(),
        id: '00000000-0000-0000-0000-000000000000',
      },
    });
    process.stderr.write(
      `  EXPLAIN ANALYZE of the scan's first page:\n${explained.plan.replace(/^/gm, '    ')}\n`,
    );
    process.stderr.write(
      `  page query: ${explained.scan} on certificates_current_by_renew_at (first page), ${later.scan} (later pages)\n`,
    );

    const { scan, seconds: wallS, rssBefore, peakRss, liveHeap } = await profiledScan(ctx, { now });
    const queued = await ctx.queues.verify.getJobCounts('delayed', 'prioritized', 'waiting');
    const jobs = Object.values(queued).reduce((a, b) => a + b, 0);
    process.stderr.write(
      `  scan: ${JSON.stringify(scan)}; ${jobs} verify jobs queued; RSS ${(rssBefore / MB).toFixed(0)} → peak ${(peakRss / MB).toFixed(0)} MB\n`,
    );

    const again = performance.now();
    const second = await scanRenewals(ctx, { now });
    const secondS = (performance.now() - again) / 1000;

    // A manual renewal (POST /v1/renewals) of everything expiring within 40 days: the 10,000 renewed
    // above are skipped (active orders), the ~17% expiring in 31–40 days get orders, in one transaction.
    const manualStarted = performance.now();
    const manual = await requestRenewals(ctx.db, ctx.queues, {
      selection: { expiringWithinDays: 40 },
      requestedByTenantId: null,
      maxRps: config.UPSTREAM_MAX_RPS,
    });
    const manualS = (performance.now() - manualStarted) / 1000;
    process.stderr.write(`  manual renewal: ${JSON.stringify(manual)} in ${manualS.toFixed(2)} s\n`);

    const expected = Math.floor(CERTIFICATES / 10);
    const indexScan = explained.usesRenewAtIndex && later.usesRenewAtIndex;
    return [
      { suite: SUITE, metric: 'certificates (current)', value: CERTIFICATES, unit: 'rows' },
      {
        suite: SUITE,
        metric: 'renewal orders created+enqueued',
        value: scan.created,
        unit: 'orders',
        goal: `= ${expected}`,
        met: scan.created === expected && jobs === expected,
      },
      {
        suite: SUITE,
        metric: 'scan wall time (create+enqueue)',
        value: wallS,
        unit: 's',
        goal: '< 10',
        met: wallS < 10,
      },
      { suite: SUITE, metric: 'scan throughput', value: scan.created / wallS, unit: 'orders/s' },
      { suite: SUITE, metric: 'RSS before scan', value: rssBefore / MB, unit: 'MB' },
      { suite: SUITE, metric: 'RSS peak during scan', value: peakRss / MB, unit: 'MB' },
      { suite: SUITE, metric: 'RSS growth at peak', value: (peakRss - rssBefore) / MB, unit: 'MB' },
      { suite: SUITE, metric: 'live heap after batch 1 (after GC)', value: liveHeap[0]! / MB, unit: 'MB' },
      {
        suite: SUITE,
        metric: `live heap growth, batch 1 → ${liveHeap.length} (flat)`,
        value: (Math.max(...liveHeap) - liveHeap[0]!) / MB,
        unit: 'MB',
        goal: '< 5',
        met: Math.max(...liveHeap) - liveHeap[0]! < 5 * MB,
      },
      {
        suite: SUITE,
        metric: 'second scan, nothing due',
        value: secondS * 1000,
        unit: 'ms',
        goal: `created = ${second.created}`,
        met: second.created === 0,
      },
      {
        suite: SUITE,
        metric: `manual batch: ${manual.enqueued} created, ${manual.skipped} skipped`,
        value: manualS,
        unit: 's',
        goal: `skipped = ${expected}`,
        met: manual.skipped === expected,
      },
      {
        suite: SUITE,
        metric: `scan query uses the renew_at index (${explained.scan})`,
        value: indexScan ? 1 : 0,
        unit: 'bool',
        goal: '= 1',
        met: indexScan,
      },
    ];
  } finally {
    await closeScanContext();
    await env.cleanup();
  }
}
