import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import type { ApplicationData, FailedData, IssuedData, IssuingData, SimStats } from '../src/index';
import { start } from './helpers';

const SECOND = 1000;

describe('POST /v1/cert/apply and GET /v1/cert/apply/:id', () => {
  it('returns the id as a string; ids are sequential; the GET answers the id as a number', async () => {
    const { call, clock } = await start({ issueSeconds: 30 });
    const a = await call<string>('POST', '/v1/cert/apply', { domainList: ['*.example.com', 'example.com'] });
    const b = await call<string>('POST', '/v1/cert/apply', { domainList: ['b.example.com'] });
    expect(a.json.code).toBe(0);
    expect(typeof a.json.data).toBe('string');
    expect(a.json.data).toMatch(/^\d+$/);
    expect(Number(b.json.data)).toBe(Number(a.json.data) + 1);

    const got = await call<IssuingData>('GET', `/v1/cert/apply/${a.json.data}`);
    expect(got.json.code).toBe(0);
    expect(got.json.data).toEqual({
      id: Number(a.json.data),
      status: 2,
      domains: '*.example.com,example.com',
      progress: 0,
    });
    clock.advance(10 * SECOND);
  });

  it('reports progress rising with elapsed time, then status 1 with every documented field', async () => {
    const { call, clock } = await start({ issueSeconds: 40 });
    const id = (
      await call<string>('POST', '/v1/cert/apply', { domainList: ['*.example.com', 'example.com'] })
    ).json.data;
    const seen: number[] = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(10 * SECOND);
      const res = await call<IssuingData>('GET', `/v1/cert/apply/${id}`);
      expect(res.json.data.status).toBe(2);
      seen.push(res.json.data.progress);
    }
    expect(seen).toEqual([25, 50, 75]);

    clock.advance(10 * SECOND);
    const done = await call<IssuedData>('GET', `/v1/cert/apply/${id}`);
    expect(done.json.code).toBe(0);
    const data = done.json.data;
    expect(Object.keys(data).sort()).toEqual(
      [
        'id',
        'status',
        'algorithm',
        'ca',
        'name',
        'domains',
        'notBefore',
        'notAfter',
        'certificate',
        'privateKey',
        'fingerprints',
        'progress',
      ].sort(),
    );
    expect(data).toMatchObject({
      id: Number(id),
      status: 1,
      algorithm: 'ECC',
      ca: 'google',
      name: '*.example.com',
      domains: '*.example.com,example.com',
      progress: 100,
    });
    expect(data.notBefore).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(data.notAfter).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(data.fingerprints).toMatch(/^[0-9a-f]{64}$/);

    // The same certificate on every later read.
    clock.advance(10 * SECOND);
    const again = await call<IssuedData>('GET', `/v1/cert/apply/${id}`);
    expect(again.json.data).toEqual(data);
  });

  it('keeps algorithm and ca as asked, and rejects unknown ones with code 400', async () => {
    const { call } = await start();
    const rsa = await call<string>('POST', '/v1/cert/apply', {
      domainList: ['rsa.example.com'],
      algorithm: 'RSA',
      ca: 'zerossl',
    });
    const got = await call<IssuedData>('GET', `/v1/cert/apply/${rsa.json.data}`);
    expect(got.json.data).toMatchObject({ algorithm: 'RSA', ca: 'zerossl', status: 1 });

    for (const body of [
      { domainList: ['a.example.com'], algorithm: 'DSA' },
      { domainList: ['a.example.com'], ca: 'verisign' },
      { domainList: ['a.example.com'], notifyUrl: 'not a url' },
      { domainList: [] },
      { algorithm: 'ECC' },
    ]) {
      const res = await call('POST', '/v1/cert/apply', body);
      expect(res.status).toBe(200);
      expect(res.json.code).toBe(400);
    }
  });

  it('refuses to apply for a domain that does not verify', async () => {
    const { call, sim } = await start();
    const res = await call('POST', '/v1/cert/apply', { domainList: ['ok.example.com', 'bad.invalid'] });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ code: 400, msg: 'domain not verified: bad.invalid', data: null });
    expect(sim.stats().apply).toBe(0);

    const records = await start({ verify: 'records' });
    const refused = await records.call('POST', '/v1/cert/apply', { domainList: ['example.com'] });
    expect(refused.json).toMatchObject({ code: 400, msg: 'domain not verified: example.com' });
    const dv = await records.call<{ configs: { host: string; hostValue: string }[] }>('POST', '/v1/cert/dv', {
      domainList: ['example.com'],
    });
    const cfg = dv.json.data.configs[0]!;
    records.sim.setDns(`${cfg.host}.example.com`, cfg.hostValue);
    expect((await records.call('POST', '/v1/cert/apply', { domainList: ['example.com'] })).json.code).toBe(0);
  });

  it('ends applications for *.fail.test with status 3 and a reason', async () => {
    const { call, clock } = await start({ issueSeconds: 20 });
    const id = (await call<string>('POST', '/v1/cert/apply', { domainList: ['x.fail.test'] })).json.data;
    const issuing = await call<ApplicationData>('GET', `/v1/cert/apply/${id}`);
    expect(issuing.json.data.status).toBe(2);
    clock.advance(20 * SECOND);
    const failed = await call<FailedData>('GET', `/v1/cert/apply/${id}`);
    expect(failed.json.code).toBe(0);
    expect(failed.json.data).toMatchObject({ id: Number(id), status: 3, domains: 'x.fail.test' });
    expect(failed.json.data.msg).toContain('x.fail.test');
    expect(failed.json.data.reason).toBe(failed.json.data.msg);
    expect(failed.json.data).not.toHaveProperty('certificate');
  });

  it('answers 404 for an unknown id and for another account’s application', async () => {
    const { call, clock } = await start();
    const unknown = await call('GET', '/v1/cert/apply/999999999');
    expect(unknown.status).toBe(200);
    expect(unknown.json).toMatchObject({ code: 404, msg: 'application not found' });
    expect((await call('GET', '/v1/cert/apply/abc')).json.code).toBe(404);

    const id = (await call<string>('POST', '/v1/cert/apply', { domainList: ['mine.example.com'] })).json.data;
    const other = await call('GET', `/v1/cert/apply/${id}`, undefined, 'someone-else');
    expect(other.json).toMatchObject({ code: 404, msg: 'application not found' });
    clock.advance(10 * SECOND);
    expect((await call('GET', `/v1/cert/apply/${id}`)).json.code).toBe(0);
  });

  it('requires the OpenApiKey on apply and get (HTTP 200, code 401)', async () => {
    const { call } = await start({ apiKeys: ['good'] });
    const apply = await call('POST', '/v1/cert/apply', { domainList: ['a.example.com'] }, 'bad');
    expect(apply.status).toBe(200);
    expect(apply.json).toMatchObject({ code: 401, msg: 'OpenApiKey invalid' });
    const get = await call('GET', '/v1/cert/apply/236417', undefined, null);
    expect(get.status).toBe(200);
    expect(get.json).toMatchObject({ code: 401, msg: 'OpenApiKey invalid' });
  });
});

