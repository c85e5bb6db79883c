import { addUpstreamUsage, type Database } from '@certq/db';
import type { Counter } from 'prom-client';
import type { CallReason, UpstreamEndpoint } from './reasons';

/** How often a worker adds its counts to Postgres: /v1/stats is that much behind at most. */
export const LEDGER_FLUSH_MS = 5_000;

/**
 * The upstream calls this worker made, by endpoint and reason, and the certificates it issued: counted
 * in the Prometheus counter at once, and added up in memory for Postgres (one statement every
 * LEDGER_FLUSH_MS, not one per call), so /v1/stats can show calls per issued certificate across workers.
 */
export class UpstreamLedger {
  private pending = new Map<string, { endpoint: UpstreamEndpoint; reason: CallReason; calls: number }>();
  private issued = 0;
  private flushing?: Promise<void>;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly db: Database,
    private readonly counter: Counter<'endpoint' | 'reason'>,
    private readonly now: () => Date,
    private readonly onError: (error: unknown) => void,
  ) {
    this.timer = setInterval(() => void this.flush(), LEDGER_FLUSH_MS);
    this.timer.unref();
  }

  call(endpoint: UpstreamEndpoint, reason: CallReason): void {
    this.counter.inc({ endpoint, reason });
    this.add(endpoint, reason, 1);
  }

  private add(endpoint: UpstreamEndpoint, reason: CallReason, calls: number): void {
    const key = `${endpoint}:${reason}`;
    const entry = this.pending.get(key);
    if (entry) entry.calls += calls;
    else this.pending.set(key, { endpoint, reason, calls });
  }

  certificateIssued(): void {
    this.issued++;
  }

  /** Adds what was counted since the last flush to Postgres; on failure the counts are kept for the next. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0 && this.issued === 0) return Promise.resolve();
    const counts = [...this.pending.values()];
    const issued = this.issued;
    this.pending = new Map();
    this.issued = 0;
    this.flushing = addUpstreamUsage(this.db, this.now(), counts, issued)
      .catch((error: unknown) => {
        for (const c of counts) this.add(c.endpoint, c.reason, c.calls);
        this.issued += issued;
        this.onError(error);
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.flush();
  }
}
