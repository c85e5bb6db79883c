import { z } from 'zod';

/*
 * Zod schemas for the httpsok OpenAPI. The upstream is loosely specified (see
 * https://openapi.httpsok.com): ids and progress arrive as numbers or strings and
 * undocumented fields may appear, so those parts are lenient. What the system
 * acts on is strict: an unknown status, or an "issued" answer without a usable
 * certificate and key, is rejected rather than guessed at.
 *
 * Custom messages below never echo input values: a rejected body may hold a
 * private key, and these messages end up in logs.
 */

// ---------------------------------------------------------------------------
// Dates

/**
 * The provider documents `YYYY-MM-DD HH:mm:ss` without a timezone. It is a
 * Chinese service, so we ASSUME UTC+8 (China Standard Time, no DST). If the
 * upstream ever sends an explicit zone (`Z` or `±HH:MM`), that zone wins.
 */
export const UPSTREAM_UTC_OFFSET_MINUTES = 8 * 60;

const upstreamDatePattern =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/** Parses an upstream timestamp (assumed UTC+8 unless it names a zone). Throws RangeError when malformed. */
export function parseUpstreamDate(s: string): Date {
  const m = upstreamDatePattern.exec(s.trim());
  if (!m) throw new RangeError('not an upstream date (expected YYYY-MM-DD HH:mm:ss)');
  const [, y, mo, d, h, mi, se, frac, zone] = m;
  const fields = [y, mo, d, h, mi, se].map(Number) as [number, number, number, number, number, number];
  const [year, month, day, hour, minute, second] = fields;
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  let offsetMinutes = UPSTREAM_UTC_OFFSET_MINUTES;
  if (zone === 'Z') offsetMinutes = 0;
  else if (zone) {
    const digits = zone.replace(':', '');
    const sign = digits.startsWith('-') ? -1 : 1;
    offsetMinutes = sign * (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5)));
  }
  const wallClock = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // Date.UTC silently rolls 2024-02-30 over into March; a round trip catches it.
  const check = new Date(wallClock);
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    check.getUTCHours() !== hour ||
    check.getUTCMinutes() !== minute ||
    check.getUTCSeconds() !== second
  ) {
    throw new RangeError('not a valid calendar date');
  }
  return new Date(wallClock - offsetMinutes * 60_000);
}

/** Inverse of parseUpstreamDate: formats an instant as `YYYY-MM-DD HH:mm:ss` in UTC+8 (seconds truncated). */
export function formatUpstreamDate(d: Date): string {
  const t = d.getTime();
  if (Number.isNaN(t)) throw new RangeError('invalid Date');
  const wall = new Date(Math.floor(t / 1000) * 1000 + UPSTREAM_UTC_OFFSET_MINUTES * 60_000);
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `${String(wall.getUTCFullYear()).padStart(4, '0')}-${p(wall.getUTCMonth() + 1)}-${p(wall.getUTCDate())} ` +
    `${p(wall.getUTCHours())}:${p(wall.getUTCMinutes())}:${p(wall.getUTCSeconds())}`
  );
}

// ---------------------------------------------------------------------------
// Building blocks

/** A number, or a string holding one (the upstream documents `progress` as a string but sends a number). */
const numberish = z.union([
  z.number(),
  z
    .string()
    .trim()
    .regex(/^-?\d+(?:\.\d+)?$/, 'expected a numeric string')
    .transform(Number),
]);

/** Application id: a number from GET, a string from apply. Always normalised to a string. */
export const applicationIdSchema = z.union([
  z
    .number()
    .int()
    .nonnegative()
    .refine(Number.isSafeInteger, 'id exceeds the safe integer range')
    .transform(String),
  // Kept to path-safe characters because the id goes into GET /v1/cert/apply/{id}.
  z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected an id of letters, digits, "-" or "_"'),
]);

/** `domains` is documented as a comma-separated string; an array is accepted too. */
const domainListSchema = z
  .union([z.string(), z.array(z.string())])
  .transform((v) =>
    (typeof v === 'string' ? v.split(',') : v).map((d) => d.trim()).filter((d) => d.length > 0),
  )
  .refine((list) => list.length > 0, 'expected at least one domain');

const progressSchema = numberish.transform((n) => Math.min(100, Math.max(0, n)));

const booleanish = z.union([
  z.boolean(),
  z.literal(0).transform(() => false),
  z.literal(1).transform(() => true),
  z.enum(['true', 'false']).transform((v) => v === 'true'),
]);

const upstreamDateSchema = z.string().transform((s, ctx) => {
  try {
    return parseUpstreamDate(s);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'expected a date as YYYY-MM-DD HH:mm:ss' });
    return z.NEVER;
  }
});

const certificateBlock = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
// SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" and PKCS#8 "PRIVATE KEY" all match.
const privateKeyBlock = /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----[\s\S]+?-----END \1PRIVATE KEY-----/;

const optionalText = z
  .string()
  .nullish()
  .transform((v) => (v == null || v.trim() === '' ? null : v.trim()));

const status = (n: 1 | 2 | 3) => z.union([z.literal(n), z.literal(String(n) as `${typeof n}`)]);

// ---------------------------------------------------------------------------
// Envelope

