import { isHttpsokError, type VerifyResult } from '@certq/api-client';
import { backoffDelay, UPSTREAM_FLOOR_MS } from '@certq/core';
import { orderDns } from '@certq/db';
import { sql } from 'drizzle-orm';
import type { WorkflowContext } from '../context';
import { enqueueOrders } from '../queues';
import { loadForStage, retryLater, type StageJob, windowEndsAt, withLockedOrder } from './common';
import { delayUntil, done, type Outcome } from './outcome';
import { transition } from './transition';

/**
 * verifying: ask httpsok whether every domain's CNAME is in place, store the instructions, and either
 * move on to applying or check again later (≥ 10 s, growing with jitter to a cap) until the window ends.
 */
export async function verifyTask(ctx: WorkflowContext, job: StageJob): Promise<Outcome> {
  const loaded = await loadForStage(ctx, job, 'verifying');
  if ('stale' in loaded) return loaded.stale;
  const { order } = loaded;
  if (order.nextAttemptAt > ctx.clock.now())
    return delayUntil(order.nextAttemptAt, 'early job, waiting its turn');

  let result: VerifyResult;
  try {
    const client = await ctx.httpsokFor(order.tenantId);
    result = await client.verify(order.domains);
  } catch (error) {
    if (isHttpsokError(error) && error.rateLimited)
      return { kind: 'rateLimit', ms: UPSTREAM_FLOOR_MS, result: 'rate limited' };
    return (
      (await withLockedOrder(ctx, job, 'verifying', async (tx, locked) => {
        if (isHttpsokError(error) && error.authFailed) {
          await transition(ctx, tx, {
            order: locked,
            to: 'failed',
            set: { lastError: `httpsok refused the API key: ${error.msg}` },
            event: { type: 'failed', detail: { error: error.msg } },
            at: ctx.clock.now(),
          });
          return done('failed: API key refused');
        }
        return (await retryLater(ctx, tx, locked, error)).outcome;
      })) ?? done('stale after error')
    );
  }

  const next = await withLockedOrder(ctx, job, 'verifying', async (tx, locked) => {
    if (result.configs.length) {
      await tx
        .insert(orderDns)
        .values(
          result.configs.map((c) => ({
            orderId: locked.id,
            domain: c.domain,
            host: c.host,
            hostValue: c.hostValue,
            valid: c.valid,
          })),
        )
        .onConflictDoUpdate({
          target: [orderDns.orderId, orderDns.domain],
          set: {
            host: sql`excluded.host`,
            hostValue: sql`excluded.host_value`,
            valid: sql`excluded.valid`,
            checkedAt: sql`now()`,
          },
        });
    }
    const now = ctx.clock.now();
    if (result.valid) {
      const applying = await transition(ctx, tx, {
        order: locked,
        to: 'applying',
        set: { stageAttempts: 0, stageStartedAt: now, nextAttemptAt: now, lastError: null },
        event: { detail: { traceId: result.traceId } },
      });
      return { order: applying, outcome: done('verified') };
    }
    const missing = result.configs.filter((c) => !c.valid);
    const instructions = missing.map((c) => `${c.domain}: CNAME ${c.host} → ${c.hostValue}`).join('; ');
    if (now >= windowEndsAt(ctx, locked)) {
      const failed = await transition(ctx, tx, {
        order: locked,
        to: 'failed',
        set: {
          lastError: `DNS not in place after ${ctx.config.VERIFY_WINDOW_HOURS} h; missing records: ${instructions}`,
        },
        event: { type: 'failed', detail: { missing: missing.map((c) => c.domain) } },
        at: ctx.clock.now(),
      });
      return { order: failed, outcome: done('failed: DNS window ended') };
    }
    const delay = backoffDelay(
      locked.stageAttempts,
      { baseMs: UPSTREAM_FLOOR_MS, capMs: ctx.config.VERIFY_MAX_DELAY_MS },
      ctx.random,
    );
    const nextAttemptAt = new Date(now.getTime() + delay);
    const waiting = await transition(ctx, tx, {
      order: locked,
      to: 'verifying',
      set: {
        stageAttempts: locked.stageAttempts + 1,
        nextAttemptAt,
        lastError: `waiting for DNS: ${instructions}`,
      },
      event: { type: 'dns_pending', detail: { missing: missing.map((c) => c.domain), retryInMs: delay } },
    });
    return { order: waiting, outcome: delayUntil(nextAttemptAt, 'DNS not in place yet') };
  });
  if (!next) return done('stale after verify');
  if (next.order.status === 'applying') await enqueueOrders(ctx.queues, [next.order], ctx.clock.now());
  return next.outcome;
}
