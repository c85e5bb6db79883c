import { readUpstreamUsage } from '@certq/db';
import { describe, expect } from 'vitest';
import { it, names } from './helpers';

/** The simulator issues in this long: a first poll right after apply (as before) finds it still issuing. */
const ISSUE_SECONDS = 0.6;

describe('upstream calls per issued certificate', () => {
  it('stay near three (dv, apply, one poll) when the first poll waits for the CA to be done', async ({
    workbench,
  }) => {
    const bench = await workbench({ sim: { issueSeconds: ISSUE_SECONDS } });
    const worker = await bench.startWorker();
    const before = bench.sim.stats();
    const batch = await bench.orders(names(20, 'budget'));
    await bench.waitForStatus(
      batch.map((o) => o.id),
      ['issued'],
    );
    const after = bench.sim.stats();
    const calls = after.dv + after.apply + after.get - (before.dv + before.apply + before.get);
    expect(after.dv - before.dv).toBe(20);
    expect(after.apply - before.apply).toBe(20);
    expect(after.tooFrequent).toBe(0);
    expect(calls / 20).toBeLessThanOrEqual(3.3);

    // The worker's own count, by reason, reaches Postgres (what /v1/stats reads).
    await worker.ctx.upstream.flush();
    const usage = await readUpstreamUsage(bench.db.db, new Date(Date.now() - 3600_000));
    const counted = Object.fromEntries(usage.counts.map((c) => [`${c.endpoint}:${c.reason}`, c.calls]));
    expect(usage.issued).toBe(20);
    expect(counted['dv:first']).toBe(20);
    expect(counted['apply:apply']).toBe(20);
    expect(counted['get:issued']).toBe(20);
    expect(usage.counts.reduce((n, c) => n + c.calls, 0)).toBe(after.dv + after.apply + after.get);
  });
});
