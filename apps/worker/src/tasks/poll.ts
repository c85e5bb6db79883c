import { type Application, isHttpsokError } from '@certq/api-client';
import { type StageJob, UPSTREAM_FLOOR_MS } from '@certq/core';
import { orders } from '@certq/db';
import { lte, sql } from 'drizzle-orm';
import { nextPollDelay } from '../budget/poll-timing';
import { pollReason } from '../budget/reasons';
import type { WorkerContext } from '../context';
import { changeCa, exhaustedError, nextCa } from './dns';
import { completeIssuance } from './issuance';
import { jobsOrderIn, loadForStage, withLockedOrder } from './load';
import { done, type Outcome } from './outcome';
import { claimPollSlot } from './poll-slot';
import { describeError, reschedule, retryAt } from './schedule';
import { transition } from './transition';

/** This run's order, issuing and due (the poll's claim). Built once: see StatementText. */
const DUE_POLL = jobsOrderIn('issuing', lte(orders.nextAttemptAt, sql.placeholder('dueBy')));
/** This run's order, still issuing. */
const _STILL_ISSUING = jobsOrderIn('issuing');
/** When the upstream's answer came: the polling floor counts from it. */
const ANSWERED_NOW = sql`clock_timestamp()`;

/**
 * issuing: ask httpsok for the application, no sooner than POLL_INTERVAL_MS after the previous request
 * for it — ever, across retries, duplicate jobs, workers and restarts. The floor is enforced in
 * Postgres, not in Redis: before sending, a poll claims the slot (`claimPollSlot`, poll-slot.ts); once
 * the answer (or error) is in, `last_polled_at` is set to the time of the answer. A second claimant
 * finds the slot taken and waits.
 */
export async function pollTask(ctx: WorkerContext, job: StageJob): Promise<Outcome> {
  // Two different waits: the upstream's floor between any two requests for one id (10 s, whoever asks,
  // callbacks included), and our cadence between scheduled polls (POLL_INTERVAL_MS, at least the floor).
  const floorMs = UPSTREAM_FLOOR_MS;
  const intervalMs = ctx.config.POLL_INTERVAL_MS;
  // Due by our clock: a callback brings `next_attempt_at` forward (see @certq/workflow, callbacks).
  const dueBy = ctx.clock.now();
  const claimed = await claimPollSlot(ctx, DUE_POLL, {
    id: job.orderId,
    run: job.run,
    dueBy: dueBy.toISOString(),
  });
  if (!claimed) {
    const loaded = await loadForStage(ctx, job, 'issuing');
    if ('stale' in loaded) return loaded.stale;
    if (loaded.order.nextAttemptAt > dueBy)
      return reschedule(ctx, ctx.db, loaded.order, loaded.order.nextAttemptAt, {
        kind: 'early',
        detail: 'not due yet',
      });
    const taken = await ctx.db.execute<{ wait_ms: string | null }>(sql`
      select ceil(extract(epoch from (last_polled_at + make_interval(secs => ${floorMs / 1000}) - clock_timestamp())) * 1000) as wait_ms
      from orders where id = ${job.orderId}`);
    const waitMs = Math.max(0, Number(taken.rows[0]?.wait_ms ?? 0));
    return reschedule(ctx, ctx.db, loaded.order, new Date(ctx.clock.now().getTime() + waitMs + 5), {
      kind: 'early',
      detail: 'polled too recently',
    });
  }
  // Only a poll that will send spends upstream budget: the token is taken once the slot is ours.
  await ctx.limiter.acquire('poll');
  const log = ctx.logger.child({
    orderId: job.orderId,
    tenantId: claimed.tenantId,
    stage: 'poll',
    applyId: claimed.applyId,
  });
  let application: Application | undefined;
  let failure: unknown;
  try {
    const client = await ctx.httpsokFor(claimed.tenantId);
    application = await client.getApply(claimed.applyId!);
  } catch (error) {
    failure = error;
  }
  ctx.upstream.call('get', pollReason(application));
  const answeredAt = ctx.clock.now().getTime();
  const elapsedMs = answeredAt - claimed.stageStartedAt.getTime();
  if (application) ctx.firstPolls.learn(claimed.ca, elapsedMs, application.status, answeredAt);
  const polledAt = ANSWERED_NOW;

  // The two common answers need no row lock: the claimed row is the order as read, and each write's
  // WHERE checks it is still issuing in this run.
  if (application?.status === 'issued') {
    const issued = await completeIssuance(ctx, claimed, application, { lastPolledAt: polledAt });
    if (issued.status === 'stale') return done('stale', 'order changed during the call');
    log.info(
      { traceId: application.traceId, result: issued.status },
      issued.status === 'issued' ? 'certificate issued' : 'certificate rejected',
    );
    return issued.status === 'issued'
      ? done('issued', 'certificate issued')
      : done('failed', `certificate rejected: ${issued.reason}`);
  }
  if (application?.status === 'issuing') {
    // The CA is still at work: the next scheduled poll, and the retry counter starts over.
    const delayMs = nextPollDelay(elapsedMs, application.progress, intervalMs);
    return reschedule(
      ctx,
      ctx.db,
      claimed,
      new Date(ctx.clock.now().getTime() + delayMs),
      { kind: 'waiting', detail: `issuing, ${application.progress}%`, lastError: null },
      {
        lastPolledAt: polledAt,
        progress: Math.max(0, Math.min(99, Math.round(application.progress))),
        stageAttempts: 0,
      },
    );
  }

  const result = await withLockedOrder(ctx, job, 'issuing', async (tx, order) => {
    if (failure !== undefined || !application) {
      log.warn({ err: isHttpsokError(failure) ? failure.toJSON() : describeError(failure) }, 'poll failed');
      // Never sooner than the polling interval, whatever the backoff says.
      const at = new Date(Math.max(retryAt(ctx, order).getTime(), ctx.clock.now().getTime() + intervalMs));
      return reschedule(ctx, tx, order, at, { kind: 'retrying', error: failure }, { lastPolledAt: polledAt });
    }
    if (application.status === 'failed') {
      // CA failover: the next CA of the order's list gets a new run; the order fails only when none is left.
      const reason = `httpsok failed the application: ${application.reason}`;
      const to = nextCa(order);
      if (to) {
        const moved = await changeCa(ctx, tx, order, {
          to,
          reason,
          why: 'rejected',
          status: 'verifying',
          applyId: order.applyId,
        });
        log.info(
          { traceId: application.traceId, from: order.ca, to },
          'application failed upstream, next CA',
        );
        return done('moved', `application failed, next CA ${to}`, moved);
      }
      const caFailures = [...order.caFailures, { ca: order.ca, reason }];
      await transition(ctx, tx, {
        order,
        to: 'failed',
        set: {
          lastPolledAt: polledAt,
          caFailures,
          lastError: caFailures.length > 1 ? exhaustedError(caFailures) : reason,
        },
        event: { type: 'failed', detail: { reason: application.reason, traceId: application.traceId } },
        at: ctx.clock.now(),
      });
      log.info({ traceId: application.traceId, reason: application.reason }, 'application failed upstream');
      return done('failed', 'upstream status 3');
    }
    // Issued and still issuing were handled above, without a lock.
    throw new Error(`application status ${(application as Application).status} not handled`);
  });
  return result ?? done('stale', 'order changed during the call');
}
