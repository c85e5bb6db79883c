import { backoffDelay } from '@certq/core';
import { createDb, insertOrders, tenants } from '@certq/db';
import { createSimulator, dvRecord } from '@certq/simulator';
import { startNamed } from '@certq/testing/standalone';
import { startWorker } from '@certq/worker';
import { createQueues, enqueueOrders } from '@certq/workflow';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { type BenchRow, benchConfig, createBenchEnvironment, percentile } from './lib';
import { ordersFailedRow } from './worker-runs';

/*
 * `pnpm bench dns`: orders whose CNAME appears at a random moment within two minutes, in a real DNS
 * server (bind9 `named`) that certq and the simulator (SIM_VERIFY=dns) both ask. Time is scaled down by
 * SCALE, in proportion everywhere: the two minutes, DNS_CHECK_INTERVAL_MS (15 s) and its cap (5 min), and, for
 * today's behaviour, its upstream retry delay (10 s growing to VERIFY_MAX_DELAY_MS, 15 min).
 *
 * Today's behaviour (before local checks) is measured the same way, side by side: the same orders, records
 * appearing on the same schedule, asking httpsok `dv` on today's backoff until it says valid.
 */
const ORDERS = Number(process.env.BENCH_DNS_ORDERS ?? 1000);
const SCALE = Number(process.env.BENCH_DNS_SCALE ?? 10);
const WINDOW_MS = 120_000 / SCALE;
const API_KEY = 'bench-dns';

interface Plan {
  domain: string;
  fqdn: string;
  hostValue: string;
  /** When the record appears, ms after the start. */
  at: number;
}

function plans(tag: string, offsets: number[]): Plan[] {
  return offsets.map((at, i) => {
    const domain = `o${i}.${tag}.bench.example`;
    const record = dvRecord(API_KEY, domain);
    return { domain, fqdn: record.fqdn, hostValue: record.hostValue, at };
  });
}

