import { getServers } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { parseResolvers } from '@certq/core';
import { queryCaa } from './caa-query';

/**
 * certq's own DNS lookups: one node `dns.promises.Resolver` per configured server (so each has its own
 * rate limit and a failing one hands over to the next), with a timeout per query and a token bucket per
 * server so a resolver is never hammered, however many orders wait on DNS at once.
 *
 * node (c-ares) reports the answer's rcode as an error code; the ones that matter here:
 * - `ENOTFOUND`: NXDOMAIN, the name does not exist.
 * - `ENODATA`: NOERROR without an answer of the asked type (the name exists, e.g. with a TXT only).
 * - `ESERVFAIL`: the server could not answer (a broken authoritative server, DNSSEC failure upstream…).
 * - `ETIMEOUT`: no answer within the timeout and tries. `EREFUSED`, `ECONNREFUSED`, `ENOTIMP`, `EFORMERR`,
 *   `EBADRESP`, `ECANCELLED` are failures of the resolver too.
 * The first two say something about the tenant's DNS; every other one is "could not tell".
 * CAA is not asked through node: see `caa-query.ts`.
 */

export type LookupOutcome<T> =
  | { kind: 'answer'; value: T; server: string }
  | { kind: 'nxdomain'; server: string }
  | { kind: 'nodata'; server: string }
  | { kind: 'failed'; code: string; server: string };

export interface CaaRecord {
  /** The flags octet; bit 128 is the issuer-critical flag. */
  flags: number;
  tag: string;
  value: string;
}

export interface DnsResolver {
  /** The servers asked, in order of preference, as `ip:port` (`[v6]:port`). */
  readonly servers: readonly string[];
  /** The CNAME target of `name` (lower-case, no trailing dot). */
  cname(name: string): Promise<LookupOutcome<string>>;
  /** The CAA RRset of `name` (not climbing: see `caa.ts`). */
  caa(name: string): Promise<LookupOutcome<CaaRecord[]>>;
  /** The TXT records of `name`, each one's strings joined (ownership records). Never cached. */
  txt(name: string): Promise<LookupOutcome<string[]>>;
  /** Lookups sent per server (c-ares may retry one lookup up to `tries` times on a timeout). */
  stats(): Record<string, number>;
  /** Cancels queries in flight. */
  close(): void;
}

export interface DnsResolverOptions {
  /** `ip` or `ip:port` entries; empty or absent: the system's resolvers. */
  servers?: readonly string[] | string | undefined;
  /** Per query and try (c-ares doubles it on each retry). Default 2000. */
  timeoutMs?: number;
  /** Tries per server before it counts as timed out. Default 2. */
  tries?: number;
  /** Sustained lookups per second per server (DNS_RESOLVER_MAX_QPS). Default 500. */
  ratePerSecond?: number;
  /** Lookups a server may get at once before the rate applies. Default min(rate, 100). */
  burst?: number;
  /** Clock for the token bucket and the CAA cache (tests); default `Date.now`. */
  now?: () => number;
  /**
   * How long a CAA answer (records, NODATA, NXDOMAIN; never a failure) is reused, default 30 s: orders of one
   * tenant share the upper levels of the climb (`example.com`, `com`), and CAA changes rarely. 0: no cache.
   * CNAME lookups are never cached: they must see the tenant's change at once.
   */
  caaCacheMs?: number;
}

export { parseResolvers };

/** Failures that say "could not tell" rather than anything about the records. */
const NOT_FOUND_CODES = new Set(['ENOTFOUND']);
const NO_DATA_CODES = new Set(['ENODATA']);

/**
 * A FIFO token bucket in GCRA form: each caller gets the next slot, `1000 / rate` ms after the previous
 * one, and up to `burst` slots may be taken at once. No polling: a caller sleeps exactly until its slot.
 */
export class TokenBucket {
  private tat = 0;
  private readonly interval: number;
  constructor(
    ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new Error('rate must be > 0 and burst >= 1');
    this.interval = 1000 / ratePerSecond;
  }

  /** Milliseconds the caller must wait before its query; reserves the slot. */
  reserve(): number {
    const now = this.now();
    const tat = Math.max(this.tat, now);
    const allowedAt = tat - (this.burst - 1) * this.interval;
    this.tat = tat + this.interval;
    return Math.max(0, allowedAt - now);
  }

  async take(): Promise<void> {
    const wait = this.reserve();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

interface Server {
  address: string;
  resolver: Resolver;
  bucket: TokenBucket;
  queries: number;
}

const clean = (name: string) => name.trim().toLowerCase().replace(/\.$/, '');

export function createDnsResolver(options: DnsResolverOptions = {}): DnsResolver {
  const configured = parseResolvers(options.servers);
  const addresses = configured.length > 0 ? configured : parseResolvers(getServers());
  if (addresses.length === 0) throw new Error('no DNS resolver configured and none found on the system');
  const timeout = options.timeoutMs ?? 2000;
  const tries = options.tries ?? 2;
  const servers: Server[] = addresses.map((address) => {
    const resolver = new Resolver({ timeout, tries });
    resolver.setServers([address]);
    return {
      address,
      resolver,
      bucket: new TokenBucket(
        options.ratePerSecond ?? 500,
        options.burst ?? Math.max(1, Math.min(options.ratePerSecond ?? 500, 100)),
        options.now,
      ),
      queries: 0,
    };
  });

  const now = options.now ?? Date.now;
  const caaCacheMs = options.caaCacheMs ?? 30_000;
  const caaCache = new Map<string, { at: number; outcome: LookupOutcome<CaaRecord[]> }>();

  async function ask<T>(run: (server: Server) => Promise<T>): Promise<LookupOutcome<T>> {
    let last: LookupOutcome<T> | undefined;
    // A server that cannot answer hands over to the next one; an answer (NXDOMAIN included) is final.
    for (const server of servers) {
      await server.bucket.take();
      server.queries++;
      try {
        return { kind: 'answer', value: await run(server), server: server.address };
      } catch (error) {
        const code = String((error as NodeJS.ErrnoException).code ?? 'EUNKNOWN');
        if (NOT_FOUND_CODES.has(code)) return { kind: 'nxdomain', server: server.address };
        if (NO_DATA_CODES.has(code)) return { kind: 'nodata', server: server.address };
        last = { kind: 'failed', code, server: server.address };
      }
    }
    return last!;
  }

  return {
    servers: addresses,
    async cname(name) {
      const outcome = await ask((server) => server.resolver.resolveCname(clean(name)));
      if (outcome.kind !== 'answer') return outcome;
      const target = outcome.value[0];
      return target === undefined
        ? { kind: 'nodata', server: outcome.server }
        : { ...outcome, value: clean(target) };
    },
    async caa(name) {
      const key = clean(name);
      const cached = caaCache.get(key);
      if (cached && now() - cached.at < caaCacheMs) return cached.outcome;
      const outcome = await ask((server) => queryCaa(server.address, key, { timeoutMs: timeout, tries }));
      if (caaCacheMs > 0 && outcome.kind !== 'failed') {
        if (caaCache.size >= 10_000) caaCache.clear();
        caaCache.set(key, { at: now(), outcome });
      }
      return outcome;
    },
    async txt(name) {
      const outcome = await ask((server) => server.resolver.resolveTxt(clean(name)));
      return outcome.kind === 'answer'
        ? { ...outcome, value: outcome.value.map((chunks) => chunks.join('')) }
        : outcome;
    },
    stats: () => Object.fromEntries(servers.map((s) => [s.address, s.queries])),
    close() {
      for (const s of servers) s.resolver.cancel();
    },
  };
}
