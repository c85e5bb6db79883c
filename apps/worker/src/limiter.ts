import type { Redis } from 'ioredis';

/**
 * One ceiling on requests per second to httpsok across every worker process, held in Redis.
 * GCRA (generic cell rate algorithm): Redis keeps one "theoretical arrival time"; each request pushes
 * it by 1/rate and waits if it would run ahead by more than the allowed burst. Exact smoothing, one
 * key, one round trip, and Redis's own clock so worker clocks need not agree.
 */
const GCRA = `
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', key) or '0')
if tat < now then tat = now end
local wait = tat - now - burst
if wait > 0 then return wait end
local nextTat = tat + interval
redis.call('SET', key, nextTat, 'PX', math.ceil((nextTat - now) / 1000) + 1000)
return 0
`;

export interface UpstreamLimiter {
  /** Resolves when one more request may be sent. */
  acquire(): Promise<void>;
}

export function createUpstreamLimiter(redis: Redis, key: string, maxPerSecond: number): UpstreamLimiter {
  const intervalUs = Math.floor(1_000_000 / maxPerSecond);
  // Allow a burst of one second's worth, as a token bucket of the same rate would.
  const burstUs = intervalUs * Math.max(0, maxPerSecond - 1);
  return {
    async acquire() {
      for (;;) {
        const waitUs = Number(await redis.eval(GCRA, 1, key, intervalUs, burstUs));
        if (waitUs <= 0) return;
        await new Promise((resolve) => setTimeout(resolve, Math.ceil(waitUs / 1000)));
      }
    },
  };
}
