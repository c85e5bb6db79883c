import { z } from 'zod';
import { UPSTREAM_FLOOR_MS } from './backoff';
import { isRedisClusterUrl } from './redis';
import { parseResolvers } from './resolvers';

const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value);
const optionalString = z.preprocess(emptyAsUndefined, z.string().optional());
const _bool = (fallback: boolean) =>
  z.preprocess(
    emptyAsUndefined,
    z
      .enum(['true', 'false'])
      .default(fallback ? 'true' : 'false')
      .transform((v) => v === 'true'),
  );
const int = (fallback: number) => z.preprocess(emptyAsUndefined, z.coerce.number().int().default(fallback));
const bool = (fallback: boolean) =>
  z.preprocess(
    emptyAsUndefined,
    z
      .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
      .default(fallback ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1'),
  );

/**
 * `TRUST_PROXY` as Fastify's `trustProxy`: unset/`false` trusts nobody (the socket's address is the
 * client's), `true` trusts every hop, a number trusts that many hops, anything else is a
 * comma-separated list of proxy addresses/CIDRs (e.g. `127.0.0.1,10.0.0.0/8`).
 */
export function parseTrustProxy(
  value: string | undefined,
): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (value === undefined || value === '' || value === 'false') return false;
  if (value === 'true') return true;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address, hop) => hop < hops;
  }
  return value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
}

/**
 * Every setting of certq, read from the environment once at start. A bad value stops the process
 * with a message naming the variable (see `formatConfigError`).
 */
