import { randomBytes } from 'node:crypto';
import { migrate } from '@certq/db';
import { startNamed } from '@certq/testing';
import { Redis } from 'ioredis';
import pg from 'pg';

/** One row of the table `pnpm bench` prints. */
export interface BenchRow {
  suite: string;
  metric: string;
  value: number;
  unit: string;
  /** The goal, as text ("< 5 ms", ">= 0.5"), if there is one. */
  goal?: string;
  /** Whether the goal was met; undefined when there is no goal. */
  met?: boolean;
}

export interface BenchEnvironment {
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  /**
   * `DNS_RESOLVERS` for the benchmark's workers: a private, empty bind9 `named` on loopback, so certq's own
   * DNS checks (CNAME, CAA) answer locally and never reach the machine's resolver.
   */
  dnsResolvers: string;
  cleanup(): Promise<void>;
}

const ADMIN_URL = process.env.CERTQ_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.CERTQ_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A fresh migrated database and a private Redis prefix for one benchmark, dropped afterwards. */
export async function createBenchEnvironment(): Promise<BenchEnvironment> {
  const name = `certq_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  await migrate(url.toString());
  const prefix = `certq-bench-${randomBytes(5).toString('hex')}`;
  const named = await startNamed();
  return {
    databaseUrl: url.toString(),
    redisUrl: REDIS_URL,
    prefix,
    dnsResolvers: named.address,
    async cleanup() {
      await named.stop();
      const redis = new Redis(REDIS_URL);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.unlink(...keys);
      } while (cursor !== '0');
      redis.disconnect();
      const client = new pg.Client({ connectionString: ADMIN_URL });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
