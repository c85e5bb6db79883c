import type { Order } from '@certq/db';

/**
 * The closed set of job results: the `outcome` label of `certq_jobs_total`, so dashboards and alerts
 * can rely on it (README, "Metrics").
 * - moved: the order went to another stage (verified → applying, applied → issuing, refused → verifying);
 * - issued / failed: the order ended;
 * - waiting: the order waits on the world (DNS not in place, the CA still issuing);
 * - retrying: an upstream error, tried again after a backoff;
 * - early: the job ran before its time (not due yet, poll floor, an apply call possibly in flight);
 * - stale: the job no longer drives its order (moved on, cancelled, retried as a new run);
 * - rate_limited: httpsok asked everyone to slow down;
 * - crashed: the task threw (a bug or an infrastructure fault; BullMQ retries the job).
 */
export const JOB_RESULTS = [
  'moved',
  'issued',
  'failed',
  'waiting',
  'retrying',
  'early',
  'stale',
  'rate_limited',
  'crashed',
] as const;
export type JobResult = (typeof JOB_RESULTS)[number];

/**
 * What a task decided about its job; the runner's workers turn it into BullMQ calls, tasks never touch
 * the job. `detail` is free text for logs, never a metric label.
 * - done: the job is finished. `next`: the order (as committed) whose stage job must now be queued;
 *   the worker queues it after the task returns, i.e. after the task's transaction committed.
 * - delay: run this same job again at `until` (holds no worker slot, spends no attempt).
 * - rateLimit: pause the whole queue for `ms`.
 */
export type Outcome =
  | { kind: 'done'; result: 'moved' | 'issued' | 'failed' | 'stale'; detail: string; next?: Order }
  | { kind: 'delay'; result: 'waiting' | 'retrying' | 'early'; until: Date; detail: string }
  | { kind: 'rateLimit'; result: 'rate_limited'; ms: number; detail: string };

type DoneResult = Extract<Outcome, { kind: 'done' }>['result'];
type DelayResult = Extract<Outcome, { kind: 'delay' }>['result'];

export const done = (result: DoneResult, detail: string, next?: Order): Outcome => ({
  kind: 'done',
  result,
  detail,
  next,
});
export const delayUntil = (until: Date, result: DelayResult, detail: string): Outcome => ({
  kind: 'delay',
  result,
  until,
  detail,
});
export const rateLimited = (ms: number): Outcome => ({
  kind: 'rateLimit',
  result: 'rate_limited',
  ms,
  detail: 'httpsok asked to slow down',
});
