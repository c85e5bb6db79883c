import { parseResolvers } from '@certq/core';
import { z } from 'zod';
import { CAS, type CaName } from './types';

export type VerifyMode = 'auto' | 'records' | 'dns';

export interface CallbackRetryOptions {
  /** Delivery attempts in total (the first one included) before giving up. */
  attempts: number;
  /** Delay before the second attempt; doubles for each further one. */
  baseMs: number;
}

export interface SimulatorOptions {
  /** Accepted `OpenApiKey` values; empty: any non-empty key is accepted. [SIM_API_KEYS] */
  apiKeys: string[];
  /**
   * `auto`: every domain verifies except under `.invalid`; `records`: only with a matching CNAME set through
   * `/_sim/dns`; `dns`: only when `CNAME <host>.<registered domain>` resolves (through `dnsResolver`) to
   * the handed-out hostValue, as httpsok checks public DNS. [SIM_VERIFY]
   */
  verify: VerifyMode;
  /** `ip:port` of the DNS server asked in `verify: 'dns'` (required there). [SIM_DNS_RESOLVER] */
  dnsResolver?: string | undefined;
  /** CAs whose applications end with status 3 (a CA that refuses). [SIM_CA_FAILURES] */
  caFailures: CaName[];
  /**
   * Lifetime of issued leaf certificates per CA, in ms, measured as notAfter − notBefore (the
   * backdating of notBefore included). [SIM_CERT_LIFETIME: `90d`, or `google:90d,letsencrypt:6d`]
   */
  certLifetimeMs: Record<CaName, number>;
  /** Seconds from apply to issued (or failed); 0 allowed. [SIM_ISSUE_SECONDS] */
  issueSeconds: number;
  /** Fraction (0..1) of upstream requests answered with a bare HTTP 500. [SIM_FAIL_RATE] */
  failRate: number;
  /** Latency added to every upstream-endpoint response. [SIM_LATENCY_MS] */
  latencyMs: number;
  /** Port used by `main.ts`. [SIM_PORT] */
  port: number;
  /** Interface used by `main.ts`. [SIM_HOST] */
  host: string;
  /** Minimum spacing of two requests for one application id (the documented 10 s rule). */
  pollFloorMs: number;
  /** Clock (ms since epoch); inject one to move time in tests. */
  now: () => number;
  /** Random source in [0, 1) for failure injection. */
  random: () => number;
  /** Retry policy of the issued callback. */
  callbackRetry: CallbackRetryOptions;
  /** Fastify/pino request logging. */
  logger: boolean;
  /** Directory holding root.pem/root.key/intermediate.pem/intermediate.key; created if absent. [SIM_CA_DIR] */
  caDir?: string | undefined;
}

/** What `createSimulator` accepts: any subset of the options, `callbackRetry` may be partial too. */
export type SimulatorInit = Partial<Omit<SimulatorOptions, 'callbackRetry' | 'certLifetimeMs'>> & {
  callbackRetry?: Partial<CallbackRetryOptions>;
  /** Per CA; CAs not given keep 90 days. */
  certLifetimeMs?: Partial<Record<CaName, number>>;
};

const DAY_MS = 86_400_000;

export const DEFAULT_OPTIONS: Readonly<SimulatorOptions> = Object.freeze({
  apiKeys: [],
  verify: 'auto',
  dnsResolver: undefined,
  caFailures: [],
  certLifetimeMs: Object.freeze({ google: 90 * DAY_MS, letsencrypt: 90 * DAY_MS, zerossl: 90 * DAY_MS }),
  issueSeconds: 30,
  failRate: 0,
  latencyMs: 0,
  port: 4010,
  host: '127.0.0.1',
  pollFloorMs: 10_000,
  now: Date.now,
  random: Math.random,
  callbackRetry: { attempts: 5, baseMs: 1000 },
  logger: false,
  caDir: undefined,
});

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS } as const;

