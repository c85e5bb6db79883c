import { type ApplyResult, isHttpsokError } from '@certq/api-client';
import { generateToken, hashToken, type StageJob, UPSTREAM_FLOOR_MS } from '@certq/core';
import { enterStage, type Order, orders, recordOrderEvent, updateOrders } from '@certq/db';
import { and, eq, isNull, lte, sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { jobsOrderIn, loadForStage, withLockedOrder } from './load';
import { delayUntil, done, type Outcome, rateLimited } from './outcome';
import { claimPollSlot } from './poll-slot';
import { describeError, retryLater } from './retry';
import { transition, transitionIfUnchanged } from './transition';

/** This run's order, due, with no application and no call in flight (the claim). Built once: see StatementText. */
const CLAIMABLE = jobsOrderIn(
  'applying',
  isNull(orders.applyId),
  isNull(orders.applyRequestedAt),
  lte(orders.nextAttemptAt, sql.placeholder('now')),
);
/** The order still applying, its announced application the one to adopt, none adopted yet. */
const ANNOUNCED = and(
  eq(orders.id, sql.placeholder('id')),
  eq(orders.status, 'applying'),
  eq(orders.announcedApplyId, sql.placeholder('applyId')),
  isNull(orders.applyId),
)!;

/** How long an apply call may be in flight: the client's timeout plus a margin. */
const IN_FLIGHT_MS = 30_000;

/**
 * applying: submit the application once and store its id in the same transaction that moves the
 * order to issuing. Every apply creates a paid application upstream, so:
 *  - an order that has an application id is never applied again (checked under the row lock);
 *  - `applyRequestedAt` is committed before the call and cleared when its outcome is known. A later run
 *    that finds it still set knows an earlier call's outcome was lost (the process died between the
 *    upstream's answer and the commit, or the call timed out). httpsok has no endpoint to look an
 *    application up by domain, so the order is applied again — the only way to finish it — and the
 *    event is logged and counted (`certq_apply_unknown_outcome_total`) so an operator can reconcile
 *    the bill. While a call may still be in flight (younger than IN_FLIGHT_MS) nobody else applies.
 */
export async function applyTask(ctx: WorkerContext, job: StageJob): Promise<Outcome> {
  const secret = ctx.config.PUBLIC_BASE_URL ? generateToken('cb') : undefined;
  const intentSet = {
    applyRequestedAt: ctx.clock.now(),
    callbackSecretHash: secret ? hashToken(secret) : null,
  };
  // The common case in one statement: this run's order is due, has no application and no call in flight.
  const [claimed] = await updateOrders(ctx.db, intentSet, CLAIMABLE, {
    id: job.orderId,
    run: job.run,
    now: ctx.clock.now().toISOString(),
  });
  const intent = claimed ? { order: claimed } : await claimSlowly(ctx, job, intentSet);
  if ('outcome' in intent) return intent.outcome;
  if ('adopt' in intent) return adoptAnnounced(ctx, job, intent.adopt);
  const { order } = intent;
  const log = ctx.logger.child({ orderId: order.id, tenantId: order.tenantId, stage: 'apply' });

  let result: ApplyResult;
  try {
    const client = await ctx.httpsokFor(order.tenantId);
    const notifyUrl = secret
      ? new URL(`/v1/callbacks/httpsok/${secret}`, ctx.config.PUBLIC_BASE_URL).toString()
      : undefined;
    result = await client.apply({
      domainList: order.domains,
      algorithm: order.algorithm,
      ca: order.ca,
      notifyUrl,
    });
    ctx.upstream.call('apply', 'apply');
  } catch (error) {
    ctx.upstream.call('apply', 'error');
    // Only a definite refusal — an error envelope, or a non-2xx status — proves no application was made.
    // A timeout, a broken connection, or a 200 whose body timed out or did not parse may well have created
    // one: the outcome is unknown, so the intent stays for the next run to see.
    const answered = isHttpsokError(error) && (error.kind === 'upstream' || error.kind === 'http');
    const clear = answered ? { applyRequestedAt: null } : {};
    log.warn({ err: isHttpsokError(error) ? error.toJSON() : describeError(error) }, 'apply failed');
    if (isHttpsokError(error) && error.rateLimited) {
      await ctx.db.update(orders).set(clear).where(eq(orders.id, order.id));
      return rateLimited(UPSTREAM_FLOOR_MS);
    }
    const outcome = await withLockedOrder(ctx, job, 'applying', async (tx, locked) => {
      if (isHttpsokError(error) && error.authFailed) {
        await transition(ctx, tx, {
          order: locked,
          to: 'failed',
          set: { ...clear, lastError: `httpsok refused the API key: ${error.msg}` },
          event: { type: 'failed', detail: { error: error.msg, traceId: error.traceId } },
          at: ctx.clock.now(),
        });
        return done('failed', 'API key refused');
      }
      if (isHttpsokError(error) && error.code !== null && !error.retryable) {
        // A definite refusal (e.g. a CNAME disappeared since verification): verify again.
        const now = ctx.clock.now();
        const back = await transition(ctx, tx, {
          order: locked,
          to: 'verifying',
          set: { ...clear, ...enterStage(now), lastError: error.msg },
          event: {
            type: 'apply_refused',
            detail: { error: error.msg, code: error.code, traceId: error.traceId },
          },
        });
        return done('moved', 'refused: back to verifying', back);
      }
      return (await retryLater(ctx, tx, locked, error, clear)).outcome;
    });
    return outcome ?? done('stale', 'order changed during the call');
  }

  // One statement, no row lock: the transition applies only if the order is still applying in this run
  // (the claim above set the intent on exactly that row, so nobody else applied it meanwhile).
  const now = ctx.clock.now();
  const issuing = await transitionIfUnchanged(ctx, ctx.db, {
    order,
    to: 'issuing',
    set: {
      applyId: result.applyId,
      applyRequestedAt: null,
      ...enterStage(now),
      // When the CA is usually done (a poll before that finds it still issuing: a call wasted).
      nextAttemptAt: ctx.firstPolls.firstPollAt(order.ca, now),
      lastPolledAt: null,
    },
    event: { detail: { applyId: result.applyId, traceId: result.traceId } },
  });
  if (!issuing) {
    // Cancelled (or retried as a new run) while our call was in flight: keep the id on record.
    await recordOrderEvent(ctx.db, order.id, 'application_orphaned', {
      applyId: result.applyId,
      traceId: result.traceId,
    });
  }
  if (!issuing) return done('stale', 'order changed while applying');
  log.info({ applyId: result.applyId, traceId: result.traceId }, 'application submitted');
  return done('moved', 'applied', issuing);
}

/** Why the one-statement claim did not match: stale job, early job, already applied, or a call in flight or lost. */
async function claimSlowly(
  ctx: WorkerContext,
  job: StageJob,
  intentSet: { applyRequestedAt: Date; callbackSecretHash: string | null },
): Promise<{ order: Order } | { outcome: Outcome } | { adopt: Order }> {
  const loaded = await loadForStage(ctx, job, 'applying');
  if ('stale' in loaded) return { outcome: loaded.stale };
  if (loaded.order.nextAttemptAt > ctx.clock.now()) {
    return { outcome: delayUntil(loaded.order.nextAttemptAt, 'early', 'not due yet') };
  }
  const result = await withLockedOrder(
    ctx,
    job,
    'applying',
    async (tx, order): Promise<{ order: Order } | { outcome: Outcome } | { adopt: Order }> => {
      if (order.applyId) return { outcome: done('stale', 'already applied') };
      const now = ctx.clock.now();
      if (order.applyRequestedAt) {
        // The callback of the lost call announced its application: adopt it (checked first).
        if (order.announcedApplyId && order.callbackSecretHash) return { adopt: order };
        const inFlightUntil = new Date(order.applyRequestedAt.getTime() + IN_FLIGHT_MS);
        if (inFlightUntil > now)
          return { outcome: delayUntil(inFlightUntil, 'early', 'another apply call may be in flight') };
        // With callbacks, a lost application announces itself when it is issued: wait for that
        // (the callback makes this job due at once) before paying for another one.
        const adoptUntil = new Date(order.applyRequestedAt.getTime() + ctx.config.APPLY_ADOPT_WAIT_MS);
        if (order.callbackSecretHash && ctx.config.PUBLIC_BASE_URL && adoptUntil > now)
          return {
            outcome: delayUntil(
              adoptUntil,
              'early',
              'apply outcome lost: waiting for its callback to adopt it',
            ),
          };
        ctx.metrics.applyUnknownOutcome.inc();
        ctx.logger.warn(
          { orderId: order.id, tenantId: order.tenantId, stage: 'apply' },
          'previous apply call has no known outcome; applying again',
        );
        const updated = await transition(ctx, tx, {
          order,
          to: 'applying',
          set: intentSet,
          event: {
            type: 'apply_outcome_unknown',
            detail: { requestedAt: order.applyRequestedAt.toISOString() },
          },
        });
        return { order: updated };
      }
      const [updated] = await tx.update(orders).set(intentSet).where(eq(orders.id, order.id)).returning();
      return { order: updated! };
    },
  );
  return result ?? { outcome: done('stale', 'order changed before the call') };
}

/** How soon an adoption whose re-fetch failed is tried again (the upstream's floor). */
const ADOPT_RETRY_MS = UPSTREAM_FLOOR_MS;

/**
 * A lost application announced by its callback: re-fetched by id (as a poll would) and adopted only
 * if it is the order's — same domain set — and not failed. The order then continues as if the apply
 * had committed: issuing, its first poll no sooner than the upstream's floor after this request.
 * A mismatch (a forged or stale announcement) is dropped and the order keeps waiting.
 */
async function adoptAnnounced(ctx: WorkerContext, job: StageJob, order: Order): Promise<Outcome> {
  const applyId = order.announcedApplyId!;
  const log = ctx.logger.child({ orderId: order.id, tenantId: order.tenantId, stage: 'apply', applyId });
  await ctx.limiter.acquire();
  // The re-fetch is a request for the application, so it keeps the poll floor as a poll does (two apply
  // jobs for one order after a crash would both fetch otherwise).
  const claimed = await claimPollSlot(ctx, ANNOUNCED, { id: order.id, applyId });
  if (!claimed)
    return delayUntil(
      new Date(ctx.clock.now().getTime() + ADOPT_RETRY_MS),
      'early',
      'announced application fetched too recently',
    );
  let domains: string[];
  try {
    const client = await ctx.httpsokFor(order.tenantId);
    const application = await client.getApply(applyId);
    ctx.upstream.call('get', 'adoption');
    domains = application.status === 'failed' ? [] : application.domains;
  } catch (error) {
    ctx.upstream.call('get', 'error');
    log.warn(
      { err: isHttpsokError(error) ? error.toJSON() : describeError(error) },
      're-fetching an announced application failed',
    );
    return delayUntil(
      new Date(ctx.clock.now().getTime() + ADOPT_RETRY_MS),
      'early',
      'announced application not fetched yet',
    );
  }
  const matches = [...domains].sort().join(',') === [...order.domains].sort().join(',');
  const outcome = await withLockedOrder(ctx, job, 'applying', async (tx, locked) => {
    if (locked.applyId) return done('stale', 'already applied');
    if (!matches || locked.announcedApplyId !== applyId) {
      await tx.update(orders).set({ announcedApplyId: null }).where(eq(orders.id, locked.id));
      await recordOrderEvent(tx, locked.id, 'announcement_refused', { applyId, domains });
      log.warn({ domains }, 'announced application does not match the order: ignored');
      return delayUntil(
        new Date((locked.applyRequestedAt ?? ctx.clock.now()).getTime() + ctx.config.APPLY_ADOPT_WAIT_MS),
        'early',
        'waiting for the callback of the lost application',
      );
    }
    const now = ctx.clock.now();
    const issuing = await transition(ctx, tx, {
      order: locked,
      to: 'issuing',
      set: {
        applyId,
        applyRequestedAt: null,
        announcedApplyId: null,
        ...enterStage(now),
        nextAttemptAt: new Date(now.getTime() + UPSTREAM_FLOOR_MS),
        // This re-fetch was a request for the application: the poll floor counts from it.
        lastPolledAt: now,
      },
      event: { type: 'application_adopted', detail: { applyId } },
    });
    log.info('lost application adopted from its callback');
    return done('moved', 'adopted', issuing);
  });
  return outcome ?? done('stale', 'order changed while adopting');
}
