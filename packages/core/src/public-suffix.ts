import { getDomain, getPublicSuffix } from 'tldts';

/**
 * The registered domain ("eTLD+1") and public suffixes, from the Public Suffix List shipped with `tldts`.
 *
 * Only the ICANN section counts. Private suffixes (`github.io`, `herokuapp.com`, …) are zones their
 * operator delegates to customers; the DNS records httpsok checks live in the zone cut the ICANN
 * section describes (httpsok hands out `_acme-challenge` relative to that domain), and a tenant of
 * `foo.github.io` cannot create a record in `github.io` either way. So `registeredDomain('a.github.io')`
 * is `github.io` and `isPublicSuffix('github.io')` is false.
 *
 * Names under a TLD the list does not know (`.test`, `.internal`) follow the list's default rule
 * `*`: the last label is the suffix, so `a.b.test` is registered domain `b.test`.
 */
const OPTIONS = { allowPrivateDomains: false, validateHostname: false, extractHostname: false } as const;

/** Lower-cased, trailing dot and a leading wildcard label removed: the name the suffix list is asked about. */
function bare(name: string): string {
  let n = name.trim().toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n.startsWith('*.')) n = n.slice(2);
  return n;
}

/**
 * The registered domain of a (possibly wildcard) name: `a.example.co.uk` → `example.co.uk`,
 * `*.sub.example.com` → `example.com`. Null for a public suffix itself (`co.uk`) or an empty name.
 */
export function registeredDomain(name: string): string | null {
  const n = bare(name);
  if (n === '') return null;
  return getDomain(n, OPTIONS) ?? null;
}

/**
 * True when the name (wildcard label ignored) is itself a public suffix, so no one can hold a
 * certificate for `*.` of it: `co.uk`, `com`, `test`. `example.co.uk` is not.
 */
export function isPublicSuffix(name: string): boolean {
  const n = bare(name);
  if (n === '') return false;
  return getPublicSuffix(n, OPTIONS) === n;
}

/**
 * The labels of `name` left of its registered domain: `*.a.b.example.co.uk` → `a.b`; '' when the name is
 * the registered domain. Null when the name has no registered domain.
 */
export function subdomainOf(name: string): string | null {
  const n = bare(name);
  const registered = registeredDomain(n);
  if (registered === null) return null;
  return n === registered ? '' : n.slice(0, -(registered.length + 1));
}
