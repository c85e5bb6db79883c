import { describe, expect, it } from 'vitest';
import {
  applicationDataSchema,
  applyDataSchema,
  DEFAULT_FAILURE_REASON,
  envelopeSchema,
  formatUpstreamDate,
  issuedApplicationSchema,
  parseUpstreamDate,
  verifyDataSchema,
} from '../src/index';
// The payloads of the OpenAPI page, verbatim.
import * as documented from './support/fixtures';

describe('documented examples', () => {
  it('verify: a verified domain', () => {
    const env = envelopeSchema.parse(documented.verifyValidEnvelope);
    expect(env.code).toBe(0);
    expect(env.traceId).toBe('684c741fdb871fdd218c78b8ba438252');
    // The documented example, field for field (support/fixtures copies it from the OpenAPI page).
    expect(verifyDataSchema.parse(env.data)).toEqual(documented.verifyValidEnvelope.data);
    expect(documented.verifyValidEnvelope.data.configs[0]!.hostValue).toBe('68bf0af7b3854cdd.httpsok.com');
  });

  it('verify: an unverified domain is a normal answer with valid false', () => {
    const env = envelopeSchema.parse(documented.verifyInvalidEnvelope);
    expect(env.code).toBe(0);
    const data = verifyDataSchema.parse(env.data);
    expect(data).toEqual(documented.verifyInvalidEnvelope.data);
    expect(data.valid).toBe(false);
    expect(data.configs.map((c) => c.valid)).toEqual([false]);
  });

  it('apply: the id string 236417', () => {
    const env = envelopeSchema.parse(documented.applyEnvelope);
    expect(applyDataSchema.parse(env.data)).toBe('236417');
    expect(env.traceId).toBe('e9fb0dd488529912085f304dde3b9d6d');
  });

  it('get: the issued application 236417', () => {
    const env = envelopeSchema.parse(documented.issuedEnvelope);
    const app = applicationDataSchema.parse(env.data);
    expect(app).toEqual({
      status: 'issued',
      id: '236417',
      domains: ['*.httpsok.com', 'httpsok.com'],
      algorithm: 'ECC',
      ca: 'google',
      name: '*.httpsok.com',
      notBefore: new Date('2024-12-10T16:24:32.000Z'),
      notAfter: new Date('2025-03-10T16:24:31.000Z'),
      certificate: documented.issuedData.certificate,
      privateKey: documented.issuedData.privateKey,
      fingerprints: '36daaafc34e7be4f9aa65448bc4f2703e5a5d8234e22ca07489ca061a78f3440',
      progress: 100,
    });
  });

  it('get: the issuing application 236417 at 75 %', () => {
    const env = envelopeSchema.parse(documented.issuingEnvelope);
    expect(applicationDataSchema.parse(env.data)).toEqual({
      status: 'issuing',
      id: '236417',
      domains: ['*.httpsok.com', 'httpsok.com'],
      progress: 75,
    });
  });

  it('callback: the issued body without an envelope', () => {
    const app = issuedApplicationSchema.parse(documented.callbackBody);
    expect(app.status).toBe('issued');
    expect(app.id).toBe('236417');
    expect(app.notAfter.toISOString()).toBe('2025-03-10T16:24:31.000Z');
  });
});

describe('leniency', () => {
  it('accepts the id as a number or a string, and progress as a numeric string', () => {
    const a = applicationDataSchema.parse({ id: '236417', status: 2, domains: 'a.com', progress: '40' });
    expect(a).toEqual({ status: 'issuing', id: '236417', domains: ['a.com'], progress: 40 });
    const b = applicationDataSchema.parse({ id: 236417, status: '2', domains: 'a.com' });
    expect(b).toEqual({ status: 'issuing', id: '236417', domains: ['a.com'], progress: 0 });
    expect(applyDataSchema.parse(236417)).toBe('236417');
  });

  it('ignores extra fields and tolerates missing optional fields while issuing', () => {
    const a = applicationDataSchema.parse({
      id: 7,
      status: 2,
      domains: ' a.com , *.b.com ,',
      progress: null,
      algorithm: null,
      surprise: { nested: true },
    });
    expect(a).toEqual({ status: 'issuing', id: '7', domains: ['a.com', '*.b.com'], progress: 0 });
  });

  it('clamps progress into 0..100', () => {
    expect(applicationDataSchema.parse({ id: 1, status: 2, domains: 'a.com', progress: 140 })).toMatchObject({
      progress: 100,
    });
  });

  it('falls back for missing issued metadata', () => {
    const { algorithm, ca, name, fingerprints, ...rest } = documented.issuedData;
    const app = issuedApplicationSchema.parse({ ...rest, fingerprints: '36:DA:AA' });
    expect(app.algorithm).toBeNull();
    expect(app.ca).toBeNull();
    expect(app.name).toBe('*.httpsok.com');
    expect(app.fingerprints).toBe('36daaa');
    expect(app.progress).toBe(100);
  });

  it('accepts a verify config valid flag as 0/1 and computes the top-level valid as an AND', () => {
    const d = verifyDataSchema.parse({
      valid: true,
      configs: [
        { domain: 'a.com', host: '_acme-challenge', hostValue: 'x.httpsok.com', valid: 1 },
        { domain: '*.a.com', host: '_acme-challenge', hostValue: 'x.httpsok.com', valid: 0 },
      ],
    });
    expect(d.valid).toBe(false);
    expect(d.configs.map((c) => c.valid)).toEqual([true, false]);
    expect(verifyDataSchema.parse({ configs: [] }).valid).toBe(false);
  });

  it('reads a failure reason from any reason-like field', () => {
    const base = { id: 9, status: 3, domains: 'a.com' };
    expect(applicationDataSchema.parse(base)).toEqual({
      status: 'failed',
      id: '9',
      domains: ['a.com'],
      reason: DEFAULT_FAILURE_REASON,
    });
    expect(applicationDataSchema.parse({ ...base, msg: 'CAA forbids' })).toMatchObject({
      reason: 'CAA forbids',
    });
    expect(applicationDataSchema.parse({ ...base, failReason: 'rate limited by CA' })).toMatchObject({
      reason: 'rate limited by CA',
    });
    expect(applicationDataSchema.parse({ ...base, lastErrorText: 'dns timeout' })).toMatchObject({
      reason: 'dns timeout',
    });
  });
});

