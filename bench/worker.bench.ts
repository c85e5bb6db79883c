import { createDb, insertOrders, tenants } from '@certq/db';
import { startWorker } from '@certq/worker';
import { createQueues, enqueueOrders } from '@certq/workflow';
import { type Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { type BenchRow, sampleRss } from './lib';
import { type OtherCpu, openWorkerComparison, ordersFailedRow, waitForOrdersSettled } from './worker-runs';

const ORDERS = Number(process.env.BENCH_WORKER_ORDERS ?? 20_000);
const CONCURRENCY = Number(process.env.BENCH_WORKER_CONCURRENCY ?? 50);

/**
 * Commands Redis executed (INFO commandstats): every call made inside a Lua script counts too, so one
 * BullMQ script is some ten commands here.
 */
async function redisCommands(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  let total = 0;
  for (const match of info.matchAll(/calls=(\d+)/g)) total += Number(match[1]);
  return total;
}

/**
 * Counts every command the ioredis clients of this process send (a script call is one): the round trips
 * an order costs, the figure the goal is about (the same kind of count as the statements).
 */
function countRedisCommandsSent(): { count(): number } {
  let n = 0;
  const original = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (this: Redis, ...args: Parameters<typeof original>) {
    n++;
    return original.apply(this, args);
  } as typeof original;
  return { count: () => n };
}

/** Counts every statement the node-postgres clients of this process send. */
function countPgStatements(): { count(): number } {
  let n = 0;
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    n++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  return { count: () => n };
}

/** The same number of three-job chains through empty handlers, on the same Redis: BullMQ's own ceiling here. */
async function baseline(redisUrl: string, prefix: string): Promise<number> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const names = ['base-a', 'base-b', 'base-c'];
  const queues = names.map(
    (n) => new Queue(n, { connection, prefix, defaultJobOptions: { removeOnComplete: true } }),
  );
  let finished = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const workers = names.map(
    (name, i) =>
      new Worker(
        name,
        async (job: Job) => {
          if (i < 2) await queues[i + 1]!.add('step', job.data, { jobId: `${names[i + 1]}-${job.data.n}` });
          else if (++finished === ORDERS) resolveDone();
        },
        { connection, prefix, concurrency: CONCURRENCY, autorun: false },
      ),
  );
  for (let i = 0; i < ORDERS; i += 1000) {
    await queues[0]!.addBulk(
      Array.from({ length: Math.min(1000, ORDERS - i) }, (_, k) => ({
        name: 'step',
        data: { n: i + k },
        opts: { jobId: `base-a-${i + k}` },
      })),
    );
  }
  const started = performance.now();
  for (const w of workers) void w.run();
  await done;
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all(queues.map((q) => q.close()));
  connection.disconnect();
  return ORDERS / seconds;
}

