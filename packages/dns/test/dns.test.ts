import { type NamedServer, type SilentResolver, startNamed, startSilentResolver } from '@certq/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allowedCas,
  caaPolicy,
  checkCaa,
  checkDelayMs,
  createDnsResolver,
  type DnsResolver,
  diagnose,
  parseResolvers,
  pickCa,
  recordName,
  recordRefusal,
  TokenBucket,
  upstreamReason,
} from '../src';

// One real authoritative server (bind9's named) for the file; each test uses its own names.
let named: NamedServer;
let silent: SilentResolver;
let resolver: DnsResolver;

beforeAll(async () => {
  named = await startNamed({ servfailZones: ['broken.example'] });
  silent = await startSilentResolver();
  // A live server answers at once; the generous timeout only keeps a loaded CI machine (a just-started
  // named, a slow first query) from reading as lookup_failed. Timeouts are tested with the silent one.
  resolver = createDnsResolver({
    servers: named.address,
    timeoutMs: 5000,
    tries: 1,
    ratePerSecond: 1000,
    burst: 100,
  });
});

afterAll(async () => {
  resolver?.close();
  await silent?.close();
  await named?.stop();
});

const config = (domain: string, host = '_acme-challenge', hostValue = 'aaaa1111bbbb2222.httpsok.com') => ({
  domain,
  host,
  hostValue,
});

describe('diagnose: CNAME <host>.<registered domain>', () => {
  it('says missing, naming the exact record to create, when the name does not exist', async () => {
    const d = await diagnose(resolver, config('missing.com'));
    expect(d).toMatchObject({ domain: 'missing.com', status: 'missing', found: null });
    expect(d.reason).toContain('create CNAME _acme-challenge.missing.com → aaaa1111bbbb2222.httpsok.com');
    expect(d.checkedAt).toBeInstanceOf(Date);
  });

  it('says missing when the name exists with other records only (a TXT from another ACME client)', async () => {
    await named.update(['update add _acme-challenge.txtonly.com. 0 TXT "token"']);
    const d = await diagnose(resolver, config('txtonly.com'));
    expect(d).toMatchObject({ status: 'missing', found: null });
    expect(d.reason).toContain('other records only');
  });

  it('says wrong_target and where the CNAME points now', async () => {
    await named.setCname('_acme-challenge.wrong.com', 'old-provider.example.net');
    const d = await diagnose(resolver, config('wrong.com'));
    expect(d).toMatchObject({ status: 'wrong_target', found: 'old-provider.example.net' });
    expect(d.reason).toContain('is a CNAME to old-provider.example.net, not to aaaa1111bbbb2222.httpsok.com');
  });

  it('says ok once the record points to hostValue, and follows a change within one lookup', async () => {
    await named.setCname('_acme-challenge.fixed.com', 'elsewhere.example.net');
    expect((await diagnose(resolver, config('fixed.com'))).status).toBe('wrong_target');
    await named.setCname('_acme-challenge.fixed.com', 'AAAA1111BBBB2222.httpsok.com.');
    expect(await diagnose(resolver, config('fixed.com'))).toMatchObject({
      status: 'ok',
      found: 'aaaa1111bbbb2222.httpsok.com',
    });
  });

  it('uses the public suffix list for the registered domain: a subdomain wildcard under co.uk', async () => {
    const c = config('*.sub.shop.co.uk', '_acme-challenge.sub', 'cccc.sub.httpsok.com');
    expect(recordName(c)).toBe('_acme-challenge.sub.shop.co.uk');
    await named.setCname('_acme-challenge.sub.shop.co.uk', 'cccc.sub.httpsok.com');
    expect((await diagnose(resolver, c)).status).toBe('ok');
  });

  it('handles an IDN (punycode) domain', async () => {
    const c = config('xn--bcher-kva.de');
    expect((await diagnose(resolver, c)).status).toBe('missing');
    await named.setCname('_acme-challenge.xn--bcher-kva.de', c.hostValue);
    expect((await diagnose(resolver, c)).status).toBe('ok');
  });

  it('says lookup_failed (not the tenant’s fault) on SERVFAIL', async () => {
    const d = await diagnose(resolver, config('shop.broken.example', '_acme-challenge.shop'));
    expect(d).toMatchObject({ status: 'lookup_failed', found: null });
    expect(d.reason).toContain('ESERVFAIL');
    expect(d.reason).toContain('not a problem with your record');
  });

  it('says lookup_failed when the resolver times out, and fails over to the next resolver', async () => {
    const dead = createDnsResolver({ servers: silent.address, timeoutMs: 200, tries: 1 });
    try {
      const d = await diagnose(dead, config('missing.com'));
      expect(d.status).toBe('lookup_failed');
      expect(d.reason).toContain('timed out');
    } finally {
      dead.close();
    }
    await named.setCname('_acme-challenge.failover.com', 'aaaa1111bbbb2222.httpsok.com');
    const both = createDnsResolver({
      servers: `${silent.address},${named.address}`,
      timeoutMs: 1000,
      tries: 1,
    });
    try {
      expect((await diagnose(both, config('failover.com'))).status).toBe('ok');
      expect(both.stats()).toEqual({ [silent.address]: 1, [named.address]: 1 });
    } finally {
      both.close();
    }
  });
});