/** `90d`, `6d`, `45m`, `90s`, `12h`: a whole number of seconds, minutes, hours or days, at least 1 s. */
export function parseDuration(raw: string): number | undefined {
  const match = /^(\d+)([smhd])$/.exec(raw.trim());
  if (!match) return undefined;
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

/**
 * SIM_CERT_LIFETIME: one duration for every CA (`90d`), or `ca:duration` entries (`google:90d,letsencrypt:6d`);
 * an entry without a CA sets the others (`6d,google:90d`). CAs not named keep 90 days.
 */
export function parseCertLifetime(raw: string): Record<CaName, number> | undefined {
  const entries = listOf(raw);
  if (entries.length === 0) return undefined;
  let fallback = DEFAULT_OPTIONS.certLifetimeMs.google;
  const named: Partial<Record<CaName, number>> = {};
  for (const entry of entries) {
    const [first, second, ...rest] = entry.split(':');
    if (rest.length > 0) return undefined;
    if (second === undefined) {
      const ms = parseDuration(first!);
      if (ms === undefined) return undefined;
      fallback = ms;
      continue;
    }
    const ca = first!.trim();
    const ms = parseDuration(second);
    if (!(CAS as readonly string[]).includes(ca) || ms === undefined) return undefined;
    named[ca as CaName] = ms;
  }
  return Object.fromEntries(CAS.map((ca) => [ca, named[ca] ?? fallback])) as Record<CaName, number>;
}

const decimal = /^\d+(\.\d+)?$/;
const integer = /^\d+$/;

interface EnvRule<T> {
  parse(raw: string): T | undefined;
  expected: string;
  secret?: boolean;
}

/** A number as `pattern` (decimal or integer) writes it, at most `max`; neither admits a sign, so never below 0. */
function numberRule(pattern: RegExp, max: number, expected: string): EnvRule<number> {
  return {
    parse: (raw) => {
      const n = pattern.test(raw.trim()) ? Number(raw) : Number.NaN;
      return n <= max ? n : undefined;
    },
    expected,
  };
}

/** A comma-separated list, entries trimmed, empty ones dropped. */
const listOf = (raw: string) =>
  raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);

const rules = {
  SIM_API_KEYS: {
    parse: listOf,
    expected: 'a comma-separated list of keys',
    secret: true,
  } satisfies EnvRule<string[]>,
  SIM_VERIFY: {
    parse: (raw: string) => z.enum(['auto', 'records', 'dns']).safeParse(raw.trim()).data,
    expected: '"auto", "records" or "dns"',
  } satisfies EnvRule<VerifyMode>,
  SIM_DNS_RESOLVER: {
    parse: (raw: string) => {
      try {
        const [one, ...more] = parseResolvers(raw);
        return more.length === 0 ? one : undefined;
      } catch {
        return undefined;
      }
    },
    expected: 'one resolver address, ip or ip:port',
  } satisfies EnvRule<string>,
  SIM_CA_FAILURES: {
    parse: (raw: string) => {
      const list = listOf(raw);
      return list.every((ca) => (CAS as readonly string[]).includes(ca)) ? (list as CaName[]) : undefined;
    },
    expected: 'a comma-separated list of google, letsencrypt, zerossl',
  } satisfies EnvRule<CaName[]>,
  SIM_CERT_LIFETIME: {
    parse: parseCertLifetime,
    expected: 'a duration such as 90d, 6d, 45m or 90s, or per CA as google:90d,letsencrypt:6d',
  } satisfies EnvRule<Record<CaName, number>>,
  SIM_ISSUE_SECONDS: numberRule(decimal, Number.POSITIVE_INFINITY, 'a number of seconds >= 0'),
  SIM_FAIL_RATE: numberRule(decimal, 1, 'a number between 0 and 1'),
  SIM_LATENCY_MS: numberRule(integer, Number.POSITIVE_INFINITY, 'an integer number of milliseconds >= 0'),
  SIM_PORT: numberRule(integer, 65535, 'a port number 0..65535'),
  SIM_HOST: {
    parse: (raw: string) => (raw.trim() === '' || /\s/.test(raw.trim()) ? undefined : raw.trim()),
    expected: 'a host name or IP address',
  } satisfies EnvRule<string>,
  SIM_CA_DIR: {
    parse: (raw: string) => (raw.trim() === '' ? undefined : raw.trim()),
    expected: 'a directory path',
  } satisfies EnvRule<string>,
};

function readEnv<T>(env: NodeJS.ProcessEnv, name: keyof typeof rules, rule: EnvRule<T>): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = rule.parse(raw);
  if (value === undefined) {
    const shown = rule.secret ? '' : ` (got ${JSON.stringify(raw)})`;
    throw new Error(`Invalid environment variable ${name}: expected ${rule.expected}${shown}`);
  }
  return value;
}