export const configSchema = z.object({
  DATABASE_URL: optionalString,
  REDIS_URL: optionalString,
  /**
   * Prefix of every Redis key certq writes. On a Redis Cluster (`redis+cluster://` in REDIS_URL) it
   * must contain one hash tag (`{certq}`, the default there), so every key lands in one slot.
   */
  REDIS_PREFIX: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(
        /^[A-Za-z0-9_.-]*(\{[A-Za-z0-9_.-]+\})?[A-Za-z0-9_.-]*$/,
        'letters, digits, _ . - and at most one {hash tag}',
      )
      .refine((v) => v.length > 0, 'must not be empty')
      .optional(),
  ),
  HTTPSOK_BASE_URL: z.preprocess(emptyAsUndefined, z.string().url().default('https://openapi.httpsok.com')),
  HTTPSOK_API_KEY: optionalString,
  ADMIN_TOKEN: z.preprocess(
    emptyAsUndefined,
    z.string().min(16, 'must be at least 16 characters').optional(),
  ),
  /** A read-only operator: reads everything the admin can, every write answers 403. */
  VIEWER_TOKEN: z.preprocess(
    emptyAsUndefined,
    z.string().min(16, 'must be at least 16 characters').optional(),
  ),
  ENCRYPTION_KEY: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded')
      .optional(),
  ),
  ENCRYPTION_KEYS_PREVIOUS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .refine(
        (v) => v.split(',').every((k) => Buffer.from(k.trim(), 'base64').length === 32),
        'must be a comma-separated list of 32-byte base64 keys',
      )
      .optional(),
  ),
  PUBLIC_BASE_URL: z.preprocess(emptyAsUndefined, z.string().url().optional()),
  HOST: z.preprocess(emptyAsUndefined, z.string().default('0.0.0.0')),
  PORT: int(3000).pipe(z.number().min(0).max(65535)),
  POLL_INTERVAL_MS: int(UPSTREAM_FLOOR_MS).pipe(
    z
      .number()
      .min(UPSTREAM_FLOOR_MS, `must be at least ${UPSTREAM_FLOOR_MS} (the upstream's 10 s polling floor)`),
  ),
  VERIFY_WINDOW_HOURS: int(72).pipe(z.number().min(1)),
  VERIFY_MAX_DELAY_MS: int(15 * 60_000).pipe(z.number().min(UPSTREAM_FLOOR_MS)),
  /**
   * Optional cap on the renewal window (see renewal-policy.ts): renew at least this many days before
   * expiry, never before half the lifetime. Unset: a third of each certificate's lifetime left alone.
   */
  RENEW_BEFORE_DAYS: z.preprocess(emptyAsUndefined, z.coerce.number().int().min(1).max(365).optional()),
  /** How long a renewal's DNS must keep reading missing/wrong_target before its certificate is `moved`. */
  MOVED_GRACE_DAYS: z
    .preprocess(emptyAsUndefined, z.coerce.number().default(7))
    .pipe(z.number().positive().max(365)),
  RENEW_SCAN_INTERVAL_MS: int(10 * 60_000).pipe(z.number().min(1000)),
  UPSTREAM_TIMEOUT_MS: int(15_000).pipe(z.number().min(1000).max(120_000)),
  UPSTREAM_MAX_RPS: int(20).pipe(z.number().min(1)),
  /**
   * `false` behind PgBouncer in transaction mode older than 1.21 (or without max_prepared_statements):
   * no named prepared statements, which such a pooler cannot carry across transactions.
   */
  DATABASE_PREPARED_STATEMENTS: bool(true),
  /**
   * Postgres connections per process. Tasks hold one only between upstream calls, never across one,
   * so a few serve many concurrent jobs; mind the server's max_connections times the replicas.
   */
  DATABASE_POOL_SIZE: int(10).pipe(z.number().min(1).max(500)),
  WORKER_CONCURRENCY: int(20).pipe(z.number().min(1).max(1000)),
  /**
   * With PUBLIC_BASE_URL set: how long an apply whose outcome was lost waits for its callback (which
   * announces the application, adopted instead of applying again) before it applies again.
   */
  APPLY_ADOPT_WAIT_MS: int(15 * 60_000).pipe(z.number().min(0)),
  /** Apply calls in flight per worker process (see apps/worker/src/tasks/apply.ts on duplicates). */
  APPLY_CONCURRENCY: int(4).pipe(z.number().min(1).max(1000)),
  /** How long a job's lock lasts unrenewed: a crashed worker's jobs are picked up again after about this long. */
  WORKER_LOCK_DURATION_MS: int(30_000).pipe(z.number().min(1000)),
  WORKER_STALLED_INTERVAL_MS: int(30_000).pipe(z.number().min(500)),
  WORKER_METRICS_PORT: int(9464).pipe(z.number().min(0).max(65535)),
  RECONCILE_INTERVAL_MS: int(60_000).pipe(z.number().min(1000)),
  /**
   * Bearer token Prometheus sends to `/metrics` (API and worker). Unset: `/metrics` answers only to
   * the operator token (ADMIN_TOKEN). Never anonymous: metrics describe every tenant's workload.
   */
  METRICS_TOKEN: z.preprocess(
    emptyAsUndefined,
    z.string().min(16, 'must be at least 16 characters').optional(),
  ),
  /** `true` adds tenant ids to the per-tenant soonest-expiry series and domains to per-certificate ones. */
  METRICS_TENANT_LABELS: bool(false),
  /**
   * Per-certificate expiry series (`certq_certificate_expiration_timestamp_seconds`) only for current
   * certificates expiring within this many days, at most METRICS_CERTIFICATE_SERIES_MAX; 0: none.
   */
  METRICS_CERTIFICATE_WINDOW_DAYS: int(0).pipe(z.number().min(0).max(3650)),
  METRICS_CERTIFICATE_SERIES_MAX: int(1000).pipe(z.number().min(1).max(100_000)),
  /**
   * `/v1/stats`, `/admin` and the API's Postgres gauges read one snapshot, recomputed in the
   * background when older than this; 0 computes it at every request (small installations, tests).
   */
  STATS_MAX_AGE_MS: int(15_000).pipe(z.number().min(0)),
  /** Finished orders' events and settled webhook deliveries are deleted after this many days. */
  RETENTION_DAYS: int(90).pipe(z.number().min(1)),
  /** Certificates no longer current are deleted this many days after they expire. */
  CERTIFICATE_RETENTION_DAYS: int(90).pipe(z.number().min(0)),
  /** Rows deleted per statement by the retention sweep (small batches keep locks and WAL bursts short). */
  RETENTION_BATCH_SIZE: int(1000).pipe(z.number().min(1).max(100_000)),
  RATE_LIMIT_PER_MINUTE: int(600).pipe(z.number().min(1)),
  BODY_LIMIT_BYTES: int(16 * 1024 * 1024).pipe(z.number().min(1024)),
  /** Resolvers for certq's own DNS checks: comma-separated `ip` or `ip:port`; empty: the system's. */
  DNS_RESOLVERS: optionalString.superRefine((value, ctx) => {
    try {
      parseResolvers(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  }),
  /** First delay between local DNS checks of a domain still waiting on its record (grows to a cap). */
  DNS_CHECK_INTERVAL_MS: int(15_000).pipe(z.number().min(100)),
  /** Lookups per second certq sends each resolver at most (a token bucket per resolver). */
  DNS_RESOLVER_MAX_QPS: int(500).pipe(z.number().min(1)),
  /**
   * Development only: let webhooks reach loopback, private, link-local… addresses. Off, a tenant's
   * webhook can only reach public addresses, checked when set and again at connect time.
   */
  WEBHOOK_ALLOW_PRIVATE: bool(false),
  /** Fastify's trustProxy (see parseTrustProxy): per-IP limits and audit rows use X-Forwarded-For then. */
  TRUST_PROXY: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(
        /^(true|false|\d+|[0-9A-Fa-f:./]+(,\s*[0-9A-Fa-f:./]+)*)$/,
        'must be true, false, a hop count or a list of addresses/CIDRs',
      )
      .optional(),
  ),
  /** A request must arrive whole within this long (a body trickled byte by byte is cut off). */
  REQUEST_TIMEOUT_MS: int(30_000).pipe(z.number().min(500).max(600_000)),
  /** An idle keep-alive connection is closed after this long. */
  KEEP_ALIVE_TIMEOUT_MS: int(5_000).pipe(z.number().min(100).max(600_000)),
  /** Failed authentications per client address per minute before 429 (counted before any token lookup). */
  AUTH_FAILURES_PER_MINUTE: int(30).pipe(z.number().min(1)),
  LOG_LEVEL: z.preprocess(
    emptyAsUndefined,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
});

