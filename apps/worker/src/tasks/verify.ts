import { isHttpsokError, type VerifyResult } from '@certq/api-client';
import { type StageJob, UPSTREAM_FLOOR_MS } from '@certq/core';
import { enterStage, type Order, TRANSITIONED, type Transaction } from '@certq/db';
import { type DnsDiagnosis, upstreamReason } from '@certq/dns';
import { type SQL, sql } from 'drizzle-orm';
import { dvReason } from '../budget/reasons';
import type { WorkerContext } from '../context';
import { noteRenewalDns } from '../renewals/moved';
import {
  type CaaVerdict,
  changeCa,
  checkCaaForOrder,
  checkCnames,
  exhaustedError,
  loadDnsRows,
  nextCheckDelay,
  saveDiagnoses,
} from './dns';
import { loadForStage, withLockedOrder } from './load';
import { delayUntil, done, type Outcome, rateLimited } from './outcome';
import { retryLater, windowEndsAt } from './retry';
import { transition, transitionIfUnchanged } from './transition';

/**
 * verifying: is every domain's CNAME in place? certq looks itself first (local DNS through DNS_RESOLVERS)
 * and asks httpsok (`dv`) only when that can change something: the first time (its answer names each
 * domain's record), when every domain reads `ok`, or when httpsok has not been asked for an hour
 * (split-horizon DNS). Then CAA for the order's CA, a move to the next CA when it is forbidden, and applying.
 * Until the window ends the order waits, checking DNS again from DNS_CHECK_INTERVAL_MS growing to a few minutes.
 */