describe('CAA (RFC 8659)', () => {
  it('allows every CA when no CAA RRset exists up to the root', async () => {
    const policy = await caaPolicy(resolver, 'www.nocaa.com');
    expect(policy).toMatchObject({
      kind: 'policy',
      recordName: null,
      allowed: ['google', 'letsencrypt', 'zerossl'],
    });
  });

  it('climbs to the closest CAA RRset and names it when it forbids the CA', async () => {
    await named.setCaa('le-only.com', ['0 issue "letsencrypt.org"']);
    const { policy, diagnosis } = await checkCaa(resolver, 'a.b.le-only.com', 'google');
    expect(policy).toMatchObject({ kind: 'policy', recordName: 'le-only.com', allowed: ['letsencrypt'] });
    expect(diagnosis).toMatchObject({ domain: 'a.b.le-only.com', status: 'caa_forbidden' });
    expect(diagnosis!.reason).toContain('le-only.com (0 issue "letsencrypt.org")');
    expect(diagnosis!.reason).toContain('CAA 0 issue "pki.goog"');
    expect((await checkCaa(resolver, 'a.b.le-only.com', 'letsencrypt')).diagnosis).toBeNull();
  });

  it('stops at the closest RRset: a subdomain’s own CAA overrides its parent’s', async () => {
    await named.setCaa('closest.com', ['0 issue "letsencrypt.org"']);
    await named.setCaa('shop.closest.com', ['0 issue "pki.goog; account=1"']);
    expect(await caaPolicy(resolver, 'shop.closest.com')).toMatchObject({
      recordName: 'shop.closest.com',
      allowed: ['google'],
    });
    expect(await caaPolicy(resolver, 'closest.com')).toMatchObject({ allowed: ['letsencrypt'] });
  });

  it('uses issuewild for a wildcard when present, issue otherwise', async () => {
    await named.setCaa('wild.com', ['0 issue "letsencrypt.org"', '0 issuewild "sectigo.com"']);
    expect(await caaPolicy(resolver, '*.wild.com')).toMatchObject({ allowed: ['zerossl'] });
    expect(await caaPolicy(resolver, 'wild.com')).toMatchObject({ allowed: ['letsencrypt'] });
    await named.setCaa('issueonly.com', ['0 issue "pki.goog"']);
    expect(await caaPolicy(resolver, '*.sub.issueonly.com')).toMatchObject({ allowed: ['google'] });
    const { diagnosis } = await checkCaa(resolver, '*.wild.com', 'letsencrypt');
    expect(diagnosis!.reason).toContain('CAA 0 issuewild "letsencrypt.org"');
  });

  it('forbids every CA on an empty issuer (";") and on an unknown critical property', async () => {
    await named.setCaa('nobody.com', ['0 issue ";"']);
    expect(await caaPolicy(resolver, 'nobody.com')).toMatchObject({ allowed: [] });
    expect(
      allowedCas(
        [
          { flags: 128, tag: 'tbs', value: 'x' },
          { flags: 0, tag: 'issue', value: 'pki.goog' },
        ],
        false,
      ),
    ).toEqual([]);
    expect(allowedCas([{ flags: 0, tag: 'iodef', value: 'mailto:a@b.c' }], true)).toEqual([
      'google',
      'letsencrypt',
      'zerossl',
    ]);
  });

  it("reads a record set Node's resolver cannot parse: an empty issuer value forbids, it is no lookup failure", async () => {
    await named.setCaa('empty-issuer.com', ['0 issue ""', '0 issue "letsencrypt.org"']);
    await named.setCaa('only-empty.com', ['0 issue ""']);
    expect(await caaPolicy(resolver, 'www.empty-issuer.com')).toMatchObject({
      kind: 'policy',
      recordName: 'empty-issuer.com',
      allowed: ['letsencrypt'],
    });
    const { diagnosis } = await checkCaa(resolver, 'only-empty.com', 'letsencrypt');
    expect(diagnosis).toMatchObject({ status: 'caa_forbidden' });
    expect(diagnosis!.reason).toContain('names no issuer');
  });

  it.each([
    ['letsencrypt.org; a_b=123', 'grammar'],
    ['letsencrypt.org; foo=a\u2615b', 'grammar'],
    ['letsencrypt.org; ab=1 2 3', 'grammar'],
    ['letsencrypt.org.', 'grammar'],
    ['letsencrypt.org\r\n', 'grammar'],
    ['letsencrypt.org; validationmethods=http-01', 'does not include dns-01'],
    [
      'letsencrypt.org; validationmethods=dns-01; validationmethods=dns-01',
      'more than one validationmethods',
    ],
    ['letsencrypt.org; accounturi=a; accounturi=b', 'more than one accounturi'],
  ])('an issue value %j allows no CA (%s)', (value, why) => {
    const record = { flags: 0, tag: 'issue', value };
    expect(allowedCas([record], false)).toEqual([]);
    expect(recordRefusal(record, 'letsencrypt')).toContain(why);
  });

  it.each([
    ['letsencrypt.org; validationmethods=http-01,dns-01'],
    ['  letsencrypt.org\t;foo=bar;baz=bar'],
    ['LetsEncrypt.org'],
    ['letsencrypt.org; a-b=c'],
    ['letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1'],
  ])("an issue value %j allows Let's Encrypt", (value) => {
    expect(allowedCas([{ flags: 0, tag: 'issue', value }], false)).toEqual(['letsencrypt']);
  });

  it('lists the accounturi it cannot check, and forbids on a critical contactemail (not an issuance tag)', async () => {
    await named.setCaa('account.com', ['0 issue "letsencrypt.org; accounturi=https://acme.example/acct/7"']);
    expect(await caaPolicy(resolver, 'account.com')).toMatchObject({
      allowed: ['letsencrypt'],
      accountUris: ['https://acme.example/acct/7'],
    });
    await named.setCaa('contact.com', ['128 contactemail "ops@contact.com"', '0 issue "letsencrypt.org"']);
    const { diagnosis } = await checkCaa(resolver, 'contact.com', 'letsencrypt');
    expect(diagnosis!.reason).toContain('unknown property flagged critical');
    // Reserved flag bits other than 128 are ignored (RFC 8659 §4.1).
    expect(allowedCas([{ flags: 1, tag: 'foo', value: 'bar' }], false)).toHaveLength(3);
  });

  it('reports a failed lookup as lookup_failed, never as an open policy', async () => {
    const { policy, diagnosis } = await checkCaa(resolver, 'www.broken.example', 'google');
    expect(policy).toMatchObject({ kind: 'failed', name: 'www.broken.example', code: 'ESERVFAIL' });
    expect(diagnosis).toMatchObject({ status: 'lookup_failed' });
  });
});

