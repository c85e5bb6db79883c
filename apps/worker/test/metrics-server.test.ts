import { createAuthThrottle, FAILURE_COUNT_TTL_MS } from '@certq/core';
import { it as fixtureIt } from '@certq/testing';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createWorkerMetrics } from '../src/metrics';
import { startMetricsServer } from '../src/metrics-server';

describe('worker metrics listener', () => {
  it('binds the given host only and answers /metrics to METRICS_TOKEN or the operator token', async () => {
    const metrics = createWorkerMetrics();
    metrics.jobs.inc({ stage: 'verify', outcome: 'advanced' });
    const config = { METRICS_TOKEN: 'metrics-token-0123456789', ADMIN_TOKEN: 'admin-token-0123456789' };
    const server = await startMetricsServer({
      registry: metrics.registry,
      port: 0,
      host: '127.0.0.1',
      config,
    });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const anonymous = await fetch(`${server.url}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
      const wrong = await fetch(`${server.url}/metrics`, {
        headers: { authorization: 'Bearer nope-nope-nope' },
      });
      expect(wrong.status).toBe(401);
      for (const token of [config.METRICS_TOKEN, config.ADMIN_TOKEN]) {
        const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
        expect(res.status).toBe(200);
        expect(await res.text()).toContain('certq_jobs_total{stage="verify",outcome="advanced"} 1');
      }
      // The health check stays open: it says nothing but "ok".
      expect(await (await fetch(`${server.url}/healthz`)).text()).toBe('ok');
    } finally {
      await server.close();
    }
  });

  fixtureIt(
    'shares the failed-login throttle of the API: past the limit, 429 for the right token too',
    async ({ testRedis }) => {
      const redis = new Redis(testRedis.url);
      const config = { METRICS_TOKEN: 'metrics-token-0123456789', ADMIN_TOKEN: 'admin-token-0123456789' };
      let clock = Date.now();
      const throttle = () =>
        createAuthThrottle({ redis, prefix: testRedis.prefix, failuresPerMinute: 6, now: () => clock });
      const server = await startMetricsServer({
        registry: createWorkerMetrics().registry,
        port: 0,
        host: '127.0.0.1',
        config,
        throttle: throttle(),
      });
      try {
        const scrape = (token: string) =>
          fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
        for (let i = 0; i < 3; i++) expect((await scrape(`wrong-${i}`)).status).toBe(401);
        // Three more counted by another door (the API's, sharing the Redis key of this address).
        const api = throttle();
        for (let i = 0; i < 3; i++) await api.fail('127.0.0.1');
        clock += FAILURE_COUNT_TTL_MS; // this process reads the shared count again after a second
        const refused = await scrape(config.METRICS_TOKEN);
        expect(refused.status).toBe(429);
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      } finally {
        await server.close();
        redis.disconnect();
      }
    },
  );
});
