import { orderEvents } from '@certq/db';
import { and, inArray, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { appliesAccountedFor, it, names } from './helpers';
import { spawnWorker } from './process';

describe('worker processes', () => {
  it('two worker processes at once: no order processed twice, no double application', async ({
    workbench,
  }) => {
    const bench = await workbench({ sim: { latencyMs: 5, issueSeconds: 1 } });
    const created = await bench.orders(names(100, 'pair'));
    const ids = created.map((o) => o.id);
    const a = spawnWorker(bench.env);
    const b = spawnWorker(bench.env);
    await bench.waitForStatus(ids, ['issued', 'failed'], 150_000);
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    expect([await a.exited, await b.exited]).toEqual([0, 0]);
    const transitions = await bench.db.db
      .select({
        orderId: orderEvents.orderId,
        from: orderEvents.fromStatus,
        to: orderEvents.toStatus,
        n: sql<number>`count(*)::int`,
      })
      .from(orderEvents)
      .where(
        and(inArray(orderEvents.orderId, ids), sql`${orderEvents.fromStatus} <> ${orderEvents.toStatus}`),
      )
      .groupBy(orderEvents.orderId, orderEvents.fromStatus, orderEvents.toStatus);
    expect(transitions).toHaveLength(300);
    expect(transitions.every((t) => t.n === 1)).toBe(true);
    // Two workers never race into a double application. An apply call whose outcome was lost (its
    // request timed out on this loaded machine) is repeated by design; say why if that happened.
    const duplicates = await appliesAccountedFor(bench, ids);
    if (duplicates > 0) {
      const errors = await bench.db.db
        .select({ type: orderEvents.type, detail: orderEvents.detail })
        .from(orderEvents)
        .where(
          and(
            inArray(orderEvents.orderId, ids),
            inArray(orderEvents.type, ['upstream_error', 'apply_outcome_unknown']),
          ),
        );
      console.warn(
        `two-workers: ${duplicates} repeated application(s) after lost outcomes:`,
        JSON.stringify(errors),
        a.output().slice(-2000),
        b.output().slice(-2000),
      );
    }
    expect(bench.sim.stats().tooFrequent).toBe(0);
  }, 180_000);
});
