import { describe, expect } from 'vitest';
import { appliesAccountedFor, it, names } from './helpers';
import { spawnWorker } from './process';

describe('worker processes', () => {
  it('SIGTERM drains: jobs in hand finish, the process exits 0, nothing is lost', async ({ workbench }) => {
    const bench = await workbench({ sim: { latencyMs: 400 } });
    const created = await bench.orders(names(20, 'drain'));
    const ids = created.map((o) => o.id);
    const child = spawnWorker(bench.env);
    await expect
      .poll(async () => (await bench.queues.verify.getJobCounts('active')).active, { timeout: 20_000 })
      .toBeGreaterThan(0);
    child.kill('SIGTERM');
    expect(await child.exited).toBe(0);
    expect(await bench.queues.verify.getJobCounts('active')).toEqual({ active: 0 });
    const restarted = spawnWorker(bench.env);
    const done = await bench.waitForStatus(ids, ['issued', 'failed'], 60_000);
    restarted.kill('SIGTERM');
    await restarted.exited;
    expect(done.every((o) => o.status === 'issued')).toBe(true);
    expect(await appliesAccountedFor(bench, ids)).toBe(0);
  }, 180_000);
});
