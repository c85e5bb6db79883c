import { readFileSync } from 'node:fs';
import { type CaaRecord, caaPolicy, createDnsResolver, type DnsResolver } from '@certq/dns';
import { type NamedServer, startNamed } from '@certq/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAA_DIFFERENCES, type CaaCase } from './deliberate-differences';
import { judge } from './judge';

interface Param {
  tag: string;
  val: string;
}
const boulder = JSON.parse(readFileSync(new URL('boulder/caa.json', import.meta.url), 'utf8')) as {
  TestCAAChecking: {
    zone: Record<string, CaaRecord[]>;
    cases: { name: string; domain: string; foundAt: string; valid: boolean }[];
  };
  TestExtractIssuerDomainAndParameters: { name: string; value: string; valid: boolean; domain: string }[];
  TestFilterCAA: { name: string; records: CaaRecord[]; criticalUnknown: boolean }[];
  TestValidationMethodMatches: { name: string; params: Param[]; method: string; want: boolean }[];
  TestAccountURIMatches: { name: string; params: Param[]; want: boolean }[];
};

/** A vector as certq meets it: the record set served at `name`, the domain asked about, Boulder's verdict. */
interface Vector {
  table: string;
  name: string;
  domain: string;
  boulder: boolean;
  foundAt?: string;
}

const withParams = (params: Param[]) => [
  {
    flags: 0,
    tag: 'issue',
    value: ['letsencrypt.org', ...params.map((p) => `${p.tag}=${p.val}`)].join('; '),
  },
];

const zone = new Map<string, CaaRecord[]>(Object.entries(boulder.TestCAAChecking.zone));
const vectors: Vector[] = boulder.TestCAAChecking.cases.map((c) => ({
  table: 'TestCAAChecking',
  name: c.name,
  domain: c.domain,
  boulder: c.valid,
  foundAt: c.foundAt,
}));
/** Serves `records` at a name of its own under boulder.test and asks about that name. */
function add(table: string, name: string, records: CaaRecord[], verdict: boolean) {
  const domain = `${table.toLowerCase()}-${vectors.length}.boulder.test`;
  zone.set(domain, records);
  vectors.push({ table, name, domain, boulder: verdict });
}
for (const c of boulder.TestExtractIssuerDomainAndParameters)
  add(
    'extract',
    c.name,
    [{ flags: 0, tag: 'issue', value: c.value }],
    c.valid && c.domain === 'letsencrypt.org',
  );
for (const c of boulder.TestFilterCAA) {
  const issuers = c.records.filter((r) => r.tag === 'issue').map((r) => r.value);
  add(
    'filter',
    c.name,
    c.records,
    !c.criticalUnknown && (issuers.length === 0 || issuers.includes('letsencrypt.org')),
  );
}
for (const c of boulder.TestValidationMethodMatches)
  if (c.method === 'dns-01') add('validationmethods', c.name, withParams(c.params), c.want);
for (const c of boulder.TestAccountURIMatches) add('accounturi', c.name, withParams(c.params), c.want);

/** A CAA value in nsupdate's presentation format: printable ASCII as is, every other byte as \DDD. */
function quoted(value: string): string {
  let text = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const char = String.fromCharCode(byte);
    text +=
      byte >= 0x20 && byte <= 0x7e && char !== '"' && char !== '\\'
        ? char
        : `\\${String(byte).padStart(3, '0')}`;
  }
  return `"${text}"`;
}

let named: NamedServer;
let resolver: DnsResolver;

beforeAll(async () => {
  named = await startNamed();
  // One signed update for the whole table: a zone of ~90 names loads in one round trip.
  await named.update(
    [...zone].flatMap(([name, records]) =>
      records.map((r) => `update add ${name}. 0 CAA ${r.flags} ${r.tag} ${quoted(r.value)}`),
    ),
  );
  resolver = createDnsResolver({ servers: [named.address], caaCacheMs: 60_000 });
});

afterAll(async () => {
  resolver?.close();
  await named?.stop();
});

describe("CAA against Let's Encrypt Boulder's test tables (va/caa_test.go), records served by bind9", () => {
  it('reads every record set as written (an empty value included) and agrees but for the listed differences', async () => {
    const cases: CaaCase[] = [];
    for (const v of vectors) {
      const policy = await caaPolicy(resolver, v.domain);
      expect({ name: v.name, kind: policy.kind }).toEqual({ name: v.name, kind: 'policy' });
      if (policy.kind !== 'policy') continue;
      if (v.foundAt !== undefined)
        expect({ name: v.name, at: policy.recordName ?? '' }).toEqual({ name: v.name, at: v.foundAt });
      const served = zone.get(policy.recordName ?? '') ?? [];
      expect(policy.records.map((r) => r.value).sort()).toEqual(served.map((r) => r.value).sort());
      cases.push({
        table: v.table,
        name: v.name,
        records: policy.records,
        boulder: v.boulder,
        certq: policy.allowed.includes('letsencrypt'),
      });
    }
    const result = judge(cases, (c) => c.boulder === c.certq, CAA_DIFFERENCES);
    expect(result.unexplained).toEqual([]);
    expect(result).toMatchObject({
      applied: 89,
      agreed: 78,
      byRule: {
        'reserved flag bits ignored': 3,
        '"-" inside a parameter tag': 1,
        'accounturi cannot be checked': 5,
        'one parameter judged alone': 2,
      },
    });
  });
});
