import type { CaaRecord, DnsResolver } from './resolver';

/** The CAs httpsok can order from, and the issuer domain each one checks in CAA records. */
export const CAA_ISSUER_DOMAINS = {
  google: 'pki.goog',
  letsencrypt: 'letsencrypt.org',
  zerossl: 'sectigo.com',
} as const;
export type CaaCa = keyof typeof CAA_ISSUER_DOMAINS;
export const CAA_CAS = Object.keys(CAA_ISSUER_DOMAINS) as CaaCa[];
const CA_NAMES: Record<CaaCa, string> = {
  google: 'Google Trust Services',
  letsencrypt: "Let's Encrypt",
  zerossl: 'ZeroSSL (Sectigo)',
};

/** Property tags a CA understands (RFC 8659 §4 and the registered extensions); others, if critical, forbid all. */
const KNOWN_TAGS = new Set([
  'issue',
  'issuewild',
  'iodef',
  'contactemail',
  'contactphone',
  'issuemail',
  'issuevmc',
]);

export type CaaPolicy =
  | {
      kind: 'policy';
      /** The certificate name asked about, e.g. `*.example.com`. */
      domain: string;
      /** Where the relevant RRset was found (the closest CAA RRset climbing toward the root), or null: none. */
      recordName: string | null;
      records: CaaRecord[];
      /** CAs the relevant RRset lets issue for `domain` (every CA when there is none). */
      allowed: CaaCa[];
    }
  | { kind: 'failed'; domain: string; name: string; code: string };

export function formatCaaRecord(record: CaaRecord): string {
  return `${record.flags} ${record.tag} "${record.value}"`;
}

/**
 * RFC 8659 §3: the relevant RRset is the CAA RRset of the name itself or, when it has none, of the closest
 * ancestor that has one, climbing up to but not including the root. A wildcard `*.x` is looked up at `x`.
 * A lookup that fails (timeout, SERVFAIL) stops the climb: the policy is unknown, never assumed open.
 */
export async function caaPolicy(resolver: DnsResolver, domain: string): Promise<CaaPolicy> {
  const wildcard = domain.startsWith('*.');
  const labels = (wildcard ? domain.slice(2) : domain).toLowerCase().replace(/\.$/, '').split('.');
  for (let i = 0; i < labels.length; i++) {
    const name = labels.slice(i).join('.');
    const outcome = await resolver.caa(name);
    if (outcome.kind === 'failed') return { kind: 'failed', domain, name, code: outcome.code };
    if (outcome.kind === 'answer' && outcome.value.length > 0) {
      return {
        kind: 'policy',
        domain,
        recordName: name,
        records: outcome.value,
        allowed: allowedCas(outcome.value, wildcard),
      };
    }
  }
  return { kind: 'policy', domain, recordName: null, records: [], allowed: [...CAA_CAS] };
}

/**
 * RFC 8659 §4: for a wildcard, `issuewild` properties, when there are any, replace `issue`; an
 * `issue`/`issuewild` value authorises the issuer domain before its first `;` (an empty one authorises
 * nobody); no such property at all leaves issuance open; an unknown property flagged critical closes it.
 */
export function allowedCas(records: readonly CaaRecord[], wildcard: boolean): CaaCa[] {
  if (records.some((r) => (r.flags & 128) !== 0 && !KNOWN_TAGS.has(r.tag))) return [];
  const wild = records.filter((r) => r.tag === 'issuewild');
  const relevant = wildcard && wild.length > 0 ? wild : records.filter((r) => r.tag === 'issue');
  if (relevant.length === 0) return [...CAA_CAS];
  const issuers = new Set(
    relevant.map((r) => r.value.split(';')[0]!.trim().toLowerCase().replace(/\.$/, '')),
  );
  return CAA_CAS.filter((ca) => issuers.has(CAA_ISSUER_DOMAINS[ca]));
}

/** One sentence a tenant can act on when the policy forbids `ca`; null when `ca` may issue. */
export function caaForbiddenReason(policy: CaaPolicy & { kind: 'policy' }, ca: CaaCa): string | null {
  if (policy.allowed.includes(ca)) return null;
  const shown = policy.records.map(formatCaaRecord).join(', ');
  const tag =
    policy.domain.startsWith('*.') && policy.records.some((r) => r.tag === 'issuewild')
      ? 'issuewild'
      : 'issue';
  const others = policy.allowed.length > 0 ? ` or order with ${policy.allowed.join('/')}` : '';
  return (
    `The CAA records at ${policy.recordName} (${shown}) do not allow ${CA_NAMES[ca]} to issue for ${policy.domain}: ` +
    `add the record ${policy.recordName} CAA 0 ${tag} "${CAA_ISSUER_DOMAINS[ca]}"${others}.`
  );
}
