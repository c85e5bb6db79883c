import { createHmac, hkdfSync } from 'node:crypto';
import { isActive } from '@certq/core';
import {
  auditLog,
  certificates,
  claimDomains,
  type Database,
  DomainOwnedError,
  domainClaims,
  lockOrder,
  orders,
  type Queryable,
  recordWebhookEvent,
  type TakenClaim,
  type Transaction,
  takeRecordedWebhookDeliveries,
  transitionOrder,
} from '@certq/db';
import { and, eq, sql } from 'drizzle-orm';
import { WorkflowError } from './errors';
import type { Queues } from './queues';

/*
 * Domain ownership across tenants. A name — and every name a one-label wildcard of it covers — belongs to
 * at most one tenant at a time: the one whose order claimed it (@certq/db ownership, certq_claim_domains)
 * while that tenant still has an active order or a current certificate naming it. Another tenant's order
 * for an overlapping name is refused (domain_owned_by_another_tenant) unless that tenant proves control
 * of the name in DNS: a TXT record `_certq-owner.<name>` (the wildcard's base name for `*.<name>`) holding
 * the value certq gives that tenant for that name (an HMAC of both under a key derived from
 * ENCRYPTION_KEY), found by certq's own lookup (DNS_RESOLVERS) — never by httpsok, whose CNAME check
 * depends only on the account and the name, so tenants sharing or bringing keys are judged alike. A proven
 * claim (or the operator's) transfers the name: see transferClaims.
 */

export const OWNERSHIP_RECORD_PREFIX = '_certq-owner';

/** How a tenant proves a name: the key its record values are derived from, and certq's TXT lookup. */
export interface OwnershipProofs {
  key: Buffer;
  /** The TXT strings at `name` (each record's chunks joined); [] when there is none or the lookup failed. */
  lookupTxt(name: string): Promise<string[]>;
}

/** The key of the ownership records, derived from ENCRYPTION_KEY (so no new secret to manage). */
export function ownershipKey(encryptionKey: Buffer): Buffer {
  return Buffer.from(
    hkdfSync('sha256', encryptionKey, Buffer.alloc(0), 'certq domain ownership records', 32),
  );
}

const baseName = (name: string) => (name.startsWith('*.') ? name.slice(2) : name);

/** The TXT record proving that `tenantId` controls `name` (`*.x` and `x` share one: `_certq-owner.x`). */
export function ownershipRecord(key: Buffer, tenantId: string, name: string) {
  const base = baseName(name);
  const value = createHmac('sha256', key).update(`${tenantId}\n${base}`).digest('base64url');
  return { type: 'TXT' as const, name: `${OWNERSHIP_RECORD_PREFIX}.${base}`, value: `certq-owner=${value}` };
}

/** The names among `names` whose ownership record for `tenantId` is in DNS now. */
export async function provenNames(
  proofs: OwnershipProofs,
  tenantId: string,
  names: readonly string[],
): Promise<string[]> {
  const checked = await Promise.all(
    names.map(async (name) => {
      const record = ownershipRecord(proofs.key, tenantId, name);
      const found = await proofs.lookupTxt(record.name);
      return found.includes(record.value) ? name : undefined;
    }),
  );
  return checked.filter((n): n is string => n !== undefined);
}

/** The 409 a tenant gets: its own names concerned and, for each, the record that would prove it. */
export function ownedByAnotherTenant(
  proofs: Pick<OwnershipProofs, 'key'> | undefined,
  tenantId: string,
  names: readonly string[],
  extra: Record<string, unknown> = {},
): WorkflowError {
  return new WorkflowError(
    'domain_owned_by_another_tenant',
    `${names.join(', ')}: another tenant uses ${names.length === 1 ? 'this name' : 'these names'}; ` +
      'create the TXT record given in details to prove the domain is yours, then order again',
    {
      ...extra,
      domains: names.map((name) => ({
        name,
        ...(proofs ? { record: ownershipRecord(proofs.key, tenantId, name) } : {}),
      })),
    },
  );
}

/** Who did it, for the audit rows a transfer writes. */
export interface TransferActor {
  actor: string;
  ip?: string | null;
  requestId?: string | null;
}

export interface TransferResult {
  /** The claims taken over, with the tenant each was taken from. */
  taken: TakenClaim[];
  /** Certificates of previous owners that stopped being served and renewed. */
  stoppedCertificateIds: string[];
  /** Active orders of previous owners cancelled. */
  cancelledOrderIds: string[];
  /** Outbox rows written (domain.transferred_out / _in), to enqueue after the commit. */
  webhookDeliveryIds: string[];
}

/**
 * Stops a certificate being delivered and renewed (retired, reason `transferred`): it is no longer current, so the TLS route answers
 * 204 for it, the change feed carries its removal (agents delete its files) and the renewal scan skips it.
 * The one place a transfer takes a certificate out of service.
 */
export async function stopServingCertificates(
  db: Queryable,
  certificateIds: readonly string[],
): Promise<void> {
  if (certificateIds.length === 0) return;
  await db
    .update(certificates)
    .set({ isCurrent: false, retiredAt: sql`now()`, retiredReason: 'transferred' })
    .where(
      sql`${certificates.id} = any(${sql.param([...certificateIds])}::uuid[]) and ${certificates.isCurrent}`,
    );
}

