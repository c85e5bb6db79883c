import { generateToken, hashToken, stageJobId } from '@certq/core';
import { insertOrders, orders, tenants } from '@certq/db';
import { eq } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { enqueueOrders, nudgeFromCallback } from '../src';
import { handle, queues, useWorkflowEnv } from './helpers';

/** A job a worker may take now (stage jobs carry a priority, so BullMQ files them as prioritized). */
const RUNNABLE = ['waiting', 'prioritized'];

useWorkflowEnv();

/** An issuing order whose next scheduled poll is an hour away, with its callback secret. */
async function issuingOrder(name: string) {
  const [tenant] = await handle.db
    .insert(tenants)
    .values({ name, tokenHash: `hash-${name}` })
    .returning();
  const { order } = (
    await insertOrders(handle.db, [{ tenantId: tenant!.id, domains: [`${name}.example.com`] }])
  ).orders[0]!;
  const secret = generateToken('cb');
  const later = new Date(Date.now() + 3600_000);
  const [issuing] = await handle.db
    .update(orders)
    .set({
      status: 'issuing',
      applyId: `${Date.now()}${name.length}`,
      callbackSecretHash: hashToken(secret),
      nextAttemptAt: later,
    })
    .where(eq(orders.id, order.id))
    .returning();
  return { order: issuing!, secret, later };
}

describe('nudgeFromCallback', () => {
  it('makes the poll due now and promotes its delayed job, without calling anyone', async () => {
    const { order, secret } = await issuingOrder('nudge');
    await enqueueOrders(queues, [order]);
    const job = await queues.poll.getJob(stageJobId('poll', order.id, order.run));
    expect(await job!.getState()).toBe('delayed');

    const result = await nudgeFromCallback({ db: handle.db, queues }, secret);
    expect(result).toEqual({ status: 'accepted', orderId: order.id, nudged: true });
    const [row] = await handle.db.select().from(orders).where(eq(orders.id, order.id));
    expect(row!.nextAttemptAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect(RUNNABLE).toContain(await job!.getState());
  });

  it('queues the poll when Redis lost its job (the row is the truth)', async () => {
    const { order, secret } = await issuingOrder('lost');
    expect(await queues.poll.getJob(stageJobId('poll', order.id, order.run))).toBeUndefined();
    await nudgeFromCallback({ db: handle.db, queues }, secret);
    const job = await queues.poll.getJob(stageJobId('poll', order.id, order.run));
    expect(RUNNABLE).toContain(await job!.getState());
  });

  it('changes nothing for an order that is not issuing, an unknown secret, or a malformed one', async () => {
    const { order, secret, later } = await issuingOrder('ended');
    await handle.db.update(orders).set({ status: 'cancelled' }).where(eq(orders.id, order.id));
    expect(await nudgeFromCallback({ db: handle.db, queues }, secret)).toEqual({
      status: 'accepted',
      orderId: order.id,
      nudged: false,
    });
    const [row] = await handle.db.select().from(orders).where(eq(orders.id, order.id));
    expect(row!.nextAttemptAt.getTime()).toBe(later.getTime());
    expect(await nudgeFromCallback({ db: handle.db, queues }, generateToken('cb'))).toEqual({
      status: 'unknown',
    });
    expect(await nudgeFromCallback({ db: handle.db, queues }, "cb_'; drop table orders; --")).toEqual({
      status: 'unknown',
    });
  });
});
