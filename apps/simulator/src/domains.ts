import { createHash } from 'node:crypto';
import { normalizeDomain, registeredDomain } from '@certq/core';

/**
 * DNS-validation records of the simulated provider. The registered domain comes from the public suffix
 * list (ICANN section, `registeredDomain` in `@certq/core`): `a.example.co.uk` is sub `a` of `example.co.uk`.
 */

/** Lower-cases and drops trailing dots and surrounding blanks: how DNS names compare. */
export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.+$/, '');
}

/**
 * The name an application is for, or null when httpsok answers `invalid domain`. The rules are
 * certq's (`normalizeDomain` in `@certq/core`: UTS #46, the public suffix list, DNS lengths), so a
 * public suffix or a malformed name is refused here as a CA refuses it.
 */
export function applicationDomain(domain: string): string | null {
  const result = normalizeDomain(domain);
  return result.ok ? result.domain : null;
}

export interface DomainParts {
  /** The registered domain (public suffix list), e.g. `example.com`, `example.co.uk`. */
  registered: string;
  /** Labels between the wildcard and the registered domain, e.g. `sub` for `*.sub.example.com`; '' if none. */
  sub: string;
}

export function splitDomain(domain: string): DomainParts {
  const bare = domain.startsWith('*.') ? domain.slice(2) : domain;
  // Only valid domains get here; the fallback keeps a public suffix from throwing.
  const registered = registeredDomain(bare) ?? bare;
  return {
    registered,
    sub: bare === registered ? '' : bare.slice(0, -(registered.length + 1)),
  };
}

export interface DvRecord {
  /** CNAME name relative to the registered domain, e.g. `_acme-challenge.sub`. */
  host: string;
  /** CNAME target, e.g. `0123456789abcdef.sub.httpsok.com`. */
  hostValue: string;
  /** Fully qualified CNAME name, e.g. `_acme-challenge.sub.example.com`. */
  fqdn: string;
}

/** Stable per account and registered domain: the first 16 hex chars of sha256(apiKey + ':' + registered). */
export function accountHex(apiKey: string, registered: string): string {
  return createHash('sha256')
    .update(apiKey + ':' + registered)
    .digest('hex')
    .slice(0, 16);
}

export function dvRecord(apiKey: string, domain: string): DvRecord {
  const { registered, sub } = splitDomain(domain);
  const hex = accountHex(apiKey, registered);
  const host = sub ? `_acme-challenge.${sub}` : '_acme-challenge';
  const hostValue = sub ? `${hex}.${sub}.httpsok.com` : `${hex}.httpsok.com`;
  return { host, hostValue, fqdn: `${host}.${registered}` };
}

export function isUnderInvalid(domain: string): boolean {
  return domain === 'invalid' || domain.endsWith('.invalid');
}

export function isFailTest(domain: string): boolean {
  return domain.endsWith('.fail.test');
}