/**
 * Claims `names` for `tenantId`, taking over every overlapping claim that `take` covers (proven names, or
 * every name for the operator), and hands them over: each previous owner's current certificates naming a
 * name taken stop being served and renewed (a certificate cannot be split, so the whole certificate),
 * its active orders naming one are cancelled, both tenants get a webhook, and one audit row per previous
 * owner says who, why and what changed. In the caller's transaction.
 */
export async function transferClaims(
  tx: Transaction,
  args: {
    tenantId: string;
    names: readonly string[];
    take: readonly string[];
    via: 'dns_proof' | 'operator';
    by: TransferActor;
    reason: string;
  },
): Promise<TransferResult> {
  const taken = await claimDomains(tx, args.tenantId, args.names, { take: args.take, via: args.via });
  const result: TransferResult = {
    taken,
    stoppedCertificateIds: [],
    cancelledOrderIds: [],
    webhookDeliveryIds: [],
  };
  const byOwner = new Map<string, string[]>();
  for (const t of taken)
    byOwner.set(t.previousTenantId, [...(byOwner.get(t.previousTenantId) ?? []), t.name]);
  for (const [previous, names] of byOwner) {
    const overlap = sql`domains && ${sql.param(names)}::text[]`;
    const stopped = await tx
      .select({ id: certificates.id })
      .from(certificates)
      .where(and(eq(certificates.tenantId, previous), eq(certificates.isCurrent, true), overlap))
      .for('update');
    const certificateIds = stopped.map((c) => c.id);
    await stopServingCertificates(tx, certificateIds);
    const active = await tx
      .select({ id: orders.id })
      .from(orders)
      .where(
        and(
          eq(orders.tenantId, previous),
          sql`${orders.status} in ('verifying', 'applying', 'issuing')`,
          overlap,
        ),
      );
    const cancelled: string[] = [];
    for (const { id } of active) {
      const order = await lockOrder(tx, id);
      if (!order || !isActive(order.status)) continue;
      await transitionOrder(tx, {
        order,
        to: 'cancelled',
        event: {
          type: 'cancelled',
          detail: { by: args.by.actor, reason: 'domain transferred to another tenant' },
        },
      });
      cancelled.push(id);
    }
    const data = { domains: names, via: args.via, reason: args.reason };
    for (const [tenantId, event, extra] of [
      [
        previous,
        'domain.transferred_out',
        { stoppedCertificateIds: certificateIds, cancelledOrderIds: cancelled },
      ],
      [args.tenantId, 'domain.transferred_in', {}],
    ] as const) {
      await recordWebhookEvent(tx, { tenantId, event, data: { ...data, ...extra } });
    }
    await tx.insert(auditLog).values({
      tenantId: args.tenantId,
      actor: args.by.actor,
      action: 'domain.transfer',
      subjectId: null,
      detail: {
        domains: names,
        fromTenantId: previous,
        toTenantId: args.tenantId,
        via: args.via,
        reason: args.reason,
        stoppedCertificateIds: certificateIds,
        cancelledOrderIds: cancelled,
      },
      ip: args.by.ip ?? null,
      requestId: args.by.requestId ?? null,
    });
    result.stoppedCertificateIds.push(...certificateIds);
    result.cancelledOrderIds.push(...cancelled);
  }
  result.webhookDeliveryIds = takeRecordedWebhookDeliveries(tx);
  return result;
}

/** Queues the delivery jobs of outbox rows committed (the worker's relay finds any this misses). */
export async function enqueueWebhookJobs(queues: Queues, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await queues.webhooks
    .addBulk(ids.map((id) => ({ name: 'deliver', data: { deliveryId: id }, opts: { jobId: id } })))
    .catch(() => {});
}

/** Who holds `name` now, as `tenantId` sees it: its own, another tenant's, or nobody's. */
export async function ownershipOf(
  db: Database,
  tenantId: string | undefined,
  name: string,
): Promise<{ holder: 'you' | 'another_tenant' | 'nobody'; tenantId: string | null }> {
  const [claim] = await db.select().from(domainClaims).where(eq(domainClaims.name, name));
  if (!claim) return { holder: 'nobody', tenantId: null };
  return { holder: claim.tenantId === tenantId ? 'you' : 'another_tenant', tenantId: claim.tenantId };
}

/**
 * The operator moves `name` (and whatever overlaps it) to `tenantId` without a proof, e.g. after
 * checking a dispute by other means. Audited with the operator as actor.
 */
export async function transferDomainByOperator(
  deps: { db: Database; queues: Queues },
  args: { tenantId: string; name: string; by: TransferActor; reason: string },
): Promise<TransferResult> {
  const result = await deps.db.transaction((tx) =>
    transferClaims(tx, { ...args, names: [args.name], take: [args.name], via: 'operator' }),
  );
  await enqueueWebhookJobs(deps.queues, result.webhookDeliveryIds);
  return result;
}

export { DomainOwnedError };
