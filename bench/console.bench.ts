import { createDb, type Database } from '@certq/db';
import { sql } from 'drizzle-orm';
import {
  certificateDetail,
  countOrders,
  expiringPerDay,
  orderDetail,
  outcomesPerHour,
  searchCertificates,
  searchOrders,
  tenantDetail,
} from '../apps/api/src/routes/console/queries';
import { type BenchRow, createBenchEnvironment, percentile } from './lib';

/**
 * The console's queries at a million certificates: 1,000,000 issued orders with their current
 * certificates (1,000 tenants, expiries spread over 90 days), 50,000 failed orders, one terminal event
 * per order in the last 7 days. Each query runs 30 times with varying inputs; p50/p95 in ms. The
 * baseline, side by side in the same run: the same queries inside a transaction that dropped the
 * indexes of migration 0008 (rolled back), and the cost of those indexes on a 10,000-order insert.
 */
const SUITE = 'console';
const CERTIFICATES = Number(process.env.BENCH_CONSOLE_CERTIFICATES ?? 1_000_000);
const FAILED = Math.round(CERTIFICATES / 20);
const TENANTS = 1_000;
const RUNS = Number(process.env.BENCH_CONSOLE_RUNS ?? 30);
const INDEXES_0008 = [
  'orders_domains_key_trgm',
  'certificates_domains_key_trgm',
  'orders_by_status_created',
  'order_events_terminal_by_at',
  'certificates_current_by_tenant_expiry',
];

async function seed(pool: ReturnType<typeof createDb>['pool']) {
  await pool.query(`insert into tenants (name, token_hash)
    select 'bench-tenant-' || i, md5('bench-' || i) from generate_series(1, ${TENANTS}) i`);
  // Names c<i>.<zone of the tenant>.example: "*.<zone>.example" is one tenant's 1,000 names, and
  // zones differ as real customers' domains do (md5 gives each tenant its own 8 letters).
  await pool.query(`with t as (select id, n, substr(md5('zone' || n), 1, 8) as zone from (select id, row_number() over (order by id) as n from tenants) s)
    insert into orders (tenant_id, domains, domains_key, status, apply_id, progress, created_at)
    select t.id, array['c' || i || '.' || t.zone || '.example'], 'c' || i || '.' || t.zone || '.example',
      'issued', 'bench-' || i, 100, now() - (i % 10000) * interval '1 minute'
    from generate_series(1, ${CERTIFICATES}) i join t on t.n = (i % ${TENANTS}) + 1`);
  await pool.query(`with t as (select id, n, substr(md5('zone' || n), 1, 8) as zone from (select id, row_number() over (order by id) as n from tenants) s)
    insert into orders (tenant_id, domains, domains_key, status, last_error, created_at)
    select t.id, array['f' || i || '.' || t.zone || '.example'], 'f' || i || '.' || t.zone || '.example',
      'failed', 'dns: CNAME not found', now() - (i % 5000) * interval '2 minutes'
    from generate_series(1, ${FAILED}) i join t on t.n = (i % ${TENANTS}) + 1`);
  await pool.query(`insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
      not_before, not_after, fingerprint, certificate_pem, private_key_sealed)
    select o.tenant_id, o.id, o.domains, o.domains_key, o.apply_id, 'ECC', 'google', now() - interval '1 day',
      now() + (random() * 90) * interval '1 day', md5(o.id::text),
      '-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n', 'placeholder'
    from orders o where o.status = 'issued'`);
  await pool.query(`update orders o set certificate_id = c.id from certificates c where c.order_id = o.id`);
  await pool.query(`insert into order_events (order_id, type, from_status, to_status, at)
    select id, 'status_changed', case when status = 'issued' then 'issuing' else 'verifying' end::order_status, status,
      now() - random() * interval '7 days' from orders`);
  await pool.query('vacuum analyze');
}

