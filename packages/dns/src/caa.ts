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

/**
 * Property tags the CAs understand (RFC 8659 §4 and the registered issuance tags, as Let's Encrypt's
 * Boulder lists them); any other flagged critical forbids all. `contactemail`/`contactphone` are not
 * among them: they are for finding a domain's contact, not for issuance, so critical they forbid.
 */
const KNOWN_TAGS = new Set(['issue', 'issuewild', 'iodef', 'issuemail', 'issuevmc']);

/**
 * The issuer-critical flag is bit 128 alone (RFC 8659 §4.1: the other bits are reserved and MUST be
 * ignored). Boulder also reads bit 1 as critical, an old misreading of the RFC; certq follows the RFC,
 * so it may predict "allowed" where Let's Encrypt refuses a record set flagged 1 with an unknown tag.
 */
const ISSUER_CRITICAL = 128;

/** httpsok proves control by DNS (a CNAME to its `_acme-challenge` zone): the CA validates by dns-01. */
export const HTTPSOK_VALIDATION_METHOD = 'dns-01';

/** RFC 8659 §4.2's `issue`/`issuewild` value: issuer-domain-name and parameters, or null when malformed. */
export interface IssueValue {
  /** Lower-cased; '' for an empty issuer (authorises no CA). */
  issuer: string;
  parameters: { tag: string; value: string }[];
}

const WSP = '[ \t]';
const LABEL = '[A-Za-z0-9](?:-*[A-Za-z0-9])*';
const ISSUER = new RegExp(`^${WSP}*((?:${LABEL}(?:\\.${LABEL})*)?)${WSP}*$`);
// RFC 8659 allows `-` inside a tag (tag = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))); Boulder refuses
// it. certq follows the RFC: a tag such as `a-b` is a well-formed parameter.
const PARAMETER = new RegExp(`^${WSP}*(${LABEL})${WSP}*=${WSP}*([\\x21-\\x3A\\x3C-\\x7E]*)${WSP}*$`);

/**
 * Parses an `issue`/`issuewild` value by RFC 8659 §4.2's grammar. A value that does not match it (a
 * trailing dot, CR or LF in the issuer, `a_b=1`, a space or `☕` in a parameter value, a stray `;`)
 * is null, which the caller treats as an empty issuer (§4.2): it authorises no CA.
 */
export function parseIssueValue(value: string): IssueValue | null {
  // `;` cannot appear in an issuer, a tag or a value, so it splits the value unambiguously.
  const [head, ...rest] = value.split(';');
  const issuer = ISSUER.exec(head!);
  if (!issuer) return null;
  const parameters: IssueValue['parameters'] = [];
  if (!(rest.length === 1 && new RegExp(`^${WSP}*$`).test(rest[0]!))) {
    for (const text of rest) {
      const parameter = PARAMETER.exec(text);
      if (!parameter) return null;
      parameters.push({ tag: parameter[1]!, value: parameter[2]! });
    }
  }
  return { issuer: issuer[1]!.toLowerCase(), parameters };
}

/**
 * Why this `issue`/`issuewild` record does not authorise `ca`, or null when it does. Parameters by
 * RFC 8657: `validationmethods` must list dns-01 (a property with two of them, or a malformed method
 * name, is unsatisfiable, as Boulder reads it); `accounturi` names the ACME account that may order —
 * httpsok's account with the CA is unknown to certq, so one well-formed `accounturi` is not held
 * against the record (reported in `accountUris`), while two of them, or one that is not an absolute
 * URI, make it unsatisfiable (RFC 8657 §3).
 */
