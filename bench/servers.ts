import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type BenchEnvironment, benchSettings, NO_UPSTREAM, stopChildProcess } from './lib';

/*
 * Servers a suite runs in child processes of its own (the suite's file started again with
 * --certq-bench-serve=<role>), so the load it generates does not share their event loop, and the load
 * generator (autocannon).
 */

const SERVE_FLAG = '--certq-bench-serve=';

/** A server a suite runs in a child process. */
export interface BenchServer {
  url: string;
  stop(): Promise<void>;
}

/**
 * The child's side of startBenchServer: when this process was started to serve a role
 * (`--certq-bench-serve=<role>`), starts it ('api': certq's API, see startApiServer; any other with
 * `serveOther`), tells the parent its URL (one JSON line on stdout) and closes it on SIGTERM. Does
 * nothing in the suite's own process.
 */
export async function serveBenchRole(
  serveOther: (role: string) => Promise<{ url: string; close: () => Promise<void> }>,
): Promise<void> {
  const role = process.argv.find((arg) => arg.startsWith(SERVE_FLAG))?.slice(SERVE_FLAG.length);
  if (!role) return;
  const { url, close } = await (role === 'api' ? serveApiRole() : serveOther(role));
  process.stdout.write(`${JSON.stringify({ url })}\n`);
  process.once('SIGTERM', () => {
    close().finally(() => process.exit(0));
  });
}

/**
 * Starts the suite file `suiteUrl` (its import.meta.url) again in a child process serving `role` (see
 * serveBenchRole), with `env` on top of this process's environment; resolves once it listens.
 */
export async function startBenchServer(
  suiteUrl: string,
  role: string,
  env: Record<string, string>,
): Promise<BenchServer> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(suiteUrl), `${SERVE_FLAG}${role}`],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${role} server exited with ${code} before listening`)));
    lines.on('line', (line) => {
      try {
        resolve((JSON.parse(line) as { url: string }).url);
      } catch {
        /* not our line */
      }
    });
  });
  return { url, stop: () => stopChildProcess(child) };
}

/** What autocannon reports, as far as the suites read it. */
export interface CannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** Runs autocannon with `options` (its own, as documented by autocannon). */
export async function autocannon(options: Record<string, unknown>): Promise<CannonResult> {
  // autocannon ships no types; a computed specifier keeps TypeScript from asking for them.
  const autocannonModule = 'autocannon';
  const run = (
    (await import(autocannonModule)) as {
      default: (options: Record<string, unknown>) => Promise<CannonResult>;
    }
  ).default;
  return run(options);
}

/**
 * certq's API in a child process of the suite `suiteUrl` (whose serveBenchRole serves the 'api' role),
 * on `env` with no upstream, with the suite's own `settings`.
 */
export function startApiServer(
  suiteUrl: string,
  env: BenchEnvironment,
  settings: Record<string, string>,
): Promise<BenchServer> {
  return startBenchServer(suiteUrl, 'api', benchSettings(env, NO_UPSTREAM, settings));
}

/** The 'api' role: certq's API in this (child) process, configured from process.env. */
async function serveApiRole(): Promise<{ url: string; close: () => Promise<void> }> {
  const { loadConfig } = await import('@certq/core');
  const { startApi } = await import('@certq/api');
  return startApi({ config: loadConfig(process.env), logger: false, host: '127.0.0.1', port: 0 });
}
