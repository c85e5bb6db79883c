import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  certificateDomains,
  certificateValidity,
  checkIssuedCertificate,
  coversDomains,
  keyMatchesCertificate,
  leafFingerprint,
  splitPemChain,
} from '../src/index';
import { issuedData } from './support/fixtures';
import { makeTestPki, type TestPki } from './support/test-pki';

let pki: TestPki;

beforeAll(() => {
  pki = makeTestPki();
});

afterAll(() => {
  pki?.cleanup();
});

describe('key formats are what the test claims', () => {
  it('covers SEC1, PKCS#1 and PKCS#8', () => {
    expect(pki.ecKeySec1).toContain('-----BEGIN EC PRIVATE KEY-----');
    expect(pki.ecKeyPkcs8).toContain('-----BEGIN PRIVATE KEY-----');
    expect(pki.rsaKeyPkcs1).toContain('-----BEGIN RSA PRIVATE KEY-----');
    expect(pki.rsaKeyPkcs8).toContain('-----BEGIN PRIVATE KEY-----');
  });
});

describe('splitPemChain', () => {
  it('returns each certificate block in order', () => {
    const blocks = splitPemChain(pki.ecChain);
    expect(blocks).toHaveLength(2);
    expect(new X509Certificate(blocks[0]!).subject).toContain('CN=ec');
    expect(new X509Certificate(blocks[1]!).subject).toContain('CN=certq test root');
    for (const b of blocks) expect(b.endsWith('-----END CERTIFICATE-----\n')).toBe(true);
  });

  it('copes with CRLF, surrounding text and no certificate at all', () => {
    const crlf = `junk\r\n${pki.ecChain.replace(/\n/g, '\r\n')}trailer`;
    const blocks = splitPemChain(crlf);
    expect(blocks).toHaveLength(2);
    expect(blocks[0]).not.toContain('\r');
    expect(splitPemChain(pki.ecKeySec1)).toEqual([]);
    expect(splitPemChain('')).toEqual([]);
  });
});

