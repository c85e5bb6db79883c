import type { RetiredReason } from '@certq/core';
import {
  type Certificate,
  certificates,
  claimDomains,
  type Database,
  DomainOwnedError,
  edgeTokens,
  isActiveOrder,
  lockOrder,
  orders,
  recordWebhookEvent,
  type Tenant,
  type Transaction,
  takeRecordedWebhookDeliveries,
  tenants,
  transitionOrder,
} from '@certq/db';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { WorkflowError } from './errors';
import { enqueueWebhookJobs } from './ownership';
import type { Queues } from './queues';

/**
 * The end of a certificate's life and of a tenant's (see @certq/core certificate-status). Retiring
 * takes a certificate out of `is_current`: the change-feed trigger records the removal, the TLS route
 * answers 204 for its names and agents delete its files. Nothing is deleted: orders, events, audit
 * and the certificate row stay as history.
 */

export interface RetireArgs {
  certificateId: string;
  /** The audit actor (`admin`, `tenant:<id>`, …). */
  actor: string;
  reason?: RetiredReason;
  /** A tenant retiring its own: another tenant's certificate is not_found. */
  tenantScope?: string;
}

export interface RetireResult {
  certificate: Certificate;
  /** False: it was not current already (retired or replaced before), nothing changed. */
  retired: boolean;
  /** The active order for the same domain set, cancelled first so it cannot issue a successor. */
  cancelledOrderId: string | null;
}

/** Retires one certificate; again → unchanged. Records `certificate.retired` for the tenant's webhook. */
export async function retireCertificate(
  db: Database,
  queues: Queues,
  args: RetireArgs,
): Promise<RetireResult> {
  let deliveries: string[] = [];
  const result = await db.transaction(async (tx) => {
    const [row] = await tx
      .select()
      .from(certificates)
      .where(eq(certificates.id, args.certificateId))
      .for('update');
    if (!row || (args.tenantScope && row.tenantId !== args.tenantScope))
      throw new WorkflowError('not_found', 'certificate not found');
    const outcome = await retireLocked(tx, row, args.actor, args.reason ?? 'retired');
    deliveries = takeRecordedWebhookDeliveries(tx);
    return outcome;
  });
  await enqueueWebhookJobs(queues, deliveries);
  return result;
}

/** The active order of a tenant for a domain set, cancelled (locked first); its id, or null. */
async function cancelActiveOrder(
  tx: Transaction,
  tenantId: string,
  domainsKey: string,
  actor: string,
  why: string,
) {
  const [active] = await tx
    .select({ id: orders.id })
    .from(orders)
    .where(and(eq(orders.tenantId, tenantId), eq(orders.domainsKey, domainsKey), isActiveOrder));
  if (!active) return null;
  const order = await lockOrder(tx, active.id);
  if (!order || !['verifying', 'applying', 'issuing'].includes(order.status)) return null;
  await transitionOrder(tx, {
    order,
    to: 'cancelled',
    event: { type: 'cancelled', detail: { by: actor, why } },
  });
  return order.id;
}

async function retireLocked(
  tx: Transaction,
  row: Certificate,
  actor: string,
  reason: RetiredReason,
): Promise<RetireResult> {
  if (!row.isCurrent) return { certificate: row, retired: false, cancelledOrderId: null };
  const cancelledOrderId = await cancelActiveOrder(
    tx,
    row.tenantId,
    row.domainsKey,
    actor,
    'certificate retired',
  );
  const [certificate] = await tx
    .update(certificates)
    .set({ isCurrent: false, retiredAt: sql`now()`, retiredReason: reason, retiredBy: actor })
    .where(eq(certificates.id, row.id))
    .returning();
  await recordWebhookEvent(tx, {
    tenantId: row.tenantId,
    event: 'certificate.retired',
    data: { certificateId: row.id, domains: row.domains, reason, cancelledOrderId },
  });
  return { certificate: certificate!, retired: true, cancelledOrderId };
}

