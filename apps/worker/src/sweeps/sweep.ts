import type { Transaction } from '@certq/db';
import type { Queue } from 'bullmq';
import { sql } from 'drizzle-orm';
import type { Counter } from 'prom-client';
import type { WorkerContext } from '../context';

/** What one sweep pass did; `ran` is false when another process held its lock and this one did nothing. */
export interface SweepResult {
  ran: boolean;
  checked: number;
  repaired: number;
}

export interface Sweep<Row> {
  /** Advisory-lock name: one pass at a time across every worker process. */
  lock: string;
  /** The next page of rows that must each have a job, after `last` (keyset order), in the pass's transaction. */
  page(tx: Transaction, last: Row | undefined): Promise<Row[]>;
  /** The job a row must have. */
  jobOf(row: Row): { queue: Queue; jobId: string };
  /** Puts back the jobs of rows whose job is missing. */
  repair(tx: Transaction, missing: Row[]): Promise<void>;
  /** Counts the repaired rows; a pass that repaired any also logs `repairedMessage` as a warning. */
  repairedCounter: Counter;
  repairedMessage: string;
}

/**
 * The rows → queue skeleton every sweep shares (cert-manager's reconcile loop): in one transaction
 * holding a transaction-scoped advisory lock, page through the rows that must have a job, find the
 * ones whose job Redis lost (emptied, a crash between commit and enqueue, a job in the failed or
 * completed set), and repair them. Postgres is the truth; this makes the schedule match it.
 */
export async function sweep<Row>(ctx: WorkerContext, spec: Sweep<Row>): Promise<SweepResult> {
  const result = await pass(ctx, spec);
  if (result.repaired) {
    spec.repairedCounter.inc(result.repaired);
    // A repair means Redis lost something Postgres had (emptied, a crash between commit and enqueue).
    ctx.logger.warn({ repaired: result.repaired, checked: result.checked }, spec.repairedMessage);
  }
  return result;
}

async function pass<Row>(ctx: WorkerContext, spec: Sweep<Row>): Promise<SweepResult> {
  return ctx.db.transaction(async (tx) => {
    const lock = await tx.execute<{ locked: boolean }>(
      sql`select pg_try_advisory_xact_lock(hashtext(${spec.lock})) as locked`,
    );
    if (!lock.rows[0]?.locked) return { ran: false, checked: 0, repaired: 0 };
    let checked = 0;
    let repaired = 0;
    let last: Row | undefined;
    for (;;) {
      const page = await spec.page(tx, last);
      if (page.length === 0) break;
      last = page[page.length - 1];
      checked += page.length;
      // BullMQ's own view of each job decides; a page's lookups go out together (ioredis pipelines them).
      const lost = await Promise.all(page.map((row) => jobIsMissing(spec.jobOf(row))));
      const missing = page.filter((_, i) => lost[i]);
      if (missing.length) {
        await spec.repair(tx, missing);
        repaired += missing.length;
      }
    }
    return { ran: true, checked, repaired };
  });
}

async function jobIsMissing({ queue, jobId }: { queue: Queue; jobId: string }): Promise<boolean> {
  const state = await queue.getJobState(jobId);
  const missing = state === 'unknown' || state === 'failed' || state === 'completed';
  // 'unknown' may still leave the job's hash behind (keys lost one by one, not all at once): BullMQ
  // would then take the re-add for a duplicate and do nothing. Remove whatever is left.
  if (missing) await queue.remove(jobId);
  return missing;
}
