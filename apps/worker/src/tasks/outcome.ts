/**
 * What a task decided about its job. The runner turns it into BullMQ calls; tasks never touch the job.
 * - done: the job is finished (the order moved on, or the job was stale).
 * - delay: run this same job again at `until` (holds no worker slot, spends no attempt).
 * - rateLimit: the upstream asked everyone to slow down; pause the whole queue for `ms`.
 */
export type Outcome =
  | { kind: 'done'; result: string }
  | { kind: 'delay'; until: Date; result: string }
  | { kind: 'rateLimit'; ms: number; result: string };

export const done = (result: string): Outcome => ({ kind: 'done', result });
export const delayUntil = (until: Date, result: string): Outcome => ({ kind: 'delay', until, result });
