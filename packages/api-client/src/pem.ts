import { createECDH, createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';

/*
 * Checks on what the upstream (or anyone who knows a callback URL) hands us as
 * an issued certificate. Only node:crypto: the chain is parsed with
 * X509Certificate, the key with createPrivateKey (SEC1 "EC PRIVATE KEY", PKCS#1
 * "RSA PRIVATE KEY", PKCS#8 "PRIVATE KEY").
 *
 * The single-purpose helpers throw on unparsable input; checkIssuedCertificate
 * never throws and reports a reason instead. No message includes key material.
 */

const certificateBlocks = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every CERTIFICATE block of a PEM bundle, in order, each ending with a newline. */
export function splitPemChain(pem: string): string[] {
  return (pem.match(certificateBlocks) ?? []).map((block) => `${block.replace(/\r\n/g, '\n')}\n`);
}

function leafCertificate(chainPem: string): X509Certificate {
  const [leaf] = splitPemChain(chainPem);
  if (!leaf) throw new Error('no PEM CERTIFICATE block found');
  return new X509Certificate(leaf);
}

/** SHA-256 of the first (leaf) certificate's DER, lowercase hex without colons — the upstream's `fingerprints`. */
export function leafFingerprint(chainPem: string): string {
  return fingerprintOf(leafCertificate(chainPem));
}

const fingerprintOf = (leaf: X509Certificate) => createHash('sha256').update(leaf.raw).digest('hex');

/** Whether the private key is the leaf certificate's key. Throws if either cannot be parsed. */
export function keyMatchesCertificate(chainPem: string, keyPem: string): boolean {
  return keyMatchesLeaf(keyPem, leafCertificate(chainPem));
}

/**
 * Whether `keyPem` (unencrypted PEM: SEC1, PKCS#1 or PKCS#8) is the leaf's private key; throws when it
 * does not parse. An EC key is compared by the public point its scalar derives (ecKeyMatchesLeaf); any
 * other by OpenSSL's X509_check_private_key.
 */
function keyMatchesLeaf(keyPem: string, leaf: X509Certificate): boolean {
  const key = createPrivateKey({ key: keyPem, format: 'pem' });
  return key.asymmetricKeyType === 'ec' ? ecKeyMatchesLeaf(key, leaf) : leaf.checkPrivateKey(key);
}

/** JWK curve names as createECDH names them. */
const ECDH_CURVES: Record<string, string> = {
  'P-256': 'prime256v1',
  'P-384': 'secp384r1',
  'P-521': 'secp521r1',
  secp256k1: 'secp256k1',
};

/**
 * OpenSSL's check, and createPublicKey, trust the public point a SEC1 file carries: another key's
 * scalar filed with the leaf's point would pass. So the point is derived from the scalar itself
 * (createECDH, which also refuses a scalar outside [1, n-1]) and compared with the leaf's key.
 */
function ecKeyMatchesLeaf(key: KeyObject, leaf: X509Certificate): boolean {
  const { crv, d } = key.export({ format: 'jwk' });
  const curve = crv && ECDH_CURVES[crv];
  if (!curve || !d) return leaf.checkPrivateKey(key);
  const ecdh = createECDH(curve);
  ecdh.setPrivateKey(Buffer.from(d, 'base64url'));
  const point = ecdh.getPublicKey();
  const size = (point.length - 1) / 2;
  const leafKey = leaf.publicKey.export({ format: 'jwk' });
  return (
    leafKey.crv === crv &&
    leafKey.x === point.subarray(1, 1 + size).toString('base64url') &&
    leafKey.y === point.subarray(1 + size).toString('base64url')
  );
}

/**
 * The chain's certificates after the leaf are the CA's intermediates, the same few for every order:
 * each distinct block is parsed once and remembered (a small bounded map), the leaf every time.
 */
const intermediates = new Map<string, X509Certificate>();
const MAX_INTERMEDIATES = 64;

function parseIntermediate(block: string): X509Certificate {
  const known = intermediates.get(block);
  if (known) return known;
  const parsed = new X509Certificate(block);
  if (intermediates.size >= MAX_INTERMEDIATES) intermediates.delete(intermediates.keys().next().value!);
  intermediates.set(block, parsed);
  return parsed;
}

/**
 * Node renders subjectAltName as `DNS:a.com, DNS:b.com, IP Address:…`; since
 * Node 17 a value containing separators is JSON-quoted, which the regex allows.
 */
const dnsEntry = /(?:^|, )DNS:("(?:[^"\\]|\\.)*"|[^,]*)/g;

