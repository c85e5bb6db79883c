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
local reserve = tonumber(ARGV[3] or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', key) or '0')
if tat < now then tat = now end
local wait = tat - now - (burst - reserve)
if wait > 0 then return wait end
local nextTat = tat + interval
redis.call('SET', key, nextTat, 'PX', math.ceil((nextTat - now) / 1000) + 1000)
return 0
`;

/**
 * What a request is for, most urgent first. Under load above the ceiling the budget goes to finishing
 * started orders: a poll (the certificate may be ready) before an apply (a verified order) before a
 * verify (an order not started yet), so orders complete at the ceiling's rate and the wait falls on
 * orders not yet started.
 */
export type UpstreamUse = 'poll' | 'apply' | 'verify';

/**
 * Share of the burst each use must leave unused before it may send: a poll may take the whole burst,
 * an apply leaves a third of it to polls, a verify two thirds. While polls and applies keep the
 * limiter busy (saturation) a verify waits; as soon as they leave room it goes. Over time every use
 * still gets the full rate when it is alone.
 */
const RESERVE: Record<UpstreamUse, number> = { poll: 0, apply: 1 / 3, verify: 2 / 3 };

export interface UpstreamLimiter {
  /** Resolves when one more request for `use` may be sent (default `poll`: no reserve). */
  acquire(use?: UpstreamUse): Promise<void>;
}

/** The GCRA script as a command of the connection: sent by its SHA (EVALSHA), not as a whole script per call. */
const GCRA_COMMAND = 'certqUpstreamGcra';
type GcraRedis = Redis & {
  [GCRA_COMMAND](key: string, intervalUs: number, burstUs: number, reserveUs: number): Promise<number>;
};

export function createUpstreamLimiter(redis: Redis, key: string, maxPerSecond: number): UpstreamLimiter {
  if (!(GCRA_COMMAND in redis)) redis.defineCommand(GCRA_COMMAND, { numberOfKeys: 1, lua: GCRA });
  const gcra = redis as GcraRedis;
  const intervalUs = Math.floor(1_000_000 / maxPerSecond);
  // Allow a burst of one second's worth, as a token bucket of the same rate would.
  const burstUs = intervalUs * Math.max(0, maxPerSecond - 1);
  return {
    async acquire(use = 'poll') {
      const reserveUs = Math.floor(burstUs * RESERVE[use]);
      for (;;) {
        const waitUs = Number(await gcra[GCRA_COMMAND](key, intervalUs, burstUs, reserveUs));
        if (waitUs <= 0) return;
        await new Promise((resolve) => setTimeout(resolve, Math.ceil(waitUs / 1000)));
      }
    },
  };
}