describe('resolver settings and rate limit', () => {
  it('parses DNS_RESOLVERS entries and refuses what is not an address', () => {
    expect(parseResolvers('10.0.0.1, 127.0.0.1:5353,[::1]:53,::1')).toEqual([
      '10.0.0.1:53',
      '127.0.0.1:5353',
      '[::1]:53',
      '[::1]:53',
    ]);
    expect(parseResolvers('')).toEqual([]);
    expect(() => parseResolvers('dns.google')).toThrow(/not an IP address/);
    expect(() => parseResolvers('127.0.0.1:0')).toThrow(/invalid port/);
  });

  it('a token bucket hands out `burst` slots at once, then one per 1/rate', () => {
    let t = 1_000;
    const bucket = new TokenBucket(10, 3, () => t);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    expect(bucket.reserve()).toBe(100);
    expect(bucket.reserve()).toBe(200);
    t += 1_000;
    expect(bucket.reserve()).toBe(0);
  });

  it('never sends a resolver more than its rate, however many lookups are asked at once', async () => {
    const limited = createDnsResolver({
      servers: named.address,
      ratePerSecond: 20,
      burst: 2,
      timeoutMs: 1000,
    });
    try {
      const started = Date.now();
      const results = await Promise.all(
        Array.from({ length: 12 }, () => diagnose(limited, config('ratelimit.com'))),
      );
      // 2 at once, then 10 more at 20/s: at least 500 ms whatever the machine's speed.
      expect(Date.now() - started).toBeGreaterThanOrEqual(490);
      expect(results.every((r) => r.status === 'missing')).toBe(true);
      expect(limited.stats()[named.address]).toBe(12);
    } finally {
      limited.close();
    }
  });
});

