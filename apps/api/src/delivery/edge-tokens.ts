import { safeEqual } from '@certq/core';
import { type Database, edgeTokens } from '@certq/db';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { Counter, Registry } from 'prom-client';

export interface EdgeIdentity {
  tokenId: string;
  name: string;
  /** null: every tenant. */
  tenantIds: string[] | null;
}

/** Edge tokens are told apart from tenant tokens by their prefix, so one lookup is enough. */
export const EDGE_TOKEN_PREFIX = 'cqe';

const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;
const FLUSH_INTERVAL_MS = 5_000;

/**
 * Edge token lookups and use counting. A TLS server may ask for a certificate on every handshake, so
 * neither a lookup nor a use may cost a row write: known hashes are cached for 10 s (a revocation on
 * another replica takes effect within that; on this one at once), and uses are summed in memory and
 * written to `edge_tokens.use_count` / `last_used_at` every 5 s, while the Prometheus counter
 * `certq_edge_token_requests_total` counts each one as it happens.
 */
export class EdgeTokenStore {
  readonly registry = new Registry();
  private readonly cache = new Map<string, { identity: EdgeIdentity | null; expires: number }>();
  private readonly pending = new Map<string, { uses: number; lastUsedAt: Date }>();
  private readonly uses = new Counter({
    name: 'certq_edge_token_requests_total',
    help: 'Requests authenticated by an edge token, by token id and route.',
    labelNames: ['token_id', 'route'] as const,
    registers: [this.registry],
  });
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly db: Database) {}

  async lookup(tokenHash: string): Promise<EdgeIdentity | undefined> {
    const hit = this.cache.get(tokenHash);
    if (hit && hit.expires > Date.now()) return hit.identity ?? undefined;
    const [row] = await this.db
      .select({
        id: edgeTokens.id,
        name: edgeTokens.name,
        tokenHash: edgeTokens.tokenHash,
        tenantIds: edgeTokens.tenantIds,
      })
      .from(edgeTokens)
      .where(and(eq(edgeTokens.tokenHash, tokenHash), isNull(edgeTokens.revokedAt)));
    const identity =
      row && safeEqual(row.tokenHash, tokenHash)
        ? { tokenId: row.id, name: row.name, tenantIds: row.tenantIds }
        : null;
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    // Unknown hashes are cached too (briefly), so a misconfigured server cannot hammer Postgres.
    this.cache.set(tokenHash, { identity, expires: Date.now() + CACHE_TTL_MS });
    return identity ?? undefined;
  }

  /** After a revocation on this replica: forget every cached token at once. */
  forgetAll(): void {
    this.cache.clear();
  }

  recordUse(tokenId: string, route: string, at = new Date()): void {
    this.uses.inc({ token_id: tokenId, route });
    const entry = this.pending.get(tokenId);
    if (entry) {
      entry.uses++;
      entry.lastUsedAt = at;
    } else {
      this.pending.set(tokenId, { uses: 1, lastUsedAt: at });
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush().catch(() => {});
      }, FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /** Writes the summed uses. On failure they are kept and added to the next flush. */
  async flush(): Promise<void> {
    const batch = [...this.pending.entries()];
    this.pending.clear();
    for (const [id, { uses, lastUsedAt }] of batch) {
      try {
        await this.db
          .update(edgeTokens)
          .set({
            useCount: sql`${edgeTokens.useCount} + ${uses}`,
            lastUsedAt: sql`greatest(${edgeTokens.lastUsedAt}, ${lastUsedAt.toISOString()}::timestamptz)`,
          })
          .where(eq(edgeTokens.id, id));
      } catch (error) {
        const again = this.pending.get(id);
        if (again) again.uses += uses;
        else this.pending.set(id, { uses, lastUsedAt });
        throw error;
      }
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => {});
  }
}