export async function verifyTask(ctx: WorkerContext, job: StageJob): Promise<Outcome> {
  const loaded = await loadForStage(ctx, job, 'verifying');
  if ('stale' in loaded) return loaded.stale;
  const { order } = loaded;
  if (order.nextAttemptAt > ctx.clock.now()) return delayUntil(order.nextAttemptAt, 'early', 'not due yet');

  // The DNS rows are written with `last_dv_at`, from httpsok's answer: never asked, no rows to load.
  const rows = order.lastDvAt ? await loadDnsRows(ctx, order.id) : [];
  const known = order.domains.every((d) => rows.some((r) => r.domain === d));
  let diagnoses: DnsDiagnosis[] = known ? await checkCnames(ctx, rows) : [];
  if (order.kind === 'renewal' && known) await noteRenewalDns(ctx, order, diagnoses);
  const why = known
    ? upstreamReason({
        statuses: diagnoses.map((d) => d.status),
        lastDvAt: order.lastDvAt,
        now: ctx.clock.now(),
      })
    : 'first';

  if (why === null) {
    ctx.metrics.upstreamDvSaved.inc();
    const changed = diagnoses.some((d) => {
      const before = rows.find((r) => r.domain === d.domain);
      return before?.status !== d.status || before.found !== d.found;
    });
    const next = await withLockedOrder(ctx, job, 'verifying', (tx, locked) =>
      waitForDns(ctx, tx, locked, diagnoses, { logEvent: changed, delayMs: nextCheckDelay(ctx, locked) }),
    );
    return next?.outcome ?? done('stale', 'order changed during the DNS check');
  }

  let result: VerifyResult;
  try {
    const client = await ctx.httpsokFor(order.tenantId);
    result = await client.verify(order.domains);
    ctx.upstream.call('dv', dvReason(why));
  } catch (error) {
    ctx.upstream.call('dv', 'error');
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
  const dvAt = ctx.clock.now();
  // The first answer names each domain's record: diagnose it at once, so the tenant sees what is wrong.
  if (!known && !result.valid) diagnoses = await checkCnames(ctx, result.configs);
  // CAA before an application is paid for.
  const caa: CaaVerdict | undefined = result.valid ? await checkCaaForOrder(ctx, order) : undefined;

  if (result.valid && caa?.kind === 'ok') {
    // Verified, CAA allows the CA: the answer's DNS rows and the move to applying in one statement, no row
    // lock (the transition applies only if the order is still verifying in this run).
    const applying = await transitionIfUnchanged(ctx, ctx.db, {
      order,
      to: 'applying',
      set: { ...enterStage(ctx.clock.now()), lastDvAt: dvAt },
      event: { detail: verifiedDetail(result, why, caa) },
      alsoWrite: [saveDvAnswer(result, sql`${TRANSITIONED}.id`, sql`${TRANSITIONED},`)],
    });
    return applying ? done('moved', 'verified', applying) : done('stale', 'order changed during the call');
  }

  const next = await withLockedOrder(ctx, job, 'verifying', async (tx, locked) => {
    await tx.execute(saveDvAnswer(result, sql`${locked.id}::uuid`));
    await tx.execute(sql`update orders set last_dv_at = ${dvAt} where id = ${locked.id}`);
    const now = ctx.clock.now();
    if (!result.valid || !caa) {
      // httpsok does not see every record yet; local checks (if any said ok) wait for propagation.
      const waiting = diagnoses.length
        ? diagnoses
        : result.configs.map((c) => ({
            domain: c.domain,
            status: 'missing' as const,
            found: null,
            reason: `httpsok does not see CNAME ${c.host} → ${c.hostValue} yet.`,
            checkedAt: now,
          }));
      // When no local check says "not ready", the next check asks httpsok again: at most every 10 s then.
      const asksAgain = waiting.every((d) => d.status === 'ok' || d.status === 'lookup_failed');
      const delayMs = asksAgain
        ? Math.max(UPSTREAM_FLOOR_MS, nextCheckDelay(ctx, locked))
        : nextCheckDelay(ctx, locked);
      return waitForDns(ctx, tx, locked, waiting, { logEvent: true, delayMs, traceId: result.traceId });
    }
    if (caa.kind === 'change') {
      await saveDiagnoses(tx, locked.id, caa.diagnoses);
      const moved = await changeCa(ctx, tx, locked, {
        to: caa.to,
        reason: caa.reason,
        why: 'caa',
        status: 'applying',
      });
      return { order: moved, outcome: done('moved', `CAA forbids ${locked.ca}, next CA ${caa.to}`, moved) };
    }
    if (caa.kind === 'exhausted') {
      await saveDiagnoses(tx, locked.id, caa.diagnoses);
      const failed = await transition(ctx, tx, {
        order: locked,
        to: 'failed',
        set: { caFailures: caa.reasons, lastError: exhaustedError(caa.reasons) },
        event: { type: 'failed', detail: { caFailures: caa.reasons } },
        at: now,
      });
      return { order: failed, outcome: done('failed', 'every CA forbidden by CAA') };
    }
    const applying = await transition(ctx, tx, {
      order: locked,
      to: 'applying',
      set: enterStage(now),
      event: { detail: verifiedDetail(result, why, caa) },
    });
    return { order: applying, outcome: done('moved', 'verified', applying) };
  });
  return next?.outcome ?? done('stale', 'order changed during the call');
}

function verifiedDetail(result: VerifyResult, why: string, caa: Extract<CaaVerdict, { kind: 'ok' }>) {
  return {
    traceId: result.traceId,
    upstreamAskedBecause: why,
    ...(caa.unknown.length ? { caaUnknown: caa.unknown } : {}),
  };
}

/**
 * Stores httpsok's `dv` answer on the order's DNS rows, one per domain (`confirmed` by httpsok: status ok).
 * `orderId` is an SQL expression and `from` an optional FROM item, so the statement can also ride in a
 * transition's statement (`alsoWrite`), reading the order from TRANSITIONED.
 */
function saveDvAnswer(result: VerifyResult, orderId: SQL, from: SQL = sql``): SQL {
  const configs = JSON.stringify(
    result.configs.map((c) => ({ domain: c.domain, host: c.host, host_value: c.hostValue, valid: c.valid })),
  );
  const confirmed = result.valid;
  return sql`insert into order_dns (order_id, domain, host, host_value, valid, status, reason, checked_at)
    select ${orderId}, c.domain, c.host, c.host_value, c.valid,
      ${confirmed ? 'ok' : 'pending'}::dns_status, ${confirmed ? 'httpsok confirmed the record.' : null}, now()
    from ${from} jsonb_to_recordset(${configs}::jsonb) as c(domain text, host text, host_value text, valid boolean)
    on conflict (order_id, domain) do update set host = excluded.host, host_value = excluded.host_value,
      valid = excluded.valid, ${confirmed ? sql`status = excluded.status, reason = excluded.reason,` : sql``}
      checked_at = now()`;
}

/**
 * Not ready yet: store what the local check found, fail once the window is over (naming every record still
 * wrong), else check again after `delayMs`. The `dns_pending` event is written only when something changed.
 */
async function waitForDns(
  ctx: WorkerContext,
  tx: Transaction,
  order: Order,
  diagnoses: readonly DnsDiagnosis[],
  opts: { logEvent: boolean; delayMs: number; traceId?: string | null },
): Promise<{ order: Order; outcome: Outcome }> {
  await saveDiagnoses(tx, order.id, diagnoses);
  const now = ctx.clock.now();
  const pending = diagnoses.filter((d) => d.status !== 'ok');
  const shown = (pending.length ? pending : diagnoses).map((d) => `${d.domain}: ${d.reason}`).join(' ');
  if (now >= windowEndsAt(ctx, order)) {
    const failed = await transition(ctx, tx, {
      order,
      to: 'failed',
      set: { lastError: `DNS not in place after ${ctx.config.VERIFY_WINDOW_HOURS} h: ${shown}` },
      event: { type: 'failed', detail: { missing: pending.map((d) => d.domain) } },
      at: now,
    });
    return { order: failed, outcome: done('failed', 'DNS window ended') };
  }
  const nextAttemptAt = new Date(now.getTime() + opts.delayMs);
  const set = {
    stageAttempts: order.stageAttempts + 1,
    nextAttemptAt,
    lastError: `waiting for DNS: ${shown}`,
  };
  if (!opts.logEvent) {
    // Same answer as last time: move the schedule on without an event row per check.
    await tx.execute(sql`update orders set stage_attempts = ${set.stageAttempts}, next_attempt_at = ${nextAttemptAt},
      last_error = ${set.lastError}, updated_at = now() where id = ${order.id}`);
    return { order, outcome: delayUntil(nextAttemptAt, 'waiting', 'DNS not in place yet') };
  }
  const waiting = await transition(ctx, tx, {
    order,
    to: 'verifying',
    set,
    event: {
      type: 'dns_pending',
      detail: {
        dns: pending.map((d) => ({ domain: d.domain, status: d.status, found: d.found })),
        retryInMs: opts.delayMs,
        ...(opts.traceId ? { traceId: opts.traceId } : {}),
      },
    },
  });
  return { order: waiting, outcome: delayUntil(nextAttemptAt, 'waiting', 'DNS not in place yet') };
}
