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
      const jobs = page.map((row) => spec.jobOf(row));
      const live = await jobsLive(jobs);
      // Only the few not found live are asked about one by one (BullMQ's own view decides the repair).
      const lost = await Promise.all(jobs.map((job, i) => !live[i] && jobIsMissing(job)));
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

/**
 * Whether each job is live — delayed, prioritized, waiting for children, active or waiting — in one
 * round trip per queue (a pipeline of one small script per job, so Redis serves other clients between
 * them) instead of one getJobState call per row: a pass over every active order costs a page's worth of
 * network writes, not one per order. A job not found live here is then asked about through BullMQ itself
 * (jobIsMissing) before anything is repaired, so this can only save calls, never decide a repair.
 */
export async function jobsLive(jobs: readonly { queue: Queue; jobId: string }[]): Promise<boolean[]> {
  const live: boolean[] = new Array(jobs.length).fill(false);
  const byQueue = new Map<Queue, number[]>();
  for (const [i, job] of jobs.entries()) {
    const indexes = byQueue.get(job.queue);
    if (indexes) indexes.push(i);
    else byQueue.set(job.queue, [i]);
  }
  for (const [queue, indexes] of byQueue) {
    const client = (await queue.client) as LiveCheckClient;
    if (!(LIVE_COMMAND in client)) client.defineCommand(LIVE_COMMAND, { numberOfKeys: 6, lua: JOB_LIVE });
    const keys = ['delayed', 'prioritized', 'waiting-children', 'active', 'wait', 'paused'].map((k) =>
      queue.toKey(k),
    );
    const pipeline = client.pipeline() as unknown as Record<
      typeof LIVE_COMMAND,
      (...args: string[]) => void
    > & {
      exec(): Promise<[Error | null, unknown][] | null>;
    };
    for (const i of indexes) pipeline[LIVE_COMMAND](...keys, jobs[i]!.jobId);
    const results = (await pipeline.exec()) ?? [];
    for (const [n, i] of indexes.entries()) live[i] = results[n]?.[0] === null && results[n]?.[1] === 1;
  }
  return live;
}

const LIVE_COMMAND = 'certqJobLive';
type LiveCheckClient = Awaited<Queue['client']>;
/** The live states of BullMQ's getState script, sorted sets (O(log n)) before lists (LPOS). */
const JOB_LIVE = `
for i = 1, 3 do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then return 1 end
end
for i = 4, 6 do
  if redis.call('LPOS', KEYS[i], ARGV[1]) then return 1 end
end
return 0
`;
