import { type DomainResult, findHiddenCharacter, MAX_DOMAIN_LENGTH } from '@certq/core';

/**
 * The one table of deliberate differences between certq and the reference test suites vendored under
 * test/reference: each vector either agrees with certq or matches a row here (the first that matches
 * counts), which says why certq answers otherwise. A vector that does neither fails its suite.
 */
export interface Difference<Case> {
  rule: string;
  why: string;
  matches(c: Case): boolean;
}

/** A name vector (Unicode IdnaTestV2, WPT toascii.json) and certq's answer for it. */
export interface NameCase {
  suite: 'IdnaTestV2' | 'toascii';
  source: string;
  /** What the reference expects: the A-label form, or null when it refuses the name. */
  expected: string | null;
  /** The reference's A-label form even when it refuses (IdnaTestV2's toAsciiN), and its error codes. */
  ascii: string;
  errors: readonly string[];
  certq: DomainResult;
  /** certq's answer for another input. */
  normalize(input: string): DomainResult;
}

const refusedFor = (result: DomainResult, text: string) => !result.ok && result.reason.includes(text);
const answers = (result: DomainResult, expected: string | null) =>
  expected === null ? !result.ok : result.ok && result.domain === expected;
const withoutHidden = (input: string) => {
  const chars = [...input];
  for (let hidden = findHiddenCharacter(chars.join('')); hidden; hidden = findHiddenCharacter(chars.join('')))
    chars.splice(Number(/at position (\d+)/.exec(hidden)![1]) - 1, 1);
  return chars.join('');
};

export const NAME_DIFFERENCES: Difference<NameCase>[] = [
  {
    rule: 'hidden characters refused',
    why: 'UTS #46 maps soft hyphens, zero-width spaces, variation selectors, Hangul fillers… to nothing; certq refuses them (the tenant did not mean them), and agrees once they are removed',
    matches: (c) =>
      c.expected !== null &&
      refusedFor(c.certq, 'character U+') &&
      answers(c.normalize(withoutHidden(c.source)), c.expected),
  },
  {
    rule: 'single label',
    why: 'certq orders names of two labels or more: no public CA issues for a TLD or a single-label name',
    matches: (c) => c.expected !== null && !c.expected.replace(/\.$/, '').includes('.') && !c.certq.ok,
  },
  {
    rule: 'trailing dot dropped',
    why: 'a trailing dot is the DNS root: certq orders the name without it where VerifyDnsLength refuses the empty root label (A4_2)',
    matches: (c) =>
      c.suite === 'IdnaTestV2' &&
      c.errors.length === 1 &&
      c.errors[0] === 'A4_2' &&
      c.ascii.endsWith('.') &&
      answers(c.certq, c.ascii.slice(0, -1)),
  },
  {
    rule: 'the _acme-challenge record must fit',
    why: `certq refuses names over ${MAX_DOMAIN_LENGTH} characters: their _acme-challenge. record would exceed DNS's 253`,
    matches: (c) =>
      c.expected !== null &&
      c.expected.length > MAX_DOMAIN_LENGTH &&
      c.expected.length <= 253 &&
      refusedFor(c.certq, `longer than ${MAX_DOMAIN_LENGTH}`),
  },
  {
    rule: 'URL hosts skip CheckHyphens',
    why: 'WPT tests URL host parsing (CheckHyphens=false); a certificate name is registered under IDNA2008, which refuses leading/trailing hyphens and "--" in positions 3-4',
    matches: (c) => c.suite === 'toascii' && c.expected !== null && refusedFor(c.certq, '(CheckHyphens)'),
  },
  {
    rule: 'URL hosts skip VerifyDnsLength',
    why: 'WPT tests URL host parsing (VerifyDnsLength=false); a DNS name has labels of 1-63 and at most 253 octets',
    matches: (c) =>
      c.suite === 'toascii' &&
      c.expected !== null &&
      (refusedFor(c.certq, 'empty label') || refusedFor(c.certq, 'longer than')),
  },
  {
    rule: 'Bidi rule for a digit-only label',
    why: "the vector is newer than UTS #46 17.0 (tr46's version, whose IdnaTestV2 certq passes whole): RFC 5893 rule 1 still refuses a label starting with a digit in a Bidi domain name",
    matches: (c) => c.suite === 'toascii' && c.source === '1.\u064A' && refusedFor(c.certq, '(CheckBidi)'),
  },
];
