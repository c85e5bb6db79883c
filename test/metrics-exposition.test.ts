import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { it, spawnApp, waitFor } from '@certq/testing';
import { freePort, requireBinary } from '@certq/testing/probes';
import { describe, expect, inject } from 'vitest';
import { spawnWorker } from '../apps/worker/test/process';

const API_DIR = fileURLToPath(new URL('../apps/api', import.meta.url));

describe('/metrics of the running processes', () => {
  it('passes promtool check metrics (the API and the worker)', async ({ database, testRedis }) => {
    const promtool = requireBinary('promtool', 'prometheus');
    const [apiPort, workerPort] = [await freePort(), await freePort()];
    const metricsToken = randomBytes(16).toString('hex');
    const env = {
      DATABASE_URL: database.url,
      REDIS_URL: testRedis.url,
      REDIS_PREFIX: testRedis.prefix,
      ADMIN_TOKEN: randomBytes(16).toString('hex'),
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      METRICS_TOKEN: metricsToken,
      // No order is placed: nothing is sent upstream, and nothing could leave the machine.
      HTTPSOK_BASE_URL: 'http://127.0.0.1:9',
      HOST: '127.0.0.1',
      PORT: String(apiPort),
      WORKER_METRICS_PORT: String(workerPort),
      DNS_RESOLVERS: inject('certq').dnsResolvers,
      LOG_LEVEL: 'warn',
    };
    const processes = [
      { name: 'API', child: spawnApp(API_DIR, env), url: `http://127.0.0.1:${apiPort}/metrics` },
      { name: 'worker', child: spawnWorker(env), url: `http://127.0.0.1:${workerPort}/metrics` },
    ];
    try {
      for (const { name, child, url } of processes) {
        const text = await waitFor(
          async () => {
            if (child.exitCode !== null) throw new Error(`the ${name} exited: ${child.output()}`);
            const response = await fetch(url, { headers: { authorization: `Bearer ${metricsToken}` } }).catch(
              () => undefined,
            );
            return response?.ok && (await response.text());
          },
          { timeoutMs: 60_000, intervalMs: 100, message: `the ${name}'s /metrics` },
        );
        expect(text).toContain(`certq_${name === 'API' ? 'api' : 'worker'}_process_cpu_seconds_total`);
        const check = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
        expect({ name, status: check.status, findings: check.stdout + check.stderr }).toEqual({
          name,
          status: 0,
          findings: '',
        });
      }
    } finally {
      for (const { child } of processes) child.kill('SIGTERM');
      await Promise.all(processes.map(({ child }) => child.exited));
    }
  });
});