function parseDnsNames(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const names: string[] = [];
  for (const match of subjectAltName.matchAll(dnsEntry)) {
    const raw = match[1] ?? '';
    const name = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    names.push(name.trim().toLowerCase());
  }
  return names;
}

/** The leaf's DNS subject alternative names, lower-cased. (The subject CN is ignored, as browsers do.) */
export function certificateDomains(chainPem: string): string[] {
  return parseDnsNames(leafCertificate(chainPem).subjectAltName);
}

const normalizeDomain = (d: string) => d.trim().toLowerCase().replace(/\.$/, '');

/**
 * Whether the leaf covers every requested domain. A requested wildcard needs
 * that exact wildcard SAN; a requested name is covered by the same SAN or by a
 * wildcard one label up (`*.example.com` covers `a.example.com`, not
 * `example.com` nor `a.b.example.com`).
 */
export function coversDomains(
  chainPem: string,
  domains: readonly string[],
): { ok: boolean; missing: string[] } {
  return coverage(leafCertificate(chainPem), domains);
}

function coverage(leaf: X509Certificate, domains: readonly string[]): { ok: boolean; missing: string[] } {
  const sans = new Set(parseDnsNames(leaf.subjectAltName).map(normalizeDomain));
  const missing = domains.filter((requested) => {
    const d = normalizeDomain(requested);
    if (sans.has(d)) return false;
    if (d.startsWith('*.')) return true;
    const dot = d.indexOf('.');
    return dot <= 0 || !sans.has(`*${d.slice(dot)}`);
  });
  return { ok: missing.length === 0, missing };
}

/** The leaf's validity window. */
export function certificateValidity(chainPem: string): { notBefore: Date; notAfter: Date } {
  return validityOf(leafCertificate(chainPem));
}

function validityOf(leaf: X509Certificate): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) {
    throw new Error('certificate validity dates could not be parsed');
  }
  return { notBefore, notAfter };
}

export type IssuedCertificateCheck =
  | { ok: true; fingerprint: string; notBefore: Date; notAfter: Date }
  | { ok: false; reason: string };

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Everything a receiver must establish before storing an issued certificate:
 * the chain parses, the key parses and belongs to the leaf, the leaf covers
 * every requested domain and has not expired (at `now`). Never throws.
 */
export function checkIssuedCertificate(input: {
  certificate: string;
  privateKey: string;
  domains: readonly string[];
  now?: Date;
}): IssuedCertificateCheck {
  // Each certificate and the key are parsed once: this runs for every issued order.
  const blocks = splitPemChain(input.certificate);
  if (blocks.length === 0) return { ok: false, reason: 'certificate holds no PEM CERTIFICATE block' };
  const chain: X509Certificate[] = [];
  for (const [index, block] of blocks.entries()) {
    try {
      chain.push(index === 0 ? new X509Certificate(block) : parseIntermediate(block));
    } catch (e) {
      return { ok: false, reason: `certificate #${index + 1} of the chain does not parse: ${errorText(e)}` };
    }
  }
  const leaf = chain[0]!;
  let matches: boolean;
  try {
    matches = keyMatchesLeaf(input.privateKey, leaf);
  } catch {
    // The parser's message is generic; we add nothing from the key itself.
    return { ok: false, reason: 'private key does not parse (unencrypted PEM expected)' };
  }
  try {
    if (!matches) {
      return { ok: false, reason: 'private key does not match the leaf certificate' };
    }
    const covered = coverage(leaf, input.domains);
    if (!covered.ok) {
      return { ok: false, reason: `certificate does not cover: ${covered.missing.join(', ')}` };
    }
    const { notBefore, notAfter } = validityOf(leaf);
    const now = input.now ?? new Date();
    if (notAfter.getTime() <= now.getTime()) {
      return { ok: false, reason: `certificate expired at ${notAfter.toISOString()}` };
    }
    return { ok: true, fingerprint: fingerprintOf(leaf), notBefore, notAfter };
  } catch (e) {
    return { ok: false, reason: `certificate check failed: ${errorText(e)}` };
  }
}