describe('the 10 s rule', () => {
  it('answers 429 to a GET sooner than 10 s after the previous one, and counts it', async () => {
    const { call, clock, sim } = await start({ issueSeconds: 60 });
    const id = (await call<string>('POST', '/v1/cert/apply', { domainList: ['a.example.com'] })).json.data;
    const path = `/v1/cert/apply/${id}`;
    expect((await call('GET', path)).json.code).toBe(0);

    clock.advance(5 * SECOND);
    const early = await call('GET', path);
    expect(early.status).toBe(200);
    expect(early.json).toMatchObject({ code: 429, msg: 'too frequent', data: null });
    expect(sim.stats().tooFrequent).toBe(1);

    // The 429 itself counted as a request: 9.999 s later is still too soon, 10 s after it is fine.
    clock.advance(10 * SECOND - 1);
    expect((await call('GET', path)).json.code).toBe(429);
    clock.advance(10 * SECOND);
    expect((await call('GET', path)).json.code).toBe(0);
    expect(sim.stats()).toMatchObject({ get: 4, tooFrequent: 2 });
  });

  it('counts an injected 500 as a request for that id', async () => {
    let random = 0.99;
    const { call, clock, sim } = await start({ issueSeconds: 60, failRate: 0.5, random: () => random });
    const id = (await call<string>('POST', '/v1/cert/apply', { domainList: ['a.example.com'] })).json.data;
    const path = `/v1/cert/apply/${id}`;

    random = 0.1;
    const injected = await call('GET', path);
    expect(injected.status).toBe(500);

    random = 0.99;
    clock.advance(5 * SECOND);
    expect((await call('GET', path)).json).toMatchObject({ code: 429, msg: 'too frequent' });
    clock.advance(10 * SECOND);
    expect((await call('GET', path)).json.code).toBe(0);
    expect(sim.stats()).toMatchObject({ get: 3, tooFrequent: 1 });
  });

  it('applies per id: polling two applications at once is fine', async () => {
    const { call } = await start({ issueSeconds: 60 });
    const a = (await call<string>('POST', '/v1/cert/apply', { domainList: ['a.example.com'] })).json.data;
    const b = (await call<string>('POST', '/v1/cert/apply', { domainList: ['b.example.com'] })).json.data;
    expect((await call('GET', `/v1/cert/apply/${a}`)).json.code).toBe(0);
    expect((await call('GET', `/v1/cert/apply/${b}`)).json.code).toBe(0);
  });
});

