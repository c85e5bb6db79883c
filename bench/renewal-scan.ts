import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type Config, secretBoxFromConfig } from '@certq/core';
import { createDb } from '@certq/db';
import { createWorkerContext, scanRenewals, type WorkerContext } from '@certq/worker';
import { createQueues } from '@certq/workflow';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { sampleRss } from './lib';

/* What the suites that drive the renewal scan by hand (renewals, scale) share. */

/**
 * A worker context over a bench environment, for suites that drive the renewal scan by hand; `pool` is
 * its database's pool, for the suite's own SQL (the context carries the drizzle database and queues).
 */
export function openScanContext(
  env: { databaseUrl: string; redisUrl: string; prefix: string },
  config: Config,
) {
  const handle = createDb(env.databaseUrl, { max: 5 });
  const redis = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  const queues = createQueues(redis, env.prefix);
  const ctx = createWorkerContext({
    db: handle.db,
    queues,
    secrets: secretBoxFromConfig(config),
    config,
    redis,
    logger: pino({ level: 'silent' }),
  });
  const close = async () => {
    await ctx.close();
    await queues.close();
    redis.disconnect();
    await handle.close();
  };
  return { ctx, pool: handle.pool, close };
}

/** A full GC on demand (without --expose-gc on the command line), to measure live heap, not garbage. */
function collectGarbage(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * One renewal scan, profiled: wall time, this process's RSS before it (after a full GC) and at its
 * peak (sampled every 10 ms), and the live heap after each batch (a full GC after each, whose pauses
 * count in the wall time). From the first batch on (statements prepared, scripts loaded) a flat scan
 * holds one page at a time, so its live heap must not grow with the batches; RSS also holds garbage not
 * yet collected and V8's high-water mark, so it is shown, not judged.
 */
export async function profiledScan(ctx: WorkerContext, options: { now?: Date } = {}) {
  const gc = collectGarbage();
  gc();
  const rssBefore = process.memoryUsage().rss;
  const sampler = sampleRss();
  const liveHeap: number[] = [];
  const started = performance.now();
  const scan = await scanRenewals(ctx, {
    ...options,
    onBatch: () => {
      gc();
      liveHeap.push(process.memoryUsage().heapUsed);
    },
  });
  const seconds = (performance.now() - started) / 1000;
  return { scan, seconds, rssBefore, peakRss: sampler.stop(), liveHeap };
}

/**
 * A certificate's `not_after` in the renewal benches' seed SQL (over `orders o` whose apply_id is a
 * six-letter prefix and the order's number, as 'bench-42'), issued 60 days ago: one in ten past its
 * renewal time (1–27 days left, under a third of its lifetime even after the spread of up to 2 days),
 * the others before it (31–89 days).
 */
export const ONE_IN_TEN_DUE_NOT_AFTER = `case when substring(o.apply_id from 7)::int % 10 = 0
  then now() + (1 + random() * 26) * interval '1 day'
  else now() + (31 + random() * 58) * interval '1 day' end`;
