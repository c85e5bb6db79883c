import { canTransition } from '@certq/core';
import { lockOrder, orderDns, orderEvents, transitionOrder } from '@certq/db';
import { type NamedServer, startNamed } from '@certq/testing';
import { enqueueOrders } from '@certq/workflow';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkbench, type Workbench } from './helpers';

// Records live in a real DNS server that both certq (DNS_RESOLVERS) and the simulator (SIM_VERIFY=dns) ask.
let named: NamedServer;
let bench: Workbench;
beforeAll(async () => {
  named = await startNamed();
  bench = await createWorkbench({
    sim: { verify: 'dns', dnsResolver: named.address },
    env: { DNS_RESOLVERS: named.address },
  });
  await bench.startWorker();
});
afterAll(async () => {
  await bench?.close();
  await named?.stop();
});

describe('verifying while DNS is not in place', () => {
  it('waits with the CNAME instructions stored, then completes once the record is set', async () => {
    const order = await bench.order(['*.dns.example.com', 'dns.example.com']);
    await expect
      .poll(async () => (await bench.reload(order.id)).stageAttempts, { timeout: 10_000 })
      .toBeGreaterThan(0);
    const pending = await bench.reload(order.id);
    expect(pending.status).toBe('verifying');
    expect(pending.lastError).toMatch(
      /waiting for DNS: \*\.dns\.example\.com: No CNAME record at _acme-challenge\.dns\.example\.com: create CNAME _acme-challenge\.dns\.example\.com → [0-9a-f]{16}\.dns\.httpsok\.com/,
    );
    // The next check is at least 10 s away.
    expect(pending.nextAttemptAt.getTime() - pending.updatedAt.getTime()).toBeGreaterThanOrEqual(9_900);
    const dns = await bench.db.db.select().from(orderDns).where(eq(orderDns.orderId, order.id));
    expect(dns).toHaveLength(2);
    expect(dns.every((d) => !d.valid && d.host === '_acme-challenge.dns' && d.status === 'missing')).toBe(
      true,
    );

    await named.setCname(`_acme-challenge.dns.example.com`, dns[0]!.hostValue);
    // Skip the wait: move the clock past the next attempt and run the delayed job now.
    bench.clock.advance(pending.nextAttemptAt.getTime() - Date.now() + 1000);
    const job = await bench.queues.verify.getJob(`verify-${order.id}-r1`);
    await job!.promote();
    const [done] = await bench.waitForStatus([order.id], ['issued']);
    expect(done!.lastError).toBeNull();
    const valid = await bench.db.db.select().from(orderDns).where(eq(orderDns.orderId, order.id));
    expect(valid.every((d) => d.valid)).toBe(true);
  });

  it('fails with a reason naming the missing records once the window has passed', async () => {
    const order = await bench.order(['late.example.net']);
    await expect
      .poll(async () => (await bench.reload(order.id)).stageAttempts, { timeout: 10_000 })
      .toBeGreaterThan(0);
    bench.clock.advance(73 * 3600_000);
    await (await bench.queues.verify.getJob(`verify-${order.id}-r1`))!.promote();
    const [failed] = await bench.waitForStatus([order.id], ['failed']);
    expect(failed!.lastError).toMatch(
      /DNS not in place after 72 h: late\.example\.net: No CNAME record at _acme-challenge\.late\.example\.net: create CNAME _acme-challenge\.late\.example\.net → /,
    );
    bench.clock.advance(-73 * 3600_000);
  });
});

describe('an application that fails upstream (status 3)', () => {
  it('fails the order with the reason; a retry starts cleanly with a new application', async () => {
    const order = await bench.order(['x.fail.test']);
    // make it verify by setting the record it asks for
    await expect
      .poll(
        async () => (await bench.db.db.select().from(orderDns).where(eq(orderDns.orderId, order.id))).length,
      )
      .toBe(1);
    const [record] = await bench.db.db.select().from(orderDns).where(eq(orderDns.orderId, order.id));
    await named.setCname(`${record!.host}.fail.test`, record!.hostValue);
    bench.clock.advance(20_000);
    await (await bench.queues.verify.getJob(`verify-${order.id}-r1`))!.promote();
    const [failed] = await bench.waitForStatus([order.id], ['failed']);
    expect(failed!.lastError).toMatch(/httpsok failed the application/);
    const firstApplyId = failed!.applyId;
    expect(firstApplyId).not.toBeNull();

    // What POST /v1/orders/{id}/retry does.
    expect(canTransition('failed', 'verifying')).toBe(true);
    const retried = await bench.db.db.transaction(async (tx) => {
      const locked = await lockOrder(tx, order.id);
      return transitionOrder(tx, {
        order: locked!,
        to: 'verifying',
        set: {
          run: locked!.run + 1,
          stageAttempts: 0,
          stageStartedAt: new Date(),
          nextAttemptAt: new Date(),
          applyId: null,
          lastPolledAt: null,
          lastError: null,
          progress: 0,
        },
        event: { type: 'retried', detail: { previousApplyId: locked!.applyId } },
      });
    });
    await enqueueOrders(bench.queues, [retried]);
    await expect.poll(async () => (await bench.reload(order.id)).applyId, { timeout: 20_000 }).not.toBeNull();
    const [again] = await bench.waitForStatus([order.id], ['failed']);
    expect(again!.run).toBe(2);
    expect(again!.applyId).not.toBe(firstApplyId);
    expect(bench.sim.stats().appliesByDomains['x.fail.test']).toBe(2);
    const events = await bench.db.db
      .select()
      .from(orderEvents)
      .where(eq(orderEvents.orderId, order.id))
      .orderBy(orderEvents.id);
    expect(events.map((e) => e.type)).toContain('retried');
  });
});
