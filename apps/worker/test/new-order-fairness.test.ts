import { orderEvents, orders } from '@certq/db';
import { waitFor } from '@certq/testing';
import { createOrder, createOrders } from '@certq/workflow';
import { and, count, eq, gt, max } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { createWorkbench, names, type Workbench } from './helpers';
import { createTenant } from './renewal-helpers';

let bench: Workbench | undefined;
afterAll(async () => {
  await bench?.close();
});

const BULK = 2000;
/** Jobs in flight per stage: the most of the bulk tenant's orders that can be ahead of a newcomer. */
const CONCURRENCY = 4;
/**
 * What may finish ahead of a newcomer in one stage: the bulk jobs already in hand when it arrives
 * (CONCURRENCY), then what the other slots finish while the newcomer's own job runs — one each when
 * jobs take equal time, two or three when the newcomer's upstream call is the slow one (CI saw 8 with
 * a bound of 7). FIFO would put it behind the whole remaining bulk (more than BULK / 2).
 */
const BOUND = 3 * CONCURRENCY;

describe('fairness between new orders', () => {
  it(`another tenant's order waits behind a few of one tenant's ${BULK}-order bulk, not all of it`, async () => {
    bench = await createWorkbench({
      env: { WORKER_CONCURRENCY: String(CONCURRENCY), APPLY_CONCURRENCY: String(CONCURRENCY) },
    });
    const b = bench;
    const deps = { db: b.db.db, queues: b.queues };
    const bulky = await createTenant(b.db.db);
    await createOrders(
      deps,
      names(BULK, 'bulky').map((domains) => ({ tenantId: bulky.id, domains })),
    );
    await b.startWorker();
    // Where one stage of an order ends: its transition event into the next status.
    const reached = (status: 'applying' | 'issuing', tenantId: string, afterEvent = 0) =>
      b.db.db
        .select({ n: count() })
        .from(orderEvents)
        .innerJoin(orders, eq(orders.id, orderEvents.orderId))
        .where(
          and(
            eq(orders.tenantId, tenantId),
            eq(orderEvents.toStatus, status),
            gt(orderEvents.id, afterEvent),
          ),
        )
        .then((rows) => rows[0]!.n);
    await waitFor(async () => (await reached('issuing', bulky.id)) >= 40, { message: 'the bulk under way' });

    // Seven other tenants order one certificate each: four with POST /v1/orders, three with a bulk of one.
    const arrivals: { orderId: string; afterEvent: number }[] = [];
    for (let i = 0; i < 7; i++) {
      const tenant = await createTenant(b.db.db);
      const [{ last } = { last: 0 }] = await b.db.db.select({ last: max(orderEvents.id) }).from(orderEvents);
      const request = { tenantId: tenant.id, domains: [`t${i}.other.example.com`] };
      const orderId =
        i < 4
          ? ((await createOrder(deps, request)) as { order: { id: string } }).order.id
          : (await createOrders(deps, [request]))[0]!.order.id;
      arrivals.push({ orderId, afterEvent: last ?? 0 });
    }
    await b.waitForStatus(
      arrivals.map((a) => a.orderId),
      ['issuing', 'issued'],
    );
    const stillWaiting = await b.db.db
      .select({ n: count() })
      .from(orders)
      .where(and(eq(orders.tenantId, bulky.id), eq(orders.status, 'verifying')));
    await b.worker?.close();

    // For each newcomer and stage: how many of the bulk tenant's orders finished that stage while the
    // newcomer was waiting in it.
    const eventOf = async (orderId: string, status: 'applying' | 'issuing') =>
      (
        await b.db.db
          .select({ id: orderEvents.id })
          .from(orderEvents)
          .where(and(eq(orderEvents.orderId, orderId), eq(orderEvents.toStatus, status)))
      )[0]!.id;
    const between = async (status: 'applying' | 'issuing', from: number, to: number) =>
      (await reached(status, bulky.id, from)) - (await reached(status, bulky.id, to));
    const waits: { verify: number; apply: number }[] = [];
    for (const { orderId, afterEvent } of arrivals) {
      const verified = await eventOf(orderId, 'applying');
      const applied = await eventOf(orderId, 'issuing');
      waits.push({
        verify: await between('applying', afterEvent, verified),
        apply: await between('issuing', verified, applied),
      });
    }
    console.info(
      `new-order fairness: bulk orders finished ahead of each newcomer (verify, apply): ${waits
        .map((w) => `${w.verify}/${w.apply}`)
        .join(' ')}; ${stillWaiting[0]!.n} of ${BULK} bulk orders still waiting to verify`,
    );
    // The bulk was far from done: FIFO would have put every newcomer behind most of it.
    expect(stillWaiting[0]!.n).toBeGreaterThan(BULK / 2);
    for (const w of waits) {
      expect(w.verify).toBeLessThanOrEqual(BOUND);
      expect(w.apply).toBeLessThanOrEqual(BOUND);
    }
  }, 120_000);
});
