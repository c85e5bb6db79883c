import { randomBytes } from 'node:crypto';
import { insertOrders, tenants } from '@certq/db';
import { createTestRedis } from '@certq/testing';
import { enqueueOrders } from '@certq/workflow';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUpstreamLimiter } from '../src';
import { createWorkbench, type Workbench } from './helpers';

describe("a tenant's own httpsok key", () => {
  let bench: Workbench;
  beforeAll(async () => {
    // The simulator accepts only the tenant's key, not the operator's default.
    bench = await createWorkbench({ sim: { apiKeys: ['tenant-own-key'] } });
    await bench.startWorker();
  });
  afterAll(() => bench.close());

  it('is opened only to call httpsok and overrides HTTPSOK_API_KEY; without it the default key is used', async () => {
    const [owner] = await bench.db.db
      .insert(tenants)
      .values({
        name: `own-key-${randomBytes(3).toString('hex')}`,
        tokenHash: randomBytes(32).toString('hex'),
        httpsokApiKeySealed: bench.worker!.ctx.secrets.seal('tenant-own-key'),
      })
      .returning();
    const { orders: created } = await insertOrders(bench.db.db, [
      { tenantId: owner!.id, domains: ['own-key.example.com'] },
      { tenantId: bench.tenantId, domains: ['default-key.example.com'] },
    ]);
    await enqueueOrders(
      bench.queues,
      created.map((c) => c.order),
    );
    const [withOwnKey, withDefault] = await bench
      .waitForStatus(
        created.map((c) => c.order.id),
        ['issued', 'failed'],
      )
      .then((rows) => created.map((c) => rows.find((r) => r.id === c.order.id)!));
    expect(withOwnKey).toMatchObject({ status: 'issued' });
    // The operator's key is refused by this upstream: the order fails at once with a clear reason.
    expect(withDefault).toMatchObject({ status: 'failed' });
    expect(withDefault!.lastError).toMatch(/httpsok refused the API key/);
  });
});

describe('UPSTREAM_MAX_RPS', () => {
  const testRedis = createTestRedis();
  const clients: Redis[] = [];
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await testRedis.flush();
  });

  it('is one ceiling across processes: two limiters on one key share it', async () => {
    const key = `${testRedis.prefix}:upstream-rate`;
    const limiters = [0, 1].map(() => {
      const redis = new Redis(testRedis.url);
      clients.push(redis);
      return createUpstreamLimiter(redis, key, 10);
    });
    const started = performance.now();
    // 40 requests at 10/s with a one-second burst (10) cannot finish in under 3 s, however they are split.
    await Promise.all(Array.from({ length: 40 }, (_, i) => limiters[i % 2]!.acquire()));
    expect(performance.now() - started).toBeGreaterThanOrEqual(2_900);
  });
});
