import { insertOrders, type Order, type OrderRequest } from '@certq/db';
import {
  dueForRenewal,
  enqueueOrders,
  freshenOrderStatistics,
  freshenStatisticsAfter,
  RENEWAL_CANDIDATE_COLUMNS,
  RENEWAL_CANDIDATES_FROM,
  type RenewalCandidate,
  renewalRequest,
  spreadNotBefore,
} from '@certq/workflow';
import { type SQL, sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';

export interface ScanOptions {
  /** The scan's "now" (default `ctx.clock.now()`). */
  now?: Date;
  /** Certificates read and orders inserted per round trip (default 1000). */
  batchSize?: number;
  /** Called after each batch is committed, its enqueue under way (progress, benchmarks). */
  onBatch?: (progress: { batch: number; created: number; skipped: number }) => void;
}

export interface ScanResult {
  /** False when another process was scanning and this run did nothing. */
  ran: boolean;
  /** Certificates due for renewal when the scan started (renew_at reached, not backed off, no active order). */
  due: number;
  /** Renewal orders created and enqueued. */
  created: number;
  /** Due certificates that got no order (an order for the same set appeared meanwhile). */
  skipped: number;
  batches: number;
  durationMs: number;
}

export interface ScanCursor {
  /** renew_at with Postgres's full microsecond precision (a JS Date would drop them). */
  renewAt: string;
  id: string;
}

export interface CandidateRow extends RenewalCandidate {
  cursor_ts: string;
}

/**
 * One page of due certificates in (renew_at, id) order, after `cursor`. Served by the partial index
 * certificates_current_by_renew_at (renew_at, id) WHERE is_current — a range scan that stops after
 * `limit` rows — and, per row, the issuing order by primary key and the partial unique index on active
 * orders for the anti-join.
 */
export function renewalCandidatesQuery(now: Date, cursor: ScanCursor | undefined, limit: number): SQL {
  const after = cursor
    ? sql`and (c.renew_at, c.id) > (${cursor.renewAt}::timestamptz, ${cursor.id}::uuid)`
    : sql``;
  return sql`
    select ${RENEWAL_CANDIDATE_COLUMNS},
      to_char(c.renew_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as cursor_ts
    from ${RENEWAL_CANDIDATES_FROM}
    where ${dueForRenewal(now)} ${after}
    order by c.renew_at, c.id
    limit ${limit}`;
}

/**
 * The renewal scanner: every certificate due for renewal (dueForRenewal in @certq/workflow: its renew_at
 * reached, not yet expired, past its renewal backoff, no active order for its domain set) gets a renewal
 * order (`nearing_expiry`, renewalRequest: same domains, algorithm and CA list) in the renewal lane,
 * interleaved by tenant (see insertOrders), and a first run spread over `due / UPSTREAM_MAX_RPS` seconds.
 *
 * One scan at a time across all workers: the scan holds a transaction-scoped advisory lock on its own
 * connection while it pages through the certificates (keyset on (renew_at, id), `batchSize` rows at a
 * time, so memory stays flat however many are due). Each page's orders are inserted in their own short
 * transaction and enqueued right after it commits (while the next page is read and inserted), so a
 * crash mid-scan loses nothing: what was committed is queued (or put back by the reconciler) and the
 * next scan carries on with the rest.
 */
export async function scanRenewals(ctx: WorkerContext, options: ScanOptions = {}): Promise<ScanResult> {
  const started = Date.now();
  const now = options.now ?? ctx.clock.now();
  const batchSize = options.batchSize ?? 1000;
  const stopTimer = ctx.metrics.renewalScanDuration.startTimer();
  const result = await ctx.db.transaction(async (lockTx): Promise<ScanResult> => {
    const lock = await lockTx.execute<{ locked: boolean }>(
      sql`select pg_try_advisory_xact_lock(hashtext('certq:renewal-scan')) as locked`,
    );
    if (!lock.rows[0]?.locked)
      return { ran: false, due: 0, created: 0, skipped: 0, batches: 0, durationMs: 0 };

    await freshenOrderStatistics(ctx.db);
    const counted = await lockTx.execute<{ n: number }>(
      sql`select count(*)::int as n from certificates c where ${dueForRenewal(now)}`,
    );
    const due = counted.rows[0]?.n ?? 0;
    ctx.metrics.renewalsDue.set(due);
    let created = 0;
    let skipped = 0;
    let batches = 0;
    let creatingBatches = 0;
    let enqueuing: Promise<void> = Promise.resolve();
    let cursor: ScanCursor | undefined;
    for (;;) {
      const page = await lockTx.execute<CandidateRow>(renewalCandidatesQuery(now, cursor, batchSize));
      if (page.rows.length === 0) break;
      batches++;
      const last = page.rows[page.rows.length - 1]!;
      cursor = { renewAt: last.cursor_ts, id: last.id };
      const requests: OrderRequest[] = page.rows.map((c) =>
        renewalRequest(c, {
          reason: 'nearing_expiry',
          notBefore: spreadNotBefore(now, due, ctx.config.UPSTREAM_MAX_RPS, ctx.random),
        }),
      );
      const inserted = await ctx.db.transaction((tx) => insertOrders(tx, requests));
      const fresh: Order[] = inserted.orders.filter((o) => o.created).map((o) => o.order);
      created += fresh.length;
      skipped += requests.length - fresh.length;
      ctx.metrics.renewalOrdersCreated.inc(fresh.length);
      for (const order of fresh) {
        ctx.logger.debug(
          { orderId: order.id, tenantId: order.tenantId, certificateId: order.renewalOfCertificateId },
          'renewal order created',
        );
      }
      // Redis takes this batch while Postgres reads and inserts the next; one batch in flight at most.
      await enqueuing;
      enqueuing = enqueueOrders(ctx.queues, fresh, now).catch((error) => {
        // Committed in Postgres: the reconciler puts them on their queues.
        ctx.logger.warn({ err: error, orders: fresh.length }, 'enqueueing renewal orders failed');
      });
      if (fresh.length && freshenStatisticsAfter(++creatingBatches)) await freshenOrderStatistics(ctx.db);
      options.onBatch?.({ batch: batches, created, skipped });
      if (page.rows.length < batchSize) break;
    }
    await enqueuing;
    return { ran: true, due, created, skipped, batches, durationMs: 0 };
  });
  stopTimer();
  result.durationMs = Date.now() - started;
  if (result.ran && (result.created || result.skipped)) {
    ctx.logger.info(
      { due: result.due, created: result.created, skipped: result.skipped, ms: result.durationMs },
      'renewal scan created orders',
    );
  }
  return result;
}

/**
 * EXPLAIN of one page of the scan (the first, or after `cursor`), for the benchmark and tests: the
 * plan as text, whether the certificates are read through certificates_current_by_renew_at and how
 * (an ordered Index Scan that stops after `limit` rows when many are due; a Bitmap Index Scan and a
 * small sort when the whole window fits in one page).
 */
export async function explainRenewalScan(
  db: WorkerContext['db'],
  now: Date,
  options: { cursor?: ScanCursor; limit?: number; analyze?: boolean } = {},
): Promise<{ plan: string; usesRenewAtIndex: boolean; scan: string }> {
  const query = renewalCandidatesQuery(now, options.cursor, options.limit ?? 1000);
  const result = await db.execute<{ 'QUERY PLAN': string }>(
    options.analyze ? sql`explain (analyze, buffers) ${query}` : sql`explain ${query}`,
  );
  const plan = result.rows.map((r) => r['QUERY PLAN']).join('\n');
  const scan =
    /(Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) certificates_current_by_renew_at/.exec(
      plan,
    );
  return { plan, usesRenewAtIndex: scan !== null, scan: scan?.[1] ?? 'no index' };
}
