import { orderEvents } from '@certq/db';
import { createSimulator, type Simulator } from '@certq/simulator';
import type { WorkerHandle } from '@certq/worker';
import { and, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as apiTest from '../apps/api/test/helpers';
import { startSystemWorker } from './system';

let env: apiTest.TestEnv;
let api: apiTest.TestApi;
let sim: Simulator;
let worker: WorkerHandle;

/**
 * A gateway in front of httpsok answers 502 after the application was created. With callbacks the lost
 * application announces itself when it is issued, and the order adopts it: no domain set is applied twice.
 */
beforeAll(async () => {
  env = await apiTest.createTestEnv();
  sim = createSimulator({ issueSeconds: 1, applyFaults: ['502_after_create'] });
  const upstream = { HTTPSOK_BASE_URL: await sim.listen(), HTTPSOK_API_KEY: 'faults-operator-key' };
  api = await apiTest.startTestApi(env, { env: upstream });
  worker = await startSystemWorker(api, {
    ...upstream,
    RETRY_MAX_DELAY_MS: '10000',
    UPSTREAM_TIMEOUT_MS: '1000',
    APPLY_ADOPT_WAIT_MS: '60000',
  });
});
afterAll(async () => {
  await worker?.close();
  await api?.close();
  await sim?.close();
  await env?.close();
});

describe('an apply answered by a gateway 502 after the application was created', () => {
  it('with callbacks: the lost application is adopted, every domain set applied exactly once', async () => {
    const tenant = await api.createTenant();
    const sets = Array.from({ length: 5 }, (_, i) => [`g${i}.${apiTest.uniqueDomain('gw')}`]);
    const ids: string[] = [];
    for (const domains of sets) {
      const placed = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains });
      expect(placed.status).toBe(202);
      ids.push(placed.body.id);
    }
    await expect
      .poll(
        async () => {
          const statuses = await Promise.all(
            ids.map(
              async (id) => (await api.tenantRequest(tenant.token, 'GET', `/v1/orders/${id}`)).body.status,
            ),
          );
          return statuses.filter((s) => s === 'issued').length;
        },
        { timeout: 40_000, interval: 200 },
      )
      .toBe(5);
    const stats = sim.stats();
    for (const domains of sets) expect(stats.appliesByDomains[domains.join(',')], domains[0]).toBe(1);
    const events = await env.handle.db
      .select({ orderId: orderEvents.orderId, type: orderEvents.type })
      .from(orderEvents)
      .where(
        and(
          inArray(orderEvents.orderId, ids),
          inArray(orderEvents.type, ['application_adopted', 'apply_outcome_unknown']),
        ),
      );
    expect(events.filter((e) => e.type === 'application_adopted')).toHaveLength(5);
    expect(events.filter((e) => e.type === 'apply_outcome_unknown')).toHaveLength(0);
    expect(stats.tooFrequent).toBe(0);
  }, 60_000);
});
