import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Secrets at rest (tenants' httpsok keys, certificate private keys, webhook secrets) are sealed with
 * AES-256-GCM. Each ciphertext names the key that sealed it (`v1.<keyId>.<iv>.<tag>.<data>`), so the
 * active key can be rotated while older keys stay available for reading.
 */
export interface SecretBox {
  readonly activeKeyId: string;
  seal(plaintext: string): string;
  open(sealed: string): string;
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

export function parseEncryptionKey(base64: string): Buffer {
  const key = Buffer.from(base64, 'base64');
  if (key.length !== 32) throw new Error('an encryption key must be 32 bytes, base64-encoded');
  return key;
}

export function createSecretBox(activeKey: Buffer, previousKeys: readonly Buffer[] = []): SecretBox {
  const keys = new Map<string, Buffer>();
  for (const key of [activeKey, ...previousKeys]) {
    if (key.length !== 32) throw new Error('an encryption key must be 32 bytes');
    keys.set(keyIdOf(key), key);
  }
  const activeKeyId = keyIdOf(activeKey);
  return {
    activeKeyId,
    seal(plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', activeKey, iv);
      const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();
      return [
        'v1',
        activeKeyId,
        iv.toString('base64url'),
        tag.toString('base64url'),
        data.toString('base64url'),
      ].join('.');
    },
    open(sealed) {
      const [version, keyId, iv, tag, data] = sealed.split('.');
      if (version !== 'v1' || !keyId || !iv || !tag || data === undefined)
        throw new Error('not a sealed secret');
      const key = keys.get(keyId);
      if (!key) throw new Error(`secret sealed with unknown key ${keyId}`);
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString(
        'utf8',
      );
    },
  };
}

/** Bearer tokens and callback secrets: 32 random bytes, shown once, stored only as a SHA-256 hash. */
export function generateToken(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The secret box of a process, from ENCRYPTION_KEY and ENCRYPTION_KEYS_PREVIOUS (comma-separated). */
export function secretBoxFromConfig(config: {
  ENCRYPTION_KEY?: string | undefined;
  ENCRYPTION_KEYS_PREVIOUS?: string | undefined;
}): SecretBox {
  if (!config.ENCRYPTION_KEY) throw new Error('ENCRYPTION_KEY is required');
  const previous = (config.ENCRYPTION_KEYS_PREVIOUS ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean)
    .map(parseEncryptionKey);
  return createSecretBox(parseEncryptionKey(config.ENCRYPTION_KEY), previous);
}
