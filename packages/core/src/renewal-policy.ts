/**
 * When a certificate is renewed, from its own lifetime (notAfter − notBefore): the one home of that rule.
 * The worker stores each certificate's renewal time (`certificates.renew_at`) from `renewalTime` when it
 * stores the certificate; migration 0011's `certq_renewal_time` writes the same rule, without
 * RENEW_BEFORE_DAYS, for rows inserted without one (a test keeps the two in step).
 */

const DAY_MS = 86_400_000;

/** Shorter lifetimes renew at half rather than a third left (certbot, Let's Encrypt's guide for short-lived certificates). */
export const SHORT_LIFETIME_MS = 10 * DAY_MS;
/** Share of the lifetime left when renewal starts: a third (certmagic, lego), half for short lifetimes. */
export const RENEW_SHARE_LEFT = 1 / 3;
export const RENEW_SHARE_LEFT_SHORT = 1 / 2;
/**
 * Renewal times are drawn over the first tenth of the window (ARI-style), at most two days: a batch
 * issued in one hour renews spread out, and nine tenths of the window stay for retries and other CAs.
 */
export const RENEWAL_SPREAD_SHARE = 0.1;
export const RENEWAL_SPREAD_MAX_MS = 2 * DAY_MS;
/** A certificate with less than this share of its lifetime left is "expiring" (alert, webhook). */
export const EXPIRING_SHARE_LEFT = 1 / 6;

/**
 * A renewal is overdue once its renewal time has passed by this much with none under way: an hour, or
 * a twentieth of a lifetime shorter than 20 hours (a scan or two late is not yet a problem).
 */
export const RENEWAL_OVERDUE_MARGIN_MS = 3_600_000;
export const RENEWAL_OVERDUE_MARGIN_SHARE = 0.05;

/** Why a renewal order was created: a closed list, stored as `orders.renewal_reason`. */
export const RENEWAL_REASONS = [
  /** The renewal scan: the certificate reached its renewal time. */
  'nearing_expiry',
  /** Someone asked (`POST /v1/renewals`, the console, `certq renew`). */
  'manual',
] as const;
export type RenewalReason = (typeof RENEWAL_REASONS)[number];

export interface Lifetime {
  notBefore: Date;
  notAfter: Date;
}

export interface RenewalPolicyOptions {
  /** RENEW_BEFORE_DAYS: renew at least this many days before expiry, never before half the lifetime. */
  renewBeforeDays?: number;
}

export function lifetimeMs({ notBefore, notAfter }: Lifetime): number {
  return Math.max(0, notAfter.getTime() - notBefore.getTime());
}

/** The share of the lifetime that renewal leaves: a third, half under SHORT_LIFETIME_MS. */
export function renewShareLeft(lifetime: number): number {
  return lifetime < SHORT_LIFETIME_MS ? RENEW_SHARE_LEFT_SHORT : RENEW_SHARE_LEFT;
}

/** The earliest moment the certificate is due for renewal (before the spread). */
export function renewalWindowStart(cert: Lifetime, options: RenewalPolicyOptions = {}): Date {
  const lifetime = lifetimeMs(cert);
  const notAfter = cert.notAfter.getTime();
  let start = notAfter - lifetime * renewShareLeft(lifetime);
  if (options.renewBeforeDays !== undefined) {
    // The cap moves renewal earlier, but never before half the lifetime (a short certificate cannot loop).
    const halfway = cert.notBefore.getTime() + lifetime / 2;
    start = Math.max(Math.min(start, notAfter - options.renewBeforeDays * DAY_MS), halfway);
  }
  return new Date(start);
}

/** How far into the window renewal times are spread: a tenth of what is left at its start, at most RENEWAL_SPREAD_MAX_MS. */
export function renewalSpreadMs(cert: Lifetime, windowStart: Date): number {
  const left = Math.max(0, cert.notAfter.getTime() - windowStart.getTime());
  return Math.min(left * RENEWAL_SPREAD_SHARE, RENEWAL_SPREAD_MAX_MS);
}

/** The certificate's renewal time: its window's start plus a random part of the spread (`random` in [0, 1)). */
export function renewalTime(
  cert: Lifetime,
  options: RenewalPolicyOptions & { random?: () => number } = {},
): Date {
  const start = renewalWindowStart(cert, options);
  const draw = (options.random ?? Math.random)();
  return new Date(start.getTime() + Math.floor(draw * renewalSpreadMs(cert, start)));
}

/** Share of the lifetime left at `now` (1 at notBefore, 0 at notAfter, negative once expired). */
export function lifetimeShareLeft(cert: Lifetime, now: Date): number {
  const lifetime = lifetimeMs(cert);
  if (lifetime === 0) return 0;
  return (cert.notAfter.getTime() - now.getTime()) / lifetime;
}

/**
 * Time from one renewal to the next of the same domain set, assuming the new certificate lasts as long:
 * it is renewed again at the same share of its lifetime (two thirds in, half for short lifetimes).
 */
export function renewalPeriodMs(lifetime: number): number {
  return lifetime * (1 - renewShareLeft(lifetime));
}

/** How long past its renewal time a certificate with no renewal under way counts as overdue. */
export function renewalOverdueMarginMs(cert: Lifetime): number {
  return Math.min(RENEWAL_OVERDUE_MARGIN_MS, lifetimeMs(cert) * RENEWAL_OVERDUE_MARGIN_SHARE);
}

/** Less than EXPIRING_SHARE_LEFT of the lifetime left (expired ones included). */
export function isExpiring(cert: Lifetime, now: Date): boolean {
  return lifetimeShareLeft(cert, now) < EXPIRING_SHARE_LEFT;
}
