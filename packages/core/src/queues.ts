import type { Stage } from './state';

/** BullMQ queue names (no `:`, which BullMQ reserves). */
export const QUEUE_NAMES = {
  verify: 'certq-verify',
  apply: 'certq-apply',
  poll: 'certq-poll',
  webhooks: 'certq-webhooks',
  maintenance: 'certq-maintenance',
} as const;

/**
 * Where an order waits in each stage's queue: a single POST /v1/orders (`interactive`), an item of
 * POST /v1/orders/bulk (`bulk`), or a renewal (`renewal`).
 */
export type PriorityLane = 'interactive' | 'bulk' | 'renewal';

/** BullMQ refuses priorities above 2^21 − 1. */
export const MAX_JOB_PRIORITY = 2_097_151;

/** Priorities per lane: `PRIORITY[lane]` up to `PRIORITY[lane] + PRIORITY_LANE_WIDTH − 1`. */
export const PRIORITY_LANE_WIDTH = 2 ** 19;

/**
 * The lowest (first-run) priority of each lane. BullMQ runs the lowest number first, so every
 * interactive order goes before any bulk one and every bulk one before any renewal, in every stage;
 * within a lane an order's place is its position in its tenant's backlog, computed where orders are
 * inserted (`insertOrders` in @certq/db). The last lane ends at 3 × 2^19 = 1,572,864 < MAX_JOB_PRIORITY.
 */
export const PRIORITY = {
  interactive: 1,
  bulk: 1 + PRIORITY_LANE_WIDTH,
  renewal: 1 + 2 * PRIORITY_LANE_WIDTH,
} as const satisfies Record<PriorityLane, number>;

/**
 * How many of a tenant's active orders in a lane are counted to place a new one. A tenant with fewer
 * goes at its count; one with more goes after its own last (an index probe), so placing an order never
 * reads more than this many index entries whatever the tenant's backlog.
 */
export const BACKLOG_COUNT_CAP = 1000;

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
