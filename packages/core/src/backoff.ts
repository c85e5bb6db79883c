/** The upstream forbids polling an application within 10 s of the last request for it. */
export const UPSTREAM_FLOOR_MS = 10_000;

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

/**
 * Exponential backoff with "equal jitter": half the step is fixed, half random, so delays spread out
 * (no thundering herd after an outage) yet never drop under `baseMs`.
 * attempt 0 → [base, base]… attempt n → [step/2, step] with step = min(cap, base·2ⁿ), floored at base.
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const step = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt));
  const delay = step / 2 + random() * (step / 2);
  return Math.max(policy.baseMs, Math.round(delay));
}
