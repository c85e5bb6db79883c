import { randomUUID } from 'node:crypto';
import { checkIssuedCertificate, type IssuedApplication } from '@certq/api-client';
import { renewalTime } from '@certq/core';
import {
  alsoWritten,
  type Order,
  TRANSITIONED,
  type TransitionArgs,
  takeRecordedWebhookDeliveries,
} from '@certq/db';
import { sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { enqueueWebhooksAfterCommit } from '../webhooks/delivery';
import { inTransaction } from './load';
import { transitionIfUnchanged } from './transition';

/**
 * The current certificate of the order's domain set (if any), demoted to history if the transition
 * applied. The statement is planned at every execution (a transition with alsoWrite goes unnamed): on a
 * table without statistics Postgres ties this lookup between the unique index and the tenant-by-expiry
 * one, and a cached plan on the latter read every current certificate of the tenant.
 */
const DEMOTE_CURRENT = sql`update certificates set is_current = false
  where tenant_id = ${sql.placeholder('tenantId')}::uuid and domains_key = ${sql.placeholder('domainsKey')}
    and is_current and exists (select 1 from ${TRANSITIONED}) returning id`;
/**
 * The new certificate, current, of the transitioned order. It reads DEMOTE_CURRENT's output (alsoWrite 0)
 * first, so it is inserted only once the previous current certificate has been demoted.
 */
const INSERT_CURRENT = sql`insert into certificates (id, tenant_id, order_id, domains, domains_key,
    apply_id, algorithm, ca, not_before, not_after, renew_at, fingerprint, certificate_pem, private_key_sealed, is_current)
  select ${sql.placeholder('id')}::uuid, o.tenant_id, o.id, o.domains, o.domains_key, ${sql.placeholder('applyId')},
    o.algorithm, o.ca, ${sql.placeholder('notBefore')}::timestamptz, ${sql.placeholder('notAfter')}::timestamptz,
    ${sql.placeholder('renewAt')}::timestamptz, ${sql.placeholder('fingerprint')}, ${sql.placeholder('certificatePem')}, ${sql.placeholder('privateKeySealed')}, true
  from ${TRANSITIONED} o where (select count(*) from ${alsoWritten(0)}) >= 0`;

export type IssuanceResult =
  | { status: 'issued'; order: Order; certificateId: string }
  | { status: 'rejected'; order: Order; reason: string }
  | { status: 'stale' };

/**
 * The issued path of a poll: check that the key matches the certificate and that it covers every domain
 * of the order, then — in one statement, no transaction — mark the order issued, store the chain and the
 * sealed key as the current certificate for that domain set (the previous one stays as history) and write
 * the tenant's webhook outbox row, whose job is enqueued once that statement has committed. A rejected
 * certificate fails the order (in a transaction: a failure may write more, see transitionOrder). The order
 * need not be locked: the transition applies only if the order is still as read; `stale` when it changed
 * meanwhile, nothing written. Idempotent: an order that is already issued is returned as it is.
 */
export async function completeIssuance(
  ctx: WorkerContext,
  order: Order,
  application: IssuedApplication,
  /** Other columns to set with the transition (the poll's answer time). */
  alsoSet: TransitionArgs['set'] = {},
): Promise<IssuanceResult> {
  if (order.status === 'issued' && order.certificateId)
    return { status: 'issued', order, certificateId: order.certificateId };
  const check = checkIssuedCertificate({
    certificate: application.certificate,
    privateKey: application.privateKey,
    domains: order.domains,
    now: ctx.clock.now(),
  });
  if (!check.ok) {
    const failed = await inTransaction(ctx, (tx) =>
      transitionIfUnchanged(ctx, tx, {
        order,
        to: 'failed',
        set: { ...alsoSet, lastError: `the issued certificate was rejected: ${check.reason}` },
        event: { type: 'certificate_rejected', detail: { reason: check.reason, applyId: order.applyId } },
        at: ctx.clock.now(),
      }),
    );
    return failed ? { status: 'rejected', order: failed, reason: check.reason } : { status: 'stale' };
  }
  const { fingerprint } = check;
  if (application.fingerprints && application.fingerprints.toLowerCase() !== fingerprint) {
    ctx.logger.warn(
      { orderId: order.id, applyId: order.applyId },
      'upstream fingerprint differs from the leaf; storing the computed one',
    );
  }
  const certificateId = randomUUID();
  const stored = {
    id: certificateId,
    applyId: order.applyId ?? application.id,
    notBefore: check.notBefore.toISOString(),
    notAfter: check.notAfter.toISOString(),
    renewAt: renewalTime(check, {
      renewBeforeDays: ctx.config.RENEW_BEFORE_DAYS,
      random: ctx.random,
    }).toISOString(),
    fingerprint,
    certificatePem: application.certificate,
    privateKeySealed: ctx.secrets.seal(application.privateKey),
  };
  // The certificate is written by the transition's own statement, only if it applies: the previous
  // current certificate of this domain set becomes history (none for a first issuance), then the new one
  // is inserted as current. The insert reads the demotion's output, so it runs after it: the partial
  // unique index (one current certificate per tenant and domain set) sees the old row demoted.
  const issued = await transitionIfUnchanged(ctx, ctx.db, {
    order,
    to: 'issued',
    set: { ...alsoSet, certificateId, progress: 100, lastError: null },
    event: { detail: { certificateId, fingerprint, notAfter: check.notAfter.toISOString() } },
    issued: { certificateId, notAfter: check.notAfter, fingerprint },
    alsoWrite: [
      { sql: DEMOTE_CURRENT, values: { tenantId: order.tenantId, domainsKey: order.domainsKey } },
      { sql: INSERT_CURRENT, values: stored },
    ],
  });
  if (!issued) return { status: 'stale' };
  await enqueueWebhooksAfterCommit(ctx, takeRecordedWebhookDeliveries(ctx.db));
  return { status: 'issued', order: issued, certificateId };
}
