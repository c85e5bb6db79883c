import { createHash } from 'node:crypto';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import type { DvConfig } from '../src/index';
import { KEY, start } from './helpers';

interface DvData {
  configs: DvConfig[];
  valid: boolean;
}

const hex = (key: string, registered: string) =>
  createHash('sha256')
    .update(key + ':' + registered)
    .digest('hex')
    .slice(0, 16);

describe('POST /v1/cert/dv', () => {
  it('answers the envelope {code, msg, data, traceId} with a fresh 32-hex traceId', async () => {
    const { call } = await start();
    const a = await call<DvData>('POST', '/v1/cert/dv', { domainList: ['example.com'] });
    const b = await call<DvData>('POST', '/v1/cert/dv', { domainList: ['example.com'] });
    expect(a.status).toBe(200);
    expect(a.contentType).toContain('application/json');
    expect(Object.keys(a.json).sort()).toEqual(['code', 'data', 'msg', 'traceId']);
    expect(a.json.code).toBe(0);
    expect(a.json.msg).toBe('success');
    expect(a.json.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(b.json.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(a.json.traceId).not.toBe(b.json.traceId);
  });

  it('gives a wildcard and its apex the same _acme-challenge record (documented example)', async () => {
    const { call } = await start();
    const res = await call<DvData>('POST', '/v1/cert/dv', { domainList: ['*.example.com', 'example.com'] });
    const value = `${hex(KEY, 'example.com')}.httpsok.com`;
    expect(res.json.data).toEqual({
      configs: [
        { domain: '*.example.com', host: '_acme-challenge', hostValue: value, valid: true },
        { domain: 'example.com', host: '_acme-challenge', hostValue: value, valid: true },
      ],
      valid: true,
    });
    expect(hex(KEY, 'example.com')).toMatch(/^[0-9a-f]{16}$/);
  });

  it('puts the labels under the registered domain into host and hostValue (observed examples)', async () => {
    const { call } = await start();
    const res = await call<DvData>('POST', '/v1/cert/dv', {
      domainList: ['*.sub.example.com', 'demo.example.cn', 'a.b.example.com', '*.example.org'],
    });
    const [sub, demo, deep, wild] = res.json.data.configs;
    expect(sub).toMatchObject({
      host: '_acme-challenge.sub',
      hostValue: `${hex(KEY, 'example.com')}.sub.httpsok.com`,
    });
    expect(demo).toMatchObject({
      host: '_acme-challenge.demo',
      hostValue: `${hex(KEY, 'example.cn')}.demo.httpsok.com`,
    });
    expect(deep).toMatchObject({
      host: '_acme-challenge.a.b',
      hostValue: `${hex(KEY, 'example.com')}.a.b.httpsok.com`,
    });
    expect(wild).toMatchObject({
      host: '_acme-challenge',
      hostValue: `${hex(KEY, 'example.org')}.httpsok.com`,
    });
  });

  it('derives hostValue from the account: stable per key and registered domain, different across keys', async () => {
    const { call } = await start();
    const one = await call<DvData>('POST', '/v1/cert/dv', { domainList: ['www.example.com'] });
    const again = await call<DvData>('POST', '/v1/cert/dv', { domainList: ['www.example.com'] });
    const other = await call<DvData>('POST', '/v1/cert/dv', { domainList: ['www.example.com'] }, 'other-key');
    expect(again.json.data.configs[0]!.hostValue).toBe(one.json.data.configs[0]!.hostValue);
    expect(other.json.data.configs[0]!.hostValue).not.toBe(one.json.data.configs[0]!.hostValue);
  });

  it('auto mode: every domain verifies except under .invalid; top-level valid is the AND', async () => {
    const { call } = await start({ verify: 'auto' });
    const res = await call<DvData>('POST', '/v1/cert/dv', { domainList: ['ok.example.com', 'nope.invalid'] });
    expect(res.json.code).toBe(0);
    expect(res.json.data.configs.map((c) => c.valid)).toEqual([true, false]);
    expect(res.json.data.valid).toBe(false);
  });

  it('records mode: valid only once the CNAME set through PUT /_sim/dns matches', async () => {
    const { call, url, sim } = await start({ verify: 'records' });
    const domains = ['*.sub.example.com', 'sub.example.com', 'example.com'];
    const before = await call<DvData>('POST', '/v1/cert/dv', { domainList: domains });
    expect(before.json.code).toBe(0);
    expect(before.json.data.valid).toBe(false);
    expect(before.json.data.configs.every((c) => !c.valid)).toBe(true);

    const sub = before.json.data.configs[0]!;
    // A wrong value does not verify.
    const wrong = await request(`${url}/_sim/dns`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: '_acme-challenge.sub.example.com', value: 'elsewhere.httpsok.com' }),
    });
    expect(wrong.statusCode).toBe(204);
    await wrong.body.dump();
    expect((await call<DvData>('POST', '/v1/cert/dv', { domainList: domains })).json.data.valid).toBe(false);

    // Case and trailing dots do not matter.
    const put = await request(`${url}/_sim/dns`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: '_ACME-Challenge.sub.example.com.',
        value: sub.hostValue.toUpperCase() + '.',
      }),
    });
    expect(put.statusCode).toBe(204);
    await put.body.dump();
    const mid = await call<DvData>('POST', '/v1/cert/dv', { domainList: domains });
    expect(mid.json.data.configs.map((c) => c.valid)).toEqual([true, true, false]);
    expect(mid.json.data.valid).toBe(false);

    sim.setDns(`${mid.json.data.configs[2]!.host}.example.com`, mid.json.data.configs[2]!.hostValue);
    const after = await call<DvData>('POST', '/v1/cert/dv', { domainList: domains });
    expect(after.json.data.valid).toBe(true);

    // Another account's record value does not match this one's.
    const otherKey = await call<DvData>('POST', '/v1/cert/dv', { domainList: ['example.com'] }, 'other');
    expect(otherKey.json.data.valid).toBe(false);
  });

  it('rejects a missing, empty or unknown OpenApiKey with HTTP 200 and code 401', async () => {
    const open = await start();
    const missing = await open.call('POST', '/v1/cert/dv', { domainList: ['example.com'] }, null);
    expect(missing.status).toBe(200);
    expect(missing.json).toMatchObject({ code: 401, msg: 'OpenApiKey invalid' });
    expect(missing.json.traceId).toMatch(/^[0-9a-f]{32}$/);
    const empty = await open.call('POST', '/v1/cert/dv', { domainList: ['example.com'] }, '');
    expect(empty.json.code).toBe(401);
    expect(
      (await open.call('POST', '/v1/cert/dv', { domainList: ['example.com'] }, 'anything')).json.code,
    ).toBe(0);

    const closed = await start({ apiKeys: ['k1', 'k2'] });
    const unknown = await closed.call('POST', '/v1/cert/dv', { domainList: ['example.com'] }, 'k3');
    expect(unknown.status).toBe(200);
    expect(unknown.json).toMatchObject({ code: 401, msg: 'OpenApiKey invalid', data: null });
    expect((await closed.call('POST', '/v1/cert/dv', { domainList: ['example.com'] }, 'k2')).json.code).toBe(
      0,
    );
  });

  it('answers code 400 (HTTP 200) for a bad body', async () => {
    const { call, url } = await start();
    for (const body of [
      {},
      { domainList: [] },
      { domainList: 'example.com' },
      { domainList: ['not a domain'] },
    ]) {
      const res = await call('POST', '/v1/cert/dv', body);
      expect(res.status).toBe(200);
      expect(res.json.code).toBe(400);
      expect(res.json.msg).toBeTruthy();
    }
    const broken = await request(`${url}/v1/cert/dv`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', openapikey: KEY },
      body: '{"domainList": [',
    });
    expect(broken.statusCode).toBe(200);
    expect(await broken.body.json()).toMatchObject({ code: 400, msg: 'body is not valid JSON' });
  });
});
