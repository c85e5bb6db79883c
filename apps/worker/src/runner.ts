import { QUEUE_NAMES, type Stage, type StageJobData } from '@certq/core';
import { type ConnectionOptions, DelayedError, type Job, Worker } from 'bullmq';
import type { WorkflowContext } from './context';
import { applyTask } from './tasks/apply';
import type { Outcome } from './tasks/outcome';
import { pollTask } from './tasks/poll';
import { verifyTask } from './tasks/verify';

export type Task = (ctx: WorkflowContext, job: StageJobData) => Promise<Outcome>;

/** The only place that knows which task serves which stage. */
export const TASKS: Readonly<Record<Stage, Task>> = { verify: verifyTask, apply: applyTask, poll: pollTask };

export interface RunnerOptions {
  connection: ConnectionOptions;
  concurrency: number;
  /** Per-stage overrides of `concurrency`. */
  stageConcurrency?: Partial<Record<Stage, number>>;
  /** How long a job's lock lasts without renewal: after a crash, its job is picked up again this soon. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

/**
 * One BullMQ Worker per stage. The runner knows nothing of what tasks do: it runs one, then turns its
 * Outcome into BullMQ calls — a delay moves the same job to the delayed set (no worker slot held, no
 * attempt spent), a rate limit pauses the queue for everyone.
 */
export function createStageWorkers(
  ctx: WorkflowContext,
  tasks: Readonly<Record<Stage, Task>>,
  options: RunnerOptions,
): Worker[] {
  return (Object.keys(tasks) as Stage[]).map((stage) => {
    const task = tasks[stage];
    const worker: Worker<StageJobData> = new Worker<StageJobData>(
      QUEUE_NAMES[stage],
      async (job: Job<StageJobData>, token?: string) => {
        const stopTimer = ctx.metrics.jobDuration.startTimer({ stage });
        let outcome: Outcome;
        try {
          outcome = await task(ctx, job.data);
        } catch (error) {
          ctx.metrics.jobs.inc({ stage, outcome: 'error' });
          ctx.logger.error({ err: error, orderId: job.data.orderId, stage, jobId: job.id }, 'task crashed');
          throw error;
        } finally {
          stopTimer();
        }
        ctx.metrics.jobs.inc({
          stage,
          outcome: outcome.kind === 'done' ? outcome.result.split(':')[0]! : outcome.kind,
        });
        ctx.logger.debug({ orderId: job.data.orderId, stage, jobId: job.id, outcome }, 'job handled');
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
        return outcome.result;
      },
      {
        connection: options.connection,
        prefix: ctx.queues.prefix,
        concurrency: options.stageConcurrency?.[stage] ?? options.concurrency,
        autorun: false,
        lockDuration: options.lockDurationMs ?? 30_000,
        stalledInterval: options.stalledIntervalMs ?? 30_000,
        // A job whose worker died is picked up again; repeated crashes must not fail the order's job.
        maxStalledCount: 100,
      },
    );
    worker.on('error', (error) => ctx.logger.error({ err: error, stage }, 'worker error'));
    return worker;
  });
}
