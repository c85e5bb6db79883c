// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import { createHash, createPrivateKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const subtle = webcrypto.subtle;
type Key = webcrypto.CryptoKey;
type KeyPair = webcrypto.CryptoKeyPair;

export type KeyAlgorithm = 'ECC' | 'RSA';

export interface IssuedCertificate {
  /** Leaf PEM followed by the intermediate PEM. */
  certificate: string;
  /** The leaf alone. */
  leafPem: string;
  /** ECC: SEC1 `EC PRIVATE KEY`; RSA: PKCS#1 `RSA PRIVATE KEY`. */
  privateKey: string;
  /** Lowercase hex SHA-256 of the leaf DER. */
  fingerprints: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

export interface IssueParams {
  domains: string[];
  algorithm: KeyAlgorithm;
  /** Issue time, ms since epoch. */
  issuedAt: number;
  /** notAfter − notBefore, backdating included (default LEAF_VALIDITY_MS). */
  lifetimeMs?: number;
}

export interface CertificateAuthority {
  rootPem: string;
  intermediatePem: string;
  issue(params: IssueParams): Promise<IssuedCertificate>;
}

const DAY = 86_400_000;
export const LEAF_VALIDITY_MS = 90 * DAY;
/** notBefore is backdated a minute for clock skew, or a tenth of a short lifetime. */
const SKEW_MS = 60_000;

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const RSA_ALG = {
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: 'SHA-256',
} as const;

const ROOT_NAME: x509.JsonName = [{ CN: ['certq Simulator Root CA'] }, { O: ['certq simulator'] }];
const INTERMEDIATE_NAME: x509.JsonName = [
  { CN: ['certq Simulator Intermediate CA'] },
  { O: ['certq simulator'] },
];

const FILES = ['root.pem', 'root.key', 'intermediate.pem', 'intermediate.key'] as const;

/** A positive 128-bit serial number, hex. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x10;
  return bytes.toString('hex');
}

/** Drops milliseconds: X.509 times have whole seconds, and the API strings must match the certificate. */
function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** `YYYY-MM-DD HH:mm:ss` in UTC+8, the format (and assumed timezone) of the provider. */
export function formatChinaTime(date: Date): string {
  return new Date(date.getTime() + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
}

function signingAlgorithmFor(key: KeyObject): {
  import: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
  sign: webcrypto.EcdsaParams | webcrypto.Algorithm;
} {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!namedCurve) throw new Error(`unsupported CA key curve ${curve}`);
    return {
      import: { name: 'ECDSA', namedCurve },
      sign: { name: 'ECDSA', hash: namedCurve === 'P-256' ? 'SHA-256' : 'SHA-384' } as webcrypto.EcdsaParams,
    };
  }
  if (type === 'rsa') {
    return {
      import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      sign: { name: 'RSASSA-PKCS1-v1_5' },
    };
  }
  throw new Error(`unsupported CA key type ${type}`);
}

interface Signer {
  cert: x509.X509Certificate;
  pem: string;
  key: Key;
  algorithm: webcrypto.EcdsaParams | webcrypto.Algorithm;
  authorityKeyId: x509.AuthorityKeyIdentifierExtension;
}

async function signerFrom(certPem: string, keyPem: string): Promise<Signer> {
  const cert = new x509.X509Certificate(certPem);
  const keyObject = createPrivateKey(keyPem);
  const alg = signingAlgorithmFor(keyObject);
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  const key = await subtle.importKey('pkcs8', der, alg.import, false, ['sign']);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const authorityKeyId = ski
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
    : await x509.AuthorityKeyIdentifierExtension.create(cert.publicKey);
  return { cert, pem: cert.toString('pem'), key, algorithm: alg.sign, authorityKeyId };
}

function privateKeyPem(key: Key, type: 'pkcs8' | 'sec1' | 'pkcs1'): string {
  return KeyObject.from(key).export({ type, format: 'pem' }) as string;
}

interface GeneratedCa {
  rootPem: string;
  rootKeyPem: string;
  intermediatePem: string;
  intermediateKeyPem: string;
}

