import { auditLog, type Database } from '@certq/db';
import type { FastifyBaseLogger } from 'fastify';

/** One audited read, before aggregation. */
export interface BufferedRead {
  tenantId: string | null;
  actor: string;
  action: string;
  subjectId: string | null;
  ip: string;
  requestId: string;
  /** What distinguishes reads of one subject worth separate rows (e.g. the server name asked). */
  detail: Record<string, unknown>;
}

const MAX_PENDING = 50_000;

/**
 * Audit rows written off the request path: the TLS route hands out a private key at every handshake
 * and must not wait for an INSERT each time. Reads are aggregated per (actor, action, subject, client
 * address, detail) and written every `flushMs` in one multi-row INSERT: a row then says how many such
 * reads happened between `firstAt` and `lastAt`, and the request id of the first. An INSERT that fails
 * keeps its rows for the next flush (and logs); past MAX_PENDING distinct rows the oldest are dropped,
 * each drop logged with its count — never silently. `close()` writes what is left.
 */
export class AuditBuffer {
  private pending = new Map<string, BufferedRead & { count: number; firstAt: Date; lastAt: Date }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly db: Database,
    private readonly log: FastifyBaseLogger | undefined,
    private readonly flushMs = 1000,
  ) {}

  add(read: BufferedRead, at = new Date()): void {
    const key = JSON.stringify([read.actor, read.action, read.subjectId, read.ip, read.detail]);
    const known = this.pending.get(key);
    if (known) {
      known.count++;
      known.lastAt = at;
    } else {
      if (this.pending.size >= MAX_PENDING) this.dropOldest();
      this.pending.set(key, { ...read, count: 1, firstAt: at, lastAt: at });
    }
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs);
  }

  /** Writes every pending row now (waits for a flush in progress first). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = (async () => {
      try {
        const rows = [...batch.values()];
        for (let i = 0; i < rows.length; i += 1000)
          await this.db.insert(auditLog).values(
            rows.slice(i, i + 1000).map((r) => ({
              tenantId: r.tenantId,
              actor: r.actor,
              action: r.action,
              subjectId: r.subjectId,
              ip: r.ip,
              requestId: r.requestId,
              at: r.firstAt,
              detail: { ...r.detail, count: r.count, firstAt: r.firstAt, lastAt: r.lastAt },
            })),
          );
      } catch (error) {
        // Kept for the next flush, merged with what came meanwhile.
        for (const [key, row] of batch) {
          const later = this.pending.get(key);
          if (later) {
            later.count += row.count;
            later.firstAt = row.firstAt;
          } else this.pending.set(key, row);
        }
        this.log?.warn({ err: error, rows: batch.size }, 'audit rows not written yet; retrying');
        this.timer ??= setTimeout(() => void this.flush(), this.flushMs * 5);
      }
    })();
    await this.flushing;
    this.flushing = undefined;
  }

  private dropOldest(): void {
    const [key, row] = this.pending.entries().next().value as [string, BufferedRead & { count: number }];
    this.pending.delete(key);
    this.log?.error(
      { action: row.action, subjectId: row.subjectId, actor: row.actor, reads: row.count },
      'audit buffer full (the database has been away too long): these reads are not recorded',
    );
  }

  async close(): Promise<void> {
    await this.flush();
  }
}
