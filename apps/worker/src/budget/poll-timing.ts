import { UPSTREAM_FLOOR_MS } from '@certq/core';

/**
 * When to poll an application, so that few polls find it still issuing (each such poll is a call the
 * upstream budget does not get back). Per CA, the first poll's delay after apply is learned from how the
 * first polls of recent orders went: one that finds the application still issuing lengthens it by
 * STEP_UP, one that finds it done shortens it a little, so the delay settles where a share
 * TARGET_EARLY_SHARE of first polls come too early — near the top of the CA's issuance times. Observed
 * issuance times themselves would not do: each is measured by a poll, so it is never shorter than the
 * delay that was chosen, and a delay learned from them only grows.
 */
export const TARGET_EARLY_SHARE = 0.1;
const STEP_UP = 1.25;
/** Chosen with STEP_UP so that early and late first polls balance at TARGET_EARLY_SHARE. */
const STEP_DOWN = 1 - (STEP_UP - 1) * (TARGET_EARLY_SHARE / (1 - TARGET_EARLY_SHARE));
/** Before anything was learned: short, so a fast CA is not kept waiting; a slow one lengthens it quickly. */
export const INITIAL_FIRST_POLL_MS = 1_000;
/** The least a step up adds: from a short delay, STEP_UP alone would take long to reach minutes. */
const MIN_STEP_UP_MS = 1_000;
const MIN_FIRST_POLL_MS = 250;
const MAX_FIRST_POLL_MS = 15 * 60_000;
/**
 * With callbacks on, the issued callback brings the poll forward: the scheduled one is only a safety net
 * for a lost callback, this many times the learned delay and at least POLL_INTERVAL_MS. A poll the callback brought forward comes right
 * after issuance, so there the delay learned is the issuance time itself (a moving average of them).
 */
export const CALLBACK_SAFETY_FACTOR = 4;
const CALLBACK_AVERAGE_WEIGHT = 0.2;

/** The next first-poll delay after a first poll that found the application `found`. */
export function learnFirstPollDelay(delayMs: number, found: 'issuing' | 'done'): number {
  const next =
    found === 'issuing' ? Math.max(delayMs * STEP_UP, delayMs + MIN_STEP_UP_MS) : delayMs * STEP_DOWN;
  return bounded(next);
}

/** With callbacks: the learned issuance time after a poll `elapsedMs` after apply found `found`. */
export function learnIssuanceTime(learnedMs: number, elapsedMs: number, found: 'issuing' | 'done'): number {
  if (found === 'issuing') return learnFirstPollDelay(learnedMs, 'issuing');
  // Only a poll the callback brought forward times the issuance; the safety net's own says nothing.
  if (elapsedMs >= firstPollDelay(learnedMs, true)) return learnedMs;
  return bounded(learnedMs + CALLBACK_AVERAGE_WEIGHT * (elapsedMs - learnedMs));
}

const bounded = (ms: number) => Math.min(MAX_FIRST_POLL_MS, Math.max(MIN_FIRST_POLL_MS, ms));

/** A progress that says "far from done" waits at most this many POLL_INTERVAL_MS: it may not be linear. */
const MAX_WAIT_INTERVALS = 6;

/** How long after apply the first poll is due. */
export function firstPollDelay(learnedMs: number, callbacks: boolean, intervalMs = 0): number {
  return callbacks ? Math.max(intervalMs, learnedMs * CALLBACK_SAFETY_FACTOR) : learnedMs;
}

/**
 * Whether a poll `elapsedMs` after apply is the order's first (what the learned delay is about): any later
 * one comes at least the upstream's floor after it.
 */
export function isFirstPoll(elapsedMs: number, learnedMs: number): boolean {
  return elapsedMs < learnedMs + UPSTREAM_FLOOR_MS;
}

/**
 * After a poll found the application still issuing at `progress` percent, `elapsedMs` after apply: when
 * to ask again. The progress says how much is left (as httpsok reports it, proportional to time); never
 * sooner than the upstream's floor, and never later than `intervalMs` (POLL_INTERVAL_MS) plus that estimate.
 */
export function nextPollDelay(elapsedMs: number, progress: number, intervalMs: number): number {
  if (!(progress > 0 && progress < 100)) return intervalMs;
  const remainingMs = (elapsedMs * (100 - progress)) / progress;
  return Math.max(
    UPSTREAM_FLOOR_MS,
    intervalMs,
    Math.min(remainingMs * 1.1, intervalMs * MAX_WAIT_INTERVALS),
  );
}

/**
 * The learned first-poll delay of each CA, in this worker process (a restarted worker learns again
 * within a few dozen orders); with callbacks on, the CA's issuance time (see CALLBACK_SAFETY_FACTOR).
 */
export class FirstPollDelays {
  /** Per CA: the delay and when it was set (ms since the epoch, the worker's clock). */
  private readonly delays = new Map<string, { ms: number; since: number }>();

  constructor(
    private readonly callbacks: boolean,
    /** POLL_INTERVAL_MS: the least a safety-net poll waits. */
    private readonly intervalMs: number,
  ) {}

  of(ca: string): number {
    return this.delays.get(ca)?.ms ?? INITIAL_FIRST_POLL_MS;
  }

  /** When the first poll of an application of `ca` applied for at `appliedAt` is due. */
  firstPollAt(ca: string, appliedAt: Date): Date {
    return new Date(appliedAt.getTime() + firstPollDelay(this.of(ca), this.callbacks, this.intervalMs));
  }

  /**
   * What a poll `elapsedMs` after apply found, at `nowMs`: learned from when it was the order's first.
   * Only an order applied since the delay last changed says anything about it: the many orders applied
   * together before would otherwise each step it again, far past the CA's issuance time.
   */
  learn(ca: string, elapsedMs: number, found: 'issued' | 'issuing' | 'failed', nowMs = Date.now()): void {
    const current = this.delays.get(ca);
    if (current && nowMs - elapsedMs < current.since) return;
    const learned = this.of(ca);
    const outcome = found === 'issuing' ? 'issuing' : 'done';
    let next = learned;
    if (this.callbacks) next = learnIssuanceTime(learned, elapsedMs, outcome);
    else if (isFirstPoll(elapsedMs, learned)) next = learnFirstPollDelay(learned, outcome);
    if (next !== learned) this.delays.set(ca, { ms: next, since: nowMs });
  }
}