async function generateCa(): Promise<GeneratedCa> {
  const sign = { name: 'ECDSA', hash: 'SHA-256' };
  const now = Date.now();
  const rootKeys = (await subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as KeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: ROOT_NAME,
    notBefore: wholeSeconds(now - DAY),
    notAfter: wholeSeconds(now + 20 * 365 * DAY),
    keys: rootKeys,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const intermediateKeys = (await subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as KeyPair;
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: INTERMEDIATE_NAME,
    issuer: root.subject,
    notBefore: wholeSeconds(now - DAY),
    notAfter: wholeSeconds(now + 10 * 365 * DAY),
    publicKey: intermediateKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      await x509.SubjectKeyIdentifierExtension.create(intermediateKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  return {
    rootPem: root.toString('pem') + '\n',
    rootKeyPem: privateKeyPem(rootKeys.privateKey, 'pkcs8'),
    intermediatePem: intermediate.toString('pem') + '\n',
    intermediateKeyPem: privateKeyPem(intermediateKeys.privateKey, 'pkcs8'),
  };
}

/** Reads the four CA files from `dir`, or generates them (and saves them there when `dir` is given). */
async function loadOrGenerate(dir: string | undefined): Promise<GeneratedCa> {
  if (!dir) return generateCa();
  const present = FILES.filter((f) => existsSync(join(dir, f)));
  if (present.length === FILES.length) {
    const read = (f: string) => readFileSync(join(dir, f), 'utf8');
    return {
      rootPem: read('root.pem'),
      rootKeyPem: read('root.key'),
      intermediatePem: read('intermediate.pem'),
      intermediateKeyPem: read('intermediate.key'),
    };
  }
  if (present.length > 0) {
    const missing = FILES.filter((f) => !present.includes(f));
    throw new Error(`CA directory ${dir} is incomplete: missing ${missing.join(', ')}`);
  }
  const ca = await generateCa();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'root.pem'), ca.rootPem);
  writeFileSync(join(dir, 'root.key'), ca.rootKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'intermediate.pem'), ca.intermediatePem);
  writeFileSync(join(dir, 'intermediate.key'), ca.intermediateKeyPem, { mode: 0o600 });
  return ca;
}

/** Subject CN: the first domain that fits the 64-character limit of X.520 (most do). */
function commonName(domains: string[]): x509.JsonName {
  const cn = domains.find((d) => d.length <= 64);
  return cn ? [{ CN: [cn] }] : [];
}

/**
 * A root and an intermediate CA (ECDSA P-256 when generated) that issue TLS server certificates:
 * SANs = the domains, CN = the first domain, serverAuth, CA:false, valid from issue time minus a
 * minute (a tenth of a short lifetime), for the given lifetime (default 90 days) counted from then.
 */
export async function createCertificateAuthority(
  options: { dir?: string | undefined } = {},
): Promise<CertificateAuthority> {
  const files = await loadOrGenerate(options.dir);
  const rootPem = new x509.X509Certificate(files.rootPem).toString('pem') + '\n';
  const signer = await signerFrom(files.intermediatePem, files.intermediateKeyPem);
  const intermediatePem = signer.pem + '\n';

  async function issue({
    domains,
    algorithm,
    issuedAt,
    lifetimeMs = LEAF_VALIDITY_MS,
  }: IssueParams): Promise<IssuedCertificate> {
    if (domains.length === 0) throw new Error('a certificate needs at least one domain');
    const keys = (await subtle.generateKey(algorithm === 'RSA' ? RSA_ALG : EC_ALG, true, [
      'sign',
      'verify',
    ])) as KeyPair;
    const notBefore = wholeSeconds(issuedAt - Math.min(SKEW_MS, lifetimeMs / 10));
    const notAfter = wholeSeconds(notBefore.getTime() + lifetimeMs);
    const sans = [...new Set(domains)].map((value) => ({ type: 'dns' as const, value }));
    const usage =
      algorithm === 'RSA'
        ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
        : x509.KeyUsageFlags.digitalSignature;
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: commonName(domains),
      issuer: signer.cert.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: signer.key,
      signingAlgorithm: signer.algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(usage, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(sans, false),
        signer.authorityKeyId,
      ],
    });
    const leafPem = leaf.toString('pem') + '\n';
    return {
      certificate: leafPem + intermediatePem,
      leafPem,
      privateKey: privateKeyPem(keys.privateKey, algorithm === 'RSA' ? 'pkcs1' : 'sec1'),
      fingerprints: createHash('sha256').update(Buffer.from(leaf.rawData)).digest('hex'),
      serialNumber: leaf.serialNumber,
      notBefore,
      notAfter,
    };
  }

  return { rootPem, intermediatePem, issue };
}
