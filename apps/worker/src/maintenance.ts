import { QUEUE_NAMES } from '@certq/core';
import { purgeExpiredRows, purgeIdempotencyKeys, purgeUpstreamUsage } from '@certq/db';
import { type ConnectionOptions, Queue, Worker } from 'bullmq';
import type { WorkerContext } from './context';
import { scanRenewals } from './renewals/scanner';
import { notifyExpiring } from './webhooks/expiring';

export const RENEWAL_SCAN_SCHEDULER = 'renewal-scan';
/** How long the upstream budget's per-minute counts are kept (/v1/stats reads the last hour). */
const UPSTREAM_USAGE_KEPT_MS = 7 * 24 * 3600_000;

export interface MaintenanceOptions {
  connection: ConnectionOptions;
  /** Register the renewal-scan job scheduler (every RENEW_SCAN_INTERVAL_MS). Default true. */
  schedule?: boolean;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

export interface Maintenance {
  queue: Queue;
  worker: Worker;
  close(): Promise<void>;
}

/**
 * Periodic housekeeping on the maintenance queue: a BullMQ job scheduler adds a `renewal-scan` job
 * every RENEW_SCAN_INTERVAL_MS (every worker upserts the same scheduler, so there is one schedule
 * however many run), and a Worker of concurrency 1 runs it: the renewal scan, then the
 * certificate.expiring notifications, then deleting idempotency keys older than a day and upstream call
 * counts older than a week, then the
 * retention sweep (RETENTION_DAYS, CERTIFICATE_RETENTION_DAYS; see `purgeExpiredRows`). The scan's own advisory lock keeps two workers from scanning
 * at once even if jobs overlap (a manual trigger, a slow scan).
 */
export async function startMaintenance(
  ctx: WorkerContext,
  options: MaintenanceOptions,
): Promise<Maintenance> {
  const queue = new Queue(QUEUE_NAMES.maintenance, {
    connection: options.connection,
    prefix: ctx.queues.prefix,
  });
  if (options.schedule ?? true) {
    await queue.upsertJobScheduler(
      RENEWAL_SCAN_SCHEDULER,
      { every: ctx.config.RENEW_SCAN_INTERVAL_MS },
      {
        name: RENEWAL_SCAN_SCHEDULER,
        opts: { removeOnComplete: { count: 10 }, removeOnFail: { count: 100 } },
      },
    );
  }
  const worker = new Worker(
    QUEUE_NAMES.maintenance,
    async (job) => {
      if (job.name !== RENEWAL_SCAN_SCHEDULER) return `unknown job ${job.name}`;
      const scan = await scanRenewals(ctx);
      const expiring = await notifyExpiring(ctx);
      const idempotencyKeysPurged = await purgeIdempotencyKeys(ctx.db, ctx.clock.now());
      await purgeUpstreamUsage(ctx.db, new Date(ctx.clock.now().getTime() - UPSTREAM_USAGE_KEPT_MS));
      const purged = await purgeExpiredRows(ctx.db, ctx.clock.now(), {
        retentionDays: ctx.config.RETENTION_DAYS,
        certificateRetentionDays: ctx.config.CERTIFICATE_RETENTION_DAYS,
        batchSize: ctx.config.RETENTION_BATCH_SIZE,
      });
      return { ...scan, expiringNotified: expiring.recorded, idempotencyKeysPurged, purged };
    },
    {
      connection: options.connection,
      prefix: ctx.queues.prefix,
      concurrency: 1,
      autorun: false,
      // A scan of many thousand certificates may take a while; the lock is renewed meanwhile.
      lockDuration: options.lockDurationMs ?? 60_000,
      stalledInterval: options.stalledIntervalMs ?? 30_000,
    },
  );
  worker.on('error', (error) => ctx.logger.error({ err: error }, 'maintenance worker error'));
  worker.on('failed', (job, error) =>
    ctx.logger.error({ err: error, job: job?.name }, 'maintenance job failed'),
  );
  return {
    queue,
    worker,
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}
