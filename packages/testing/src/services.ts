import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary, freePort, postgresAnswers, postgresBinDirs, redisAnswers, uidGid } from './probes';

/**
 * Finds PostgreSQL and Redis for the test suite: the ones configured (or on their default local
 * ports), else private instances started from the installed server binaries in a temp dir on a free
 * port. If neither works, it fails with a message that names exactly what is missing.
 */
export interface Service {
  url: string;
  stop(): Promise<void>;
}

export async function ensurePostgres(configured: string | undefined): Promise<Service> {
  const url = configured ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  if (await postgresAnswers(url)) return { url, stop: async () => {} };
  if (configured) throw new Error(`PostgreSQL does not answer at CERTQ_TEST_DATABASE_URL=${configured}`);

  const initdb = findBinary('initdb', postgresBinDirs());
  const pgCtl = findBinary('pg_ctl', postgresBinDirs());
  if (!initdb || !pgCtl) {
    throw new Error(
      'PostgreSQL is not reachable at 127.0.0.1:5432 and no server binaries (initdb, pg_ctl) were found to start a private one. ' +
        'Start PostgreSQL, set CERTQ_TEST_DATABASE_URL to an admin connection URL, or install the server (apt-get install postgresql).',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'certq-pg-'));
  const port = await freePort();
  // initdb refuses to run as root; run the private cluster as the postgres system user then.
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    const result = spawnSync(full[0] as string, full[1] as string[], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${cmd} failed: ${result.stderr || result.stdout}`);
  };
  if (asRoot) chownSync(dir, ...(uidGid('postgres') ?? [0, 0]));
  run(initdb, ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '--no-sync']);
  run(pgCtl, [
    '-D',
    join(dir, 'data'),
    '-l',
    join(dir, 'log'),
    '-w',
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
    'start',
  ]);
  const privateUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url: privateUrl,
    stop: async () => {
      try {
        run(pgCtl, ['-D', join(dir, 'data'), '-m', 'immediate', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export async function ensureRedis(configured: string | undefined): Promise<Service> {
  const url = configured ?? 'redis://127.0.0.1:6379';
  if (await redisAnswers(url)) return { url, stop: async () => {} };
  if (configured) throw new Error(`Redis does not answer at CERTQ_TEST_REDIS_URL=${configured}`);
  const binary = findBinary('redis-server', []);
  if (!binary) {
    throw new Error(
      'Redis is not reachable at 127.0.0.1:6379 and no redis-server binary was found to start a private one. ' +
        'Start Redis, set CERTQ_TEST_REDIS_URL, or install it (apt-get install redis-server).',
    );
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'certq-redis-'));
  const child: ChildProcess = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    {
      stdio: 'ignore',
    },
  );
  const privateUrl = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await redisAnswers(privateUrl)); i++)
    await new Promise((r) => setTimeout(r, 50));
  if (!(await redisAnswers(privateUrl)))
    throw new Error(`redis-server (${binary}) did not start on port ${port}`);
  return {
    url: privateUrl,
    stop: async () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export { freePort };