export type Config = Omit<z.infer<typeof configSchema>, 'REDIS_PREFIX'> & { REDIS_PREFIX: string };

export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(`invalid configuration: ${issues.map((i) => `${i.variable} ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  /** Outside `pnpm start`, the operator's token and the encryption key must be given. */
  requireSecrets?: boolean;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: LoadConfigOptions = {}): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({
        variable: String(issue.path[0] ?? '?'),
        message: issue.message,
      })),
    );
  }
  const parsedConfig = parsed.data;
  const cluster = parsedConfig.REDIS_URL ? isRedisClusterUrl(parsedConfig.REDIS_URL) : false;
  if (cluster && parsedConfig.REDIS_PREFIX !== undefined && !/\{.+\}/.test(parsedConfig.REDIS_PREFIX)) {
    throw new ConfigError([
      {
        variable: 'REDIS_PREFIX',
        message:
          'must contain a hash tag such as {certq} on a Redis Cluster (BullMQ keeps each queue in one slot)',
      },
    ]);
  }
  const config = {
    ...parsedConfig,
    REDIS_PREFIX: parsedConfig.REDIS_PREFIX ?? (cluster ? '{certq}' : 'certq'),
  };
  if (options.requireSecrets) {
    const missing = (['ADMIN_TOKEN', 'ENCRYPTION_KEY', 'DATABASE_URL', 'REDIS_URL'] as const).filter(
      (k) => !config[k],
    );
    if (missing.length)
      throw new ConfigError(missing.map((variable) => ({ variable, message: 'is required' })));
  }
  return config;
}
