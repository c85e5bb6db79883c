import {
  ACTIVE_STATUS_SQL_LIST,
  type Algorithm,
  type CertificateAuthority,
  EXPIRING_SHARE_LEFT,
  RENEWAL_OVERDUE_MARGIN_MS,
  RENEWAL_OVERDUE_MARGIN_SHARE,
  type RenewalReason,
} from '@certq/core';
import type { OrderRequest } from '@certq/db';
import { type SQL, sql } from 'drizzle-orm';

/**
 * What the renewal scan (apps/worker/src/renewals) and a manual renewal (batch.ts) share: which
 * certificates certq renews, how a renewal is busy, and the renewal order built from a certificate.
 * Queries read `certificates c` joined to its issuing order `io` (RENEWAL_CANDIDATES_FROM).
 */

/** A certificate with its issuing order: the order's CA list is the renewal's. */
export const RENEWAL_CANDIDATES_FROM = sql.raw('certificates c left join orders io on io.id = c.order_id');

const TENANT_NOT_SUSPENDED =
  'not exists (select 1 from tenants t where t.id = c.tenant_id and t.suspended_at is not null)';

/**
 * The certificate is one certq renews: the current one of its domain set, issued by certq and not
 * moved away (state active, see @certq/core certificate-status), its tenant not suspended.
 */
export const RENEWABLE = sql.raw(`c.is_current and c.state = 'active' and ${TENANT_NOT_SUSPENDED}`);

/**
 * Renewed when someone asks (POST /v1/renewals): a moved certificate too (asking is how a tenant says
 * its CNAME is back), never an uploaded one (an order for its domains takes it over instead).
 */
export const RENEWABLE_ON_REQUEST = sql.raw(
  `c.is_current and c.state <> 'uploaded' and ${TENANT_NOT_SUSPENDED}`,
);

/** Its tenant has an active order (of any kind) for its domain set: a renewal would be a second one. */
export const HAS_ACTIVE_ORDER = sql.raw(`exists (
  select 1 from orders o where o.tenant_id = c.tenant_id and o.domains_key = c.domains_key
    and o.status in (${ACTIVE_STATUS_SQL_LIST}))`);

/**
 * The scan's renewal condition: renewable, its renewal time (renew_at, from @certq/core renewal-policy)
 * reached, not yet expired, past its renewal backoff, and nothing under way for its domain set.
 */
export function dueForRenewal(now: Date): SQL {
  const at = now.toISOString();
  return sql`${RENEWABLE}
    and c.renew_at <= ${at}::timestamptz
    and c.not_after > ${at}::timestamptz
    and (c.renewal_not_before is null or c.renewal_not_before <= ${at}::timestamptz)
    and not ${HAS_ACTIVE_ORDER}`;
}

/**
 * Not yet expired, with less than a sixth of its lifetime left (@certq/core isExpiring, EXPIRING_SHARE_LEFT):
 * the `certificate.expiring` webhook and the expiring metric and alert.
 */
export function expiringAt(now: Date): SQL {
  const at = now.toISOString();
  return sql`c.not_after > ${at}::timestamptz
    and (c.not_after - ${at}::timestamptz) * ${sql.raw(String(1 / EXPIRING_SHARE_LEFT))} < c.not_after - c.not_before`;
}

/**
 * Renewable, not expired, past its renewal time by more than the margin (@certq/core
 * renewalOverdueMarginMs) with no renewal under way: what the "renewal overdue" alert counts.
 */
export function renewalOverdueAt(now: Date): SQL {
  const at = now.toISOString();
  return sql`${RENEWABLE} and c.not_after > ${at}::timestamptz
    and c.renew_at + least(${sql.raw(`interval '${RENEWAL_OVERDUE_MARGIN_MS} milliseconds'`)},
      (c.not_after - c.not_before) * ${sql.raw(String(RENEWAL_OVERDUE_MARGIN_SHARE))}) < ${at}::timestamptz
    and not ${HAS_ACTIVE_ORDER}`;
}

/** The columns renewalRequest needs, as RenewalCandidate names them. */
export const RENEWAL_CANDIDATE_COLUMNS = sql.raw(
  'c.id, c.tenant_id, c.domains, c.algorithm, c.ca, io.ca_choices',
);

export interface RenewalCandidate extends Record<string, unknown> {
  id: string;
  tenant_id: string;
  domains: string[];
  algorithm: Algorithm;
  ca: CertificateAuthority;
  /** The issuing order's CA list (null: it named one CA, the certificate's). Postgres gives `{a,b}` text for an enum array. */
  ca_choices: CertificateAuthority[] | string | null;
}

/** Postgres returns an enum array as its text form (`{google,letsencrypt}`): node-postgres parses only built-in array types. */
function caList(value: RenewalCandidate['ca_choices']): CertificateAuthority[] | undefined {
  if (value === null) return undefined;
  const list = Array.isArray(value)
    ? value
    : value
        .replace(/^\{|\}$/g, '')
        .split(',')
        .filter(Boolean);
  return list.length ? (list as CertificateAuthority[]) : undefined;
}

/**
 * The renewal order of a certificate: same tenant, domains and algorithm, the issuing order's CA list
 * (tried from its first, as that order was; else the certificate's CA), in the renewal lane.
 */
export function renewalRequest(
  candidate: RenewalCandidate,
  how: { reason: RenewalReason; notBefore: Date; batchId?: string },
): OrderRequest {
  const caChoices = caList(candidate.ca_choices);
  return {
    tenantId: candidate.tenant_id,
    domains: candidate.domains,
    algorithm: candidate.algorithm,
    ...(caChoices ? { caChoices } : { ca: candidate.ca }),
    kind: 'renewal',
    renewalOfCertificateId: candidate.id,
    renewalReason: how.reason,
    ...(how.batchId ? { renewalBatchId: how.batchId } : {}),
    notBefore: how.notBefore,
  };
}