describe('upstream economy policy', () => {
  const now = new Date('2026-01-01T12:00:00Z');
  it('asks httpsok first, then only when every domain is ok or an hour went by', () => {
    expect(upstreamReason({ statuses: [], lastDvAt: null, now })).toBe('first');
    const recent = new Date(now.getTime() - 59 * 60_000);
    expect(upstreamReason({ statuses: ['ok', 'missing'], lastDvAt: recent, now })).toBeNull();
    expect(upstreamReason({ statuses: ['missing', 'lookup_failed'], lastDvAt: recent, now })).toBeNull();
    expect(upstreamReason({ statuses: ['ok', 'lookup_failed'], lastDvAt: recent, now })).toBe(
      'lookup_failed',
    );
    expect(upstreamReason({ statuses: ['ok', 'ok'], lastDvAt: recent, now })).toBe('all_ok');
    const hourAgo = new Date(now.getTime() - 60 * 60_000);
    expect(upstreamReason({ statuses: ['wrong_target'], lastDvAt: hourAgo, now })).toBe('split_horizon');
  });

  it('checks every interval at first, then a tenth of the wait, up to a cap of a few minutes', () => {
    const schedule = { intervalMs: 15_000 };
    const at = (waitedMs: number) => checkDelayMs(waitedMs, schedule, () => 0.5);
    expect(at(0)).toBe(15_000);
    expect(at(140_000)).toBe(15_000);
    expect(at(600_000)).toBe(60_000);
    expect(at(50 * 60_000)).toBe(300_000);
    expect(at(72 * 3600_000)).toBe(300_000);
    expect(checkDelayMs(3600_000, { intervalMs: 100 }, () => 1)).toBe(2_000);
    expect(checkDelayMs(0, schedule, () => 0)).toBe(15_000);
  });

  it('picks the next CA every domain allows, skipping those already tried', () => {
    const all = ['google', 'letsencrypt', 'zerossl'] as const;
    expect(pickCa(['google', 'letsencrypt'], 'google', [all, ['letsencrypt']])).toBe('letsencrypt');
    expect(pickCa(['google', 'letsencrypt'], 'google', [all], ['google'])).toBe('letsencrypt');
    expect(pickCa(['google'], 'google', [['letsencrypt']])).toBeNull();
  });
});
