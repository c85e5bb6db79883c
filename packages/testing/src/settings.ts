import { randomBytes } from 'node:crypto';

/** Where a certq process under test finds its database, Redis (and key prefix) and httpsok. */
export interface CertqPlaces {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  httpsokUrl: string;
}

/**
 * The settings (as in process.env) every certq process a test or bench starts needs: its places,
 * fresh secrets, an operator httpsok key, quiet logs; `settings` adds or overrides the rest.
 */
export function certqSettings(
  places: CertqPlaces,
  settings: Record<string, string> = {},
): Record<string, string> {
  return {
    DATABASE_URL: places.databaseUrl,
    REDIS_URL: places.redisUrl,
    REDIS_PREFIX: places.redisPrefix,
    HTTPSOK_BASE_URL: places.httpsokUrl,
    HTTPSOK_API_KEY: 'test-operator-key',
    ADMIN_TOKEN: randomBytes(16).toString('hex'),
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'silent',
    ...settings,
  };
}
