import type { IssuedCertificate } from './ca';
import { normalizeName } from './domains';
import type { Algorithm, CaName, SimStats } from './types';

/**
 * Everything the simulator remembers: applications, poll times, `/_sim/dns` records, counters, and the
 * timers of issue callbacks. Timers and deliveries belong to a generation; `reset()` and `close()` start
 * a new one, so nothing from before fires afterwards.
 */

export interface Application {
  id: number;
  owner: string;
  domains: string[];
  algorithm: Algorithm;
  ca: CaName;
  notifyUrl: string | undefined;
  createdAt: number;
  dueAt: number;
  /** Why the application ends with status 3 (a `.fail.test` domain or a CA in `caFailures`), else undefined. */
  failure: string | undefined;
  /** Turned terminal (by the clock on a read, or by the issue timer). */
  completed: boolean;
  cert: Promise<IssuedCertificate> | undefined;
}

const FIRST_ID = 236417;

type Counters = Omit<SimStats, 'appliesByDomains'>;
const zero = (): Counters => ({ dv: 0, apply: 0, get: 0, callbacks: 0, tooFrequent: 0 });

export class SimState {
  readonly applications = new Map<number, Application>();
  /** Last request time per application id (the 10 s rule). */
  readonly lastRequest = new Map<string, number>();
  /** CNAMEs set through `/_sim/dns` (`verify: 'records'`). */
  readonly dns = new Map<string, string>();
  counters: Counters = zero();
  private applies = new Map<string, number>();
  /** Apply requests per domain set, answered or not (which fault of SIM_APPLY_FAULTS is next). */
  private applyRequests = new Map<string, number>();
  private nextId = FIRST_ID;

  generation = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly waits = new Set<() => void>();
  private abortController = new AbortController();

  /** Aborted by `cancelAll()`: pending callback requests stop. */
  get signal(): AbortSignal {
    return this.abortController.signal;
  }

  /** Ids are sequential and never reused, not even after `reset()`. */
  takeId(): number {
    return this.nextId++;
  }

  recordApply(app: Application): void {
    this.applications.set(app.id, app);
    this.counters.apply++;
    const key = app.domains.join(',');
    this.applies.set(key, (this.applies.get(key) ?? 0) + 1);
  }

  /** Counts an apply request for `domains`; returns how many came before it. */
  countApplyRequest(domains: readonly string[]): number {
    const key = domains.join(',');
    const before = this.applyRequests.get(key) ?? 0;
    this.applyRequests.set(key, before + 1);
    return before;
  }

  schedule(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  /** An unref'd delay that resolves false when cancelled by reset()/close(). */
  wait(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = () => {
        this.waits.delete(done);
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.waits.delete(done);
        this.timers.delete(timer);
        resolve(true);
      }, ms);
      timer.unref();
      this.timers.add(timer);
      this.waits.add(done);
    });
  }

  cancelAll(): void {
    this.generation++;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const done of [...this.waits]) done();
    this.abortController.abort();
    this.abortController = new AbortController();
  }

  stats(): SimStats {
    return { ...this.counters, appliesByDomains: Object.fromEntries(this.applies) };
  }

  reset(): void {
    this.cancelAll();
    this.applications.clear();
    this.lastRequest.clear();
    this.dns.clear();
    this.counters = zero();
    this.applies = new Map();
    this.applyRequests = new Map();
  }

  setDns(name: string, value: string): void {
    const key = normalizeName(name);
    const target = normalizeName(value);
    if (target === '') this.dns.delete(key);
    else this.dns.set(key, target);
  }
}
