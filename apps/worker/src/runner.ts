import {
  type Clock,
  type Config,
  createRedisConnection,
  type ResolveAll,
  type SecretBox,
  secretBoxFromConfig,
} from '@certq/core';
import { createDb } from '@certq/db';
import type { DnsResolver } from '@certq/dns';
import { createQueues, WEBHOOK_RETRY_DEFAULTS } from '@certq/workflow';
import type { Worker } from 'bullmq';
import { sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createWorkerContext, type WorkerContext } from './context';
import { createDatabaseGate, type DatabaseGate } from './db-gate';
import { TASKS } from './lifecycle';
import { createLogger } from './logger';
import { startMaintenance } from './maintenance';
import { createWorkerMetrics, type WorkerMetrics } from './metrics';
import { type ReconcileResult, reconcile } from './sweeps/reconcile';
import { type RelayResult, relayWebhooks } from './sweeps/webhook-relay';
import { createWebhookWorker } from './webhooks/delivery';
import { createStageWorkers } from './workers';

export interface StartWorkerOptions {
  config: Config;
  logger?: Logger;
  clock?: Clock;
  metrics?: WorkerMetrics;
  secrets?: SecretBox;
  /** Shorter in tests, so a killed worker's jobs come back quickly. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  random?: () => number;
  /** Register the periodic renewal scan (default true; tests that scan by hand turn it off). */
  scheduleRenewalScan?: boolean;
  /** Webhook delivery: attempts and backoff base (defaults 8 and 30 s), POST timeout (default 10 s). */
  webhooks?: {
    attempts?: number;
    backoffMs?: number;
    timeoutMs?: number;
    /** Tests only: how webhook host names resolve (no test may reach real DNS). */
    resolveAll?: ResolveAll;
    /** Tests only: an exact host:port let through despite the address policy. */
    allowTarget?: (host: string, port: number) => boolean;
  };
  /** certq's own DNS lookups; default: a resolver over DNS_RESOLVERS. */
  dns?: DnsResolver;
}

/**
 * The runner: the worker process's top level. It starts one BullMQ worker per stage, the webhook
 * worker and the maintenance worker, runs the sweeps (reconcile, webhook relay) at start and on a
 * timer, and stops them all in order.
 */
export interface WorkerHandle {
  ctx: WorkerContext;
  /** Closed while Postgres is away (jobs paused), open again once it answers. */
  gate: DatabaseGate;
  workers: Worker[];
  reconcile(): Promise<ReconcileResult>;
  /** One webhook relay pass (also run with every reconcile). */
  relayWebhooks(): Promise<RelayResult>;
  /** Stops taking jobs, lets the ones in hand finish, closes every connection. */
  close(): Promise<void>;
}

/** BullMQ stops working when Redis evicts its keys; say so loudly at start. */
async function checkRedis(redis: Redis, logger: Logger): Promise<void> {
  try {
    const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as [string, string];
    if (policy !== 'noeviction') {
      logger.warn(
        { policy },
        'Redis maxmemory-policy should be noeviction: evicted job keys would stall orders until the reconciler repairs them',
      );
    }
  } catch {
    logger.info('could not read Redis maxmemory-policy (CONFIG disabled); make sure it is noeviction');
  }
}

