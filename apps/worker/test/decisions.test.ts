import { loadConfig } from '@certq/core';
import type { Order } from '@certq/db';
import { describe, expect, it } from 'vitest';
import { caChoicesOf, nextCa } from '../src/tasks/dns';
import { retryDelayMs, stageWindowEndsAt } from '../src/tasks/schedule';

// The stages' decisions that need no server: in milliseconds, beside the end-to-end tests.
const config = loadConfig({ STAGE_WINDOW_HOURS: '72', RETRY_MAX_DELAY_MS: '900000' });
const order = (over: Partial<Order>): Order =>
  ({ ca: 'google', caChoices: null, caFailures: [], stageStartedAt: new Date(0), ...over }) as Order;

describe('the retry delay rule', () => {
  it('is never under the upstream 10 s floor, doubles with jitter, and stops at RETRY_MAX_DELAY_MS', () => {
    expect(retryDelayMs(config, 0, () => 0)).toBe(10_000);
    expect(retryDelayMs(config, 0, () => 0.999)).toBe(10_000);
    expect(retryDelayMs(config, 3, () => 0)).toBe(40_000);
    expect(retryDelayMs(config, 3, () => 0.999)).toBeCloseTo(80_000, -2);
    expect(retryDelayMs(config, 30, () => 0.999)).toBeLessThanOrEqual(900_000);
    expect(retryDelayMs(config, 30, () => 0)).toBe(450_000);
    const floorOnly = loadConfig({ RETRY_MAX_DELAY_MS: '10000' });
    for (const attempt of [0, 1, 5, 50]) expect(retryDelayMs(floorOnly, attempt, Math.random)).toBe(10_000);
  });
});

describe('the stage window', () => {
  it('ends STAGE_WINDOW_HOURS after the stage began, whichever stage', () => {
    const started = new Date('2026-01-01T00:00:00Z');
    expect(stageWindowEndsAt(config, order({ stageStartedAt: started })).toISOString()).toBe(
      '2026-01-04T00:00:00.000Z',
    );
    expect(
      stageWindowEndsAt(loadConfig({ VERIFY_WINDOW_HOURS: '1' }), order({ stageStartedAt: started })),
    ).toEqual(new Date('2026-01-01T01:00:00Z'));
  });
});

describe('the next CA', () => {
  it('follows the order list, skips the ones that failed, and ends when the list is exhausted', () => {
    const list = ['google', 'letsencrypt', 'zerossl'] as Order['caChoices'];
    expect(caChoicesOf(order({}))).toEqual(['google']);
    expect(nextCa(order({}))).toBeNull();
    expect(nextCa(order({ caChoices: list }))).toBe('letsencrypt');
    expect(
      nextCa(order({ caChoices: list, ca: 'letsencrypt', caFailures: [{ ca: 'google', reason: 'x' }] })),
    ).toBe('zerossl');
    expect(
      nextCa(
        order({
          caChoices: list,
          ca: 'zerossl',
          caFailures: [
            { ca: 'google', reason: 'x' },
            { ca: 'letsencrypt', reason: 'y' },
          ],
        }),
      ),
    ).toBeNull();
  });
});
