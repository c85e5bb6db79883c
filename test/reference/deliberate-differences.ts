import { type DomainResult, findHiddenCharacter, MAX_DOMAIN_LENGTH } from '@certq/core';
import type { CaaRecord } from '@certq/dns';

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

/** A CAA vector (Boulder's va/caa_test.go): may Let's Encrypt issue for the name, by Boulder and by certq. */
export interface CaaCase {
  table: string;
  name: string;
  /** The relevant record set certq read. */
  records: readonly CaaRecord[];
  boulder: boolean;
  certq: boolean;
}

const reservedBitOnly = (r: CaaRecord) => (r.flags & 128) === 0 && (r.flags & 1) !== 0;

export const CAA_DIFFERENCES: Difference<CaaCase>[] = [
  {
    rule: 'reserved flag bits ignored',
    why: 'RFC 8659 §4.1: only bit 128 is Issuer Critical, the other flag bits are reserved and MUST be ignored; Boulder also reads bit 1 as critical',
    matches: (c) =>
      !c.boulder &&
      c.certq &&
      c.records.some(
        (r) =>
          reservedBitOnly(r) && !['issue', 'issuewild', 'iodef', 'issuemail', 'issuevmc'].includes(r.tag),
      ),
  },
  {
    rule: '"-" inside a parameter tag',
    why: 'RFC 8659 §4.2: tag = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)) allows a hyphen inside a tag; Boulder allows letters and digits only',
    matches: (c) =>
      !c.boulder &&
      c.certq &&
      c.records.some((r) => /;[ \t]*[A-Za-z0-9]+-+[A-Za-z0-9-]*[ \t]*=/.test(r.value)),
  },
  {
    rule: 'accounturi cannot be checked',
    why: "RFC 8657 §3: the CA issues only for the named ACME account; certq does not know httpsok's account with the CA, so one well-formed accounturi does not count against the record (the policy lists it in accountUris)",
    matches: (c) =>
      !c.boulder &&
      c.certq &&
      c.records.some((r) => (r.value.match(/;[ \t]*accounturi[ \t]*=/g) ?? []).length === 1),
  },
  {
    rule: 'one parameter judged alone',
    why: "Boulder's TestValidationMethodMatches and TestAccountURIMatches judge one parameter alone; served as a record, the other parameter of the vector forbids a dns-01 order by itself (accounturi=ph1LwuzHere is not a URI no account can match; validationmethods=tls-alpn-01 leaves dns-01 out)",
    matches: (c) =>
      c.boulder &&
      !c.certq &&
      ((c.table === 'validationmethods' &&
        c.records.some((r) => r.value.includes('accounturi=ph1LwuzHere'))) ||
        (c.table === 'accounturi' &&
          c.records.some((r) => r.value.includes('validationmethods=tls-alpn-01')))),
  },
];

/** An address sampled from a special-purpose registry row, and whether certq's webhook policy allows it. */
export interface AddressCase {
  address: string;
  /** The most specific registry row holding the address. */
  row: { block: string; name: string; globallyReachable: string };
  /** The registry rows holding the address, most specific first. */
  enclosing: readonly { block: string; globallyReachable: string }[];
  certq: boolean;
}

const reachable = (value: string) => value === 'True';

export const ADDRESS_DIFFERENCES: Difference<AddressCase>[] = [
  {
    rule: 'globally reachable inside a block that is not',
    why: 'certq refuses a whole block the registry marks not globally reachable (192.0.0.0/24, 2001::/23), the few globally reachable entries inside it (PCP/TURN anycast, AMT, AS112-v6, ORCHIDv2, DETs) included: no webhook lives there',
    matches: (c) =>
      reachable(c.row.globallyReachable) &&
      !c.certq &&
      c.enclosing.slice(1).some((e) => !reachable(e.globallyReachable)),
  },
  {
    rule: 'IPv4 carried in IPv6 judged by the IPv4 address',
    why: 'an IPv4-mapped address (::ffff:0:0/96) is how a dual-stack socket writes an IPv4 destination, and the NAT64 well-known prefix (64:ff9b::/96) translates to one: certq judges both by the IPv4 address they carry (a public one is allowed, a private one refused)',
    matches: (c) => c.row.block === '::ffff:0:0/96' || c.row.block === '64:ff9b::/96',
  },
];
