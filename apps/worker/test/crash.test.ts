import { orderEvents, orders } from '@certq/db';
import { and, eq, inArray } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { appliesAccountedFor, it, names } from './helpers';
import { spawnWorker } from './process';

describe('worker processes', () => {
  it('killed with SIGKILL at random moments while 200 orders are in flight: every order issued once', async ({
    workbench,
  }) => {
    const bench = await workbench({ sim: { latencyMs: 5 } });
    const env = {
      ...bench.env,
      WORKER_LOCK_DURATION_MS: '2000',
      WORKER_STALLED_INTERVAL_MS: '1000',
      UPSTREAM_TIMEOUT_MS: '2000',
      UPSTREAM_MAX_RPS: '100',
    };
    const created = await bench.orders(names(200, 'crash'));
    const ids = created.map((o) => o.id);
    for (let kill = 0; kill < 4; kill++) {
      const child = spawnWorker(env);
      await new Promise((resolve) => setTimeout(resolve, 1500 + Math.random() * 1500));
      child.kill('SIGKILL');
      expect(await child.exited).toBeNull();
    }
    const midway = await bench.db.db
      .select({ status: orders.status })
      .from(orders)
      .where(inArray(orders.id, ids));
    expect(midway.some((o) => o.status !== 'issued')).toBe(true);
    const survivor = spawnWorker(env);
    const done = await bench.waitForStatus(ids, ['issued', 'failed'], 120_000);
    survivor.kill('SIGTERM');
    expect(await survivor.exited).toBe(0);
    expect(done.filter((o) => o.status !== 'issued')).toEqual([]);
    expect(bench.sim.stats().tooFrequent).toBe(0);
    const duplicates = await appliesAccountedFor(bench, ids);
    const unknown = await bench.db.db
      .select()
      .from(orderEvents)
      .where(and(inArray(orderEvents.orderId, ids), eq(orderEvents.type, 'apply_outcome_unknown')));
    console.info(
      `crash test: 200 orders, 4 SIGKILLs: ${unknown.length} apply call(s) with unknown outcome, ${duplicates} duplicate application(s)`,
    );
  }, 180_000);
});