export async function run(): Promise<BenchRow[]> {
  const suite = `worker (${ORDERS} orders)`;
  const { env, config, runMinimal, close, otherCpu } = await openWorkerComparison({
    concurrency: CONCURRENCY,
  });
  const statements = countPgStatements();
  const redisSent = countRedisCommandsSent();
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  try {
    const db = createDb(env.databaseUrl);
    const [tenant] = await db.db.insert(tenants).values({ name: 'bench', tokenHash: 'bench' }).returning();
    const queues = createQueues(redis, env.prefix);
    for (let i = 0; i < ORDERS; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, ORDERS - i) }, (_, k) => ({
        tenantId: tenant!.id,
        domains: [`o${i + k}.bench.example.com`],
      }));
      const { orders } = await insertOrders(db.db, batch);
      await enqueueOrders(
        queues,
        orders.map((o) => o.order),
      );
    }
    const statementsBefore = statements.count();
    const redisBefore = await redisCommands(redis);
    const sentBefore = redisSent.count();
    const cpuBefore = process.cpuUsage();
    const rss = sampleRss(100);
    const ourOthers = await otherCpu('certq').start();
    const started = performance.now();
    const worker = await startWorker({ config, logger: pino({ level: 'silent' }) });
    // The bench's own progress queries are not the worker's: not counted below.
    const progressQueries = await waitForOrdersSettled(db.pool, ORDERS, 200);
    const seconds = (performance.now() - started) / 1000;
    const peakRss = rss.stop();
    const cpu = process.cpuUsage(cpuBefore);
    const ourOtherCpu = await ourOthers.stop();
    const pgPerOrder = (statements.count() - statementsBefore - progressQueries) / ORDERS;
    const sentPerOrder = (redisSent.count() - sentBefore) / ORDERS;
    const redisPerOrder = ((await redisCommands(redis)) - redisBefore) / ORDERS;
    const failedRow = await ordersFailedRow(db.pool, suite);
    if (process.env.BENCH_DEBUG) {
      const metrics = await worker.ctx.metrics.registry.getMetricsAsJSON();
      for (const m of metrics.filter(
        (m) => m.name === 'certq_jobs_total' || m.name === 'certq_upstream_requests_total',
      )) {
        process.stderr.write(`${m.name} ${JSON.stringify(m.values.map((v) => [v.labels, v.value]))}\n`);
      }
    }
    await worker.close();
    await queues.close();
    await db.close();
    const ours = ORDERS / seconds;
    const ourCpuPer1000 = ((cpu.user + cpu.system) / 1e6 / ORDERS) * 1000;

    // The fair anchor, same simulator, Postgres server and Redis, fresh database.
    let minimalStatementsBefore = 0;
    let minimalRedisBefore = 0;
    let minimalSentBefore = 0;
    let minimalOthers: Awaited<ReturnType<ReturnType<typeof otherCpu>['start']>> | undefined;
    let minimalOtherCpu: OtherCpu | undefined;
    const minimal = await runMinimal({
      orders: ORDERS,
      beforeStart: async () => {
        minimalStatementsBefore = statements.count();
        minimalRedisBefore = await redisCommands(redis);
        minimalSentBefore = redisSent.count();
        minimalOthers = await otherCpu('minimal').start();
      },
      afterDone: async () => {
        minimalOtherCpu = await minimalOthers!.stop();
      },
    });
    const minimalPg = (statements.count() - minimalStatementsBefore) / ORDERS;
    const minimalRedis = ((await redisCommands(redis)) - minimalRedisBefore) / ORDERS;
    const minimalSent = (redisSent.count() - minimalSentBefore) / ORDERS;
    const minimalRate = ORDERS / minimal.seconds;
    const minimalCpuPer1000 = (minimal.cpuSeconds / ORDERS) * 1000;

    const base = await baseline(env.redisUrl, `${env.prefix}-base`);
    const ratio = ours / base;
    return [
      { suite, metric: 'wall time', value: seconds, unit: 's' },
      // Ten times the renewal demand of a million 6-day certificates (about 4/s).
      {
        suite,
        metric: 'orders issued per second',
        value: ours,
        unit: 'orders/s',
        goal: '>= 40',
        met: ours >= 40,
      },
      failedRow,
      {
        suite,
        metric: 'worker CPU per 1,000 orders',
        value: ourCpuPer1000,
        unit: 's',
      },
      { suite, metric: 'peak RSS (whole worker process)', value: peakRss / 2 ** 20, unit: 'MiB' },
      {
        suite,
        metric: 'Postgres statements per order',
        value: pgPerOrder,
        unit: 'stmts',
        goal: '<= 12',
        met: pgPerOrder <= 12,
      },
      {
        suite,
        metric: 'Redis commands sent per order',
        value: sentPerOrder,
        unit: 'cmds',
        goal: '<= 40',
        met: sentPerOrder <= 40,
      },
      {
        suite,
        metric: 'Redis commands executed per order (script calls included)',
        value: redisPerOrder,
        unit: 'cmds',
      },
      { suite, metric: 'minimal workflow: orders issued per second', value: minimalRate, unit: 'orders/s' },
      { suite, metric: 'minimal workflow: CPU per 1,000 orders', value: minimalCpuPer1000, unit: 's' },
      { suite, metric: 'minimal workflow: Postgres statements per order', value: minimalPg, unit: 'stmts' },
      { suite, metric: 'minimal workflow: Redis commands sent per order', value: minimalSent, unit: 'cmds' },
      {
        suite,
        metric: 'minimal workflow: Redis commands executed per order (script calls included)',
        value: minimalRedis,
        unit: 'cmds',
      },
      {
        suite,
        metric: 'Postgres statements per order / minimal workflow (information)',
        value: pgPerOrder / minimalPg,
        unit: 'x',
      },
      {
        suite,
        metric: 'Redis commands executed per order / minimal workflow (information)',
        value: redisPerOrder / minimalRedis,
        unit: 'x',
      },
      {
        suite,
        metric: 'throughput / minimal workflow',
        value: ours / minimalRate,
        unit: 'x',
        // The floor: the upstream ceiling, not certq's CPU, limits throughput.
        goal: '>= 0.4',
        met: ours / minimalRate >= 0.4,
      },
      {
        suite,
        metric: 'CPU per order / minimal workflow',
        value: ourCpuPer1000 / minimalCpuPer1000,
        unit: 'x',
      },
      ...cpuPerOrderRows(
        suite,
        ourCpuPer1000 / 1000,
        ourOtherCpu,
        minimalCpuPer1000 / 1000,
        minimalOtherCpu!,
      ),
      { suite, metric: 'raw BullMQ 3-job chains per second (information)', value: base, unit: 'chains/s' },
      { suite, metric: 'throughput ratio to raw BullMQ (information)', value: ratio, unit: 'x' },
    ];
  } finally {
    redis.disconnect();
    await close();
  }
}

/**
 * Where an order's CPU goes on this machine, certq against the minimal workflow (information): the
 * worker process, the Postgres backends of its database, Redis, the simulator. The machine's cores are
 * shared by all of them, so the total bounds throughput as much as the worker's own share does.
 */
function cpuPerOrderRows(
  suite: string,
  ourWorker: number,
  ours: OtherCpu,
  minimalWorker: number,
  minimal: OtherCpu,
): BenchRow[] {
  const perOrderMs = (seconds: number) => (seconds / ORDERS) * 1000;
  const parts = (worker: number, others: OtherCpu) => ({
    worker: worker * 1000,
    postgres: perOrderMs(others.postgres),
    redis: perOrderMs(others.redis),
    simulator: perOrderMs(others.simulator),
  });
  const a = parts(ourWorker, ours);
  const b = parts(minimalWorker, minimal);
  const total = (p: typeof a) => p.worker + p.postgres + p.redis + p.simulator;
  return [
    ...(Object.keys(a) as (keyof typeof a)[]).map((k) => ({
      suite,
      metric: `CPU per order, ${k}: certq / minimal workflow (information)`,
      value: a[k],
      unit: `ms / ${b[k].toFixed(2)} ms`,
    })),
    {
      suite,
      metric: 'CPU per order, all four: certq / minimal workflow (information)',
      value: total(a),
      unit: `ms / ${total(b).toFixed(2)} ms`,
    },
  ];
}
