import { createDb } from '@certq/db';
import { startPrivateRedis } from '@certq/testing/servers';
import { startWorker } from '@certq/worker';
import { createQueues } from '@certq/workflow';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { type MinimalWorkflowOptions, runMinimalWorkflow } from './baselines/minimal-workflow';
import {
  type BenchEnvironment,
  type BenchRow,
  benchConfig,
  createBenchEnvironment,
  processCpu,
  startSimulatorProcess,
} from './lib';

/* What the suites that run certq's worker against the simulator share. */

/**
 * certq's worker on `env` against the simulator in its own process (issuing `issueSeconds` after
 * apply), configured by benchConfig with the suite's `settings`, and the database and queues the suite
 * feeds it through. `close()` stops all of it; `env` stays the caller's to clean up.
 */
export async function startWorkerBench(
  env: BenchEnvironment,
  options: { issueSeconds: number; settings: Record<string, string> },
) {
  const sim = await startSimulatorProcess({ issueSeconds: options.issueSeconds });
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const config = benchConfig(env, sim.url, options.settings);
  const db = createDb(env.databaseUrl);
  const queues = createQueues(redis, env.prefix);
  const worker = await startWorker({ config, logger: pino({ level: 'silent' }) });
  const close = async () => {
    await worker.close();
    await queues.close();
    redis.disconnect();
    await db.close();
    await sim.stop();
  };
  return { sim, db, queues, close };
}

/**
 * What the worker bench and the cost breakdown run certq's worker and the minimal workflow on: a bench
 * environment on a Redis of its own (so INFO commandstats counts their commands only), a second
 * database for the minimal workflow (runMinimal), the simulator issuing at once, and certq's configuration with
 * its upstream and DNS ceilings lifted, so that the worker is what is measured.
 */
export async function openWorkerComparison(options: { concurrency: number }) {
  const env = await createPrivateRedisEnvironment();
  const minimalEnv = await createBenchEnvironment();
  const sim = await startSimulatorProcess({ issueSeconds: 0 });
  const config = benchConfig(env, sim.url, {
    UPSTREAM_MAX_RPS: '100000',
    WORKER_CONCURRENCY: String(options.concurrency),
    // The same concurrency in every stage as the minimal workflow: APPLY_CONCURRENCY (default 4) is a
    // ceiling on applies in flight, like the upstream's, lifted so the two run the same shape.
    APPLY_CONCURRENCY: String(options.concurrency),
    // certq's own DNS checks against the local named; its ceiling lifted so it measures the worker.
    DNS_RESOLVERS: env.dnsResolvers,
    DNS_RESOLVER_MAX_QPS: '100000',
  });
  const cpu = await otherProcessesCpu(env.redisUrl, env.databaseUrl, sim.child.pid!);
  const close = async () => {
    await cpu.close();
    await sim.stop();
    await env.cleanup();
    await minimalEnv.cleanup();
  };
  /** The minimal workflow on the same simulator, Postgres server and Redis, in its own database. */
  const runMinimal = (run: Pick<MinimalWorkflowOptions, 'orders' | 'beforeStart' | 'afterDone'>) =>
    runMinimalWorkflow({
      databaseUrl: minimalEnv.databaseUrl,
      redisUrl: env.redisUrl,
      prefix: `${env.prefix}-minimal`,
      simulatorUrl: sim.url,
      concurrency: options.concurrency,
      ...run,
    });
  return {
    env,
    sim,
    config,
    runMinimal,
    close,
    /** CPU of the other processes a run uses, certq's (on env's database) or the minimal workflow's. */
    otherCpu: (side: 'certq' | 'minimal') =>
      cpu.meter(new URL(side === 'certq' ? env.databaseUrl : minimalEnv.databaseUrl).pathname.slice(1)),
  };
}

export type OtherCpu = { postgres: number; redis: number; simulator: number };

/**
 * Meters for the CPU a workflow costs outside the bench process: the Postgres backends connected to its
 * database, the Redis server, the simulator. The Redis server and the simulator are shared by both sides
 * but used by one at a time.
 */
async function otherProcessesCpu(redisUrl: string, databaseUrl: string, simulatorPid: number) {
  const redis = new Redis(redisUrl);
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
  redis.disconnect();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const backends = (database: string) => async () =>
    (
      await client.query<{ pid: number }>(
        'select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
        [database],
      )
    ).rows.map((r) => r.pid);
  return {
    meter(database: string) {
      const meters = {
        postgres: processCpu(backends(database)),
        redis: processCpu(async () => [redisPid]),
        simulator: processCpu(async () => [simulatorPid]),
      };
      return {
        async start() {
          const running = await Promise.all(Object.values(meters).map((m) => m.start()));
          return {
            async stop(): Promise<OtherCpu> {
              const [postgres, redis, simulator] = await Promise.all(running.map((r) => r.stop()));
              return { postgres: postgres!, redis: redis!, simulator: simulator! };
            },
          };
        },
      };
    },
    close: () => client.end(),
  };
}

/** A bench environment whose Redis is a private redis-server, stopped by cleanup(). */
export async function createPrivateRedisEnvironment(): Promise<BenchEnvironment> {
  const privateRedis = await startPrivateRedis();
  const env = await createBenchEnvironment();
  return {
    ...env,
    redisUrl: privateRedis.url,
    async cleanup() {
      await env.cleanup();
      await privateRedis.stop();
    },
  };
}

/**
 * Waits until `count` orders are issued or failed, asking every `intervalMs`; returns how many times
 * it asked (the bench's own statements, which a per-order statement count leaves out).
 */
export async function waitForOrdersSettled(
  pool: pg.Pool,
  count: number,
  intervalMs: number,
): Promise<number> {
  for (let queries = 1; ; queries++) {
    const { rows } = await pool.query<{ n: number }>(
      "select count(*)::int as n from orders where status in ('issued', 'failed')",
    );
    if (rows[0]!.n >= count) return queries;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The row every worker suite reports: how many orders failed (the goal: none). */
export async function ordersFailedRow(pool: pg.Pool, suite: string): Promise<BenchRow> {
  const { rows } = await pool.query<{ n: number }>(
    "select count(*)::int as n from orders where status = 'failed'",
  );
  const failed = rows[0]!.n;
  return { suite, metric: 'orders failed', value: failed, unit: 'orders', goal: '0', met: failed === 0 };
}
