import { isActive, QUEUE_NAMES, STAGE_OF, type Stage, type StageJob, stageJobId } from '@certq/core';
import type { Order } from '@certq/db';
import {
  type ConnectionOptions,
  type JobsOptions,
  type Processor,
  Queue,
  Worker,
  type WorkerOptions,
} from 'bullmq';

/**
 * Redis holds only the schedule. Completed jobs are dropped at once and failed ones kept for a week at
 * most, so memory stays bounded however many orders flow; Postgres keeps the history.
 */
export const STAGE_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
  // Retries are decided by the handlers (moveToDelayed from Postgres state), not by BullMQ attempts;
  // this only covers a handler that crashed unexpectedly.
  attempts: 5,
  backoff: { type: 'exponential', delay: 10_000 },
};

/** A webhook delivery job: the outbox row to POST (its id is also the job id). */
export interface WebhookJobData {
  deliveryId: string;
}

export interface Queues {
  prefix: string;
  verify: Queue<StageJob>;
  apply: Queue<StageJob>;
  poll: Queue<StageJob>;
  /** Webhook deliveries (see webhooks/). Not one of the stage queues: `all()` leaves it out. */
  webhooks: Queue<WebhookJobData>;
  /** The worker's housekeeping (renewal scan, retention). Not a stage queue either. */
  maintenance: Queue;
  stage(stage: Stage): Queue<StageJob>;
  /** The stage queues. */
  all(): Queue[];
  /** Every certq queue, stages first: what dashboards and metrics show. */
  every(): Queue[];
  close(): Promise<void>;
}

/** Webhook delivery retries: `attempts` POSTs in all, exponential backoff from `backoffMs` (BullMQ's). */
export interface WebhookRetryOptions {
  attempts: number;
  backoffMs: number;
}

/** 8 attempts, 30 s doubling: the last one about an hour after the first. */
export const WEBHOOK_RETRY_DEFAULTS: WebhookRetryOptions = { attempts: 8, backoffMs: 30_000 };

export function webhookJobOptions(retry: WebhookRetryOptions): JobsOptions {
  return {
    attempts: retry.attempts,
    backoff: { type: 'exponential', delay: retry.backoffMs },
    removeOnComplete: true,
    removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
  };
}

/** The one place a BullMQ Queue is made: every certq queue under the same prefix. */
export function createQueue<Data = unknown>(
  name: string,
  connection: ConnectionOptions,
  prefix: string,
  defaultJobOptions?: JobsOptions,
): Queue<Data> {
  return new Queue<Data>(name, { connection, prefix, ...(defaultJobOptions ? { defaultJobOptions } : {}) });
}

/**
 * How long a job's lock lasts unrenewed (a crashed worker's job is picked up again after about this
 * long) and how often stalled jobs are looked for; a job may stall many times (crashes must not fail it).
 */
export const WORKER_LOCK_DEFAULTS = { lockDuration: 30_000, stalledInterval: 30_000, maxStalledCount: 100 };

/** The one place a BullMQ Worker is made: not started (`run()` it), the lock defaults unless overridden. */
export function createWorker<Data>(
  name: string,
  processor: Processor<Data>,
  options: Pick<WorkerOptions, 'connection' | 'prefix' | 'concurrency'> &
    Partial<Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount'>>,
): Worker<Data> {
  const defined = Object.fromEntries(
    Object.entries(options).filter(([, v]) => v !== undefined),
  ) as typeof options;
  return new Worker<Data>(name, processor, { ...WORKER_LOCK_DEFAULTS, ...defined, autorun: false });
}

export function createQueues(
  connection: ConnectionOptions,
  prefix: string,
  options: { webhookRetry?: WebhookRetryOptions } = {},
): Queues {
  const make = (name: string) => createQueue<StageJob>(name, connection, prefix, STAGE_JOB_OPTIONS);
  const queues = {
    verify: make(QUEUE_NAMES.verify),
    apply: make(QUEUE_NAMES.apply),
    poll: make(QUEUE_NAMES.poll),
  };
  const webhooks = createQueue<WebhookJobData>(
    QUEUE_NAMES.webhooks,
    connection,
    prefix,
    webhookJobOptions(options.webhookRetry ?? WEBHOOK_RETRY_DEFAULTS),
  );
  const maintenance = createQueue(QUEUE_NAMES.maintenance, connection, prefix);
  const every = () => [...Object.values(queues), webhooks, maintenance] as Queue[];
  return {
    prefix,
    ...queues,
    webhooks,
    maintenance,
    stage: (stage) => queues[stage],
    all: () => Object.values(queues),
    every,
    close: async () => {
      await Promise.all(every().map((q) => q.close()));
    },
  };
}

/** The job that drives an active order now: its stage's queue, deterministic id, delay and priority. */
export function stageJobFor(order: Order, now: Date) {
  if (!isActive(order.status)) return undefined;
  const stage = STAGE_OF[order.status];
  return {
    stage,
    name: stage,
    data: { orderId: order.id, run: order.run } satisfies StageJob,
    opts: {
      jobId: stageJobId(stage, order.id, order.run),
      delay: Math.max(0, order.nextAttemptAt.getTime() - now.getTime()),
      // Stored on the order: new orders before renewals, renewals interleaved by tenant (see renewals).
      priority: order.priority,
    } satisfies JobsOptions,
  };
}

/**
 * Makes sure every given active order has its stage job queued. Idempotent: a job id that exists is
 * left alone, so the API, handlers and the reconciler may all call it for the same order.
 */
export async function enqueueOrders(
  queues: Queues,
  orders: readonly Order[],
  now = new Date(),
): Promise<void> {
  const byStage = new Map<Stage, { name: string; data: StageJob; opts: JobsOptions }[]>();
  for (const order of orders) {
    const job = stageJobFor(order, now);
    if (!job) continue;
    const list = byStage.get(job.stage) ?? [];
    list.push({ name: job.name, data: job.data, opts: job.opts });
    byStage.set(job.stage, list);
  }
  for (const [stage, jobs] of byStage) {
    const queue = queues.stage(stage);
    // One job (every POST /v1/orders): a plain add, one script call, without addBulk's MULTI.
    if (jobs.length === 1) await queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
    else for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000));
  }
}
