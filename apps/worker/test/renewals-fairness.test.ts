import { setPriority } from 'node:os';
import { PRIORITY } from '@certq/core';
import { insertOrders, orders } from '@certq/db';
import { waitFor } from '@certq/testing';
import { enqueueOrders } from '@certq/workflow';
import { and, count, eq } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { scanRenewals, type WorkerContext } from '../src';
import { createWorkbench, type Workbench } from './helpers';
import { spawnWorker } from './process';
import { createTenant, DAY_MS, scanContext, seedCertificates, unique } from './renewal-helpers';

let bench: Workbench | undefined;
let ctx: WorkerContext | undefined;
let worker: ReturnType<typeof spawnWorker> | undefined;
afterAll(async () => {
  if (worker && worker.exitCode === null) worker.kill('SIGKILL');
  await ctx?.close();
  await bench?.close();
});

// Enough that FIFO would finish the small tenant's renewals last (measured with fair lanes: after
// about 10 of the big tenant's); more only makes the suite slower.
const BIG = 2000;
const SMALL = 10;

describe('fairness', () => {
  it(`one tenant's ${BIG} renewals starve neither a new order nor another tenant's ${SMALL} renewals`, async () => {
    // ~6,000 jobs keep both the simulator (here) and the worker (a child, which inherits this) busy for
    // a minute or two: at a lower CPU priority, so the timing-sensitive test files running alongside
    // are not starved by this one.
    setPriority(10);
    bench = await createWorkbench({ env: { UPSTREAM_MAX_RPS: '5000', WORKER_CONCURRENCY: '50' } });
    const b = bench;
    const big = await createTenant(b.db.db);
    const small = await createTenant(b.db.db);
    const now = b.clock.now().getTime();
    const tag = unique('fair');
    // The small tenant's certificates expire last: the scan meets them after all of the big tenant's,
    // so only the interleaved priorities can get them done early.
    await seedCertificates(b.db.db, [
      ...Array.from({ length: BIG }, (_, i) => ({
        tenantId: big.id,
        domains: [`c${i}.big.${tag}.example.com`],
        notAfter: new Date(now + (1 + (i / BIG) * 27) * DAY_MS),
      })),
      ...Array.from({ length: SMALL }, (_, i) => ({
        tenantId: small.id,
        domains: [`c${i}.small.${tag}.example.com`],
        notAfter: new Date(now + 29 * DAY_MS),
      })),
    ]);
    ctx = scanContext(b);
    const scan = await scanRenewals(ctx);
    expect(scan).toMatchObject({ due: BIG + SMALL, created: BIG + SMALL });
    // The worker in its own process (as operators run it): the simulator keeps this one's core.
    worker = spawnWorker(b.env);

    const issuedOf = async (tenantId: string) =>
      (
        await b.db.db
          .select({ n: count() })
          .from(orders)
          .where(and(eq(orders.tenantId, tenantId), eq(orders.kind, 'renewal'), eq(orders.status, 'issued')))
      )[0]!.n;
    // Once the big tenant's renewals are well under way, a new order arrives.
    // A precondition, not the property under test: with the whole suite running alongside on two cores
    // the first 250 can take well over a minute (measured: 5,000 renewals take 143–194 s in full runs).
    await waitFor(async () => (await issuedOf(big.id)) >= 250, {
      message: 'the first renewals',
      timeoutMs: 180_000,
    });
    const [fresh] = (
      await insertOrders(b.db.db, [{ tenantId: b.tenantId, domains: [`new.${tag}.example.com`] }])
    ).orders;
    expect(fresh!.order.priority).toBe(PRIORITY.interactive);
    await enqueueOrders(b.queues, [fresh!.order]);

    // Fairness is decided once the small tenant's renewals and the new order are done: the big
    // tenant's renewals that finished before them are all in the table by then. Waiting for the other
    // ~1,700 would add a minute or two of CPU and prove nothing more.
    const smallRenewals = await b.db.db
      .select({ id: orders.id })
      .from(orders)
      .where(and(eq(orders.kind, 'renewal'), eq(orders.tenantId, small.id)));
    const done = await b.waitForStatus(
      [...smallRenewals.map((r) => r.id), fresh!.order.id],
      ['issued', 'failed'],
      360_000,
    );
    expect(done.filter((o) => o.status !== 'issued')).toEqual([]);
    const bigTimes = (
      await b.db.db
        .select({ at: orders.updatedAt })
        .from(orders)
        .where(and(eq(orders.tenantId, big.id), eq(orders.kind, 'renewal'), eq(orders.status, 'issued')))
    ).map((o) => o.at.getTime());
    // Shutting down with a backlog in flight is clean (SIGTERM: jobs finish or go back, exit 0).
    worker.kill('SIGTERM');
    expect(await worker.exited).toBe(0);

    const smallTimes = done.filter((o) => o.tenantId === small.id).map((o) => o.updatedAt.getTime());
    expect(smallTimes).toHaveLength(SMALL);
    const newAt = done.find((o) => o.id === fresh!.order.id)!.updatedAt.getTime();
    const bigBefore = (at: number) => bigTimes.filter((t) => t < at).length;
    const bigBeforeNew = bigBefore(newAt);
    const bigBeforeLastSmall = bigBefore(Math.max(...smallTimes));
    console.info(
      `fairness: new order finished after ${bigBeforeNew}/${BIG} of the big tenant's renewals; ` +
        `the small tenant's last renewal after ${bigBeforeLastSmall}/${BIG}`,
    );
    // The new order jumps the queue: it finishes before most of the renewals already waiting.
    expect(bigBeforeNew).toBeLessThan(BIG / 2);
    // The small tenant's 10 are not held to the end: all finish before half of the big tenant's
    // (before the big tenant's median), where first in, first out would put them after all 2,000.
    expect(bigBeforeLastSmall).toBeLessThan(BIG / 2);
  }, 560_000);
});
