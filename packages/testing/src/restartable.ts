import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary, freePort, postgresBinDirs, redisAnswers, uidGid } from './probes';

/**
 * Private servers a fault test may restart for real: a PostgreSQL cluster of its own (`pg_ctl restart
 * -m fast|immediate`, `stop`, `start`) and a Redis with AOF (`restart()` kills it with SIGKILL and starts
 * it again on the same port and data directory, so what was fsync'd survives, as in production).
 * A missing binary fails with a message naming the Debian package.
 */
export interface PrivatePostgres {
  /** Admin URL of the `postgres` database. */
  url: string;
  port: number;
  /**
   * `pg_ctl restart -m <mode>`: fast rolls back sessions and checkpoints; immediate is a crash.
   * Asynchronous (like stop and start), so servers and clients in the test's own process keep
   * running while pg_ctl waits.
   */
  restart(mode: 'fast' | 'immediate'): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const initdb = findBinary('initdb', postgresBinDirs());
  const pgCtl = findBinary('pg_ctl', postgresBinDirs());
  if (!initdb || !pgCtl)
    throw new Error(
      'fault tests need the PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql',
    );
  const dir = mkdtempSync(join(tmpdir(), 'certq-pgfault-'));
  const data = join(dir, 'data');
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const run = async (cmd: string, args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${output}`);
  };
  if (asRoot) chownSync(dir, ...(uidGid('postgres') ?? [0, 0]));
  await run(initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const start = () => run(pgCtl, ['-D', data, '-l', join(dir, 'log'), '-w', '-o', options, 'start']);
  await start();
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async restart(mode) {
      await run(pgCtl, ['-D', data, '-l', join(dir, 'log'), '-w', '-m', mode, '-o', options, 'restart']);
    },
    async stop(mode = 'fast') {
      await run(pgCtl, ['-D', data, '-w', '-m', mode, 'stop']);
    },
    start,
    async close() {
      if (stopped) return;
      stopped = true;
      try {
        await run(pgCtl, ['-D', data, '-m', 'immediate', 'stop']);
      } catch {
        // already stopped
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export interface PrivateRedis {
  url: string;
  port: number;
  /** SIGKILL and start again on the same port and AOF (appendfsync always: nothing acknowledged is lost). */
  restart(): Promise<void>;
  kill(): void;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const binary = findBinary('redis-server', []);
  if (!binary) throw new Error('fault tests need redis-server: apt-get install redis-server');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'certq-redisfault-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      binary,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 200 && !(await redisAnswers(url)); i++) await new Promise((r) => setTimeout(r, 25));
    if (!(await redisAnswers(url))) throw new Error(`redis-server did not start on port ${port}`);
  };
  const kill = () => {
    child?.kill('SIGKILL');
    child = undefined;
  };
  const waitGone = async () => {
    for (let i = 0; i < 200 && (await redisAnswers(url)); i++) await new Promise((r) => setTimeout(r, 25));
  };
  await start();
  return {
    url,
    port,
    kill,
    start,
    async restart() {
      const dying = child;
      kill();
      if (dying && dying.exitCode === null) await new Promise((r) => dying.once('exit', r));
      await waitGone();
      await start();
    },
    async close() {
      kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
