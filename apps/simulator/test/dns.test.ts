import { type NamedServer, startNamed } from '@certq/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountHex,
  createSimulator,
  type DvConfig,
  type FailedData,
  type IssuedData,
  loadSimulatorOptions,
} from '../src/index';
import { KEY, start } from './helpers';

interface DvData {
  configs: DvConfig[];
  valid: boolean;
}

let named: NamedServer;
beforeAll(async () => {
  named = await startNamed();
});
afterAll(async () => {
  await named?.stop();
});

describe('registered domain from the public suffix list', () => {
  it('hands out host and hostValue relative to example.co.uk, not co.uk', async () => {
    const { call } = await start();
    const res = await call<DvData>('POST', '/v1/cert/dv', {
      domainList: ['*.a.example.co.uk', 'example.co.uk'],
    });
    const hex = accountHex(KEY, 'example.co.uk');
    expect(res.json.data.configs).toMatchObject([
      { host: '_acme-challenge.a', hostValue: `${hex}.a.httpsok.com` },
      { host: '_acme-challenge', hostValue: `${hex}.httpsok.com` },
    ]);
  });

  it('refuses a public suffix as a domain', async () => {
    const { call } = await start();
    expect((await call('POST', '/v1/cert/dv', { domainList: ['*.co.uk'] })).json).toMatchObject({
      code: 400,
      msg: 'invalid domain: *.co.uk',
    });
  });

  it.each([
    'xn--a.pt',
    'xn--0.pt',
    'a.bc--de.example',
    'kawasaki.jp',
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(38)}.example`,
  ])(
    'refuses %s as a CA does (invalid Punycode, CheckHyphens, public suffix, no room for _acme-challenge)',
    async (domain) => {
      const { call } = await start();
      for (const path of ['/v1/cert/dv', '/v1/cert/apply']) {
        expect((await call('POST', path, { domainList: [domain] })).json).toMatchObject({
          code: 400,
          msg: `invalid domain: ${domain}`,
        });
      }
    },
  );
});

describe('SIM_VERIFY=dns: the CNAME resolved through a real DNS server', () => {
  it('is valid only once CNAME <host>.<registered domain> points to the handed-out hostValue', async () => {
    const { call, clock } = await start({ verify: 'dns', dnsResolver: named.address });
    const domains = ['*.shop.example.co.uk', 'xn--bcher-kva.de'];
    const before = await call<DvData>('POST', '/v1/cert/dv', { domainList: domains });
    expect(before.json.data.valid).toBe(false);
    const [shop, idn] = before.json.data.configs;
    expect((await call('POST', '/v1/cert/apply', { domainList: domains })).json.msg).toBe(
      'domain not verified: *.shop.example.co.uk',
    );

    await named.setCname(`${shop!.host}.example.co.uk`, 'somewhere.else.example');
    await named.setCname(`${idn!.host}.xn--bcher-kva.de`, idn!.hostValue);
    const wrong = await call<DvData>('POST', '/v1/cert/dv', { domainList: domains });
    expect(wrong.json.data.configs.map((c) => c.valid)).toEqual([false, true]);

    await named.setCname(`${shop!.host}.example.co.uk`, shop!.hostValue);
    const fixed = await call<DvData>('POST', '/v1/cert/dv', { domainList: domains });
    expect(fixed.json.data.valid).toBe(true);
    const id = (await call<string>('POST', '/v1/cert/apply', { domainList: domains, ca: 'letsencrypt' })).json
      .data;
    clock.advance(10_000);
    const issued = await call<IssuedData>('GET', `/v1/cert/apply/${id}`);
    expect(issued.json.data).toMatchObject({ status: 1, ca: 'letsencrypt' });
  });

  it('needs SIM_DNS_RESOLVER and names it when missing or bad', () => {
    expect(() => loadSimulatorOptions({ SIM_VERIFY: 'dns' })).toThrow(/SIM_DNS_RESOLVER/);
    expect(() => loadSimulatorOptions({ SIM_VERIFY: 'dns', SIM_DNS_RESOLVER: 'ns.example' })).toThrow(
      /SIM_DNS_RESOLVER/,
    );
    expect(() => createSimulator({ verify: 'dns' })).toThrow(/dnsResolver/);
    expect(loadSimulatorOptions({ SIM_VERIFY: 'dns', SIM_DNS_RESOLVER: '127.0.0.1:5300' })).toMatchObject({
      verify: 'dns',
      dnsResolver: '127.0.0.1:5300',
    });
  });
});

describe('SIM_CA_FAILURES', () => {
  it('ends applications for the listed CAs with status 3 naming the CA; other CAs issue', async () => {
    const { call, clock } = await start({ caFailures: ['google'], issueSeconds: 5 });
    const google = (
      await call<string>('POST', '/v1/cert/apply', { domainList: ['a.example.com'], ca: 'google' })
    ).json.data;
    const le = (
      await call<string>('POST', '/v1/cert/apply', { domainList: ['a.example.com'], ca: 'letsencrypt' })
    ).json.data;
    clock.advance(10_000);
    const failed = await call<FailedData>('GET', `/v1/cert/apply/${google}`);
    expect(failed.json.data).toMatchObject({ status: 3, domains: 'a.example.com' });
    expect(failed.json.data.reason).toContain('google');
    expect((await call<IssuedData>('GET', `/v1/cert/apply/${le}`)).json.data).toMatchObject({
      status: 1,
      ca: 'letsencrypt',
    });
  });

  it('reads SIM_CA_FAILURES and refuses an unknown CA', () => {
    expect(loadSimulatorOptions({ SIM_CA_FAILURES: 'google, zerossl' }).caFailures).toEqual([
      'google',
      'zerossl',
    ]);
    expect(loadSimulatorOptions({}).caFailures).toEqual([]);
    expect(() => loadSimulatorOptions({ SIM_CA_FAILURES: 'google,digicert' })).toThrow(/SIM_CA_FAILURES/);
  });
});