/** Every response body: `{ code, msg, data, traceId }`. Only `code` is required. */
export const envelopeSchema = z.looseObject({
  code: numberish.pipe(z.number().int()),
  msg: z.string().nullish(),
  data: z.unknown().optional(),
  traceId: z.string().nullish(),
});
export type Envelope = z.output<typeof envelopeSchema>;

// ---------------------------------------------------------------------------
// POST /v1/cert/dv

export const verifyConfigSchema = z
  .looseObject({
    domain: z.string(),
    host: z.string(),
    hostValue: z.string(),
    // A config without `valid` is treated as not (yet) valid: the safe reading.
    valid: booleanish.optional(),
  })
  .transform((c) => ({ domain: c.domain, host: c.host, hostValue: c.hostValue, valid: c.valid === true }));
export type VerifyConfig = z.output<typeof verifyConfigSchema>;

export const verifyDataSchema = z
  .looseObject({
    configs: z.array(verifyConfigSchema),
    valid: booleanish.optional(),
  })
  .transform((d) => ({
    // Observed: the top-level flag is the AND of the configs. We recompute it so that an
    // inconsistent answer can never make us apply for a domain the upstream called invalid.
    valid: d.valid !== false && d.configs.length > 0 && d.configs.every((c) => c.valid),
    configs: d.configs,
  }));
export type VerifyData = z.output<typeof verifyDataSchema>;

// ---------------------------------------------------------------------------
// POST /v1/cert/apply — `data` is the application id.

export const applyDataSchema = applicationIdSchema;

// ---------------------------------------------------------------------------
// GET /v1/cert/apply/{id} and the issued callback

/**
 * The issued application (`status` 1). Also the body of the issued callback,
 * which the provider posts without an envelope.
 */
export const issuedApplicationSchema = z
  .looseObject({
    id: applicationIdSchema,
    status: status(1),
    domains: domainListSchema,
    algorithm: optionalText,
    ca: optionalText,
    name: optionalText,
    notBefore: upstreamDateSchema,
    notAfter: upstreamDateSchema,
    certificate: z.string().regex(certificateBlock, 'expected at least one PEM CERTIFICATE block'),
    privateKey: z.string().regex(privateKeyBlock, 'expected a PEM PRIVATE KEY block'),
    fingerprints: optionalText,
    progress: z.unknown().optional(),
  })
  .transform((d) => ({
    status: 'issued' as const,
    id: d.id,
    domains: d.domains,
    algorithm: d.algorithm?.toUpperCase() ?? null,
    ca: d.ca?.toLowerCase() ?? null,
    name: d.name ?? d.domains[0]!,
    notBefore: d.notBefore,
    notAfter: d.notAfter,
    certificate: d.certificate,
    privateKey: d.privateKey,
    // Normalised so it compares equal to leafFingerprint() output.
    fingerprints: d.fingerprints?.replaceAll(':', '').toLowerCase() ?? null,
    progress: 100 as const,
  }));
export type IssuedApplicationData = z.output<typeof issuedApplicationSchema>;

export const issuingApplicationSchema = z
  .looseObject({
    id: applicationIdSchema,
    status: status(2),
    domains: domainListSchema,
    progress: progressSchema.nullish(),
  })
  .transform((d) => ({
    status: 'issuing' as const,
    id: d.id,
    domains: d.domains,
    progress: d.progress ?? 0,
  }));
export type IssuingApplicationData = z.output<typeof issuingApplicationSchema>;

export const DEFAULT_FAILURE_REASON = 'upstream reported status 3';

// The failure reason is undocumented; these are the field names a Java-style API tends to use.
const reasonKeys = [
  'reason',
  'failReason',
  'failMsg',
  'errorMsg',
  'errMsg',
  'msg',
  'message',
  'error',
  'remark',
];
const reasonLike = /reason|msg|message|error|remark/i;

function failureReason(data: Record<string, unknown>): string {
  const pick = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim().slice(0, 1000) : null);
  for (const key of reasonKeys) {
    const found = pick(data[key]);
    if (found) return found;
  }
  for (const [key, value] of Object.entries(data)) {
    const found = reasonLike.test(key) ? pick(value) : null;
    if (found) return found;
  }
  return DEFAULT_FAILURE_REASON;
}

export const failedApplicationSchema = z
  .looseObject({
    id: applicationIdSchema,
    status: status(3),
    domains: domainListSchema,
  })
  .transform((d) => ({
    status: 'failed' as const,
    id: d.id,
    domains: d.domains,
    reason: failureReason(d),
  }));
export type FailedApplicationData = z.output<typeof failedApplicationSchema>;

/** `data` of GET /v1/cert/apply/{id}; the discriminator admits only status 1, 2 or 3. */
export const applicationDataSchema = z.discriminatedUnion('status', [
  issuedApplicationSchema,
  issuingApplicationSchema,
  failedApplicationSchema,
]);
export type ApplicationData = z.output<typeof applicationDataSchema>;

/** A short, value-free summary of a zod error, safe for logs. */
export function describeIssues(error: z.ZodError, max = 5): string {
  const parts = error.issues.slice(0, max).map((i) => {
    const path = i.path.length > 0 ? i.path.map(String).join('.') : '(root)';
    return `${path}: ${i.message}`;
  });
  if (error.issues.length > max) parts.push(`… ${error.issues.length - max} more`);
  return parts.join('; ');
}
