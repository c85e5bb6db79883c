/**
 * Upstream calls one renewal costs at best: dv, apply and one poll; with the issued callback the poll
 * is a safety net, so two (httpsok's ceiling is on requests, `UPSTREAM_MAX_RPS`).
 */
export const UPSTREAM_CALLS_PER_RENEWAL = 3;
export const UPSTREAM_CALLS_PER_RENEWAL_WITH_CALLBACKS = 2;
/** How far ahead `/v1/stats` projects renewals, and the part of it the metric and its alert watch. */
export const CAPACITY_HORIZON_DAYS = 30;
export const CAPACITY_ALERT_DAYS = 7;
/** The projected share of the upstream ceiling at which the alert fires. */
export const CAPACITY_ALERT_SHARE = 0.8;

export interface ProjectedDay {
  /** The UTC day, `YYYY-MM-DD` (the first is today, from now on). */
  day: string;
  renewals: number;
  upstreamCalls: number;
}

export function upstreamCallsPerRenewal(callbacks: boolean): number {
  return callbacks ? UPSTREAM_CALLS_PER_RENEWAL_WITH_CALLBACKS : UPSTREAM_CALLS_PER_RENEWAL;
}

/** A day's calls as a share of what the ceiling allows in a day. */
export function ceilingShare(upstreamCalls: number, ceilingRps: number): number {
  return upstreamCalls / (ceilingRps * 86_400);
}

/** The largest daily share of the ceiling among the first `days` projected days (0 when none). */
export function peakShare(
  projected: readonly ProjectedDay[],
  ceilingRps: number,
  days = projected.length,
): number {
  return projected
    .slice(0, days)
    .reduce((peak, d) => Math.max(peak, ceilingShare(d.upstreamCalls, ceilingRps)), 0);
}
