import type { CaaCa } from './caa';
import type { DnsStatus } from './diagnose';

/**
 * When certq asks httpsok, and when it looks at DNS again (spending the upstream's budget sparingly):
 * - while a local check says a domain is not ready, httpsok is not asked again;
 * - when every domain reads `ok`, one `dv` call confirms;
 * - split-horizon DNS (certq's resolvers see something else than the public internet) exists, so if httpsok
 *   has not been asked for `splitHorizonMs` (an hour), it is asked once anyway;
 * - local checks start at `intervalMs` (DNS_CHECK_INTERVAL_MS) and grow with the wait to a cap of a few minutes.
 */

export const SPLIT_HORIZON_MS = 3_600_000;
/** The cap of the local check delay: 20 × the first interval (5 min for the default 15 s), at most 5 min. */
export const MAX_CHECK_CAP_MS = 5 * 60_000;

export interface CheckSchedule {
  intervalMs: number;
  /** Default min(20 × intervalMs, 5 min), never under intervalMs. */
  capMs?: number;
}

export function checkCapMs(schedule: CheckSchedule): number {
  return (
    schedule.capMs ?? Math.max(schedule.intervalMs, Math.min(20 * schedule.intervalMs, MAX_CHECK_CAP_MS))
  );
}

/**
 * The delay before the next local check of an order that has waited `waitedMs` for its records: a tenth of that
 * wait (±10 % jitter), never under the interval nor over the cap. So checks run every interval for the first
 * 10 intervals (a tenant fixing its DNS right after ordering is seen within one interval), then thin out in
 * proportion to the wait, reaching the cap after 10 × cap (50 min by default). Local checks are cheap, so
 * they grow with time rather than with every check.
 */
export function checkDelayMs(
  waitedMs: number,
  schedule: CheckSchedule,
  random: () => number = Math.random,
): number {
  const cap = checkCapMs(schedule);
  const step = Math.min(cap, Math.max(schedule.intervalMs, Math.max(0, waitedMs) / 10));
  const jittered = step * (0.9 + 0.2 * random());
  return Math.round(Math.min(cap, Math.max(schedule.intervalMs, jittered)));
}

export type UpstreamReason = 'first' | 'all_ok' | 'lookup_failed' | 'split_horizon';

/**
 * Whether this check should be followed by a `dv` call, and why; null: not now.
 * - `first`: httpsok has never been asked (its answer gives each domain's host and hostValue);
 * - `all_ok`: every domain reads `ok`;
 * - `lookup_failed`: no domain is known to be wrong, but certq's resolvers could not tell for some: that is
 *   never the tenant's fault, so httpsok is asked as it was before local checks (at the check cadence);
 * - `split_horizon`: httpsok has not been asked for an hour.
 */
export function upstreamReason(input: {
  statuses: readonly DnsStatus[];
  lastDvAt: Date | null;
  now: Date;
  splitHorizonMs?: number;
}): UpstreamReason | null {
  if (input.lastDvAt === null || input.statuses.length === 0) return 'first';
  if (input.statuses.every((s) => s === 'ok')) return 'all_ok';
  if (input.statuses.every((s) => s === 'ok' || s === 'lookup_failed')) return 'lookup_failed';
  const since = input.now.getTime() - input.lastDvAt.getTime();
  return since >= (input.splitHorizonMs ?? SPLIT_HORIZON_MS) ? 'split_horizon' : null;
}

/**
 * The CA to use: the first of `choices`, from `current` on, that every domain's CAA policy allows; null when none
 * is left. `tried` CAs (failed earlier in this order) are skipped.
 */
export function pickCa(
  choices: readonly CaaCa[],
  current: CaaCa,
  allowedPerDomain: readonly (readonly CaaCa[])[],
  tried: readonly string[] = [],
): CaaCa | null {
  const start = Math.max(0, choices.indexOf(current));
  for (const ca of choices.slice(start)) {
    if (tried.includes(ca)) continue;
    if (allowedPerDomain.every((allowed) => allowed.includes(ca))) return ca;
  }
  return null;
}