export function recordRefusal(record: CaaRecord, ca: CaaCa): string | null {
  const parsed = parseIssueValue(record.value);
  if (parsed === null)
    return "its value does not follow RFC 8659's grammar (issuer-domain-name [; tag=value]…), so it allows no CA";
  if (parsed.issuer === '') return 'it names no issuer, so it allows no CA';
  if (parsed.issuer !== CAA_ISSUER_DOMAINS[ca]) return `it allows ${parsed.issuer} only`;
  const methods = parsed.parameters.filter((p) => p.tag === 'validationmethods');
  if (methods.length > 1) return 'it has more than one validationmethods parameter, so it allows no CA';
  if (methods.length === 1) {
    const list = methods[0]!.value.split(',');
    if (!list.every((m) => /^[A-Za-z0-9-]+$/.test(m)) || !list.includes(HTTPSOK_VALIDATION_METHOD))
      return `its validationmethods=${methods[0]!.value} does not include ${HTTPSOK_VALIDATION_METHOD}, the method httpsok validates by`;
  }
  const accounts = parsed.parameters.filter((p) => p.tag === 'accounturi');
  if (accounts.length > 1) return 'it has more than one accounturi parameter, so it allows no CA';
  if (accounts.length === 1 && !URL.canParse(accounts[0]!.value))
    return `its accounturi=${accounts[0]!.value} is not a URI, so it allows no CA`;
  return null;
}

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
      /**
       * `accounturi` values of the records that allow a CA: the CA issues only for that ACME account,
       * which certq cannot check (httpsok's account is not known to it). Empty when none.
       */
      accountUris: string[];
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
        accountUris: accountUrisOf(relevantRecords(outcome.value, wildcard)),
      };
    }
  }
  return { kind: 'policy', domain, recordName: null, records: [], allowed: [...CAA_CAS], accountUris: [] };
}

/**
 * RFC 8659 §4: for a wildcard, `issuewild` properties, when there are any, replace `issue`; no such
 * property at all leaves issuance open; an unknown property flagged critical closes it.
 */
function relevantRecords(records: readonly CaaRecord[], wildcard: boolean): CaaRecord[] {
  const wild = records.filter((r) => r.tag === 'issuewild');
  return wildcard && wild.length > 0 ? wild : records.filter((r) => r.tag === 'issue');
}

function closedByCriticalTag(records: readonly CaaRecord[]): boolean {
  return records.some((r) => (r.flags & ISSUER_CRITICAL) !== 0 && !KNOWN_TAGS.has(r.tag));
}

/** The CAs a relevant RRset lets issue (RFC 8659 §4, RFC 8657 parameters): see `recordRefusal`. */
export function allowedCas(records: readonly CaaRecord[], wildcard: boolean): CaaCa[] {
  if (closedByCriticalTag(records)) return [];
  const relevant = relevantRecords(records, wildcard);
  if (relevant.length === 0) return [...CAA_CAS];
  return CAA_CAS.filter((ca) => relevant.some((r) => recordRefusal(r, ca) === null));
}

function accountUrisOf(records: readonly CaaRecord[]): string[] {
  const uris = new Set<string>();
  for (const record of records) {
    const parsed = parseIssueValue(record.value);
    if (!parsed || !CAA_CAS.some((ca) => recordRefusal(record, ca) === null)) continue;
    for (const p of parsed.parameters) if (p.tag === 'accounturi') uris.add(p.value);
  }
  return [...uris];
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
  const critical = policy.records.find((r) => (r.flags & ISSUER_CRITICAL) !== 0 && !KNOWN_TAGS.has(r.tag));
  const near = relevantRecords(policy.records, policy.domain.startsWith('*.'))
    .map((record) => ({ record, why: recordRefusal(record, ca) }))
    .find(({ why }) => why !== null && !why.startsWith('it allows '));
  const because = critical
    ? ` (${formatCaaRecord(critical)} is an unknown property flagged critical, which forbids every CA: remove it or clear its flag)`
    : near
      ? ` (${formatCaaRecord(near.record)}: ${near.why})`
      : '';
  return (
    `The CAA records at ${policy.recordName} (${shown}) do not allow ${CA_NAMES[ca]} to issue for ${policy.domain}${because}: ` +
    `add the record ${policy.recordName} CAA 0 ${tag} "${CAA_ISSUER_DOMAINS[ca]}"${others}.`
  );
}
