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

/** A cached lookup is used for 10 s at most; after 5 s it is refreshed in the background. */
const CACHE_TTL_MS = 10_000;
const REFRESH_AFTER_MS = 5_000;
const CACHE_MAX = 10_000;
const FLUSH_INTERVAL_MS = 5_000;
/** `last_seen_at` moves at most this often per token. */
const SEEN_INTERVAL_MS = 60_000;

/**
 * Edge token lookups and use counting. A TLS server may ask for a certificate on every handshake, so
 * neither a lookup nor a use may cost a round trip or a row write: lookups are cached for 10 s (a
 * revocation on another replica takes effect within that; on this one at once) and refreshed in the
 * background after 5 s, one query per token at a time, so a busy token never waits for Postgres once
 * it is known; uses are summed in memory and
 * written to `edge_tokens.use_count` / `last_used_at` every 5 s, while the Prometheus counter
 * `certq_edge_token_requests_total` counts each one as it happens.
 */
export class EdgeTokenStore {
  readonly registry = new Registry();
  private readonly cache = new Map<string, { identity: EdgeIdentity | null; at: number }>();
  private readonly inflight = new Map<string, Promise<EdgeIdentity | null>>();
  private readonly pending = new Map<string, { uses: number; lastUsedAt: Date }>();
  private readonly uses = new Counter({
    name: 'certq_edge_token_requests_total',
    help: 'Requests authenticated by an edge token, by token id and route.',
    labelNames: ['token_id', 'route'] as const,
    registers: [this.registry],
  });
  private timer: NodeJS.Timeout | undefined;
  /** When each token's `last_seen_at` was last written by this replica. */
  private readonly seenWrittenAt = new Map<string, number>();

  constructor(private readonly db: Database) {}

  async lookup(tokenHash: string): Promise<EdgeIdentity | undefined> {
    const hit = this.cache.get(tokenHash);
    const age = hit ? Date.now() - hit.at : Number.POSITIVE_INFINITY;
    if (hit && age < CACHE_TTL_MS) {
      if (age >= REFRESH_AFTER_MS) void this.load(tokenHash).catch(() => {});
      return hit.identity ?? undefined;
    }
    return (await this.load(tokenHash)) ?? undefined;
  }

  /** One query per token hash at a time, however many handshakes ask meanwhile. */
  private load(tokenHash: string): Promise<EdgeIdentity | null> {
    let pending = this.inflight.get(tokenHash);
    if (!pending) {
      pending = this.query(tokenHash).finally(() => this.inflight.delete(tokenHash));
      this.inflight.set(tokenHash, pending);
    }
    return pending;
  }

  private async query(tokenHash: string): Promise<EdgeIdentity | null> {
    const startedAt = Date.now();
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
    // A revocation on this replica while the query ran must not be undone by its answer.
    if (startedAt <= this.forgottenAt) return identity;
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    // Unknown hashes are cached too (briefly), so a misconfigured server cannot hammer Postgres.
    this.cache.set(tokenHash, { identity, at: startedAt });
    return identity;
  }

  /** After a revocation on this replica: forget every cached token at once. */
  forgetAll(): void {
    this.forgottenAt = Date.now();
    this.cache.clear();
  }

  private forgottenAt = 0;

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
      const seenDue = lastUsedAt.getTime() - (this.seenWrittenAt.get(id) ?? 0) >= SEEN_INTERVAL_MS;
      const at = sql`${lastUsedAt.toISOString()}::timestamptz`;
      try {
        await this.db
          .update(edgeTokens)
          .set({
            useCount: sql`${edgeTokens.useCount} + ${uses}`,
            lastUsedAt: sql`greatest(${edgeTokens.lastUsedAt}, ${at})`,
            ...(seenDue ? { lastSeenAt: sql`greatest(${edgeTokens.lastSeenAt}, ${at})` } : {}),
          })
          .where(eq(edgeTokens.id, id));
        if (seenDue) {
          if (this.seenWrittenAt.size >= CACHE_MAX) this.seenWrittenAt.clear();
          this.seenWrittenAt.set(id, lastUsedAt.getTime());
        }
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
