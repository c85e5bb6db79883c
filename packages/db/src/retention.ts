import { sql } from 'drizzle-orm';
import type { Queryable } from './client';

export interface RetentionSettings {
  /** Events of orders finished this many days ago, and settled webhook deliveries this old, go. */
  retentionDays: number;
  /** Certificates no longer current go this many days after their notAfter. */
  certificateRetentionDays: number;
  /** Rows per DELETE statement. */
  batchSize: number;
  /** Statements per table per call, so one maintenance run stays short; the next run continues. */
  maxBatches?: number;
}

export interface RetentionResult {
  orderEvents: number;
  webhookDeliveries: number;
  certificates: number;
}

const DAY_MS = 86_400_000;

/**
 * Deletes what certq no longer needs, in small batches (each its own short statement: no long lock,
 * no WAL burst): the event history of orders that finished more than `retentionDays` ago (the order
 * rows stay), webhook deliveries delivered or given up more than `retentionDays` ago, and
 * certificates that are no longer current (superseded by a renewal) and expired more than
 * `certificateRetentionDays` ago. A current certificate is never deleted, however old; an order's
 * certificateId may then name a certificate that is gone (404).
 */
export async function purgeExpiredRows(
  db: Queryable,
  now: Date,
  settings: RetentionSettings,
): Promise<RetentionResult> {
  const cutoff = new Date(now.getTime() - settings.retentionDays * DAY_MS);
  const certificateCutoff = new Date(now.getTime() - settings.certificateRetentionDays * DAY_MS);
  const limit = settings.batchSize;
  const maxBatches = settings.maxBatches ?? 100;
  const drain = async (statement: () => ReturnType<typeof sql>) => {
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      const result = await db.execute(statement());
      const n = result.rowCount ?? 0;
      total += n;
      if (n < limit) break;
    }
    return total;
  };
  // An order finished before the cutoff has every event before it: the (at, id) index bounds the read.
  const orderEvents = await drain(
    () => sql`
      delete from order_events where id in (
        select e.id from order_events e join orders o on o.id = e.order_id
        where e.at < ${cutoff} and o.status in ('issued', 'failed', 'cancelled') and o.updated_at < ${cutoff}
        order by e.at, e.id limit ${limit})`,
  );
  const webhookDeliveries = await drain(
    () => sql`
      delete from webhook_deliveries where id in (
        select id from webhook_deliveries where status <> 'pending' and created_at < ${cutoff}
        order by created_at, id limit ${limit})`,
  );
  const certificates = await drain(
    () => sql`
      delete from certificates where id in (
        select id from certificates where not is_current and not_after < ${certificateCutoff}
        order by not_after, id limit ${limit})`,
  );
  return { orderEvents, webhookDeliveries, certificates };
}
