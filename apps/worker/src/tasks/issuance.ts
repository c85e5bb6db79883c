import { randomUUID } from 'node:crypto';
import { checkIssuedCertificate, type IssuedApplication } from '@certq/api-client';
import { certificates, insertRow, type Order, type Transaction, type TransitionArgs } from '@certq/db';
import { sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { transitionIfUnchanged } from './transition';

export type IssuanceResult =
  | { status: 'issued'; order: Order; certificateId: string }
  | { status: 'rejected'; order: Order; reason: string }
  | { status: 'stale' };

/**
 * The issued path, shared by the poll task and the callback route: check that the key matches the
 * certificate and that it covers every domain of the order, store the chain and the sealed key, make
 * it the current certificate for that domain set (the previous one stays as history), and mark the
 * order issued — all in the caller's transaction. The order need not be locked: the transition comes
 * first and applies only if the order is still as read (its UPDATE then holds the row lock for the rest
 * of the transaction); `stale` when it changed meanwhile, nothing written. Idempotent: an order that is
 * already issued is returned as it is.
 */
export async function completeIssuance(
  ctx: WorkerContext,
  tx: Transaction,
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
    const failed = await transitionIfUnchanged(ctx, tx, {
      order,
      to: 'failed',
      set: { ...alsoSet, lastError: `the issued certificate was rejected: ${check.reason}` },
      event: { type: 'certificate_rejected', detail: { reason: check.reason, applyId: order.applyId } },
      at: ctx.clock.now(),
    });
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
  const issued = await transitionIfUnchanged(ctx, tx, {
    order,
    to: 'issued',
    set: { ...alsoSet, certificateId, progress: 100, lastError: null },
    event: { detail: { certificateId, fingerprint, notAfter: check.notAfter.toISOString() } },
    issued: { notAfter: check.notAfter, fingerprint },
  });
  if (!issued) return { status: 'stale' };
  // The previous current certificate of this domain set becomes history (no row for a first issuance).
  await tx.execute(sql`update certificates set is_current = false
    where tenant_id = ${order.tenantId} and domains_key = ${order.domainsKey} and is_current`);
  await insertRow(tx, certificates, {
    id: certificateId,
    tenantId: order.tenantId,
    orderId: order.id,
    domains: order.domains,
    domainsKey: order.domainsKey,
    applyId: order.applyId ?? application.id,
    algorithm: order.algorithm,
    ca: order.ca,
    notBefore: check.notBefore,
    notAfter: check.notAfter,
    fingerprint,
    certificatePem: application.certificate,
    privateKeySealed: ctx.secrets.seal(application.privateKey),
    isCurrent: true,
  });
  return { status: 'issued', order: issued, certificateId };
}
