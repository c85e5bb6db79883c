import { createECDH, createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';

/*
 * Checks on what the upstream (or anyone who knows a callback URL) hands us as
 * an issued certificate. Only node:crypto: the chain is parsed with
 * X509Certificate; a SEC1 "EC PRIVATE KEY" on P-256 or P-384 is checked through
 * createECDH (see sec1KeyOf), every other key (PKCS#1 "RSA PRIVATE KEY", PKCS#8
 * "PRIVATE KEY", other curves) is parsed with createPrivateKey.
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
 * Whether `keyPem` is the leaf's private key; throws when the key does not parse. A SEC1 key on a
 * named curve goes the fast way (ecKeyMatchesLeaf); every other key is parsed by OpenSSL and compared
 * with X509_check_private_key.
 */
function keyMatchesLeaf(keyPem: string, leaf: X509Certificate): boolean {
  const ecKey = sec1KeyOf(keyPem);
  if (ecKey) return ecKeyMatchesLeaf(ecKey, leaf);
  return leaf.checkPrivateKey(parsePrivateKey(keyPem));
}

/** The DER encodings a PEM label names; PKCS#8 ("PRIVATE KEY") gains nothing from DER, so it stays PEM. */
const keyDerTypes = { 'EC PRIVATE KEY': 'sec1', 'RSA PRIVATE KEY': 'pkcs1' } as const;
const singleKeyBlock =
  /^\s*-----BEGIN (EC|RSA) PRIVATE KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END \1 PRIVATE KEY-----\s*$/;

/**
 * Parses an unencrypted private key PEM (SEC1, PKCS#1 or PKCS#8). OpenSSL 3 tries decoder after decoder
 * on PEM input (~360 µs here); a lone SEC1 or PKCS#1 block is handed over as DER of the type its label
 * names (~120 µs). Anything else (PKCS#8, headers, several blocks) goes
 * to the PEM parser as it is, so the same inputs are accepted and refused as before.
 */
function parsePrivateKey(pem: string): KeyObject {
  const block = singleKeyBlock.exec(pem);
  if (block) {
    const type = keyDerTypes[`${block[1] as 'EC' | 'RSA'} PRIVATE KEY`];
    return createPrivateKey({ key: Buffer.from(block[2]!, 'base64'), format: 'der', type });
  }
  return createPrivateKey({ key: pem, format: 'pem' });
}

/*
 * The common key — what every CA hands out by default — is a SEC1 "EC PRIVATE KEY" on P-256. Decoding
 * it through OpenSSL 3's decoder framework costs ~190 µs; it was the largest single cost of an issued
 * order in the worker. Instead its DER is read here, strictly, and the private scalar is checked by
 * deriving its public point (createECDH: the scalar must lie in [1, n-1]; ~40 µs): that point must equal
 * the leaf's public key and, when the key carries one, its own public key. This is stricter than
 * OpenSSL's check, which compares the leaf with the public key the file carries and never looks at the
 * scalar. A key of any other shape (other curves, explicit parameters, a compressed or absent point
 * encoding we would not read the same way) returns null from sec1KeyOf and goes to OpenSSL.
 */
const EC_CURVES = new Map([
  // OID contents (hex) of prime256v1 and secp384r1, as SEC1's [0] parameters name them.
  ['2a8648ce3d030107', { ecdh: 'prime256v1', jwk: 'P-256', size: 32 }],
  ['2b81040022', { ecdh: 'secp384r1', jwk: 'P-384', size: 48 }],
]);
type EcCurve = { ecdh: string; jwk: string; size: number };
interface Sec1Key {
  curve: EcCurve;
  scalar: Buffer;
  /** The uncompressed point the key carries (04 ‖ X ‖ Y), or null when it carries none. */
  publicPoint: Buffer | null;
}

/** The DER element at `at` if its tag is `tag`: where its contents start and end; null otherwise. */
function derElement(der: Buffer, at: number, tag: number): { start: number; end: number } | null {
  if (at + 2 > der.length || der[at] !== tag) return null;
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 2 || start + bytes > der.length) return null;
    length = bytes === 1 ? der[start]! : (der[start]! << 8) | der[start + 1]!;
    start += bytes;
    // DER: the shortest length form only.
    if (length < 0x80 || (bytes === 2 && length < 0x100)) return null;
  }
  const end = start + length;
  return end <= der.length ? { start, end } : null;
}

/**
 * RFC 5915: ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING,
 * parameters [0] namedCurve OID, publicKey [1] BIT STRING OPTIONAL }, nothing else, nothing after.
 */
function sec1KeyOf(pem: string): Sec1Key | null {
  const block = singleKeyBlock.exec(pem);
  if (block?.[1] !== 'EC') return null;
  const der = Buffer.from(block[2]!, 'base64');
  const key = derElement(der, 0, 0x30);
  if (key?.end !== der.length) return null;
  const version = derElement(der, key.start, 0x02);
  // The INTEGER 1, in one byte.
  if (version === null || version.end - version.start !== 1 || der[version.start] !== 1) return null;
  const scalar = derElement(der, version.end, 0x04);
  const parameters = scalar && derElement(der, scalar.end, 0xa0);
  const oid = parameters && derElement(der, parameters.start, 0x06);
  if (!scalar || !parameters || oid?.end !== parameters.end) return null;
  const curve = EC_CURVES.get(der.toString('hex', oid.start, oid.end));
  if (!curve || scalar.end - scalar.start !== curve.size) return null;
  if (parameters.end === key.end)
    return { curve, scalar: der.subarray(scalar.start, scalar.end), publicPoint: null };
  const publicKey = derElement(der, parameters.end, 0xa1);
  const bits = publicKey && derElement(der, publicKey.start, 0x03);
  if (publicKey?.end !== key.end || bits?.end !== publicKey.end) return null;
  // No unused bits, then an uncompressed point (04 ‖ X ‖ Y).
  const point = der.subarray(bits.start + 1, bits.end);
  if (der[bits.start] !== 0 || point.length !== 1 + 2 * curve.size || point[0] !== 4) return null;
  return { curve, scalar: der.subarray(scalar.start, scalar.end), publicPoint: point };
}

/** Throws when the scalar is not a private key of its curve; false when its point is not the leaf's. */
function ecKeyMatchesLeaf(key: Sec1Key, leaf: X509Certificate): boolean {
  const ecdh = createECDH(key.curve.ecdh);
  ecdh.setPrivateKey(key.scalar);
  const point = ecdh.getPublicKey();
  if (key.publicPoint && !point.equals(key.publicPoint)) return false;
  const leafKey = leaf.publicKey.export({ format: 'jwk' });
  if (leafKey.kty !== 'EC' || leafKey.crv !== key.curve.jwk) return false;
  const size = key.curve.size;
  return (
    Buffer.from(leafKey.x ?? '', 'base64url').equals(point.subarray(1, 1 + size)) &&
    Buffer.from(leafKey.y ?? '', 'base64url').equals(point.subarray(1 + size))
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
