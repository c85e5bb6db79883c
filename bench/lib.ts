import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Config, loadConfig } from '@certq/core';
import { migrate } from '@certq/db';
import { type CertqPlaces, certqSettings, deleteRedisKeys, startNamed } from '@certq/testing/standalone';
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
      await deleteRedisKeys(REDIS_URL, prefix);
      // BENCH_KEEP_DATABASE=1 leaves the seeded database for EXPLAIN (ANALYZE) afterwards; drop it by hand.
      if (process.env.BENCH_KEEP_DATABASE === '1') {
        process.stderr.write(`  kept database ${name}\n`);
        return;
      }
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

export interface SimulatorProcess {
  url: string;
  child: ChildProcess;
  /** Stops the simulator and waits for its process to exit. */
  stop(): Promise<void>;
}

/**
 * The simulator in its own process, so its certificate generation takes the other core rather than
 * the process being measured. Resolves once it answers /healthz.
 */
export async function startSimulatorProcess(options: { issueSeconds: number }): Promise<SimulatorProcess> {
  const port = 40_000 + Math.floor(Math.random() * 20_000);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: fileURLToPath(new URL('../apps/simulator', import.meta.url)),
    env: {
      ...process.env,
      SIM_PORT: String(port),
      SIM_ISSUE_SECONDS: String(options.issueSeconds),
      SIM_LOG: 'false',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, child, stop: () => stopChildProcess(child) };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error('simulator did not start');
}

/** SIGTERM to a child process; resolves once it has exited (at once if it already has). */
export async function stopChildProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** This process's RSS, sampled every `intervalMs` until `stop()`, which returns the peak. */
export function sampleRss(intervalMs = 10) {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss);
    },
  };
}

/**
 * CPU seconds (user + system) that processes have used, read from /proc (Linux; clock ticks of 10 ms).
 * `pids()` is asked at start and at stop: a process that appears meanwhile (a new Postgres backend)
 * counts from zero, one that exits before stop is lost (the benches keep their connections open).
 */
export function processCpu(pids: () => Promise<readonly number[]>) {
  const read = (list: readonly number[]) => {
    const byPid = new Map<number, number>();
    for (const pid of list) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        // Fields after the command name: utime and stime are the 12th and 13th.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        byPid.set(pid, (Number(fields[11]) + Number(fields[12])) / 100);
      } catch {
        // gone already
      }
    }
    return byPid;
  };
  return {
    async start() {
      const before = read(await pids());
      return {
        async stop(): Promise<number> {
          let seconds = 0;
          for (const [pid, now] of read(await pids())) seconds += now - (before.get(pid) ?? 0);
          return seconds;
        },
      };
    },
  };
}

/** Where a bench's certq processes find their database, Redis and the simulator. */
export function benchPlaces(env: BenchEnvironment, simUrl: string): CertqPlaces {
  return {
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    redisPrefix: env.prefix,
    httpsokUrl: simUrl,
  };
}

/**
 * An httpsok URL for suites that run no simulator: port 9 (discard) on loopback, where nothing answers,
 * so any upstream call fails at once instead of reaching a real service.
 */
export const NO_UPSTREAM = 'http://127.0.0.1:9';

/**
 * certq's settings (as in process.env) for a bench run on `env` against the simulator at `simUrl`: the
 * parts every suite shares (fresh secrets, silent logs), plus the suite's own `settings`.
 */
export function benchSettings(
  env: BenchEnvironment,
  simUrl: string,
  settings: Record<string, string>,
): Record<string, string> {
  return certqSettings(benchPlaces(env, simUrl), { HTTPSOK_API_KEY: 'bench', ...settings });
}

/** certq's configuration from benchSettings, for the certq a suite runs in its own process. */
export function benchConfig(env: BenchEnvironment, simUrl: string, settings: Record<string, string>): Config {
  return loadConfig(benchSettings(env, simUrl, settings), { requireSecrets: true });
}