export async function startWorker(options: StartWorkerOptions): Promise<WorkerHandle> {
  const { config } = options;
  if (!config.DATABASE_URL || !config.REDIS_URL) throw new Error('DATABASE_URL and REDIS_URL are required');
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  const db = createDb(config.DATABASE_URL, {
    max: config.DATABASE_POOL_SIZE,
    applicationName: 'certq-worker',
    preparedStatements: config.DATABASE_PREPARED_STATEMENTS,
  });
  const redis = createRedisConnection(config.REDIS_URL, { maxRetriesPerRequest: null });
  redis.on('error', (error) => logger.error({ err: error }, 'redis error'));
  await checkRedis(redis, logger);
  const queues = createQueues(redis, config.REDIS_PREFIX, {
    webhookRetry: {
      attempts: options.webhooks?.attempts ?? WEBHOOK_RETRY_DEFAULTS.attempts,
      backoffMs: options.webhooks?.backoffMs ?? WEBHOOK_RETRY_DEFAULTS.backoffMs,
    },
  });
  const ctx = createWorkerContext({
    db: db.db,
    queues,
    secrets: options.secrets ?? secretBoxFromConfig(config),
    config,
    redis,
    clock: options.clock,
    logger,
    metrics: options.metrics ?? createWorkerMetrics(),
    random: options.random,
    dns: options.dns,
  });
  const lockDurationMs = options.lockDurationMs ?? config.WORKER_LOCK_DURATION_MS;
  const stalledIntervalMs = options.stalledIntervalMs ?? config.WORKER_STALLED_INTERVAL_MS;
  const workerList: Worker[] = [];
  const gate = createDatabaseGate({
    probe: () => ctx.db.execute(sql`select 1`),
    workers: () => workerList,
    logger,
  });
  const stageWorkers = createStageWorkers(ctx, TASKS, {
    gate,
    connection: redis,
    concurrency: config.WORKER_CONCURRENCY,
    // Every apply call in flight when a process is killed may become a duplicate paid application;
    // fewer concurrent applies means fewer of those (the upstream rate limit is the real ceiling anyway).
    stageConcurrency: { apply: Math.min(config.WORKER_CONCURRENCY, config.APPLY_CONCURRENCY) },
    lockDurationMs,
    stalledIntervalMs,
  });
  // Webhook deliveries and maintenance (renewal scan) have their own workers, so neither a dead
  // endpoint nor a long scan takes a slot from issuance.
  const webhookWorker = createWebhookWorker(ctx, {
    connection: redis,
    concurrency: Math.min(50, config.WORKER_CONCURRENCY),
    timeoutMs: options.webhooks?.timeoutMs,
    resolveAll: options.webhooks?.resolveAll,
    allowTarget: options.webhooks?.allowTarget,
    gate,
    lockDurationMs,
    stalledIntervalMs,
  });
  const maintenance = await startMaintenance(ctx, {
    connection: redis,
    schedule: options.scheduleRenewalScan ?? true,
    stalledIntervalMs,
  });
  const workers: Worker[] = [...stageWorkers, webhookWorker.worker, maintenance.worker];
  workerList.push(...stageWorkers, webhookWorker.worker);

  const runRelay = async (): Promise<RelayResult> => {
    try {
      return await relayWebhooks(ctx);
    } catch (error) {
      logger.error({ err: error }, 'webhook relay failed');
      return { ran: false, checked: 0, repaired: 0 };
    }
  };
  const runReconcile = async () => {
    try {
      return await reconcile(ctx);
    } catch (error) {
      logger.error({ err: error }, 'reconcile failed');
      return { ran: false, checked: 0, repaired: 0 };
    } finally {
      await runRelay();
    }
  };
  // Before taking jobs: whatever Redis lost while no worker ran is put back first.
  await runReconcile();
  for (const worker of workers) void worker.run();
  const timer = setInterval(runReconcile, config.RECONCILE_INTERVAL_MS);
  timer.unref();
  logger.info({ concurrency: config.WORKER_CONCURRENCY, prefix: config.REDIS_PREFIX }, 'worker started');

  let closing: Promise<void> | undefined;
  return {
    ctx,
    gate,
    workers,
    reconcile: runReconcile,
    relayWebhooks: runRelay,
    close() {
      closing ??= (async () => {
        clearInterval(timer);
        gate.close();
        await Promise.all([
          ...stageWorkers.map((w) => w.close()),
          webhookWorker.close(),
          maintenance.close(),
        ]);
        await queues.close();
        await ctx.close();
        await redis.quit().catch(() => redis.disconnect());
        await db.close();
        logger.info('worker stopped');
      })();
      return closing;
    },
  };
}