describe('leafFingerprint', () => {
  it('is the SHA-256 of the leaf DER as openssl computes it', () => {
    const out = pki.openssl(['x509', '-in', 'ec.pem', '-noout', '-fingerprint', '-sha256']);
    const expected = out.split('=')[1]!.trim().replaceAll(':', '').toLowerCase();
    expect(leafFingerprint(pki.ecChain)).toBe(expected);
    expect(leafFingerprint(pki.ecChain)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('throws without a certificate', () => {
    expect(() => leafFingerprint('nothing')).toThrow();
  });
});

describe('keyMatchesCertificate', () => {
  it('accepts the leaf key in every supported encoding', () => {
    expect(keyMatchesCertificate(pki.ecChain, pki.ecKeySec1)).toBe(true);
    expect(keyMatchesCertificate(pki.ecChain, pki.ecKeyPkcs8)).toBe(true);
    expect(keyMatchesCertificate(pki.rsaChain, pki.rsaKeyPkcs1)).toBe(true);
    expect(keyMatchesCertificate(pki.rsaChain, pki.rsaKeyPkcs8)).toBe(true);
  });

  it('rejects another key, of the same or another type', () => {
    expect(keyMatchesCertificate(pki.ecChain, pki.otherEcKey)).toBe(false);
    expect(keyMatchesCertificate(pki.ecChain, pki.rsaKeyPkcs1)).toBe(false);
    expect(keyMatchesCertificate(pki.rsaChain, pki.ecKeySec1)).toBe(false);
  });

  it('throws on an unparsable key', () => {
    expect(() => keyMatchesCertificate(pki.ecChain, 'garbage')).toThrow();
  });
});

/** A PEM block of `label` around `der`. */
const pemOf = (label: string, der: Buffer) =>
  `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`;
const derOf = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');

describe('EC keys: the scalar itself is checked, not only the point the file carries', () => {
  it('accepts a SEC1 key without its public point (openssl ec -no_public)', () => {
    writeFileSync(join(pki.dir, 'ec-nopub.in'), pki.ecKeySec1);
    const noPublic = pki.openssl(['ec', '-in', 'ec-nopub.in', '-no_public']);
    expect(derOf(noPublic).length).toBeLessThan(derOf(pki.ecKeySec1).length);
    expect(keyMatchesCertificate(pki.ecChain, noPublic)).toBe(true);
    expect(checkIssuedCertificate({ certificate: pki.ecChain, privateKey: noPublic, domains: [] }).ok).toBe(
      true,
    );
  });

  it("refuses another key's scalar carrying the leaf's public point (OpenSSL alone would accept it)", () => {
    const leafPoint = derOf(pki.ecKeySec1).subarray(-65);
    const forged = Buffer.concat([derOf(pki.otherEcKey).subarray(0, -65), leafPoint]);
    const forgedPem = pemOf('EC PRIVATE KEY', forged);
    // The forgery is well formed: OpenSSL parses it and, comparing the carried point, says it matches.
    const openssl = createPrivateKey({ key: forged, format: 'der', type: 'sec1' });
    expect(new X509Certificate(pki.ecLeaf).checkPrivateKey(openssl)).toBe(true);
    expect(keyMatchesCertificate(pki.ecChain, forgedPem)).toBe(false);
    expect(
      checkIssuedCertificate({ certificate: pki.ecChain, privateKey: forgedPem, domains: ['example.com'] }),
    ).toEqual({ ok: false, reason: 'private key does not match the leaf certificate' });
  });

  it('refuses a scalar outside the curve order as a key that does not parse', () => {
    const der = derOf(pki.ecKeySec1);
    const scalarAt = der.indexOf(Buffer.from([0x04, 0x20])) + 2;
    for (const fill of [0x00, 0xff]) {
      const bad = Buffer.from(der);
      bad.fill(fill, scalarAt, scalarAt + 32);
      const result = checkIssuedCertificate({
        certificate: pki.ecChain,
        privateKey: pemOf('EC PRIVATE KEY', bad),
        domains: [],
      });
      expect(result).toEqual({ ok: false, reason: 'private key does not parse (unencrypted PEM expected)' });
    }
  });

  it('reads P-384 keys the same way, and other curves through OpenSSL', () => {
    for (const curve of ['secp384r1', 'secp521r1']) {
      pki.openssl(['ecparam', '-name', curve, '-genkey', '-noout', '-out', `${curve}.key`]);
      pki.openssl([
        'req',
        '-new',
        '-x509',
        '-key',
        `${curve}.key`,
        '-subj',
        '/CN=p.example.com',
        '-addext',
        'subjectAltName=DNS:p.example.com',
        '-days',
        '30',
        '-out',
        `${curve}.pem`,
      ]);
      const read = (name: string) => readFileSync(join(pki.dir, name), 'utf8');
      const key = read(`${curve}.key`);
      expect(key).toContain('-----BEGIN EC PRIVATE KEY-----');
      const input = { certificate: read(`${curve}.pem`), domains: ['p.example.com'] };
      expect(checkIssuedCertificate({ ...input, privateKey: key }).ok).toBe(true);
      expect(checkIssuedCertificate({ ...input, privateKey: pki.ecKeySec1 })).toMatchObject({
        ok: false,
        reason: 'private key does not match the leaf certificate',
      });
    }
  });

  it('a malformed or unusual SEC1 key gets the verdict OpenSSL gives it', () => {
    const der = derOf(pki.ecKeySec1);
    const leaf = new X509Certificate(pki.ecLeaf);
    const opensslSays = (key: Buffer) => {
      try {
        return leaf.checkPrivateKey(createPrivateKey({ key, format: 'der', type: 'sec1' }));
      } catch {
        return false;
      }
    };
    const variants = {
      'a trailing byte': Buffer.concat([der, Buffer.from([0x00])]),
      'version 2': Buffer.from(der).fill(0x02, 4, 5),
      'cut short': der.subarray(0, -10),
      'no curve named': Buffer.concat([der.subarray(0, 2 + 3 + 34), der.subarray(2 + 3 + 34 + 12)]),
    };
    const verdicts = Object.entries(variants).map(([name, key]) => {
      const result = checkIssuedCertificate({
        certificate: pki.ecChain,
        privateKey: pemOf('EC PRIVATE KEY', key),
        domains: [],
      });
      return [name, result.ok];
    });
    expect(verdicts).toEqual(Object.entries(variants).map(([name, key]) => [name, opensslSays(key)]));
    expect(opensslSays(variants['cut short'])).toBe(false);
  });
});

describe('certificateDomains and coversDomains', () => {
  it('lists the DNS SANs of the leaf, lower-cased, without IP SANs', () => {
    expect(certificateDomains(pki.ecChain)).toEqual(['*.example.com', 'example.com']);
    expect(certificateDomains(pki.rsaChain)).toEqual(['api.example.org', 'www.example.org']);
    // The CA certificate has no SAN: the CN is deliberately not used.
    expect(certificateDomains(pki.caCert)).toEqual([]);
  });

  it('applies wildcard rules case-insensitively', () => {
    expect(coversDomains(pki.ecChain, ['*.example.com', 'example.com'])).toEqual({ ok: true, missing: [] });
    expect(coversDomains(pki.ecChain, ['a.example.com', 'WWW.EXAMPLE.COM', 'example.com.'])).toEqual({
      ok: true,
      missing: [],
    });
    expect(coversDomains(pki.ecChain, ['a.b.example.com', '*.sub.example.com', 'example.net'])).toEqual({
      ok: false,
      missing: ['a.b.example.com', '*.sub.example.com', 'example.net'],
    });
    expect(coversDomains(pki.rsaChain, ['www.example.org', 'API.example.org'])).toEqual({
      ok: true,
      missing: [],
    });
    // A requested wildcard needs the wildcard SAN itself, not a name under it.
    expect(coversDomains(pki.rsaChain, ['*.example.org'])).toEqual({ ok: false, missing: ['*.example.org'] });
    expect(coversDomains(pki.rsaChain, [])).toEqual({ ok: true, missing: [] });
  });
});

describe('certificateValidity', () => {
  it('reads the leaf window', () => {
    const { notBefore, notAfter } = certificateValidity(pki.ecChain);
    const days = (notAfter.getTime() - notBefore.getTime()) / 86_400_000;
    expect(days).toBe(90);
    expect(Math.abs(notBefore.getTime() - Date.now())).toBeLessThan(10 * 60_000);
  });
});

describe('checkIssuedCertificate', () => {
  it('accepts a good ECC chain with a SEC1 key', () => {
    const result = checkIssuedCertificate({
      certificate: pki.ecChain,
      privateKey: pki.ecKeySec1,
      domains: ['*.example.com', 'example.com'],
    });
    expect(result).toEqual({
      ok: true,
      fingerprint: leafFingerprint(pki.ecChain),
      ...certificateValidity(pki.ecChain),
    });
  });

  it('accepts a good RSA chain with PKCS#1 and PKCS#8 keys', () => {
    for (const privateKey of [pki.rsaKeyPkcs1, pki.rsaKeyPkcs8]) {
      expect(
        checkIssuedCertificate({ certificate: pki.rsaChain, privateKey, domains: ['api.example.org'] }).ok,
      ).toBe(true);
    }
  });

  it('reads SEC1 and PKCS#1 keys with CRLF line ends, and a wrong one of either still does not match', () => {
    const crlf = (pem: string) => pem.replace(/\n/g, '\r\n');
    const ec = { certificate: pki.ecChain, domains: ['example.com'] };
    const rsa = { certificate: pki.rsaChain, domains: ['api.example.org'] };
    expect(checkIssuedCertificate({ ...ec, privateKey: crlf(pki.ecKeySec1) }).ok).toBe(true);
    expect(checkIssuedCertificate({ ...rsa, privateKey: crlf(pki.rsaKeyPkcs1) }).ok).toBe(true);
    expect(checkIssuedCertificate({ ...ec, privateKey: crlf(pki.otherEcKey) })).toMatchObject({ ok: false });
    expect(checkIssuedCertificate({ ...rsa, privateKey: pki.ecKeySec1 })).toMatchObject({ ok: false });
    expect(checkIssuedCertificate({ ...ec, privateKey: pki.rsaKeyPkcs1 })).toMatchObject({ ok: false });
  });

  it('an intermediate seen before does not vouch for a different one (parsed intermediates are remembered)', () => {
    const [leaf, intermediate] = splitPemChain(pki.ecChain);
    const good = { certificate: pki.ecChain, privateKey: pki.ecKeySec1, domains: ['example.com'] };
    expect(checkIssuedCertificate(good).ok).toBe(true);
    const damaged = `${leaf}${intermediate!.replace(/\n[A-Za-z0-9+/]{8}/, '\n!!!!!!!!')}`;
    expect(checkIssuedCertificate({ ...good, certificate: damaged })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/#2 of the chain does not parse/),
    });
    expect(checkIssuedCertificate(good).ok).toBe(true);
  });

  const failures: [string, () => Parameters<typeof checkIssuedCertificate>[0], RegExp][] = [
    [
      'a mismatched key',
      () => ({ certificate: pki.ecChain, privateKey: pki.otherEcKey, domains: ['example.com'] }),
      /does not match/,
    ],
    [
      'an uncovered domain',
      () => ({
        certificate: pki.ecChain,
        privateKey: pki.ecKeySec1,
        domains: ['example.com', 'a.b.example.com'],
      }),
      /does not cover: a\.b\.example\.com/,
    ],
    [
      'an expired certificate',
      () => ({
        certificate: pki.ecChain,
        privateKey: pki.ecKeySec1,
        domains: ['example.com'],
        now: new Date(Date.now() + 91 * 86_400_000),
      }),
      /expired/,
    ],
    [
      'no certificate block',
      () => ({ certificate: 'MIIE', privateKey: pki.ecKeySec1, domains: [] }),
      /no PEM CERTIFICATE block/,
    ],
    [
      'a corrupt certificate in the chain',
      () => ({
        certificate: `${pki.ecLeaf}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`,
        privateKey: pki.ecKeySec1,
        domains: [],
      }),
      /#2 of the chain does not parse/,
    ],
    [
      'the documented (redacted) example',
      () => ({
        certificate: issuedData.certificate,
        privateKey: issuedData.privateKey,
        domains: ['httpsok.com'],
      }),
      /does not parse/,
    ],
    [
      'an unparsable key',
      () => ({
        certificate: pki.ecChain,
        privateKey: '-----BEGIN EC PRIVATE KEY-----\nSECRETBYTES\n-----END EC PRIVATE KEY-----\n',
        domains: [],
      }),
      /private key does not parse/,
    ],
  ];

  for (const [name, input, reason] of failures) {
    it(`reports ${name} without throwing`, () => {
      const result = checkIssuedCertificate(input());
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.reason).toMatch(reason);
      expect(result.reason).not.toContain('SECRETBYTES');
    });
  }
});
