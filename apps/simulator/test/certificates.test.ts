import { spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { createSimulator, formatChinaTime, type IssuedData } from '../src/index';
import { start } from './helpers';

const OPENSSL = '/usr/bin/openssl';
const DAY = 86_400_000;

function splitPem(chain: string): string[] {
  return chain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

function openssl(args: string[], input?: string): string {
  const res = spawnSync(OPENSSL, args, { input, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${res.stderr}`);
  return res.stdout;
}

/** Parses the API's `YYYY-MM-DD HH:mm:ss` (UTC+8). */
const parseChinaTime = (s: string) => Date.parse(s.replace(' ', 'T') + '+08:00');

async function issue(domains: string[], algorithm: 'ECC' | 'RSA' = 'ECC') {
  const running = await start();
  const id = (await running.call<string>('POST', '/v1/cert/apply', { domainList: domains, algorithm })).json
    .data;
  const res = await running.call<IssuedData>('GET', `/v1/cert/apply/${id}`);
  expect(res.json.code).toBe(0);
  expect(res.json.data.status).toBe(1);
  return { ...running, data: res.json.data };
}

/** Serves the chain and key over TLS; a client trusting only `ca` connects with `servername`. */
async function handshake(chain: string, key: string, ca: string, servername: string) {
  const server = tls.createServer({ cert: chain, key }, (socket) => socket.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<{ authorized: boolean; error?: string; peerChain: number }>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: [ca] });
      socket.once('secureConnect', () => {
        let depth = 0;
        for (let c = socket.getPeerCertificate(true); c && depth < 5; depth++) {
          if (c.issuerCertificate === c) {
            depth++;
            break;
          }
          c = c.issuerCertificate;
        }
        resolve({ authorized: socket.authorized, peerChain: depth });
        socket.destroy();
      });
      socket.once('error', (err) => resolve({ authorized: false, error: err.message, peerChain: 0 }));
    });
  } finally {
    server.close();
  }
}

describe('issued certificates', () => {
  it('ECC: a real chain (leaf + intermediate) that openssl reads and verifies against the root', async () => {
    const { data, sim } = await issue(['*.example.com', 'example.com']);
    const pems = splitPem(data.certificate);
    expect(pems).toHaveLength(2);
    const [leafPem, intermediatePem] = pems as [string, string];

    const text = openssl(['x509', '-noout', '-text'], leafPem);
    expect(text).toContain('Subject: CN = *.example.com');
    expect(text).toContain('DNS:*.example.com, DNS:example.com');
    expect(text).toContain('CA:FALSE');
    expect(text).toContain('TLS Web Server Authentication');
    expect(text).toContain('id-ecPublicKey');
    expect(text).toContain('prime256v1');

    const dir = mkdtempSync(join(tmpdir(), 'sim-cert-'));
    try {
      writeFileSync(join(dir, 'root.pem'), sim.caPem);
      writeFileSync(join(dir, 'intermediate.pem'), intermediatePem);
      writeFileSync(join(dir, 'leaf.pem'), leafPem);
      const verified = openssl([
        'verify',
        '-CAfile',
        join(dir, 'root.pem'),
        '-untrusted',
        join(dir, 'intermediate.pem'),
        '-purpose',
        'sslserver',
        join(dir, 'leaf.pem'),
      ]);
      expect(verified).toContain('leaf.pem: OK');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    expect(data.privateKey).toMatch(
      /^-----BEGIN EC PRIVATE KEY-----\n[\s\S]+-----END EC PRIVATE KEY-----\n$/,
    );
    const leaf = new X509Certificate(leafPem);
    const key = createPrivateKey(data.privateKey);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(leaf.checkPrivateKey(key)).toBe(true);
    expect(leaf.subjectAltName).toBe('DNS:*.example.com, DNS:example.com');
    expect(leaf.ca).toBe(false);
    expect(leaf.checkHost('www.example.com')).toBe('*.example.com');
    expect(leaf.checkHost('example.org')).toBeUndefined();
    expect(leaf.checkHost('example.com')).toBe('example.com');
    expect(leaf.verify(new X509Certificate(intermediatePem).publicKey)).toBe(true);
    expect(new X509Certificate(intermediatePem).verify(new X509Certificate(sim.caPem).publicKey)).toBe(true);

    expect(data.fingerprints).toBe(createHash('sha256').update(leaf.raw).digest('hex'));
    expect(data.fingerprints).toBe(leaf.fingerprint256.replace(/:/g, '').toLowerCase());
  });

  it('RSA: a 2048-bit PKCS#1 key that matches the certificate', async () => {
    const { data } = await issue(['rsa.example.com', 'www.rsa.example.com'], 'RSA');
    expect(data.privateKey).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/);
    const key = createPrivateKey(data.privateKey);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const [leafPem] = splitPem(data.certificate) as [string];
    const leaf = new X509Certificate(leafPem);
    expect(leaf.checkPrivateKey(key)).toBe(true);
    expect(leaf.subjectAltName).toBe('DNS:rsa.example.com, DNS:www.rsa.example.com');
    const text = openssl(['x509', '-noout', '-text'], leafPem);
    expect(text).toContain('rsaEncryption');
    expect(text).toContain('Public-Key: (2048 bit)');
    expect(data.fingerprints).toBe(createHash('sha256').update(leaf.raw).digest('hex'));
  });

  it('is valid from the issue time (minus a minute) for 90 days in all; notBefore/notAfter are UTC+8 strings of the same instants', async () => {
    const { data, clock } = await issue(['dates.example.com']);
    const [leafPem] = splitPem(data.certificate) as [string];
    const leaf = new X509Certificate(leafPem);
    const from = Date.parse(leaf.validFrom);
    const to = Date.parse(leaf.validTo);
    expect(clock.t - from).toBeGreaterThanOrEqual(59_000);
    expect(clock.t - from).toBeLessThanOrEqual(61_000);
    expect(to - from).toBe(90 * DAY);
    expect(parseChinaTime(data.notBefore)).toBe(from);
    expect(parseChinaTime(data.notAfter)).toBe(to);
    expect(formatChinaTime(new Date(Date.UTC(2024, 11, 10, 16, 24, 32)))).toBe('2024-12-11 00:24:32');
  });

  it('issues the lifetime SIM_CERT_LIFETIME gives its CA, measured as notAfter - notBefore', async () => {
    const running = await start({ certLifetimeMs: { letsencrypt: 6 * DAY, zerossl: 90_000 } });
    const lifetimeOf = async (ca: string) => {
      const domainList = [`${ca}.life.example.com`];
      const id = (await running.call<string>('POST', '/v1/cert/apply', { domainList, ca })).json.data;
      const res = await running.call<IssuedData>('GET', `/v1/cert/apply/${id}`);
      const leaf = new X509Certificate(splitPem(res.json.data.certificate)[0]!);
      expect(parseChinaTime(res.json.data.notAfter) - parseChinaTime(res.json.data.notBefore)).toBe(
        Date.parse(leaf.validTo) - Date.parse(leaf.validFrom),
      );
      return Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
    };
    expect(await lifetimeOf('google')).toBe(90 * DAY);
    expect(await lifetimeOf('letsencrypt')).toBe(6 * DAY);
    expect(await lifetimeOf('zerossl')).toBe(90_000);
  });

  for (const algorithm of ['ECC', 'RSA'] as const) {
    it(`${algorithm}: a TLS server with the issued chain and key is accepted by a client trusting only the root`, async () => {
      const { data, url } = await issue(['*.example.com', 'example.com'], algorithm);
      const root = await (await fetch(`${url}/_sim/ca`)).text();
      for (const servername of ['www.example.com', 'example.com']) {
        const result = await handshake(data.certificate, data.privateKey, root, servername);
        expect(result.error).toBeUndefined();
        expect(result.authorized).toBe(true);
        expect(result.peerChain).toBeGreaterThanOrEqual(2);
      }
      const wrongName = await handshake(data.certificate, data.privateKey, root, 'example.org');
      expect(wrongName.authorized).toBe(false);
    });
  }

  it('a client that does not trust the simulator root rejects the chain', async () => {
    const { data } = await issue(['example.com']);
    const other = createSimulator();
    await other.ready();
    try {
      const result = await handshake(data.certificate, data.privateKey, other.caPem, 'example.com');
      expect(result.authorized).toBe(false);
    } finally {
      await other.close();
    }
  });

  it('uses the first domain as CN and covers every domain, duplicates once', async () => {
    const { data } = await issue(['b.example.com', 'a.example.com', 'b.example.com']);
    const leaf = new X509Certificate(splitPem(data.certificate)[0]!);
    expect(leaf.subject).toBe('CN=b.example.com');
    expect(leaf.subjectAltName).toBe('DNS:b.example.com, DNS:a.example.com');
    expect(data.name).toBe('b.example.com');
  });
});

describe('CA directory (SIM_CA_DIR)', () => {
  it('generates and saves the CA when absent, loads the same CA next time', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'sim-ca-')), 'nested');
    try {
      const first = createSimulator({ caDir: dir, issueSeconds: 0 });
      await first.ready();
      for (const f of ['root.pem', 'root.key', 'intermediate.pem', 'intermediate.key']) {
        expect(existsSync(join(dir, f))).toBe(true);
      }
      expect(readFileSync(join(dir, 'root.pem'), 'utf8')).toBe(first.caPem);
      await first.close();

      const second = await start({ caDir: dir });
      expect(second.sim.caPem).toBe(first.caPem);
      const id = (await second.call<string>('POST', '/v1/cert/apply', { domainList: ['example.com'] })).json
        .data;
      const data = (await second.call<IssuedData>('GET', `/v1/cert/apply/${id}`)).json.data;
      const intermediate = readFileSync(join(dir, 'intermediate.pem'), 'utf8');
      expect(splitPem(data.certificate)[1]).toBe(intermediate);
      const result = await handshake(data.certificate, data.privateKey, first.caPem, 'example.com');
      expect(result.authorized).toBe(true);

      unlinkSync(join(dir, 'intermediate.key'));
      const broken = createSimulator({ caDir: dir });
      await expect(broken.ready()).rejects.toThrow(/missing intermediate\.key/);
      await broken.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
