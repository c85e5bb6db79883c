import {
  createHttpsokDispatcher,
  HttpsokClient,
  type HttpsokEndpoint,
  HttpsokError,
  type ResponseInfo,
} from '@certq/api-client';
import { type Clock, type Config, type SecretBox, systemClock } from '@certq/core';
import { type Database, tenants } from '@certq/db';
import { createDnsResolver, type DnsResolver } from '@certq/dns';
import type { Queues } from '@certq/workflow';
import { eq } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { UpstreamLedger } from './budget/ledger';
import { FirstPollDelays } from './budget/poll-timing';
import type { UpstreamEndpoint } from './budget/reasons';
import { createUpstreamLimiter, type UpstreamLimiter } from './limiter';
import { createLogger } from './logger';
import { createWorkerMetrics, type WorkerMetrics } from './metrics';

const KEY_CACHE_MS = 30_000;
const LEDGER_ENDPOINTS: Record<HttpsokEndpoint, UpstreamEndpoint> = {
  verify: 'dv',
  apply: 'apply',
  getApply: 'get',
};

/** Everything a task needs, built once per process and passed explicitly (no globals). */
export interface WorkerContext {
  db: Database;
  queues: Queues;
  secrets: SecretBox;
  config: Config;
  clock: Clock;
  logger: Logger;
  metrics: WorkerMetrics;
  limiter: UpstreamLimiter;
  /** Where the upstream budget goes: every httpsok call by endpoint and reason, and each issued certificate. */
  upstream: UpstreamLedger;
  /** When to poll an application first, learned per CA from how recent first polls went. */
  firstPolls: FirstPollDelays;
  /** certq's own DNS lookups (DNS_RESOLVERS), rate-limited per resolver. */
  dns: DnsResolver;
  random: () => number;
  /** The httpsok client for a tenant: its own key (opened only now), else the operator's default. */
  httpsokFor(tenantId: string): Promise<HttpsokClient>;
  close(): Promise<void>;
}

export interface WorkerContextOptions {
  db: Database;
  queues: Queues;
  secrets: SecretBox;
  config: Config;
  /** Used for the cluster-wide upstream rate limit. */
  redis: Redis;
  clock?: Clock;
  logger?: Logger;
  metrics?: WorkerMetrics;
  random?: () => number;
  dispatcher?: Dispatcher;
  dns?: DnsResolver;
}

export function createWorkerContext(options: WorkerContextOptions): WorkerContext {
  const { db, config } = options;
  const metrics = options.metrics ?? createWorkerMetrics();
  const limiter = createUpstreamLimiter(
    options.redis,
    `${config.REDIS_PREFIX}:upstream-rate`,
    config.UPSTREAM_MAX_RPS,
  );
  const ownDispatcher = options.dispatcher === undefined;
  const dispatcher = options.dispatcher ?? createHttpsokDispatcher({ connections: 64 });
  const ownDns = options.dns === undefined;
  const dns =
    options.dns ??
    createDnsResolver({
      servers: config.DNS_RESOLVERS,
      ratePerSecond: config.DNS_RESOLVER_MAX_QPS,
    });
  const clients = new Map<string, HttpsokClient>();
  const sealedKeys = new Map<string, { sealed: string | null; at: number }>();
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  const upstream = new UpstreamLedger(
    db,
    metrics.upstreamCalls,
    () => clock.now(),
    (error) => logger.warn({ err: error }, 'could not record upstream calls; kept for the next flush'),
  );
  const hooks = {
    // A request for an application (a poll, an adoption's re-fetch) takes its token itself, once it has
    // claimed the poll slot (tasks/poll-slot.ts); every other call waits here, an apply before a verify.
    beforeRequest: (endpoint: string) =>
      endpoint === 'getApply' ? undefined : limiter.acquire(endpoint === 'apply' ? 'apply' : 'verify'),
    onResponse: (info: ResponseInfo) => {
      // A task counts each call once, by its reason; a call's automatic retries are counted here.
      if (info.attempt > 1) upstream.call(LEDGER_ENDPOINTS[info.endpoint], 'retry');
      metrics.upstreamRequests.inc({
        endpoint: info.endpoint,
        outcome: info.outcome === 'ok' ? 'ok' : (info.errorKind ?? 'error'),
      });
      metrics.upstreamDuration.observe({ endpoint: info.endpoint }, info.durationMs / 1000);
    },
  };
  const clientFor = (apiKey: string) => {
    let client = clients.get(apiKey);
    if (!client) {
      client = new HttpsokClient({
        apiKey,
        baseUrl: config.HTTPSOK_BASE_URL,
        timeoutMs: config.UPSTREAM_TIMEOUT_MS,
        dispatcher,
        hooks,
      });
      clients.set(apiKey, client);
    }
    return client;
  };
  return {
    db,
    queues: options.queues,
    secrets: options.secrets,
    config,
    clock,
    logger,
    metrics,
    limiter,
    upstream,
    firstPolls: new FirstPollDelays(Boolean(config.PUBLIC_BASE_URL), config.POLL_INTERVAL_MS),
    dns,
    random: options.random ?? Math.random,
    async httpsokFor(tenantId) {
      // Every upstream call needs the tenant's key; a short cache saves a query per call, and a changed
      // key takes effect within KEY_CACHE_MS. Only the sealed form is cached; it is opened per call.
      let cached = sealedKeys.get(tenantId);
      if (!cached || cached.at + KEY_CACHE_MS < Date.now()) {
        const [tenant] = await db
          .select({ sealed: tenants.httpsokApiKeySealed })
          .from(tenants)
          .where(eq(tenants.id, tenantId));
        cached = { sealed: tenant?.sealed ?? null, at: Date.now() };
        sealedKeys.set(tenantId, cached);
      }
      const apiKey = cached.sealed ? options.secrets.open(cached.sealed) : config.HTTPSOK_API_KEY;
      if (!apiKey) {
        throw new HttpsokError({
          kind: 'upstream',
          endpoint: 'verify',
          msg: 'no httpsok API key: set HTTPSOK_API_KEY or give the tenant its own key',
          retryable: false,
          authFailed: true,
        });
      }
      return clientFor(apiKey);
    },
    async close() {
      await upstream.close();
      if (ownDns) dns.close();
      clients.clear();
      sealedKeys.clear();
      if (ownDispatcher) await dispatcher.close();
    },
  };
}