/** Reads the SIM_* variables; a bad value throws an Error naming the variable. */
export function loadSimulatorOptions(env: NodeJS.ProcessEnv = process.env): SimulatorOptions {
  const options: SimulatorOptions = {
    ...DEFAULT_OPTIONS,
    callbackRetry: { ...DEFAULT_OPTIONS.callbackRetry },
    apiKeys: readEnv(env, 'SIM_API_KEYS', rules.SIM_API_KEYS) ?? [],
    verify: readEnv(env, 'SIM_VERIFY', rules.SIM_VERIFY) ?? DEFAULT_OPTIONS.verify,
    dnsResolver: readEnv(env, 'SIM_DNS_RESOLVER', rules.SIM_DNS_RESOLVER),
    caFailures: readEnv(env, 'SIM_CA_FAILURES', rules.SIM_CA_FAILURES) ?? [],
    certLifetimeMs:
      readEnv(env, 'SIM_CERT_LIFETIME', rules.SIM_CERT_LIFETIME) ?? DEFAULT_OPTIONS.certLifetimeMs,
    issueSeconds: readEnv(env, 'SIM_ISSUE_SECONDS', rules.SIM_ISSUE_SECONDS) ?? DEFAULT_OPTIONS.issueSeconds,
    failRate: readEnv(env, 'SIM_FAIL_RATE', rules.SIM_FAIL_RATE) ?? DEFAULT_OPTIONS.failRate,
    latencyMs: readEnv(env, 'SIM_LATENCY_MS', rules.SIM_LATENCY_MS) ?? DEFAULT_OPTIONS.latencyMs,
    port: readEnv(env, 'SIM_PORT', rules.SIM_PORT) ?? DEFAULT_OPTIONS.port,
    host: readEnv(env, 'SIM_HOST', rules.SIM_HOST) ?? DEFAULT_OPTIONS.host,
    caDir: readEnv(env, 'SIM_CA_DIR', rules.SIM_CA_DIR),
  };
  if (options.verify === 'dns' && options.dnsResolver === undefined)
    throw new Error(
      'Invalid environment variable SIM_DNS_RESOLVER: required with SIM_VERIFY=dns (ip or ip:port)',
    );
  return options;
}

const nonNegative = z.number().finite().min(0);
const optionsSchema = z.object({
  apiKeys: z.array(z.string().min(1)),
  verify: z.enum(['auto', 'records', 'dns']),
  dnsResolver: z
    .string()
    .refine((v) => {
      try {
        return parseResolvers(v).length === 1;
      } catch {
        return false;
      }
    }, 'must be one resolver address, ip or ip:port')
    .optional(),
  caFailures: z.array(z.enum(CAS)),
  certLifetimeMs: z.object(
    Object.fromEntries(CAS.map((ca) => [ca, z.number().int().min(1000)])) as Record<CaName, z.ZodNumber>,
  ),
  issueSeconds: nonNegative,
  failRate: nonNegative.max(1),
  latencyMs: nonNegative,
  port: z.number().int().min(0).max(65535),
  host: z.string().min(1),
  pollFloorMs: nonNegative,
  now: z.custom<() => number>((v) => typeof v === 'function'),
  random: z.custom<() => number>((v) => typeof v === 'function'),
  callbackRetry: z.object({ attempts: z.number().int().min(1), baseMs: nonNegative }),
  logger: z.boolean(),
  caDir: z.string().min(1).optional(),
});

/** Fills defaults and checks ranges; a bad option throws an Error naming it. */
export function resolveOptions(init: SimulatorInit = {}): SimulatorOptions {
  const defined = Object.fromEntries(Object.entries(init).filter(([, v]) => v !== undefined));
  const merged = {
    ...DEFAULT_OPTIONS,
    ...defined,
    callbackRetry: { ...DEFAULT_OPTIONS.callbackRetry, ...init.callbackRetry },
    certLifetimeMs: { ...DEFAULT_OPTIONS.certLifetimeMs, ...init.certLifetimeMs },
  };
  const result = optionsSchema
    .refine((o) => o.verify !== 'dns' || o.dnsResolver !== undefined, {
      path: ['dnsResolver'],
      message: 'is required with verify "dns" (SIM_DNS_RESOLVER=ip:port)',
    })
    .safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new Error(`Invalid simulator option ${issue.path.join('.')}: ${issue.message}`);
  }
  return merged as SimulatorOptions;
}
