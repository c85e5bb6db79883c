import type { Stage } from './state';

/** BullMQ queue names (no `:`, which BullMQ reserves). */
export const QUEUE_NAMES = {
  verify: 'certq-verify',
  apply: 'certq-apply',
  poll: 'certq-poll',
  webhooks: 'certq-webhooks',
  maintenance: 'certq-maintenance',
} as const;

/** Lower number runs first: new orders before renewals (BullMQ priorities). */
export const PRIORITY = { new: 1, renewal: 10 } as const;

/**
 * Deterministic job id for one stage of one order's run: re-adding it while it exists is a no-op,
 * so the API, the reconciler and a retried handler can all "make sure it is queued" without duplicates.
 * `run` is the order's attempts counter, so a retried order gets fresh ids.
 */
export function stageJobId(stage: Stage, orderId: string, run: number): string {
  return `${stage}-${orderId}-r${run}`;
}

/** The payload of every stage job: which order, and which run of it (a retried order is a new run). */
export interface StageJob {
  orderId: string;
  run: number;
}
