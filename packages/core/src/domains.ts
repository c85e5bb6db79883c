import { isIP } from 'node:net';
import { toASCII } from 'tr46';
import { isPublicSuffix } from './public-suffix';

export const MAX_DOMAINS_PER_ORDER = 100;

/**
 * The longest name certq orders: its DNS-01 record `_acme-challenge.<name>` (16 characters more) must
 * still fit DNS's 253. A wildcard's record is that of its base name, so `*.` does not count.
 */
export const MAX_DOMAIN_LENGTH = 253 - '_acme-challenge.'.length;

export type DomainResult = { ok: true; domain: string } | { ok: false; reason: string };

/**
 * UTS #46 processing as IDNA2008 registration wants it: nontransitional (ß, ς, ZWJ/ZWNJ kept), every
 * check on. The input goes to tr46 as it is, never through a URL parser (which would cut the name at
 * `/ ? # \` and decode `%xx`), and upper case is folded by UTS #46's mapping (Σ at a word's end is σ,
 * not JavaScript's ς).
 */
const UTS46 = {
  transitionalProcessing: false,
  checkHyphens: true,
  checkBidi: true,
  checkJoiners: true,
  useSTD3ASCIIRules: true,
  ignoreInvalidPunycode: false,
  // Lengths are checked below, after certq drops the trailing dot, with messages that say which.
  verifyDNSLength: false,
} as const;

/**
 * Which UTS #46 check a refused name fails, found by relaxing one check at a time (only on refusal).
 * Anything left is a disallowed code point, invalid Punycode or a label not in NFC.
 */
const UTS46_CHECKS = [
  ['useSTD3ASCIIRules', 'a host name holds only letters, digits and hyphens (UseSTD3ASCIIRules)'],
  [
    'checkHyphens',
    'a label may not start or end with a hyphen nor have "--" in positions 3-4 (CheckHyphens)',
  ],
  ['checkBidi', 'a right-to-left name must satisfy the Bidi rule of RFC 5893 (CheckBidi)'],
  [
    'checkJoiners',
    'a zero-width joiner or non-joiner is allowed only where RFC 5892 CONTEXTJ allows it (CheckJoiners)',
  ],
] as const;

/**
 * UTS #46 of a plain LDH name (ASCII letters, digits, hyphens, dots; no `xn--` label), which is most
 * of them: its mapping is lower-casing alone and of its checks only CheckHyphens can fail (no Bidi, no
 * joiners, no Punycode), so tr46's table walk is skipped. Undefined for any other name. The reference
 * suites run both paths.
 */
function plainLdh(name: string): string | null | undefined {
  if (!/^[A-Za-z0-9.-]*$/.test(name)) return undefined;
  const lower = name.toLowerCase();
  const labels = lower.split('.');
  if (labels.some((label) => label.startsWith('xn--'))) return undefined;
  const hyphens = (label: string) =>
    label.startsWith('-') || label.endsWith('-') || label.slice(2, 4) === '--';
  return labels.some(hyphens) ? null : lower;
}

function uts46Refusal(name: string): string {
  for (const [check, rule] of UTS46_CHECKS) {
    if (toASCII(name, { ...UTS46, [check]: false }) !== null) return rule;
  }
  return 'it holds a disallowed character, invalid Punycode or a label not in Unicode normal form';
}

/**
 * Normalises one certificate domain to the A-label form a CA issues for, or says why it cannot be.
 *
 * The standard's rules (UTS #46 with IDNA2008's checks, the DNS's lengths, the Public Suffix List):
 * - mapping and validity by UTS #46, nontransitional, with CheckHyphens, CheckBidi, CheckJoiners,
 *   UseSTD3ASCIIRules and Punycode validation (`xn--` labels must decode to valid labels);
 * - labels of 1 to 63 octets;
 * - not a public suffix (ICANN section), nor a wildcard directly under one: no CA issues for `co.uk`
 *   or `*.co.uk`.
 *
 * certq's own rules on top (stricter, or saying what certq does with the standard's leeway):
 * - characters that UTS #46 maps to nothing (soft hyphen, zero-width space, variation selectors),
 *   other format and control characters and inner white space are refused, not dropped
 *   (`findHiddenCharacter`): the tenant did not mean them, and the certificate would name something else;
 * - surrounding white space is trimmed and one trailing dot (the root) dropped;
 * - at least two labels, and the last not all digits;
 * - no IP addresses: no public CA behind httpsok issues DV certificates for them;
 * - a wildcard only as the whole leftmost label `*.`;
 * - at most `MAX_DOMAIN_LENGTH` (237) characters, so the `_acme-challenge.` record fits in 253.
 */
export function normalizeDomain(input: string): DomainResult {
  const hidden = findHiddenCharacter(input);
  if (hidden) return { ok: false, reason: hidden };
  let name = input.trim();
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
  const plain = plainLdh(name);
  let ascii = plain === undefined ? toASCII(name, UTS46) : plain;
  if (ascii === null)
    return { ok: false, reason: `not a valid domain name: ${uts46Refusal(name)}: ${input}` };
  if (ascii.endsWith('.')) ascii = ascii.slice(0, -1);
  if (isIP(ascii)) return { ok: false, reason: `IP addresses are not allowed: ${input}` };
  const labels = ascii.split('.');
  if (labels.some((label) => label.length === 0)) return { ok: false, reason: `empty label in ${input}` };
  if (labels.length < 2) return { ok: false, reason: `a domain needs at least two labels: ${input}` };
  const long = labels.find((label) => label.length > 63);
  if (long) return { ok: false, reason: `label longer than 63 characters (${long.length}) in ${input}` };
  if (/^[0-9]+$/.test(labels[labels.length - 1]!))
    return { ok: false, reason: `the top-level label cannot be numeric: ${input}` };
  if (ascii.length > MAX_DOMAIN_LENGTH) {
    return {
      ok: false,
      reason: `domain longer than ${MAX_DOMAIN_LENGTH} characters (${ascii.length}): its _acme-challenge record would exceed DNS's 253: ${input.slice(0, 40)}…`,
    };
  }
  if (isPublicSuffix(ascii)) {
    const rule = wildcard
      ? `a wildcard directly under the public suffix ${ascii}`
      : `${ascii} is a public suffix`;
    return { ok: false, reason: `${rule} (Public Suffix List): no CA issues for it: ${input}` };
  }
  return { ok: true, domain: (wildcard ? '*.' : '') + ascii };
}

/**
 * Control characters, format characters (soft hyphen, zero-width space, bidirectional controls), line
 * separators and every other default-ignorable code point (variation selectors…). UTS #46 drops some of
 * these and URL parsers fold others, so `"ex\u00ADample.com"` would become `example.com`: a client that
 * sent one made a mistake, and certq refuses it instead of ordering a different name. The zero-width
 * non-joiner and joiner (U+200C, U+200D) are left to UTS #46's CheckJoiners: they are part of Persian
 * and Indic names where CONTEXTJ allows them. Inner white space is refused for the same reason; only
 * leading and trailing spaces are trimmed.
 */
const HIDDEN = /(?![\u200C\u200D])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
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
