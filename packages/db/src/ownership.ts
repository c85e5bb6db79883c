import { sql } from 'drizzle-orm';
import type { Queryable } from './client';
import { pgErrorOf } from './errors';

/** The SQLSTATE `certq_claim_domains` raises when another tenant still uses a requested name. */
const OWNED_BY_ANOTHER_TENANT = 'CQ409';

/**
 * Some requested names overlap names another tenant still uses (0012_domain_ownership.sql). `names` are
 * the requested ones concerned, never the other tenant's.
 */
export class DomainOwnedError extends Error {
  constructor(readonly names: string[]) {
    super(`${names.join(', ')}: in use by another tenant`);
    this.name = 'DomainOwnedError';
  }
}

/** The requested names behind a `certq_claim_domains` refusal, or undefined for any other error. */
export function ownershipRefusalOf(error: unknown): string[] | undefined {
  if (error instanceof DomainOwnedError) return error.names;
  const pg = pgErrorOf(error) as { code?: string; detail?: string } | undefined;
  if (pg?.code !== OWNED_BY_ANOTHER_TENANT) return undefined;
  return (pg.detail ?? '').split(',').filter(Boolean);
}

/** A name another tenant held, now claimed by the caller (a proven or operator transfer). */
export interface TakenClaim {
  name: string;
  previousTenantId: string;
}

/**
 * Claims `names` for `tenantId` (see certq_claim_domains): throws DomainOwnedError when another tenant
 * still uses one of them, unless it is in `take` (proven); returns the claims taken over. Call inside
 * the transaction that also writes what needs the names, so the claim and its use commit together.
 */
export async function claimDomains(
  db: Queryable,
  tenantId: string,
  names: readonly string[],
  options: { take?: readonly string[]; via?: 'order' | 'dns_proof' | 'operator' } = {},
): Promise<TakenClaim[]> {
  try {
    const { rows } = await db.execute<{ claimed_name: string; previous_tenant_id: string }>(
      sql`select claimed_name, previous_tenant_id from certq_claim_domains(
            ${tenantId}::uuid, ${sql.param([...names])}::text[], ${sql.param([...(options.take ?? [])])}::text[],
            ${options.via ?? 'order'})`,
    );
    return rows.map((r) => ({ name: r.claimed_name, previousTenantId: r.previous_tenant_id }));
  } catch (error) {
    const refused = ownershipRefusalOf(error);
    if (refused) throw new DomainOwnedError(refused);
    throw error;
  }
}

/**
 * Takes the claim locks of every name at once, in one sorted order, before a call claims names of several
 * tenants one after the other (a bulk insert): two such calls can then never wait on each other in a cycle.
 */
export async function lockDomainNames(db: Queryable, names: readonly string[]): Promise<void> {
  await db.execute(sql`select certq_lock_domain_names(${sql.param([...names])}::text[])`);
}
