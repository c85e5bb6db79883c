import type { SecretBox } from '@certq/core';
import type { Database } from '@certq/db';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { EdgeTokenStore } from './edge-tokens';
import { ChangeFollower } from './follower';
import { type CachedBundle, parentOf, TlsCache } from './tls-cache';

export { EDGE_TOKEN_PREFIX, type EdgeIdentity, EdgeTokenStore } from './edge-tokens';
export { ChangeFollower } from './follower';

/** Which tenants a caller may see: null for every tenant. */
export type TenantScope = string[] | null;

const scopeKey = (scope: TenantScope) => (scope === null ? '*' : [...scope].sort().join(','));

export interface Delivery {
  edgeTokens: EdgeTokenStore;
  follower: ChangeFollower;
  cache: TlsCache;
  /** The current certificate covering `name` (exact before wildcard, then newest), or null. */
  bundleForName(scope: TenantScope, name: string): Promise<CachedBundle | null>;
  /**
   * The cached answer for a server name exactly as a client sent it, or undefined when none is
   * cached. Only normalised names are ever cached, so a hit is a valid name's answer: the handshake
   * path can skip normalising (IDNA mapping) every known name.
   */
  cachedForName(scope: TenantScope, name: string): CachedBundle | null | undefined;
  /** The certificate `id` if it is current and in scope, else null. */
  bundleForId(scope: TenantScope, id: string): Promise<CachedBundle | null>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** What the delivery routes share in one API process: edge tokens, the feed follower, the TLS cache. */
export function createDelivery(options: {
  db: Database;
  secrets: SecretBox;
  databaseUrl: string | undefined;
  logger?: Logger | false;
}): Delivery {
  const { db, secrets } = options;
  const cache = new TlsCache();
  const edgeTokens = new EdgeTokenStore(db);
  let lastError = 0;
  const follower = new ChangeFollower({
    db,
    databaseUrl: options.databaseUrl,
    onChanges: (changes) => cache.invalidate(changes),
    onError: (error) => {
      // At most one line every 30 s while Postgres is away.
      if (options.logger && Date.now() - lastError > 30_000) {
        lastError = Date.now();
        options.logger.warn({ err: error }, 'certificate change feed unavailable; retrying');
      }
    },
  });

  type Row = {
    id: string;
    tenant_id: string;
    fingerprint: string;
    certificate_pem: string;
    private_key_sealed: string;
  };
  const toBundle = (row: Row | undefined): CachedBundle | null => {
    if (!row) return null;
    const chain = row.certificate_pem.endsWith('\n') ? row.certificate_pem : `${row.certificate_pem}\n`;
    const key = secrets.open(row.private_key_sealed);
    return {
      certificateId: row.id,
      tenantId: row.tenant_id,
      fingerprint: row.fingerprint,
      bundle: `${chain}${key.endsWith('\n') ? key : `${key}\n`}`,
    };
  };
  const inScope = (scope: TenantScope) =>
    scope === null ? sql`true` : sql`tenant_id = any(${`{${scope.join(',')}}`}::uuid[])`;

  return {
    edgeTokens,
    follower,
    cache,
    cachedForName: (scope, name) => cache.getByName(scopeKey(scope), name),
    async bundleForName(scope, name) {
      const key = scopeKey(scope);
      const hit = cache.getByName(key, name);
      if (hit !== undefined) return hit;
      const epoch = cache.epoch;
      const parent = parentOf(name);
      const names = parent ? [name, `*.${parent}`] : [name];
      const { rows } = await db.execute<Row>(
        sql`select id, tenant_id, fingerprint, certificate_pem, private_key_sealed from certificates
            where is_current and domains && ${`{${names.join(',')}}`}::text[] and ${inScope(scope)}
              -- Never a certificate for a name (exact, or the wildcard matched) another tenant holds.
              and not exists (select 1 from domain_claims dc where dc.tenant_id <> certificates.tenant_id
                and dc.name = any(${`{${names.join(',')}}`}::text[]) and dc.name = any(certificates.domains))
            order by (domains @> array[${name}]::text[]) desc, created_at desc, id desc
            limit 1`,
      );
      const value = toBundle(rows[0]);
      cache.setByName(key, name, value, epoch);
      return value;
    },
    async bundleForId(scope, id) {
      const key = scopeKey(scope);
      const hit = cache.getById(key, id);
      if (hit !== undefined) return hit;
      const epoch = cache.epoch;
      const { rows } = await db.execute<Row>(
        sql`select id, tenant_id, fingerprint, certificate_pem, private_key_sealed from certificates
            where id = ${id} and is_current and ${inScope(scope)}`,
      );
      const value = toBundle(rows[0]);
      cache.setById(key, id, value, epoch);
      return value;
    },
    start: () => follower.start(),
    async close() {
      await follower.close();
      await edgeTokens.close();
    },
  };
}
