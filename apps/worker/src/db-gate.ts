import { isDatabaseUnavailable } from '@certq/db';
import { DelayedError, type Job, type Worker } from 'bullmq';
import type { Logger } from 'pino';

/**
 * What the worker does while Postgres is away. A job that meets the outage is put back (delayed, no
 * attempt spent, the job kept) and every worker of the process stops taking jobs; a probe (`select 1`)
 * runs every `probeIntervalMs` and, once it answers, the workers resume by themselves. No order is
 * failed over an outage: a task re-reads its state from Postgres when it runs again.
 */
export interface DatabaseGate {
  readonly down: boolean;
  /** Seconds the gate has been closed in total (for tests and logs). */
  readonly outages: number;
  markDown(error: unknown): void;
  /**
   * After a job threw: true if the error is Postgres (or the way to it) being away — the caller puts
   * the job back without spending an attempt. The gate is closed only if a probe fails too (a
   * connection cut by a restart the pool has already recovered from is not an outage).
   */
  isOutage(error: unknown): Promise<boolean>;
  close(): void;
}

/** Puts a job that met an outage back as delayed: BullMQ counts no attempt for a DelayedError. */
export async function putBack(job: Job, token: string | undefined): Promise<never> {
  await job.moveToDelayed(Date.now() + OUTAGE_RETRY_MS, token);
  throw new DelayedError();
}

export function createDatabaseGate(options: {
  probe: () => Promise<unknown>;
  workers: () => Worker[];
  logger: Logger;
  probeIntervalMs?: number;
}): DatabaseGate {
  const interval = options.probeIntervalMs ?? 1000;
  let down = false;
  let closed = false;
  let outages = 0;
  let timer: NodeJS.Timeout | undefined;

  const probe = async () => {
    timer = undefined;
    if (closed) return;
    try {
      await options.probe();
    } catch {
      timer = setTimeout(probe, interval);
      return;
    }
    down = false;
    options.logger.warn('Postgres answers again: resuming jobs');
    for (const worker of options.workers()) if (!worker.closing) worker.resume();
  };

  const gate: DatabaseGate = {
    get down() {
      return down;
    },
    get outages() {
      return outages;
    },
    markDown(error) {
      if (down || closed) return;
      down = true;
      outages++;
      options.logger.warn({ err: error }, 'Postgres unavailable: pausing jobs until it answers');
      // doNotWaitActive: jobs in hand finish (or meet the outage and are put back) on their own.
      for (const worker of options.workers()) void worker.pause(true);
      timer = setTimeout(probe, interval);
    },
    async isOutage(error) {
      if (!isDatabaseUnavailable(error)) return false;
      if (down) return true;
      try {
        await Promise.race([
          options.probe(),
          new Promise((_, reject) => setTimeout(() => reject(new Error('probe timed out')), 2000).unref()),
        ]);
        return true; // Postgres answers again: a cut connection the pool has replaced; retry the job
      } catch {
        gate.markDown(error);
        return true;
      }
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
  return gate;
}

/** How long a job that met an outage waits before it is tried again (the gate holds it anyway). */
export const OUTAGE_RETRY_MS = 2000;
