import { registeredDomain } from '@certq/core';
import { type CaaCa, type CaaPolicy, caaForbiddenReason, caaPolicy } from './caa';
import type { DnsResolver, LookupOutcome } from './resolver';

/** What httpsok's first `dv` call handed out for one certificate domain. */
export interface DomainConfig {
  /** The certificate name, e.g. `*.sub.example.com`. */
  domain: string;
  /** The CNAME's name relative to the registered domain, e.g. `_acme-challenge.sub`. */
  host: string;
  /** The CNAME target, e.g. `0123456789abcdef.sub.httpsok.com`. */
  hostValue: string;
}

export type DnsStatus = 'ok' | 'missing' | 'wrong_target' | 'lookup_failed' | 'caa_forbidden';

export interface DnsDiagnosis {
  domain: string;
  status: DnsStatus;
  /** What `<host>.<registered domain>` is a CNAME to now (lower-case), or null (none, or unknown). */
  found: string | null;
  /** One sentence the tenant can act on, naming the exact record; for `ok`, what was confirmed. */
  reason: string;
  checkedAt: Date;
}

const clean = (name: string) => name.trim().toLowerCase().replace(/\.+$/, '');

/**
 * The absolute name of the validation record. httpsok's `host` is relative to the registered domain (public
 * suffix list, not "the last two labels"); should it ever answer an absolute name, it is taken as is.
 */
export function recordName(config: DomainConfig): string {
  const host = clean(config.host);
  const registered = registeredDomain(config.domain) ?? clean(config.domain).replace(/^\*\./, '');
  if (host === registered || host.endsWith(`.${registered}`)) return host;
  return `${host}.${registered}`;
}

function failedReason(name: string, outcome: { code: string; server: string }): string {
  const what = outcome.code === 'ETIMEOUT' ? 'timed out' : `failed (${outcome.code})`;
  return `Looking up ${name} ${what} at resolver ${outcome.server}; this is not a problem with your record, certq will check again shortly.`;
}

/** Classifies a CNAME lookup of the validation record. */
export function classifyCname(
  config: DomainConfig,
  outcome: LookupOutcome<string>,
  checkedAt: Date = new Date(),
): DnsDiagnosis {
  const name = recordName(config);
  const expected = clean(config.hostValue);
  const base = { domain: config.domain, checkedAt };
  switch (outcome.kind) {
    case 'answer':
      if (outcome.value === expected)
        return {
          ...base,
          status: 'ok',
          found: outcome.value,
          reason: `${name} is a CNAME to ${expected}, as required.`,
        };
      return {
        ...base,
        status: 'wrong_target',
        found: outcome.value,
        reason: `${name} is a CNAME to ${outcome.value}, not to ${expected}: change the record to CNAME ${name} → ${expected}.`,
      };
    case 'nxdomain':
    case 'nodata':
      return {
        ...base,
        status: 'missing',
        found: null,
        reason: `No CNAME record at ${name}${outcome.kind === 'nodata' ? ' (the name has other records only)' : ''}: create CNAME ${name} → ${expected}.`,
      };
    case 'failed':
      return { ...base, status: 'lookup_failed', found: null, reason: failedReason(name, outcome) };
  }
}

/** Resolves `CNAME <host>.<registered domain>` and says whether it points to `hostValue`. */
export async function diagnose(
  resolver: DnsResolver,
  config: DomainConfig,
  now: () => Date = () => new Date(),
): Promise<DnsDiagnosis> {
  const outcome = await resolver.cname(recordName(config));
  return classifyCname(config, outcome, now());
}

/**
 * The CAA verdict for ordering `domain` from `ca`: null when `ca` may issue, else a `caa_forbidden`
 * diagnosis naming the record (or `lookup_failed` when the CAA records could not be read).
 */
export function caaDiagnosis(
  policy: CaaPolicy,
  ca: CaaCa,
  checkedAt: Date = new Date(),
): DnsDiagnosis | null {
  if (policy.kind === 'failed') {
    return {
      domain: policy.domain,
      status: 'lookup_failed',
      found: null,
      reason: `Looking up the CAA records of ${policy.name} failed (${policy.code}); this is not a problem with your records, certq will check again shortly.`,
      checkedAt,
    };
  }
  const reason = caaForbiddenReason(policy, ca);
  if (reason === null) return null;
  return { domain: policy.domain, status: 'caa_forbidden', found: null, reason, checkedAt };
}

/** Convenience: climb for the CAA policy of `domain` and judge `ca` in one call. */
export async function checkCaa(
  resolver: DnsResolver,
  domain: string,
  ca: CaaCa,
  now: () => Date = () => new Date(),
): Promise<{ policy: CaaPolicy; diagnosis: DnsDiagnosis | null }> {
  const policy = await caaPolicy(resolver, domain);
  return { policy, diagnosis: caaDiagnosis(policy, ca, now()) };
}
