import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';

/*
 * Probes for local PostgreSQL and Redis, shared by the test setup (services.ts) and the `pnpm start`
 * launcher (scripts/local-services.ts): is a port free, does a server answer, where are the binaries.
 * No vitest here, so the launcher can import it.
 */

export async function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port')),
      );
    });
  });
}

export function findBinary(name: string, extraDirs: string[] = []): string | undefined {
  const which = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  return extraDirs.map((dir) => join(dir, name)).find((candidate) => existsSync(candidate));
}

/**
 * The path of an installed program a test needs, or an error naming the Debian package that brings it:
 * a missing tool fails the test that needs it (never a silent skip on a machine without it).
 */
export function requireBinary(name: string, debianPackage: string): string {
  const path = findBinary(name);
  if (!path) throw new Error(`${name} not found on PATH: apt-get install ${debianPackage}`);
  return path;
}

/** Newest first: /usr/lib/postgresql/<version>/bin (Debian/Ubuntu), then Homebrew-style locations. */
export function postgresBinDirs(): string[] {
  const dirs: string[] = [];
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    dirs.push(
      ...readdirSync(debian)
        .sort((a, b) => Number(b) - Number(a))
        .map((version) => join(debian, version, 'bin')),
    );
  }
  dirs.push('/usr/local/bin', '/opt/homebrew/bin', '/usr/pgsql/bin');
  return dirs;
}

export function findPostgresBinaries(): { initdb: string; pgCtl: string } | undefined {
  const dirs = postgresBinDirs();
  const initdb = findBinary('initdb', dirs);
  const pgCtl = findBinary('pg_ctl', dirs);
  return initdb && pgCtl ? { initdb, pgCtl } : undefined;
}

export async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

export function uidGid(user: string): [number, number] | undefined {
  const id = (flag: string) => spawnSync('id', [flag, user], { encoding: 'utf8' });
  const u = id('-u');
  const g = id('-g');
  if (u.status !== 0 || g.status !== 0) return undefined;
  return [Number(u.stdout.trim()), Number(g.stdout.trim())];
}
