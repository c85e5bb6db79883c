import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findBinary, freePort, postgresAnswers, redisAnswers, uidGid } from '../probes';

/**
 * Private servers on loopback for tests and benchmarks that need more than the shared Postgres and
 * Redis: a Redis of their own (exact command counts), a three-master Redis Cluster, PgBouncer in
 * transaction mode. Each lives in a temp dir and is removed by `stop()`. A missing binary throws,
 * naming the Debian package.
 */
export interface PrivateServer {
  url: string;
  stop(): Promise<void>;
}

function need(binary: string, debianPackage: string): string {
  const found = findBinary(binary, ['/usr/sbin', '/usr/bin', '/usr/local/bin']);
  if (!found) throw new Error(`${binary} not found: install the Debian package ${debianPackage}`);
  return found;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A Redis of its own (no persistence) on a free loopback port. */
export async function startPrivateRedis(): Promise<PrivateServer> {
  const binary = need('redis-server', 'redis-server');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'certq-redis-'));
  const child = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    {
      stdio: 'ignore',
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  await until(`redis-server on ${port}`, () => redisAnswers(url));
  return {
    url,
    async stop() {
      await kill(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisClusterServer extends PrivateServer {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3` — certq's REDIS_URL for it. */
  url: string;
  ports: number[];
}

/**
 * A real Redis Cluster: three masters started with `redis-server --cluster-enabled yes` on loopback
 * ports, joined with `redis-cli --cluster create` (no replicas), waited for until cluster_state:ok.
 */
export async function startRedisCluster(masters = 3): Promise<RedisClusterServer> {
  const server = need('redis-server', 'redis-server');
  const cli = need('redis-cli', 'redis-tools');
  const dir = mkdtempSync(join(tmpdir(), 'certq-redis-cluster-'));
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.map(kill));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      // Cluster bus = port + 10000: pick ports whose bus port is free too.
      let port = await freePort();
      while (port > 55_000) port = await freePort();
      ports.push(port);
      children.push(
        spawn(
          server,
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            '--cluster-node-timeout',
            '2000',
            '--save',
            '',
            '--appendonly',
            'no',
            '--dir',
            dir,
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    for (const port of ports)
      await until(`cluster node ${port}`, () => redisAnswers(`redis://127.0.0.1:${port}`));
    const created = spawnSync(
      cli,
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    await until(
      'cluster_state:ok',
      async () => {
        for (const port of ports) {
          const node = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
          try {
            await node.connect();
            if (!(await node.cluster('INFO')).includes('cluster_state:ok')) return false;
          } catch {
            return false;
          } finally {
            node.disconnect();
          }
        }
        return true;
      },
      20_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, ports, stop };
}

export interface PgBouncerServer extends PrivateServer {
  /** The given database URL with its host and port replaced by PgBouncer's. */
  url: string;
  port: number;
}

/**
 * PgBouncer in transaction pooling mode in front of the Postgres of `databaseUrl` (trust auth on
 * loopback, as the test Postgres), `poolSize` server connections for any number of clients. Returns
 * the same URL pointing at PgBouncer.
 */
export async function startPgBouncer(
  databaseUrl: string,
  options: { poolSize?: number } = {},
): Promise<PgBouncerServer> {
  const binary = need('pgbouncer', 'pgbouncer');
  const target = new URL(databaseUrl);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'certq-pgbouncer-'));
  const user = decodeURIComponent(target.username || 'postgres');
  writeFileSync(join(dir, 'userlist.txt'), `"${user}" ""\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${target.hostname} port=${target.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      "unix_socket_dir = ''",
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${options.poolSize ?? 10}`,
      'max_client_conn = 500',
      // Parameters pg sends at startup that PgBouncer would otherwise refuse.
      'ignore_startup_parameters = extra_float_digits,options,application_name',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    ].join('\n'),
  );
  // PgBouncer refuses to run as root: drop to an unprivileged user that can read its dir.
  const args = [join(dir, 'pgbouncer.ini')];
  if (process.getuid?.() === 0) {
    const runAs = ['postgres', 'nobody'].find((u) => uidGid(u));
    if (!runAs) throw new Error('pgbouncer cannot run as root and no postgres/nobody user exists');
    const [uid, gid] = uidGid(runAs)!;
    spawnSync('chown', ['-R', `${uid}:${gid}`, dir]);
    chmodSync(dir, 0o755);
    args.unshift('-u', runAs);
  }
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  const stop = async () => {
    await kill(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until('pgbouncer', async () => {
      if (child.exitCode !== null) throw new Error(`pgbouncer exited: ${stderr}`);
      return postgresAnswers(url.toString());
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: url.toString(), port, stop };
}
