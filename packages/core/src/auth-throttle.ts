import type { Redis } from 'ioredis';

const FAILURE_WINDOW_MS = 60_000;
const MEMO_MAX = 10_000;
/** How long an address's failure count read from Redis is trusted before it is read again. */
export const FAILURE_COUNT_TTL_MS = 1000;

/**
 * The one failed-login throttle of every door that takes a token (the API's /v1, the /admin console,
 * bull-board at /admin/queues, the API's and the worker's /metrics): failures are counted per client
 * address in one Redis key (`<prefix>:authfail:<ip>`, a minute's window) that every door and replica
 * shares, and past `failuresPerMinute` an address gets 429 before any token is looked at — the right
 * token too, until the window ends. An address's count is read from Redis at most once a second; a
 * failure counted here updates it at once, so only other processes' failures take up to that second.
 * Redis away: nothing is throttled (authentication still works).
 */
export interface AuthThrottle {
  /** Seconds until `ip` may try again, or undefined when it is under the limit. */
  retryAfter(ip: string): Promise<number | undefined>;
  /** Counts one failed authentication of `ip`. */
  fail(ip: string): Promise<void>;
}

export function createAuthThrottle(options: {
  redis: Redis | undefined;
  prefix: string;
  failuresPerMinute: number;
  now?: () => number;
}): AuthThrottle {
  const { redis, prefix, failuresPerMinute } = options;
  const now = options.now ?? Date.now;
  const key = (ip: string) => `${prefix}:authfail:${ip}`;
  const counts = new Map<string, { count: number; expires: number }>();
  const remember = (ip: string, count: number) => {
    if (counts.size >= MEMO_MAX) counts.clear();
    counts.set(ip, { count, expires: now() + FAILURE_COUNT_TTL_MS });
  };
  async function failures(client: Redis, ip: string): Promise<number> {
    const known = counts.get(ip);
    if (known && known.expires > now()) return known.count;
    const count = Number((await client.get(key(ip))) ?? 0);
    remember(ip, count);
    return count;
  }
  return {
    async retryAfter(ip) {
      if (!redis) return undefined;
      try {
        if ((await failures(redis, ip)) < failuresPerMinute) return undefined;
        // Only a throttled request needs the window's end.
        const ttl = await redis.pttl(key(ip));
        return Math.max(1, Math.ceil(ttl / 1000));
      } catch {
        return undefined;
      }
    },
    async fail(ip) {
      if (!redis) return;
      try {
        const counted = await redis.multi().incr(key(ip)).pexpire(key(ip), FAILURE_WINDOW_MS, 'NX').exec();
        const count = counted?.[0]?.[1];
        if (typeof count === 'number') remember(ip, count);
      } catch {
        // not counted while Redis is away
      }
    },
  };
}
