import { secretBoxFromConfig } from '@certq/core';
import { insertOrders, type Order, orderDns, orderEvents, orders } from '@certq/db';
import { startNamed, waitFor } from '@certq/testing';
import { retryOrder } from '@certq/workflow';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { pino } from 'pino';
import { describe, expect } from 'vitest';
import { createWorkerContext } from '../src/context';
import { pollTask } from '../src/tasks/poll';
import { appliesAccountedFor, it, names, type Workbench } from './helpers';

/** The events of `type` per order. */
async function eventsOf(bench: Workbench, ids: string[], type: string): Promise<Map<string, number>> {
  const rows = await bench.db.db
    .select({ orderId: orderEvents.orderId })
    .from(orderEvents)
    .where(and(inArray(orderEvents.orderId, ids), eq(orderEvents.type, type)));
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.orderId, (counts.get(r.orderId) ?? 0) + 1);
  return counts;
}

// Retries at the 10 s floor and a short client timeout keep the waits of a lost outcome short.
const FAST = { RETRY_MAX_DELAY_MS: '10000', UPSTREAM_TIMEOUT_MS: '1000' };

describe('apply outcomes', () => {
  it('a gateway 502 after the application was created is an unknown outcome: applied again only with apply_outcome_unknown', async ({
    workbench,
  }) => {
    const bench = await workbench({ sim: { applyFaults: ['502_after_create'] }, env: FAST });
    await bench.startWorker();
    const ids = (await bench.orders(names(5, 'gateway'))).map((o) => o.id);
    const done = await bench.waitForStatus(ids, ['issued', 'failed'], 60_000);
    expect(done.every((o) => o.status === 'issued')).toBe(true);
    // No callbacks here: every 502 is answered by one more (possibly paid) application, never silently.
    const unknown = await eventsOf(bench, ids, 'apply_outcome_unknown');
    expect(ids.map((id) => unknown.get(id) ?? 0)).toEqual([1, 1, 1, 1, 1]);
    expect(await appliesAccountedFor(bench, ids)).toBe(5);
  }, 90_000);

  it('"domain not verified" sends the order back to verifying, then it is applied once and issued once DNS is in place', async ({
    workbench,
  }) => {
    // certq's own DNS check and the simulator read one real DNS server.
    const named = await startNamed();
    try {
      const bench = await workbench({
        sim: { applyFaults: ['refuse_unverified'], verify: 'dns', dnsResolver: named.address },
        env: { ...FAST, DNS_RESOLVERS: named.address, DNS_CHECK_INTERVAL_MS: '200' },
      });
      await bench.startWorker();
      const order = await bench.order(['refused.example.com']);
      const [record] = await waitFor(
        async () => {
          const rows = await bench.db.db.select().from(orderDns).where(eq(orderDns.orderId, order.id));
          return rows.length ? rows : undefined;
        },
        { timeoutMs: 10_000, message: 'the CNAME instructions' },
      );
      await named.setCname(`${record!.host}.example.com`, record!.hostValue);
      const [issued] = await bench.waitForStatus([order.id], ['issued', 'failed'], 30_000);
      expect(issued!.status).toBe('issued');
      const events = await bench.db.db
        .select({ type: orderEvents.type, to: orderEvents.toStatus })
        .from(orderEvents)
        .where(eq(orderEvents.orderId, order.id))
        .orderBy(orderEvents.id);
      const refused = events.find((e) => e.type === 'apply_refused');
      expect(refused?.to).toBe('verifying');
      expect(events.some((e) => e.type === 'upstream_error')).toBe(false);
      expect(bench.sim.stats().appliesByDomains['refused.example.com']).toBe(1);
    } finally {
      await named.stop();
    }
  });

  it('a retry after an apply whose outcome was lost starts a clean run: a plain apply, nothing announced kept', async ({
    workbench,
  }) => {
    const bench = await workbench({ env: FAST });
    const { orders: created } = await insertOrders(bench.db.db, [
      { tenantId: bench.tenantId, domains: ['lost.example.com'] },
    ]);
    const id = created[0]!.order.id;
    // What a failed run whose last apply timed out leaves behind.
    await bench.db.db
      .update(orders)
      .set({
        status: 'failed',
        applyRequestedAt: new Date(Date.now() - 3600_000),
        announcedApplyId: '12345',
        callbackSecretHash: 'a'.repeat(64),
        lastError: 'gave up',
      })
      .where(eq(orders.id, id));
    const retried: Order = await retryOrder({ db: bench.db.db, queues: bench.queues }, id, { actor: 'test' });
    expect(retried).toMatchObject({
      run: 2,
      status: 'verifying',
      applyRequestedAt: null,
      announcedApplyId: null,
      callbackSecretHash: null,
      applyId: null,
      lastError: null,
      stageAttempts: 0,
    });
    await bench.startWorker();
    const [issued] = await bench.waitForStatus([id], ['issued', 'failed'], 30_000);
    expect(issued!.status).toBe('issued');
    expect((await eventsOf(bench, [id], 'apply_outcome_unknown')).size).toBe(0);
    expect(bench.sim.stats().appliesByDomains['lost.example.com']).toBe(1);
  });

  it('a poll that will not send (early, or inside the floor) takes no rate-limit token', async ({
    workbench,
  }) => {
    const bench = await workbench({ env: { UPSTREAM_MAX_RPS: '2' } });
    const ctx = createWorkerContext({
      db: bench.db.db,
      queues: bench.queues,
      secrets: secretBoxFromConfig(bench.config),
      config: bench.config,
      redis: bench.redisClient,
      logger: pino({ level: 'silent' }),
    });
    const limiterKey = `${bench.config.REDIS_PREFIX}:upstream-rate`;
    const spent = () => bench.redisClient.get(limiterKey);
    try {
      const { orders: created } = await insertOrders(bench.db.db, [
        { tenantId: bench.tenantId, domains: ['budget.example.com'] },
      ]);
      const id = created[0]!.order.id;
      const issuing = (set: Partial<Order>) =>
        bench.db.db
          .update(orders)
          .set({ status: 'issuing', applyId: '777', ...set })
          .where(eq(orders.id, id));
      // Not due yet.
      await issuing({ nextAttemptAt: new Date(Date.now() + 60_000), lastPolledAt: null });
      expect((await pollTask(ctx, { orderId: id, run: 1 })).result).toBe('early');
      // Due, but another request for the application went out 2 s ago.
      await issuing({ nextAttemptAt: new Date(), lastPolledAt: sql`now() - interval '2 seconds'` as never });
      expect((await pollTask(ctx, { orderId: id, run: 1 })).result).toBe('early');
      expect(await spent()).toBeNull();
      // Due and free: this one sends, and pays.
      await issuing({ nextAttemptAt: new Date(), lastPolledAt: null });
      await pollTask(ctx, { orderId: id, run: 1 });
      expect(await spent()).not.toBeNull();
    } finally {
      await ctx.close();
    }
  });
});
