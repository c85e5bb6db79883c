import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

export const MAX_DOMAINS_PER_ORDER = 100;

export type DomainResult = { ok: true; domain: string } | { ok: false; reason: string };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Normalises one certificate domain: trimmed, lower-cased, one trailing dot dropped, IDN to punycode.
 * A wildcard is allowed only as the whole leftmost label; IP addresses are refused because no public
 * CA behind httpsok issues DV certificates for them.
 */
export function normalizeDomain(input: string): DomainResult {
  const hidden = findHiddenCharacter(input);
  if (hidden) return { ok: false, reason: hidden };
  let name = input.trim().toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0) return { ok: false, reason: 'empty domain' };
  if (isIP(name) || isIP(name.replace(/^\[|\]$/g, '')))
    return { ok: false, reason: `IP addresses are not allowed: ${input}` };
  let wildcard = false;
  if (name.startsWith('*.')) {
    wildcard = true;
    name = name.slice(2);
  }
  if (name.includes('*'))
    return { ok: false, reason: `a wildcard is allowed only as the whole leftmost label: ${input}` };
  const ascii = /^[ -~]*$/.test(name) ? name : domainToASCII(name);
  if (!ascii) return { ok: false, reason: `not a valid internationalised domain name: ${input}` };
  const labels = ascii.split('.');
  if (labels.length < 2) return { ok: false, reason: `a domain needs at least two labels: ${input}` };
  for (const label of labels) {
    if (label.length > 63) return { ok: false, reason: `label longer than 63 characters in ${input}` };
    if (!LABEL.test(label)) return { ok: false, reason: `invalid label "${label}" in ${input}` };
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1]!))
    return { ok: false, reason: `the top-level label cannot be numeric: ${input}` };
  const full = (wildcard ? '*.' : '') + ascii;
  if (full.length > 253)
    return { ok: false, reason: `domain longer than 253 characters: ${input.slice(0, 40)}…` };
  return { ok: true, domain: full };
}

/**
 * Control characters, format characters (soft hyphen, zero-width space and joiners, bidirectional
 * overrides), line separators and every other default-ignorable code point. IDNA mapping and URL host
 * parsing silently drop or fold these, so `"ex\nample.com"` would become `example.com`: a client that
 * sent one made a mistake, and certq refuses it instead of ordering a different name. Inner white
 * space is refused for the same reason; only leading and trailing spaces are trimmed.
 */
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
const INNER_SPACE = /\S\s+\S/u;

/** Why `input` holds a character that is invisible or would be dropped, naming it and its position; else undefined. */
export function findHiddenCharacter(input: string): string | undefined {
  const chars = [...input];
  const describe = (index: number, what: string) => {
    const code = chars[index]!.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `${what} U+${code} at position ${index + 1} of ${JSON.stringify(input)}`;
  };
  for (const [index, char] of chars.entries()) {
    if (HIDDEN.test(char)) {
      const what = /\p{Cc}/u.test(char) ? 'control character' : 'invisible character';
      return describe(index, what);
    }
  }
  if (INNER_SPACE.test(input.trim())) {
    const trimmedStart = chars.length - [...input.trimStart()].length;
    const index = chars.findIndex((c, i) => i >= trimmedStart && /\s/u.test(c));
    return describe(index, 'white space');
  }
  return undefined;
}

export type DomainListResult =
  | { ok: true; domains: string[] }
  | { ok: false; reason: string; index?: number };

/** Validates an order's domain list: 1–100 valid names, duplicates (after normalisation) removed, order kept. */
export function normalizeDomainList(input: readonly string[]): DomainListResult {
  if (input.length === 0) return { ok: false, reason: 'at least one domain is required' };
  const seen = new Set<string>();
  for (const [index, raw] of input.entries()) {
    const result = normalizeDomain(raw);
    if (!result.ok) return { ok: false, reason: result.reason, index };
    seen.add(result.domain);
  }
  if (seen.size > MAX_DOMAINS_PER_ORDER) {
    return {
      ok: false,
      reason: `at most ${MAX_DOMAINS_PER_ORDER} distinct domains per order, got ${seen.size}`,
    };
  }
  return { ok: true, domains: [...seen] };
}

/** A canonical key for a domain set: the same certificate whatever order the names were given in. */
export function domainSetKey(domains: readonly string[]): string {
  return [...domains].sort().join(',');
}
