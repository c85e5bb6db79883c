import type { Database } from '@certq/db';
import { sql } from 'drizzle-orm';
import pg from 'pg';

export const CHANGES_CHANNEL = 'certq_certificate_changes';

export interface FollowedChange {
  id: number;
  certificateId: string;
  domains: string[];
}

export interface ChangeFollowerOptions {
  db: Database;
  /** For the LISTEN connection; without it the follower only polls. */
  databaseUrl?: string;
  /** Backstop poll, for a lost notification or a LISTEN connection that is down. */
  pollIntervalMs?: number;
  onChanges(changes: FollowedChange[]): void;
  onError?(error: unknown): void;
}

/**
 * Follows `certificate_changes` in one API replica: woken by NOTIFY (sent by the trigger at commit) and
 * polling as a backstop, it reads every change past the last one it saw and hands them on, in id
 * order — to the TLS cache (which drops what they touch) and to long-polls of the change feed (which
 * wake up and query Postgres themselves, so their answers never depend on this replica's memory).
 */
export class ChangeFollower {
  private lastId = -1;
  private readonly waiters = new Set<() => void>();
  private listener: pg.Client | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private closing = false;

  constructor(private readonly options: ChangeFollowerOptions) {}

  async start(): Promise<void> {
    await this.catchUp().catch((error) => this.options.onError?.(error));
    await this.listen();
    const interval = this.options.pollIntervalMs ?? 1000;
    this.pollTimer = setInterval(() => this.nudge(), interval);
    this.pollTimer.unref();
  }

  /** The highest change id this replica has seen (-1 before the first read). */
  get seen(): number {
    return this.lastId;
  }

  /** Set when the API is shutting down: long-polls answer at once instead of holding the close up. */
  get stopping(): boolean {
    return this.closing;
  }

  /** Wakes every long-poll for good (Fastify's preClose: in-flight requests must finish promptly). */
  stopWaiting(): void {
    this.closing = true;
    for (const wake of [...this.waiters]) wake();
  }

  /**
   * Resolves once this replica has seen a change past `afterId` — at once if it already has (a change
   * seen between the caller's query and this call must not be slept through) — or when `timeoutMs`
   * passes, or `signal` aborts.
   */
  waitForChange(afterId: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closing || this.lastId > afterId) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      signal?.addEventListener('abort', done);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.reconnectTimer);
    for (const wake of [...this.waiters]) wake();
    await this.listener?.end().catch(() => {});
    await this.running?.catch(() => {});
  }

  private nudge(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.catchUp();
        } catch (error) {
          this.options.onError?.(error);
          break;
        }
      } while (this.again && !this.closed);
    })().finally(() => {
      this.running = undefined;
    });
  }

  private async catchUp(): Promise<void> {
    if (this.lastId < 0) {
      // A replica starting up has nothing cached: begin at the head of the feed.
      const { rows } = await this.options.db.execute<{ id: string }>(
        sql`select coalesce(max(id), 0)::text as id from certificate_changes`,
      );
      this.lastId = Number(rows[0]!.id);
      return;
    }
    for (;;) {
      const { rows } = await this.options.db.execute<{
        id: string;
        certificate_id: string;
        domains: string[];
      }>(
        sql`select id::text, certificate_id, domains from certificate_changes
            where id > ${this.lastId} order by id limit 1000`,
      );
      if (rows.length === 0) return;
      const changes = rows.map((r) => ({
        id: Number(r.id),
        certificateId: r.certificate_id,
        domains: r.domains,
      }));
      this.lastId = changes[changes.length - 1]!.id;
      this.options.onChanges(changes);
      for (const wake of [...this.waiters]) wake();
      if (rows.length < 1000) return;
    }
  }

  private async listen(): Promise<void> {
    if (!this.options.databaseUrl || this.closed) return;
    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      application_name: 'certq-api-feed',
    });
    const reconnect = (error?: unknown) => {
      if (error) this.options.onError?.(error);
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => {});
      if (this.closed) return;
      this.reconnectTimer = setTimeout(() => void this.listen(), 1000);
      this.reconnectTimer.unref();
    };
    client.on('error', reconnect);
    client.on('end', () => reconnect());
    client.on('notification', () => this.nudge());
    this.listener = client;
    try {
      await client.connect();
      await client.query(`listen ${CHANGES_CHANNEL}`);
      // Anything committed while we were not listening.
      this.nudge();
    } catch (error) {
      reconnect(error);
    }
  }
}