describe('failure injection and latency', () => {
  it('answers HTTP 500 with a non-envelope body and creates nothing (SIM_FAIL_RATE)', async () => {
    let random = 0.2;
    const { call, sim } = await start({ failRate: 0.25, random: () => random });
    const dv = await call('POST', '/v1/cert/dv', { domainList: ['a.example.com'] });
    expect(dv.status).toBe(500);
    expect(dv.json).toBeUndefined();
    expect(dv.text).toContain('500');

    const apply = await call('POST', '/v1/cert/apply', { domainList: ['a.example.com'] });
    expect(apply.status).toBe(500);
    expect(sim.stats().apply).toBe(0);
    expect(sim.stats().appliesByDomains).toEqual({});

    random = 0.25; // not below the rate: served normally
    const ok = await call<string>('POST', '/v1/cert/apply', { domainList: ['a.example.com'] });
    expect(ok.json.code).toBe(0);
    expect(ok.json.data).toBe('236417');
    expect(sim.stats()).toMatchObject({ apply: 1, appliesByDomains: { 'a.example.com': 1 } });
  });

  it('fails every request with rate 1 and none with rate 0', async () => {
    const always = await start({ failRate: 1 });
    for (let i = 0; i < 5; i++) {
      expect((await always.call('POST', '/v1/cert/dv', { domainList: ['a.example.com'] })).status).toBe(500);
    }
    const never = await start({ failRate: 0, random: () => 0 });
    expect((await never.call('POST', '/v1/cert/dv', { domainList: ['a.example.com'] })).status).toBe(200);
  });

  it('adds SIM_LATENCY_MS to upstream responses only', async () => {
    const { call, url } = await start({ latencyMs: 150 });
    let t = performance.now();
    await call('POST', '/v1/cert/dv', { domainList: ['a.example.com'] });
    expect(performance.now() - t).toBeGreaterThanOrEqual(140);
    t = performance.now();
    const stats = await request(`${url}/_sim/stats`);
    await stats.body.dump();
    expect(performance.now() - t).toBeLessThan(140);
  });
});

describe('control API', () => {
  it('counts requests in /_sim/stats and clears them with /_sim/reset', async () => {
    const { call, url, clock, sim } = await start({ issueSeconds: 30 });
    await call('POST', '/v1/cert/dv', { domainList: ['a.com', 'b.com'] });
    const id = (await call<string>('POST', '/v1/cert/apply', { domainList: ['a.com', 'b.com'] })).json.data;
    await call('POST', '/v1/cert/apply', { domainList: ['a.com', 'b.com'] });
    await call('POST', '/v1/cert/apply', { domainList: ['c.com'] });
    await call('GET', `/v1/cert/apply/${id}`);
    await call('GET', `/v1/cert/apply/${id}`);

    const res = await request(`${url}/_sim/stats`);
    expect(res.statusCode).toBe(200);
    const stats = (await res.body.json()) as SimStats;
    expect(stats).toEqual({
      dv: 1,
      apply: 3,
      get: 2,
      callbacks: 0,
      tooFrequent: 1,
      appliesByDomains: { 'a.com,b.com': 2, 'c.com': 1 },
    });
    expect(sim.stats()).toEqual(stats);

    const caBefore = await (await request(`${url}/_sim/ca`)).body.text();
    const reset = await request(`${url}/_sim/reset`, { method: 'POST' });
    expect(reset.statusCode).toBe(204);
    await reset.body.dump();
    expect(sim.stats()).toEqual({
      dv: 0,
      apply: 0,
      get: 0,
      callbacks: 0,
      tooFrequent: 0,
      appliesByDomains: {},
    });
    clock.advance(10 * SECOND);
    expect((await call('GET', `/v1/cert/apply/${id}`)).json.code).toBe(404);
    expect(await (await request(`${url}/_sim/ca`)).body.text()).toBe(caBefore);
    // Ids keep increasing across a reset, so an old id never names a new application.
    const next = (await call<string>('POST', '/v1/cert/apply', { domainList: ['a.com'] })).json.data;
    expect(Number(next)).toBeGreaterThan(Number(id));
  });

  it('reset() clears DNS records and poll times too', async () => {
    const { call, sim } = await start({ verify: 'records', issueSeconds: 30 });
    const dv = await call<{ configs: { host: string; hostValue: string }[] }>('POST', '/v1/cert/dv', {
      domainList: ['example.com'],
    });
    sim.setDns('_acme-challenge.example.com', dv.json.data.configs[0]!.hostValue);
    const id = (await call<string>('POST', '/v1/cert/apply', { domainList: ['example.com'] })).json.data;
    await call('GET', `/v1/cert/apply/${id}`);
    sim.reset();
    expect((await call('POST', '/v1/cert/apply', { domainList: ['example.com'] })).json.code).toBe(400);
    // No 429 from the poll before the reset.
    expect((await call('GET', `/v1/cert/apply/${id}`)).json.code).toBe(404);
  });

  it('serves the root CA as text/plain and validates PUT /_sim/dns', async () => {
    const { url, sim } = await start();
    const ca = await request(`${url}/_sim/ca`);
    expect(ca.statusCode).toBe(200);
    expect(String(ca.headers['content-type'])).toContain('text/plain');
    const pem = await ca.body.text();
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    expect(pem).toBe(sim.caPem);

    const bad = await request(`${url}/_sim/dns`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x' }),
    });
    expect(bad.statusCode).toBe(400);
    await bad.body.dump();
  });
});
