import { isHttpsokError, type VerifyResult } from '@certq/api-client';
import { type StageJob, UPSTREAM_FLOOR_MS } from '@certq/core';
import { enterStage, orderDns } from '@certq/db';
import { sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { loadForStage, withLockedOrder } from './load';
import { delayUntil, done, type Outcome, rateLimited } from './outcome';
import { retryLater, stageRetryDelay, windowEndsAt } from './retry';
import { transition } from './transition';

/**
 * verifying: ask httpsok whether every domain's CNAME is in place, store the instructions, and either
 * move on to applying or check again later (≥ 10 s, growing with jitter to a cap) until the window ends.
 */
export async function verifyTask(ctx: WorkerContext, job: StageJob): Promise<Outcome> {
  const loaded = await loadForStage(ctx, job, 'verifying');
  if ('stale' in loaded) return loaded.stale;
  const { order } = loaded;
  if (order.nextAttemptAt > ctx.clock.now()) return delayUntil(order.nextAttemptAt, 'early', 'not due yet');

  let result: VerifyResult;
  try {
    const client = await ctx.httpsokFor(order.tenantId);
    result = await client.verify(order.domains);
  } catch (error) {
    if (isHttpsokError(error) && error.rateLimited) return rateLimited(UPSTREAM_FLOOR_MS);
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
          return done('failed', 'API key refused');
        }
        return (await retryLater(ctx, tx, locked, error)).outcome;
      })) ?? done('stale', 'order changed during the call')
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
        set: enterStage(now),
        event: { detail: { traceId: result.traceId } },
      });
      return done('moved', 'verified', applying);
    }
    const missing = result.configs.filter((c) => !c.valid);
    const instructions = missing.map((c) => `${c.domain}: CNAME ${c.host} → ${c.hostValue}`).join('; ');
    if (now >= windowEndsAt(ctx, locked)) {
      await transition(ctx, tx, {
        order: locked,
        to: 'failed',
        set: {
          lastError: `DNS not in place after ${ctx.config.VERIFY_WINDOW_HOURS} h; missing records: ${instructions}`,
        },
        event: { type: 'failed', detail: { missing: missing.map((c) => c.domain) } },
        at: ctx.clock.now(),
      });
      return done('failed', 'DNS window ended');
    }
    const delay = stageRetryDelay(ctx, locked.stageAttempts);
    const nextAttemptAt = new Date(now.getTime() + delay);
    await transition(ctx, tx, {
      order: locked,
      to: 'verifying',
      set: {
        stageAttempts: locked.stageAttempts + 1,
        nextAttemptAt,
        lastError: `waiting for DNS: ${instructions}`,
      },
      event: { type: 'dns_pending', detail: { missing: missing.map((c) => c.domain), retryInMs: delay } },
    });
    return delayUntil(nextAttemptAt, 'waiting', 'DNS not in place yet');
  });
  return next ?? done('stale', 'order changed during the call');
}
