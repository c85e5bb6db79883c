import { describe, expect, it } from 'vitest';
import {
  CALLBACK_SAFETY_FACTOR,
  FirstPollDelays,
  firstPollDelay,
  INITIAL_FIRST_POLL_MS,
  isFirstPoll,
  learnFirstPollDelay,
  learnIssuanceTime,
  nextPollDelay,
  TARGET_EARLY_SHARE,
} from '../src/budget/poll-timing';
import { dvReason, pollReason } from '../src/budget/reasons';

describe('the first poll delay', () => {
  it('settles where about TARGET_EARLY_SHARE of first polls find the application still issuing', () => {
    // Issuance times spread uniformly over 4–6 s: the delay should settle near the 90th percentile.
    let delay = INITIAL_FIRST_POLL_MS;
    let seed = 7;
    const random = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    let early = 0;
    const rounds = 5000;
    for (let i = 0; i < rounds; i++) {
      const issuance = 4000 + 2000 * random();
      const found = delay < issuance ? 'issuing' : 'done';
      if (i >= 1000 && found === 'issuing') early++;
      delay = learnFirstPollDelay(delay, found);
    }
    expect(early / (rounds - 1000)).toBeGreaterThan(TARGET_EARLY_SHARE * 0.6);
    expect(early / (rounds - 1000)).toBeLessThan(TARGET_EARLY_SHARE * 1.5);
    expect(delay).toBeGreaterThan(4500);
    expect(delay).toBeLessThan(6500);
  });

  it('grows from a short delay by at least a second a step, and shrinks slowly', () => {
    expect(learnFirstPollDelay(1000, 'issuing')).toBe(2000);
    expect(learnFirstPollDelay(60_000, 'issuing')).toBe(75_000);
    expect(learnFirstPollDelay(10_000, 'done')).toBeCloseTo(9722, 0);
    expect(learnFirstPollDelay(100, 'done')).toBe(250);
  });

  it('is a safety net with callbacks on, learning the issuance time from the polls callbacks bring forward', () => {
    expect(firstPollDelay(5000, false)).toBe(5000);
    expect(firstPollDelay(5000, true)).toBe(5000 * CALLBACK_SAFETY_FACTOR);
    expect(firstPollDelay(1000, true, 10_000)).toBe(10_000);
    // Brought forward 3 s after apply: the average moves towards 3 s.
    expect(learnIssuanceTime(5000, 3000, 'done')).toBe(4600);
    // The safety net's own poll finding it done says nothing about when it was done.
    expect(learnIssuanceTime(5000, 20_000, 'done')).toBe(5000);
    expect(learnIssuanceTime(5000, 20_000, 'issuing')).toBe(6250);
  });

  it('learns only from an order first poll, per CA', () => {
    expect(isFirstPoll(1000, 1000)).toBe(true);
    expect(isFirstPoll(11_000, 1000)).toBe(false);
    const delays = new FirstPollDelays(false, 10_000);
    delays.learn('google', 1000, 'issuing');
    expect(delays.of('google')).toBe(2000);
    expect(delays.of('letsencrypt')).toBe(INITIAL_FIRST_POLL_MS);
    // A second poll (more than the floor after the first) teaches nothing.
    delays.learn('google', 15_000, 'issued');
    expect(delays.of('google')).toBe(2000);
    const applied = new Date('2026-01-01T00:00:00Z');
    expect(delays.firstPollAt('google', applied).getTime() - applied.getTime()).toBe(2000);
  });

  it('steps once for orders applied together, however many of their first polls find them issuing', () => {
    const delays = new FirstPollDelays(false, 10_000);
    const applied = Date.parse('2026-01-01T00:00:00Z');
    for (let i = 0; i < 30; i++) delays.learn('google', 1000 + i, 'issuing', applied + 1000 + i);
    expect(delays.of('google')).toBe(2000);
    // An order applied after the change is judged by the new delay.
    delays.learn('google', 2000, 'issuing', applied + 5000);
    expect(delays.of('google')).toBe(3000);
  });
});

describe('the poll after "still issuing"', () => {
  it('waits for what the progress says is left, never less than the floor or POLL_INTERVAL_MS', () => {
    expect(nextPollDelay(5000, 50, 10_000)).toBe(10_000);
    // 20 % after 60 s: about 4 minutes left, capped at six intervals.
    expect(nextPollDelay(60_000, 20, 10_000)).toBe(60_000);
    expect(nextPollDelay(60_000, 60, 10_000)).toBeCloseTo(44_000, 0);
    expect(nextPollDelay(60_000, 0, 10_000)).toBe(10_000);
  });
});

describe('reasons', () => {
  it('names each dv and poll by what it is for or found', () => {
    expect(dvReason('first')).toBe('first');
    expect(dvReason('all_ok')).toBe('confirming');
    expect(dvReason('lookup_failed')).toBe('confirming');
    expect(dvReason('split_horizon')).toBe('split_horizon');
    expect(pollReason(undefined)).toBe('error');
    expect(pollReason({ status: 'issuing', progress: 10 } as never)).toBe('issuing');
    expect(pollReason({ status: 'issued' } as never)).toBe('issued');
    expect(pollReason({ status: 'failed' } as never)).toBe('failed');
  });
});
