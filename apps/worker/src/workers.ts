import { QUEUE_NAMES, type Stage, type StageJob } from '@certq/core';
import { createWorker, enqueueOrders } from '@certq/workflow';
import { type ConnectionOptions, DelayedError, type Job, Worker } from 'bullmq';
import type { WorkerContext } from './context';
import { type DatabaseGate, putBack } from './db-gate';
import type { Task } from './lifecycle';
import type { Outcome } from './tasks/outcome';

export interface StageWorkerOptions {
  connection: ConnectionOptions;
  concurrency: number;
  /** Per-stage overrides of `concurrency`. */
  stageConcurrency?: Partial<Record<Stage, number>>;
  /** How long a job's lock lasts without renewal: after a crash, its job is picked up again this soon. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Postgres outages: jobs that meet one are put back, the workers paused until it answers. */
  gate?: DatabaseGate;
}

/**
 * One BullMQ Worker per stage. A worker knows nothing of what tasks do: it runs one, then turns its
 * Outcome into BullMQ calls — `next` queues the order's following stage (the task has committed), a
 * delay moves the same job to the delayed set (no worker slot held, no attempt spent), a rate limit
 * pauses the queue for everyone.
 */
export function createStageWorkers(
  ctx: WorkerContext,
  tasks: Readonly<Record<Stage, Task>>,
  options: StageWorkerOptions,
): Worker[] {
  return (Object.keys(tasks) as Stage[]).map((stage) => {
    const task = tasks[stage];
    const worker: Worker<StageJob> = createWorker<StageJob>(
      QUEUE_NAMES[stage],
      async (job: Job<StageJob>, token?: string) => {
        const stopTimer = ctx.metrics.jobDuration.startTimer({ stage });
        let outcome: Outcome;
        try {
          outcome = await task(ctx, job.data);
        } catch (error) {
          if (options.gate && (await options.gate.isOutage(error))) {
            ctx.metrics.jobs.inc({ stage, outcome: 'db_unavailable' });
            ctx.logger.warn(
              { orderId: job.data.orderId, stage, jobId: job.id },
              'Postgres unavailable: job put back',
            );
            return putBack(job, token);
          }
          ctx.metrics.jobs.inc({ stage, outcome: 'crashed' });
          ctx.logger.error({ err: error, orderId: job.data.orderId, stage, jobId: job.id }, 'task crashed');
          throw error;
        } finally {
          stopTimer();
        }
        ctx.metrics.jobs.inc({ stage, outcome: outcome.result });
        ctx.logger.debug(
          { orderId: job.data.orderId, stage, jobId: job.id, result: outcome.result, detail: outcome.detail },
          'job handled',
        );
        if (outcome.kind === 'done' && outcome.next) {
          await enqueueOrders(ctx.queues, [outcome.next], ctx.clock.now());
        }
        if (outcome.kind === 'delay') {
          // Tasks think in the injected clock; BullMQ schedules in real time.
          const delayMs = Math.max(0, outcome.until.getTime() - ctx.clock.now().getTime());
          await job.moveToDelayed(Date.now() + delayMs, token);
          throw new DelayedError();
        }
        if (outcome.kind === 'rateLimit') {
          await worker.rateLimit(outcome.ms);
          throw Worker.RateLimitError();
        }
        return outcome.detail;
      },
      {
        connection: options.connection,
        prefix: ctx.queues.prefix,
        concurrency: options.stageConcurrency?.[stage] ?? options.concurrency,
        lockDuration: options.lockDurationMs,
        stalledInterval: options.stalledIntervalMs,
      },
    );
    worker.on('error', (error) => ctx.logger.error({ err: error, stage }, 'worker error'));
    return worker;
  });
}
