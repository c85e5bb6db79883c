import { randomBytes } from 'node:crypto';
import { createTestRedis } from '@certq/testing';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createUpstreamLimiter, type UpstreamUse } from '../src';

const testRedis = createTestRedis();
const redis = new Redis(testRedis.url, { maxRetriesPerRequest: null });
afterAll(() => redis.disconnect());

/** Completion order of `uses`, all asking at once of one limiter at 20/s on a fresh key. */
async function race(uses: UpstreamUse[]): Promise<UpstreamUse[]> {
  const limiter = createUpstreamLimiter(
    redis,
    `${testRedis.prefix}:rate-${randomBytes(4).toString('hex')}`,
    20,
  );
  const done: UpstreamUse[] = [];
  await Promise.all(uses.map((use) => limiter.acquire(use).then(() => done.push(use))));
  return done;
}

describe('upstream limiter under contention', () => {
  it('lets polls, then applies, go before verifies; each alone still gets the full rate', async () => {
    const uses = Array.from({ length: 20 }, (): UpstreamUse[] => ['verify', 'apply', 'poll']).flat();
    const order = await race(uses);
    const lastIndex = (use: UpstreamUse) => order.lastIndexOf(use);
    const before = (use: UpstreamUse, index: number) => order.slice(0, index).filter((u) => u === use).length;
    // Only what the verify reserve leaves at the very start (a third of the burst) goes to verifies
    // before the last poll; the rest of the verifies wait for the polls and applies.
    expect(before('verify', lastIndex('poll'))).toBeLessThanOrEqual(8);
    expect(before('verify', lastIndex('apply'))).toBeLessThanOrEqual(8);
    expect(lastIndex('poll')).toBeLessThan(lastIndex('verify'));
    expect(lastIndex('apply')).toBeLessThan(lastIndex('verify'));

    // Alone, verifies are not slowed beyond the ceiling: 40 at 20/s with a smaller burst take about 1.7 s.
    const started = Date.now();
    await race(Array.from({ length: 40 }, () => 'verify' as const));
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
