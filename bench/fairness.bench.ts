import { orders, tenants } from '@certq/db';
import { waitFor } from '@certq/testing/standalone';
import { createOrder, createOrders } from '@certq/workflow';
import { and, count, eq, inArray } from 'drizzle-orm';
import { type BenchRow, createBenchEnvironment } from './lib';
import { startWorkerBench } from './worker-runs';

/**
 * One tenant's bulk against other tenants' single orders (`pnpm bench fairness`). The simulator
 * issues 5 s after apply, UPSTREAM_MAX_RPS=20 (the default ceiling). First one single order alone: a
 * normal issuance. Then tenant A bulk-orders BENCH_FAIRNESS_BULK orders (default 10,000, as POST
 * /v1/orders/bulk does), and once they are under way seven other tenants post one order each. Measured:
 * each single's created → issued time against the normal one, and how many of the bulk's orders were
 * issued while the singles waited. FIFO (before the lanes) held the singles behind the whole bulk:
 * about 8.5 min in the issue's run, 10,000 × 4 calls / 20 per second ≈ 33 min at this ceiling.
 */

const SUITE = 'fairness';
const BULK = Number(process.env.BENCH_FAIRNESS_BULK ?? 10_000);
const SINGLES = 7;
/** How long the bulk runs alone before the singles arrive (its verify/apply/poll pipeline full). */
const HEAD_START_MS = 20_000;

export async function run(): Promise<BenchRow[]> {
  const env = await createBenchEnvironment();
  const { db, queues, close } = await startWorkerBench(env, {
    issueSeconds: 5,
    settings: {
      UPSTREAM_MAX_RPS: '20',
      DNS_RESOLVERS: env.dnsResolvers,
    },
  });
  const deps = { db: db.db, queues };
  try {
    const tenantRows = await db.db
      .insert(tenants)
      .values(Array.from({ length: SINGLES + 2 }, (_, i) => ({ name: `fair-${i}`, tokenHash: `fair-${i}` })))
      .returning();
    const [bulkTenant, aloneTenant, ...others] = tenantRows;
    const issuedIn = async (ids: string[]) => {
      const rows = await db.db.select().from(orders).where(inArray(orders.id, ids));
      return rows.every((o) => o.status === 'issued') ? rows : undefined;
    };
    const seconds = (o: { createdAt: Date; updatedAt: Date }) =>
      (o.updatedAt.getTime() - o.createdAt.getTime()) / 1000;

    const alone = await createOrder(deps, { tenantId: aloneTenant!.id, domains: ['alone.fair.example.com'] });
    if (!alone.created) throw new Error('the lone order was not created');
    const [aloneDone] = await waitFor(() => issuedIn([alone.order.id]), {
      timeoutMs: 120_000,
      message: 'the lone order',
    });
    const normal = seconds(aloneDone!);

    await createOrders(
      deps,
      Array.from({ length: BULK }, (_, i) => ({
        tenantId: bulkTenant!.id,
        domains: [`b${i}.bulk.fair.example.com`],
      })),
    );
    await new Promise((r) => setTimeout(r, HEAD_START_MS));
    const bulkIssued = async () =>
      (
        await db.db
          .select({ n: count() })
          .from(orders)
          .where(and(eq(orders.tenantId, bulkTenant!.id), eq(orders.status, 'issued')))
      )[0]!.n;
    const issuedBefore = await bulkIssued();
    const singles: string[] = [];
    for (const [i, tenant] of others.entries()) {
      const result = await createOrder(deps, {
        tenantId: tenant.id,
        domains: [`s${i}.single.fair.example.com`],
      });
      if (result.created) singles.push(result.order.id);
    }
    const done = await waitFor(() => issuedIn(singles), { timeoutMs: 600_000, message: 'the seven singles' });
    const issuedMeanwhile = (await bulkIssued()) - issuedBefore;
    const waits = done.map(seconds).sort((a, b) => a - b);
    const worst = waits[waits.length - 1]!;
    process.stderr.write(
      `  normal ${normal.toFixed(1)} s; singles ${waits.map((w) => w.toFixed(1)).join(' ')} s; ` +
        `bulk issued ${issuedBefore} before, ${issuedMeanwhile} while they waited\n`,
    );
    return [
      { suite: SUITE, metric: 'one order alone: created → issued', value: normal, unit: 's' },
      {
        suite: SUITE,
        metric: `${SINGLES} singles of other tenants behind a ${BULK}-order bulk: slowest created → issued`,
        value: worst,
        unit: 's',
        goal: '< 2× alone + 10 s',
        met: worst < 2 * normal + 10,
      },
      {
        suite: SUITE,
        metric: 'the same: median created → issued',
        value: waits[Math.floor(waits.length / 2)]!,
        unit: 's',
      },
      {
        suite: SUITE,
        metric: `bulk orders issued while the singles waited (of ${BULK})`,
        value: issuedMeanwhile,
        unit: 'orders',
      },
    ];
  } finally {
    await close();
    await env.cleanup();
  }
}
