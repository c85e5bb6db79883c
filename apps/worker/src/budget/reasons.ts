import type { Application } from '@certq/api-client';
import type { UpstreamReason } from '@certq/dns';

/** httpsok's endpoints as its simulator counts them. */
export type UpstreamEndpoint = 'dv' | 'apply' | 'get';

/**
 * Why a call was made, or what it found: each is a line of the budget an operator can act on.
 * `error`: the call brought no answer (a 5xx, a timeout, a refusal); `retry`: the client sent it again
 * after a 5xx, within one call.
 */
export const CALL_REASONS = [
  'first',
  'confirming',
  'split_horizon',
  'apply',
  'issuing',
  'issued',
  'failed',
  'adoption',
  'error',
  'retry',
] as const;
export type CallReason = (typeof CALL_REASONS)[number];

/** A `dv` call: the first one (names each record), one confirming local checks, or the hourly split-horizon look. */
export function dvReason(why: UpstreamReason): CallReason {
  if (why === 'first') return 'first';
  if (why === 'split_horizon') return 'split_horizon';
  return 'confirming';
}

/** A poll, by what it found: still issuing (a call the budget would rather not spend), issued, failed, or nothing. */
export function pollReason(application: Application | undefined): CallReason {
  if (!application) return 'error';
  if (application.status === 'issued') return 'issued';
  if (application.status === 'issuing') return 'issuing';
  return 'failed';
}