export type UploadedCertificateCheck =
  | {
      ok: true;
      fingerprint: string;
      notBefore: Date;
      notAfter: Date;
      /** The leaf's DNS names, as written in it (lower-cased). */
      domains: string[];
      algorithm: 'ECC' | 'RSA';
      /** The chain as stored: each block normalised, leaf first. */
      certificate: string;
    }
  | { ok: false; reason: string };

/**
 * A certificate someone hands certq to serve (not one certq ordered): the checks of
 * checkIssuedCertificate on the key and the leaf, plus what a CA's answer would not need: the leaf is
 * not a CA certificate, is valid now (not before its notBefore either), has DNS names, has an EC or RSA
 * key, and each certificate of the chain is issued and signed by the next. Never throws.
 */
export function checkUploadedCertificate(input: {
  certificate: string;
  privateKey: string;
  now?: Date;
}): UploadedCertificateCheck {
  const blocks = splitPemChain(input.certificate);
  if (blocks.length === 0) return { ok: false, reason: 'certificate holds no PEM CERTIFICATE block' };
  const chain: X509Certificate[] = [];
  for (const [index, block] of blocks.entries()) {
    try {
      chain.push(new X509Certificate(block));
    } catch (e) {
      return { ok: false, reason: `certificate #${index + 1} of the chain does not parse: ${errorText(e)}` };
    }
  }
  const leaf = chain[0]!;
  if (leaf.ca) return { ok: false, reason: 'the first certificate is a CA certificate, not a leaf' };
  const keyType = leaf.publicKey.asymmetricKeyType;
  if (keyType !== 'ec' && keyType !== 'rsa')
    return {
      ok: false,
      reason: `the leaf's key is ${keyType ?? 'unknown'}: only EC and RSA keys are served`,
    };
  try {
    if (!keyMatchesLeaf(input.privateKey, leaf))
      return { ok: false, reason: 'private key does not match the leaf certificate' };
  } catch {
    return { ok: false, reason: 'private key does not parse (unencrypted PEM expected)' };
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i]!;
    const parent = chain[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey))
      return {
        ok: false,
        reason: `the chain does not link: certificate #${i + 1} is not issued by certificate #${i + 2}`,
      };
  }
  let validity: { notBefore: Date; notAfter: Date };
  try {
    validity = validityOf(leaf);
  } catch (e) {
    return { ok: false, reason: errorText(e) };
  }
  const now = input.now ?? new Date();
  if (validity.notAfter.getTime() <= now.getTime())
    return { ok: false, reason: `certificate expired at ${validity.notAfter.toISOString()}` };
  if (validity.notBefore.getTime() > now.getTime())
    return { ok: false, reason: `certificate is not valid before ${validity.notBefore.toISOString()}` };
  const domains = [...new Set(parseDnsNames(leaf.subjectAltName))];
  if (domains.length === 0) return { ok: false, reason: 'the leaf names no DNS subject alternative name' };
  return {
    ok: true,
    fingerprint: fingerprintOf(leaf),
    ...validity,
    domains,
    algorithm: keyType === 'ec' ? 'ECC' : 'RSA',
    certificate: blocks.join(''),
  };
}