async function time(work: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function measure(name: string, runs: number, work: (i: number) => Promise<unknown>, goalMs?: number) {
  await work(0); // warm the plan and the cache
  const samples: number[] = [];
  for (let i = 1; i <= runs; i++) samples.push(await time(() => work(i)));
  samples.sort((a, b) => a - b);
  const p95 = percentile(samples, 95);
  const rows: BenchRow[] = [
    { suite: SUITE, metric: `${name} p50`, value: percentile(samples, 50), unit: 'ms' },
    {
      suite: SUITE,
      metric: `${name} p95`,
      value: p95,
      unit: 'ms',
      ...(goalMs === undefined ? {} : { goal: `< ${goalMs} ms`, met: p95 < goalMs }),
    },
  ];
  return rows;
}

/** `work` in a transaction that is then rolled back: whatever it changes, nothing stays. */
async function rolledBack<T>(db: Database, work: (tx: Database) => Promise<T>): Promise<T> {
  let result: T | undefined;
  await db
    .transaction(async (tx) => {
      result = await work(tx as unknown as Database);
      throw new RollBack();
    })
    .catch((error) => {
      if (!(error instanceof RollBack)) throw error;
    });
  return result as T;
}
class RollBack extends Error {}

/** The same work without the indexes of 0008 (rolled back: nothing changes). */
function withoutIndexes<T>(db: Database, work: (tx: Database) => Promise<T>): Promise<T> {
  return rolledBack(db, async (tx) => {
    for (const index of INDEXES_0008) await tx.execute(sql.raw(`drop index ${index}`));
    return work(tx);
  });
}

export async function run(): Promise<BenchRow[]> {
  const env = await createBenchEnvironment();
  const handle = createDb(env.databaseUrl, { max: 4 });
  const { db } = handle;
  const rows: BenchRow[] = [];
  try {
    const seeding = Date.now();
    await seed(handle.pool);
    process.stderr.write(
      `  seeded ${CERTIFICATES} certificates, ${CERTIFICATES + FAILED} orders in ${((Date.now() - seeding) / 1000).toFixed(1)} s\n`,
    );
    const tenantIds = (await db.execute<{ id: string }>(sql`select id from tenants order by id`)).rows.map(
      (r) => r.id,
    );
    const anOrder = (
      await db.execute<{ id: string }>(sql`select id from orders where status = 'issued' limit 50`)
    ).rows;
    const aCert = (await db.execute<{ id: string }>(sql`select id from certificates limit 50`)).rows;
    const pick = <T>(list: T[], i: number) => list[i % list.length]!;
    const zones = (
      await db.execute<{ zone: string; name: string }>(
        sql`select distinct on (tenant_id) split_part(domains[1], '.', 2) as zone, domains[1] as name
            from orders where status = 'issued' order by tenant_id limit 100`,
      )
    ).rows;

    // Each query with its goal for the p95 (ms); the charts run 5 times and have none.
    const queries: { name: string; runs?: number; goalMs?: number; work: (i: number) => Promise<unknown> }[] =
      [
        {
          name: 'orders by exact domain',
          goalMs: 50,
          work: (i) => searchOrders(db, { q: pick(zones, i).name }),
        },
        {
          name: 'orders by prefix (c12*)',
          goalMs: 200,
          work: (i) => searchOrders(db, { q: `c${10 + (i % 89)}*` }),
        },
        {
          name: 'orders under a domain (*.zone.example)',
          goalMs: 200,
          work: (i) => searchOrders(db, { q: `*.${pick(zones, i).zone}.example` }),
        },
        {
          name: 'failed orders, newest first',
          goalMs: 50,
          work: () => searchOrders(db, { status: 'failed' }),
        },
        {
          name: 'one tenant’s failed orders',
          goalMs: 50,
          work: (i) => searchOrders(db, { status: 'failed', tenantId: pick(tenantIds, i) }),
        },
        {
          name: 'bulk count: failed (cap 10,000)',
          goalMs: 100,
          work: () => countOrders(db, { status: 'failed' }),
        },
        {
          name: 'certificates soonest expiry, one tenant',
          goalMs: 50,
          work: (i) => searchCertificates(db, { tenantId: pick(tenantIds, i) }),
        },
        {
          name: 'certificates by prefix',
          goalMs: 200,
          work: (i) => searchCertificates(db, { q: `c${10 + (i % 89)}*` }),
        },
        { name: 'order page', goalMs: 20, work: (i) => orderDetail(db, pick(anOrder, i).id) },
        { name: 'certificate page', goalMs: 20, work: (i) => certificateDetail(db, pick(aCert, i).id) },
        { name: 'tenant page', goalMs: 100, work: (i) => tenantDetail(db, pick(tenantIds, i)) },
        { name: 'chart: expiring per day (90 d)', runs: 5, work: () => expiringPerDay(db) },
        { name: 'chart: issued/failed per hour (7 d)', runs: 5, work: () => outcomesPerHour(db) },
      ];
    for (const query of queries)
      rows.push(...(await measure(query.name, query.runs ?? RUNS, query.work, query.goalMs)));

    // Baseline: the index-dependent queries without the indexes of 0008.
    const baseline = async (name: string, work: (tx: Database) => Promise<unknown>) => {
      const ms = await withoutIndexes(db, async (tx) => {
        await work(tx);
        return time(() => work(tx));
      });
      rows.push({ suite: SUITE, metric: `baseline without 0008: ${name}`, value: ms, unit: 'ms' });
    };
    await baseline('orders by prefix', (tx) => searchOrders(tx, { q: 'c42*' }));
    await baseline('orders under a domain', (tx) => searchOrders(tx, { q: `*.${zones[7]!.zone}.example` }));
    await baseline('one tenant’s failed orders', (tx) =>
      searchOrders(tx, { status: 'failed', tenantId: tenantIds[3]! }),
    );
    await baseline('chart: issued/failed per hour', (tx) => outcomesPerHour(tx));

    // What the indexes cost writers: 10,000 orders inserted in one statement, with and without them.
    const insert = (tx: Database, tag: string) =>
      time(() =>
        tx.execute(
          sql.raw(`insert into orders (tenant_id, domains, domains_key)
          select '${tenantIds[0]}', array['ins-${tag}-' || i || '.example.org'], 'ins-${tag}-' || i || '.example.org'
          from generate_series(1, 10000) i`),
        ),
      );
    const withIdx = await rolledBack(db, (tx) => insert(tx, 'a'));
    const withoutIdx = await withoutIndexes(db, (tx) => insert(tx, 'b'));
    rows.push({ suite: SUITE, metric: 'insert 10,000 orders, with 0008', value: withIdx, unit: 'ms' });
    rows.push({ suite: SUITE, metric: 'insert 10,000 orders, without 0008', value: withoutIdx, unit: 'ms' });

    const plan = await db.execute<{ 'QUERY PLAN': string }>(sql`explain analyze
      select o.id from orders o where (o.domains_key like 'c42%' or o.domains_key like '%,c42%')
      order by o.created_at desc, o.id desc limit 51`);
    process.stderr.write(
      `  prefix search plan:\n${plan.rows.map((r) => `    ${r['QUERY PLAN']}`).join('\n')}\n`,
    );
  } finally {
    await handle.close();
    await env.cleanup();
  }
  return rows;
}