async function lockTenant(tx: Transaction, tenantId: string): Promise<Tenant> {
  const [tenant] = await tx.select().from(tenants).where(eq(tenants.id, tenantId)).for('update');
  if (!tenant) throw new WorkflowError('not_found', 'tenant not found');
  return tenant;
}

const deletedError = (tenant: Tenant) =>
  new WorkflowError(
    'tenant_deleted',
    `tenant ${tenant.id} was deleted at ${tenant.deletedAt!.toISOString()}`,
  );

/** Cancels every active order of a tenant; how many. */
async function cancelTenantOrders(
  tx: Transaction,
  tenantId: string,
  actor: string,
  why: string,
): Promise<number> {
  const active = await tx
    .select({ id: orders.id })
    .from(orders)
    .where(and(eq(orders.tenantId, tenantId), isActiveOrder));
  let cancelled = 0;
  for (const { id } of active) {
    const order = await lockOrder(tx, id);
    if (!order || !['verifying', 'applying', 'issuing'].includes(order.status)) continue;
    await transitionOrder(tx, {
      order,
      to: 'cancelled',
      event: { type: 'cancelled', detail: { by: actor, why } },
    });
    cancelled++;
  }
  return cancelled;
}

export interface SuspendResult {
  tenant: Tenant;
  /** False: it was suspended already (the options of the first suspension stand). */
  changed: boolean;
  ordersCancelled: number;
  /** Current certificates still served (stopServing false) or taken out of delivery (true). */
  certificatesServed: number;
  certificatesWithdrawn: number;
}

/**
 * Suspends a tenant: its writes answer 403 tenant_suspended, its active orders are cancelled and the
 * renewal scan skips its certificates. By default they are still served until they expire (a tenant
 * suspended over a billing dispute should not take its customers' sites down with it); `stopServing`
 * takes them out of delivery too, until it is resumed.
 */
export async function suspendTenant(
  db: Database,
  args: { tenantId: string; actor: string; stopServing?: boolean },
): Promise<SuspendResult> {
  return db.transaction(async (tx) => {
    const tenant = await lockTenant(tx, args.tenantId);
    if (tenant.deletedAt) throw deletedError(tenant);
    const current = await tx
      .select({ n: sql<number>`count(*)::int` })
      .from(certificates)
      .where(and(eq(certificates.tenantId, tenant.id), eq(certificates.isCurrent, true)));
    const currentCount = current[0]?.n ?? 0;
    if (tenant.suspendedAt)
      return {
        tenant,
        changed: false,
        ordersCancelled: 0,
        certificatesServed: currentCount,
        certificatesWithdrawn: tenant.stopServing ? await withdrawnCount(tx, tenant.id) : 0,
      };
    const stopServing = args.stopServing === true;
    const ordersCancelled = await cancelTenantOrders(tx, tenant.id, args.actor, 'tenant suspended');
    let certificatesWithdrawn = 0;
    if (stopServing) {
      const withdrawn = await tx
        .update(certificates)
        .set({
          isCurrent: false,
          retiredAt: sql`now()`,
          retiredReason: 'tenant_suspended',
          retiredBy: args.actor,
        })
        .where(and(eq(certificates.tenantId, tenant.id), eq(certificates.isCurrent, true)))
        .returning({ id: certificates.id });
      certificatesWithdrawn = withdrawn.length;
    }
    const [updated] = await tx
      .update(tenants)
      .set({ suspendedAt: sql`now()`, stopServing, updatedAt: sql`now()` })
      .where(eq(tenants.id, tenant.id))
      .returning();
    return {
      tenant: updated!,
      changed: true,
      ordersCancelled,
      certificatesServed: currentCount - certificatesWithdrawn,
      certificatesWithdrawn,
    };
  });
}

