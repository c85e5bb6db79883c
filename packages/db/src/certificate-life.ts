import { type SQL, sql } from 'drizzle-orm';

/**
 * Which current certificates certq renews, in one place for the renewal scan and manual renewals.
 * `c` is the SQL name of the certificates row (an alias, or `"certificates"`).
 */
const tenantNotSuspended = (c: string) =>
  sql.raw(`not exists (select 1 from tenants t where t.id = ${c}.tenant_id and t.suspended_at is not null)`);

/** Renewed by the scan when due: issued by certq and not moved away, its tenant not suspended. */
export function renewedByScan(c: string): SQL {
  return sql`${sql.raw(`${c}.state = 'active'`)} and ${tenantNotSuspended(c)}`;
}

/**
 * Renewed when someone asks (POST /v1/renewals): a moved certificate too (asking is how a tenant says
 * the CNAME is back), never an uploaded one (an order for its domains takes it over instead).
 */
export function renewableOnRequest(c: string): SQL {
  return sql`${sql.raw(`${c}.state <> 'uploaded'`)} and ${tenantNotSuspended(c)}`;
}