describe('strictness', () => {
  it('rejects an unknown status', () => {
    for (const status of [0, 4, '9', null, 'issued']) {
      expect(applicationDataSchema.safeParse({ id: 1, status, domains: 'a.com' }).success).toBe(false);
    }
  });

  /** Whether an issued answer with `fields` changed from the documented one passes. */
  const issuedWith = (fields: Record<string, unknown>) =>
    issuedApplicationSchema.safeParse({ ...documented.issuedData, ...fields }).success;

  it('rejects an issued answer without a certificate block or a private key block', () => {
    expect(issuedWith({ certificate: 'MIIE…' })).toBe(false);
    expect(issuedWith({ certificate: undefined })).toBe(false);
    expect(issuedWith({ privateKey: '-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----' })).toBe(false);
    expect(issuedWith({ privateKey: '' })).toBe(false);
    for (const header of ['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']) {
      expect(issuedWith({ privateKey: `-----BEGIN ${header}-----\nAAAA\n-----END ${header}-----\n` })).toBe(
        true,
      );
    }
  });

  it('rejects an issued answer with malformed dates', () => {
    expect(issuedWith({ notAfter: '11/03/2025' })).toBe(false);
    expect(issuedWith({ notBefore: undefined })).toBe(false);
  });

  it('rejects missing domains and unsafe ids', () => {
    expect(applicationDataSchema.safeParse({ id: 1, status: 2 }).success).toBe(false);
    expect(applicationDataSchema.safeParse({ id: 1, status: 2, domains: ' , ' }).success).toBe(false);
    expect(applyDataSchema.safeParse('../etc').success).toBe(false);
    expect(applyDataSchema.safeParse('').success).toBe(false);
    expect(applyDataSchema.safeParse(-1).success).toBe(false);
    expect(applyDataSchema.safeParse(1.5).success).toBe(false);
  });

  it('never echoes a rejected private key in issue messages', () => {
    const result = issuedApplicationSchema.safeParse({
      ...documented.issuedData,
      privateKey: 'TOPSECRETKEYMATERIAL',
      certificate: 'TOPSECRETCERT',
    });
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error?.issues)).not.toContain('TOPSECRET');
  });
});

describe('upstream dates (assumed UTC+8)', () => {
  it('parses as China Standard Time', () => {
    expect(parseUpstreamDate('2024-12-11 00:24:32').toISOString()).toBe('2024-12-10T16:24:32.000Z');
    expect(parseUpstreamDate('2025-01-01 08:00:00').toISOString()).toBe('2025-01-01T00:00:00.000Z');
  });

  it('honours an explicit zone when one is sent', () => {
    expect(parseUpstreamDate('2024-12-11T00:24:32Z').toISOString()).toBe('2024-12-11T00:24:32.000Z');
    expect(parseUpstreamDate('2024-12-11 00:24:32+02:00').toISOString()).toBe('2024-12-10T22:24:32.000Z');
    expect(parseUpstreamDate('2024-12-11 00:24:32.5-0130').toISOString()).toBe('2024-12-11T01:54:32.500Z');
  });

  it('rejects malformed and impossible dates', () => {
    for (const s of ['', '2024-12-11', '2024-02-30 00:00:00', '2024-12-11 24:00:00', 'tomorrow']) {
      expect(() => parseUpstreamDate(s)).toThrow(RangeError);
    }
  });

  it('formats as the inverse of parse', () => {
    const d = new Date('2024-12-10T16:24:32.000Z');
    expect(formatUpstreamDate(d)).toBe('2024-12-11 00:24:32');
    for (const s of [
      '2024-12-11 00:24:32',
      '2025-03-11 00:24:31',
      '2024-02-29 23:59:59',
      '2000-01-01 00:00:00',
    ]) {
      expect(formatUpstreamDate(parseUpstreamDate(s))).toBe(s);
    }
    expect(() => formatUpstreamDate(new Date(Number.NaN))).toThrow(RangeError);
  });
});
