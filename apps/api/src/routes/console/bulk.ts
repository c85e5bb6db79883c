import { randomUUID } from 'node:crypto';
import type { Database } from '@certq/db';
import {
  cancelOrder,
  enqueueSafely,
  getRenewalBatch,
  isWorkflowError,
  type Queues,
  requestRenewals,
  retryOrder,
} from '@certq/workflow';
import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import { ApiError } from '../../plugins/errors';
import { CONSOLE_ACTOR } from './auth';
import {
  ACTIVE,
  countOrders,
  currentCertificatesOfOrders,
  matchingOrderIds,
  type OrderFilter,
  statusCounts,
} from './queries';

/**
 * Actions on one order or on every order matching the console's filter. Each order changes in its own
 * transaction through the same @certq/workflow functions the JSON API uses (retryOrder, cancelOrder,
 * requestRenewals), so the console adds no state change of its own. A bulk action is capped (BULK_CAP
 * orders), counted before it is confirmed and followed afterwards: the job's own progress while it
 * runs, then the statuses of the orders it touched (or of the renewal batch it created).
 */
export type BulkAction = 'retry' | 'cancel' | 'renew';
export const BULK_ACTIONS: readonly BulkAction[] = ['retry', 'cancel', 'renew'];
export const BULK_CAP = 10_000;

export interface BulkDeps {
  db: Database;
  queues: Queues;
  maxRps: number;
  enqueueTimeoutMs: number;
  log: FastifyBaseLogger;
}

/** What a bulk action would act on: retry only failed orders, cancel only active ones, renew their certificates. */
export async function bulkPreview(db: Database, action: BulkAction, filter: OrderFilter) {
  const matching = await countOrders(db, filter, [], BULK_CAP);
  if (action === 'renew') {
    const ids = await currentCertificatesOfOrders(db, filter, BULK_CAP + 1);
    return { matching, eligible: { count: Math.min(ids.length, BULK_CAP), more: ids.length > BULK_CAP } };
  }
  const eligible = await countOrders(db, filter, [eligibleCondition(action)], BULK_CAP);
  return { matching, eligible };
}

const eligibleCondition = (action: 'retry' | 'cancel') =>
  action === 'retry' ? sql`o.status = 'failed'` : ACTIVE;

export interface BulkJob {
  id: string;
  action: BulkAction;
  total: number;
  done: number;
  /** Orders the action did not apply to, by reason (e.g. another active order covers the set). */
  refused: Record<string, number>;
  /** The orders acted on (retry / cancel), for their statuses afterwards. */
  orderIds: string[];
  renewalBatchId?: string;
  finished: boolean;
  error?: string;
  startedAt: Date;
}

export interface BulkProgress {
  job: BulkJob;
  /** Statuses now of the orders acted on (retry/cancel), or of the renewal batch's orders. */
  statuses: Record<string, number>;
}

/** Bulk jobs of this API process (kept for an hour). The changes themselves are committed per order. */
export class BulkJobs {
  readonly #jobs = new Map<string, BulkJob>();
  constructor(private readonly deps: BulkDeps) {}

  get(id: string): BulkJob | undefined {
    return this.#jobs.get(id);
  }

  /** Starts the action in the background and answers at once with the job (its total known). */
  async start(action: BulkAction, filter: OrderFilter): Promise<BulkJob> {
    const { db } = this.deps;
    this.#prune();
    const job: BulkJob = {
      id: randomUUID(),
      action,
      total: 0,
      done: 0,
      refused: {},
      orderIds: [],
      finished: false,
      startedAt: new Date(),
    };
    if (action === 'renew') {
      const certificateIds = await currentCertificatesOfOrders(db, filter, BULK_CAP + 1);
      if (certificateIds.length > BULK_CAP) throw tooMany();
      job.total = certificateIds.length;
      this.#jobs.set(job.id, job);
      void this.#renew(job, certificateIds);
    } else {
      const ids = await matchingOrderIds(db, filter, [eligibleCondition(action)], BULK_CAP + 1);
      if (ids.length > BULK_CAP) throw tooMany();
      job.total = ids.length;
      job.orderIds = ids;
      this.#jobs.set(job.id, job);
      void this.#each(job, ids);
    }
    return job;
  }

  async progress(job: BulkJob): Promise<BulkProgress> {
    if (job.renewalBatchId) {
      const batch = await getRenewalBatch(this.deps.db, job.renewalBatchId);
      return {
        job,
        statuses: batch
          ? {
              issued: batch.issued,
              failed: batch.failed,
              cancelled: batch.cancelled,
              'in flight': batch.inFlight,
            }
          : {},
      };
    }
    const counts = await statusCounts(this.deps.db, job.orderIds);
    return { job, statuses: counts };
  }

  async #each(job: BulkJob, ids: string[]) {
    const { db, queues, enqueueTimeoutMs, log } = this.deps;
    const act = (id: string) =>
      job.action === 'retry'
        ? retryOrder({ db, queues, enqueueTimeoutMs }, id, { actor: CONSOLE_ACTOR, log })
        : cancelOrder({ db }, id, { actor: CONSOLE_ACTOR });
    try {
      // A few orders at a time: each is its own short transaction (retried ones are enqueued by it).
      for (let i = 0; i < ids.length; i += 20) {
        await Promise.all(
          ids.slice(i, i + 20).map(async (id) => {
            try {
              await act(id);
            } catch (error) {
              if (!isWorkflowError(error)) throw error;
              job.refused[error.code] = (job.refused[error.code] ?? 0) + 1;
            } finally {
              job.done++;
            }
          }),
        );
      }
    } catch (error) {
      job.error = (error as Error).message;
      log.error({ err: error, bulkJob: job.id }, 'console bulk action failed');
    } finally {
      job.finished = true;
    }
  }

  async #renew(job: BulkJob, certificateIds: string[]) {
    try {
      if (certificateIds.length) await this.renew(certificateIds, job);
      else job.done = 0;
    } catch (error) {
      job.error = (error as Error).message;
      this.deps.log.error({ err: error, bulkJob: job.id }, 'console renewal failed');
    } finally {
      job.finished = true;
    }
  }

  /** Renewal orders for these certificates now (one order's "renew", or a bulk job's). */
  async renew(certificateIds: string[], job?: BulkJob) {
    const { db, queues, maxRps, enqueueTimeoutMs, log } = this.deps;
    const result = await requestRenewals(db, queues, {
      selection: { certificateIds },
      requestedByTenantId: null,
      maxRps,
      enqueue: (orders) => enqueueSafely(queues, orders, enqueueTimeoutMs, log),
    });
    if (job) {
      job.renewalBatchId = result.batchId;
      job.done = certificateIds.length;
      if (result.skipped) job.refused.already_active = result.skipped;
    }
    return result;
  }

  #prune() {
    const cutoff = Date.now() - 3_600_000;
    for (const [id, job] of this.#jobs)
      if (job.finished && job.startedAt.getTime() < cutoff) this.#jobs.delete(id);
  }
}

const tooMany = () =>
  new ApiError(409, 'too_many', `more than ${BULK_CAP} orders match: narrow the filter and try again`);