/** Creates every record at its time, in one nsupdate per 50 ms tick; resolves with each domain's creation time. */
async function publish(
  named: Awaited<ReturnType<typeof startNamed>>,
  list: Plan[],
  started: number,
): Promise<Map<string, number>> {
  const created = new Map<string, number>();
  const pending = [...list].sort((a, b) => a.at - b.at);
  while (pending.length) {
    const now = Date.now() - started;
    const due = [];
    while (pending.length && pending[0]!.at <= now) due.push(pending.shift()!);
    if (due.length) {
      await named.update(due.map((p) => `update add ${p.fqdn}. 0 CNAME ${p.hostValue}.`));
      const at = Date.now();
      for (const p of due) created.set(p.domain, at);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return created;
}

/**
 * Today's verify stage: `dv` until valid, ≥ 10 s apart growing with jitter to 15 min (all / SCALE). The
 * records start appearing once every order had its first answer, as for certq's run.
 */
async function todaysBehaviour(
  simUrl: string,
  list: Plan[],
  publishRecords: () => Promise<Map<string, number>>,
) {
  const policy = { baseMs: 10_000 / SCALE, capMs: (15 * 60_000) / SCALE };
  let calls = 0;
  const verifiedAt = new Map<string, number>();
  const dv = async (p: Plan) => {
    calls++;
    const res = await fetch(`${simUrl}/v1/cert/dv`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', openapikey: API_KEY },
      body: JSON.stringify({ domainList: [p.domain] }),
    });
    const body = (await res.json()) as { data: { valid: boolean } };
    if (body.data.valid) verifiedAt.set(p.domain, Date.now());
    return body.data.valid;
  };
  await Promise.all(list.map(dv));
  const published = publishRecords();
  const started = Date.now();
  await Promise.all(
    list.map(async (p) => {
      for (let attempt = 0; ; attempt++) {
        await new Promise((r) => setTimeout(r, backoffDelay(attempt, policy)));
        if (await dv(p)) return;
        if (Date.now() - started > 50 * WINDOW_MS) throw new Error(`baseline: ${p.domain} never verified`);
      }
    }),
  );
  return { calls, verifiedAt, created: await published };
}

export async function run(): Promise<BenchRow[]> {
  const env = await createBenchEnvironment();
  const named = await startNamed();
  const sim = createSimulator({ verify: 'dns', dnsResolver: named.address, issueSeconds: 0 });
  const simUrl = await sim.listen();
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const offsets = Array.from({ length: ORDERS }, () => Math.random() * WINDOW_MS);
  const suite = `dns (${ORDERS} orders, records over ${120} s scaled 1/${SCALE})`;
  try {
    // certq with local DNS checks.
    const config = benchConfig(env, simUrl, {
      HTTPSOK_API_KEY: API_KEY,
      UPSTREAM_MAX_RPS: '100000',
      WORKER_CONCURRENCY: '100',
      DNS_RESOLVERS: named.address,
      DNS_CHECK_INTERVAL_MS: String(15_000 / SCALE),
    });
    const db = createDb(env.databaseUrl);
    const [tenant] = await db.db.insert(tenants).values({ name: 'bench', tokenHash: 'bench' }).returning();
    const queues = createQueues(redis, env.prefix);
    const ours = plans('local', offsets);
    const worker = await startWorker({ config, logger: pino({ level: 'silent' }) });
    const started = Date.now();
    const { orders } = await insertOrders(
      db.db,
      ours.map((p) => ({ tenantId: tenant!.id, domains: [p.domain] })),
    );
    await enqueueOrders(
      queues,
      orders.map((o) => o.order),
    );
    // As a tenant does: order, read the instructions (the first dv), then create the record.
    for (;;) {
      const { rows } = await db.pool.query('select count(*)::int as n from orders where last_dv_at is null');
      if (rows[0].n === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const publishedFrom = Date.now();
    const published = publish(named, ours, publishedFrom);
    for (;;) {
      const { rows } = await db.pool.query(
        "select count(*)::int as n from orders where status = 'verifying'",
      );
      if (rows[0].n === 0) break;
      if (Date.now() - started > 50 * WINDOW_MS) throw new Error(`${rows[0].n} orders still verifying`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const created = await published;
    const oursDv = sim.stats().dv;
    const lookups = Object.values(worker.ctx.dns.stats()).reduce((a, b) => a + b, 0);
    const { rows: applying } = await db.pool.query<{ domain: string; at: Date }>(
      `select o.domains[1] as domain, min(e.at) as at from order_events e join orders o on o.id = e.order_id
       where e.to_status = 'applying' group by 1`,
    );
    const oursLatency = applying.map((r) => r.at.getTime() - created.get(r.domain)!).sort((a, b) => a - b);
    const failedRow = await ordersFailedRow(db.pool, suite);
    await worker.close();
    await queues.close();
    await db.close();

    // Today's behaviour, same simulator and DNS server, same record schedule.
    sim.reset();
    const theirs = plans('upstream', offsets);
    const baseline = await todaysBehaviour(simUrl, theirs, () => publish(named, theirs, Date.now()));
    const baseLatency = theirs
      .map((p) => baseline.verifiedAt.get(p.domain)! - baseline.created.get(p.domain)!)
      .sort((a, b) => a - b);

    const dvPerOrder = oursDv / ORDERS;
    const baseDvPerOrder = baseline.calls / ORDERS;
    // Latencies reported in real (unscaled) seconds.
    const real = (ms: number) => (ms * SCALE) / 1000;
    const latencyRows = (what: string, sorted: number[]): BenchRow[] => [
      {
        suite,
        metric: `median record created → ${what} (unscaled)`,
        value: real(percentile(sorted, 50)),
        unit: 's',
      },
      {
        suite,
        metric: `p95 record created → ${what} (unscaled)`,
        value: real(percentile(sorted, 95)),
        unit: 's',
      },
    ];
    return [
      { suite, metric: 'upstream dv calls per order, local checks', value: dvPerOrder, unit: 'calls' },
      {
        suite,
        metric: "upstream dv calls per order, today's behaviour",
        value: baseDvPerOrder,
        unit: 'calls',
      },
      {
        suite,
        metric: 'dv calls saved',
        value: 1 - dvPerOrder / baseDvPerOrder,
        unit: 'fraction',
        goal: '>= 0.5',
        met: dvPerOrder <= baseDvPerOrder / 2,
      },
      ...latencyRows('applying, local checks', oursLatency),
      ...latencyRows("verified, today's behaviour", baseLatency),
      { suite, metric: 'resolver queries per order (CNAME + CAA)', value: lookups / ORDERS, unit: 'queries' },
      failedRow,
    ];
  } finally {
    redis.disconnect();
    await sim.close();
    await named.stop();
    await env.cleanup();
  }
}