async function withdrawnCount(tx: Transaction, tenantId: string): Promise<number> {
  const [row] = await tx
    .select({ n: sql<number>`count(*)::int` })
    .from(certificates)
    .where(and(eq(certificates.tenantId, tenantId), eq(certificates.retiredReason, 'tenant_suspended')));
  return row?.n ?? 0;
}

/**
 * Resumes a suspended tenant: writes and renewals again; certificates taken out of delivery by
 * stopServing are current again (each unless a newer one for its domain set is current by then).
 */
export async function resumeTenant(
  db: Database,
  args: { tenantId: string; actor: string },
): Promise<{ tenant: Tenant; changed: boolean; certificatesRestored: number }> {
  return db.transaction(async (tx) => {
    const tenant = await lockTenant(tx, args.tenantId);
    if (tenant.deletedAt) throw deletedError(tenant);
    if (!tenant.suspendedAt) return { tenant, changed: false, certificatesRestored: 0 };
    const restored = await tx.execute<{ id: string }>(sql`
      update certificates c set is_current = true, retired_at = null, retired_reason = null, retired_by = null
      where c.tenant_id = ${tenant.id} and c.retired_reason = 'tenant_suspended'
        and not exists (select 1 from certificates n where n.tenant_id = c.tenant_id
          and n.domains_key = c.domains_key and n.is_current)
      returning c.id`);
    const [updated] = await tx
      .update(tenants)
      .set({ suspendedAt: null, stopServing: false, updatedAt: sql`now()` })
      .where(eq(tenants.id, tenant.id))
      .returning();
    return { tenant: updated!, changed: true, certificatesRestored: restored.rows.length };
  });
}

export interface DeleteTenantResult {
  tenant: Tenant;
  changed: boolean;
  certificatesRetired: number;
  ordersCancelled: number;
  /** Edge tokens scoped to this tenant alone, revoked (tokens that also see others keep working). */
  edgeTokensRevoked: number;
}

/**
 * Deletes a tenant, for good: every current certificate retired (`tenant_deleted`), its active orders
 * cancelled, its tokens revoked and the edge tokens scoped only to it revoked. The row, its orders,
 * certificates and audit trail stay. Again → unchanged.
 */
export async function deleteTenant(
  db: Database,
  queues: Queues,
  args: { tenantId: string; actor: string },
): Promise<DeleteTenantResult> {
  let deliveries: string[] = [];
  const result = await db.transaction(async (tx): Promise<DeleteTenantResult> => {
    const tenant = await lockTenant(tx, args.tenantId);
    if (tenant.deletedAt)
      return { tenant, changed: false, certificatesRetired: 0, ordersCancelled: 0, edgeTokensRevoked: 0 };
    const ordersCancelled = await cancelTenantOrders(tx, tenant.id, args.actor, 'tenant deleted');
    const current = await tx
      .select()
      .from(certificates)
      .where(and(eq(certificates.tenantId, tenant.id), eq(certificates.isCurrent, true)))
      .for('update');
    for (const row of current) await retireLocked(tx, row, args.actor, 'tenant_deleted');
    // Withdrawn by a stopServing suspension: now retired for good.
    await tx
      .update(certificates)
      .set({ retiredReason: 'tenant_deleted', retiredBy: args.actor })
      .where(and(eq(certificates.tenantId, tenant.id), eq(certificates.retiredReason, 'tenant_suspended')));
    const revoked = await tx
      .update(edgeTokens)
      .set({ revokedAt: sql`now()` })
      .where(and(isNull(edgeTokens.revokedAt), sql`${edgeTokens.tenantIds} = array[${tenant.id}::uuid]`))
      .returning({ id: edgeTokens.id });
    const [updated] = await tx
      .update(tenants)
      .set({
        deletedAt: sql`now()`,
        suspendedAt: sql`coalesce(${tenants.suspendedAt}, now())`,
        tokenRevokedAt: sql`now()`,
        previousTokenHash: null,
        previousTokenExpiresAt: null,
        updatedAt: sql`now()`,
      })
      .where(eq(tenants.id, tenant.id))
      .returning();
    deliveries = takeRecordedWebhookDeliveries(tx);
    return {
      tenant: updated!,
      changed: true,
      certificatesRetired: current.length,
      ordersCancelled,
      edgeTokensRevoked: revoked.length,
    };
  });
  await enqueueWebhookJobs(queues, deliveries);
  return result;
}

/** Throws tenant_suspended (or tenant_deleted) when the tenant may not change anything now. */
export async function assertTenantWritable(db: Database, tenantId: string): Promise<void> {
  const [tenant] = await db
    .select({ id: tenants.id, suspendedAt: tenants.suspendedAt, deletedAt: tenants.deletedAt })
    .from(tenants)
    .where(eq(tenants.id, tenantId));
  if (tenant?.suspendedAt) throw suspendedError(tenant);
}

export function suspendedError(tenant: { id: string; suspendedAt: Date | null; deletedAt: Date | null }) {
  return new WorkflowError(
    'tenant_suspended',
    tenant.deletedAt
      ? `tenant ${tenant.id} was deleted: it cannot change anything`
      : `tenant ${tenant.id} is suspended since ${tenant.suspendedAt!.toISOString()}: its certificates are served but nothing can be changed until the operator resumes it`,
    { tenantId: tenant.id },
  );
}

export interface UploadArgs {
  tenantId: string;
  /** Normalised by core's domain rules (the caller checked them). */
  domains: string[];
  algorithm: 'ECC' | 'RSA';
  certificatePem: string;
  privateKeySealed: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  actor: string;
}

/**
 * Stores an uploaded certificate as its tenant's current one for its domain set (state `uploaded`,
 * never renewed). Refused: a tenant suspended or unknown, a name another tenant has a current
 * certificate for, an active order for the same domain set (its certificate would replace this one).
 * A current certificate of the tenant for the same set is replaced by it.
 */
export async function storeUploadedCertificate(db: Database, args: UploadArgs): Promise<Certificate> {
  const domainsKey = [...args.domains].sort().join(',');
  return db.transaction(async (tx) => {
    const [tenant] = await tx.select().from(tenants).where(eq(tenants.id, args.tenantId)).for('share');
    if (!tenant) throw new WorkflowError('unknown_tenant', `unknown tenant ${args.tenantId}`);
    if (tenant.suspendedAt) throw suspendedError(tenant);
    try {
      // Ownership's one home (domain claims): another tenant using one of these names refuses the upload.
      await claimDomains(tx, args.tenantId, args.domains);
    } catch (error) {
      if (!(error instanceof DomainOwnedError)) throw error;
      throw new WorkflowError(
        'domain_taken',
        `another tenant uses ${error.names.join(', ')}: a certificate for it cannot be uploaded here`,
        { domains: error.names },
      );
    }
    const [active] = await tx
      .select({ id: orders.id })
      .from(orders)
      .where(and(eq(orders.tenantId, args.tenantId), eq(orders.domainsKey, domainsKey), isActiveOrder));
    if (active)
      throw new WorkflowError(
        'conflict',
        `order ${active.id} for the same domains is under way; its certificate would replace this one (cancel it first)`,
        { activeOrderId: active.id },
      );
    await tx
      .update(certificates)
      .set({ isCurrent: false })
      .where(
        and(
          eq(certificates.tenantId, args.tenantId),
          eq(certificates.domainsKey, domainsKey),
          eq(certificates.isCurrent, true),
        ),
      );
    const [row] = await tx
      .insert(certificates)
      .values({
        tenantId: args.tenantId,
        orderId: null,
        domains: args.domains,
        domainsKey,
        applyId: null,
        algorithm: args.algorithm,
        ca: null,
        notBefore: args.notBefore,
        notAfter: args.notAfter,
        fingerprint: args.fingerprint,
        certificatePem: args.certificatePem,
        privateKeySealed: args.privateKeySealed,
        state: 'uploaded',
      })
      .returning();
    return row!;
  });
}
