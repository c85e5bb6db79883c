import { connect, createServer, type Server } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy } from '../src/fault-proxy';
import { waitFor } from '../src/index';
import {
  type PrivatePostgres,
  type PrivateRedis,
  startPrivatePostgres,
  startPrivateRedis,
} from '../src/restartable';

/** An echo server: the simplest upstream whose every byte we can account for. */
let echo: Server;
let echoPort: number;
let proxy: FaultProxy;

beforeAll(async () => {
  echo = createServer((socket) => {
    socket.on('error', () => {}); // the proxy cuts and refuses on purpose
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoPort = (echo.address() as { port: number }).port;
  proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort });
});
afterAll(async () => {
  await proxy.close();
  await new Promise((resolve) => echo.close(resolve));
});

/** Sends `text` through the proxy and resolves with what came back, or with the failure. */
function roundTrip(text: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(proxy.port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(`timeout:${got}`);
    }, timeoutMs);
    socket.on('data', (chunk) => {
      got += chunk.toString();
      if (got === text) {
        clearTimeout(timer);
        socket.end();
        resolve(got);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(got === text ? got : `closed:${got}`);
    });
    socket.write(text);
  });
}

describe('fault proxy', () => {
  it('passes bytes, refuses, hangs, delays and restores', async () => {
    expect(await roundTrip('hello')).toBe('hello');

    proxy.refuse();
    expect(await roundTrip('x')).toBe('closed:');
    proxy.restore();
    expect(await roundTrip('again')).toBe('again');

    proxy.hang();
    expect(await roundTrip('held', 300)).toBe('timeout:');
    proxy.restore();

    proxy.latency(200);
    const started = Date.now();
    expect(await roundTrip('slow')).toBe('slow');
    expect(Date.now() - started).toBeGreaterThanOrEqual(390); // 200 ms each way
    proxy.latency(0);
  });

  it('cut() destroys open connections and a held connection resumes on restore()', async () => {
    const socket = connect(proxy.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.on('error', () => {});
    await new Promise((r) => setTimeout(r, 20));
    expect(proxy.openConnections).toBe(1);
    proxy.cut();
    await closed;
    expect(proxy.openConnections).toBe(0);

    proxy.hang();
    const held = connect(proxy.port, '127.0.0.1');
    let got = '';
    held.on('data', (c) => {
      got += c.toString();
    });
    held.write('buffered');
    await waitFor(() => proxy.heldChunks > 0, { message: 'the write held by the proxy' });
    expect(got).toBe('');
    proxy.restore();
    expect(proxy.heldChunks).toBe(0);
    await new Promise<void>((resolve) => {
      const check = () => (got === 'buffered' ? resolve() : setTimeout(check, 10));
      check();
    });
    held.destroy();
  });
});

describe('restartable private servers', () => {
  let postgres: PrivatePostgres;
  let redis: PrivateRedis;
  beforeAll(async () => {
    [postgres, redis] = await Promise.all([startPrivatePostgres(), startPrivateRedis()]);
  });
  afterAll(async () => {
    await Promise.all([postgres?.close(), redis?.close()]);
  });

  it('Postgres restarts fast and immediate; a pool reconnects by itself, committed rows survive', async () => {
    const pool = new pg.Pool({ connectionString: postgres.url, max: 2 });
    pool.on('error', () => {});
    await pool.query('create table t (v int)');
    await pool.query('insert into t values (1)');
    await postgres.restart('fast');
    await pool.query('insert into t values (2)').catch(() => pool.query('insert into t values (2)'));
    await postgres.restart('immediate');
    const after = await pool
      .query('select count(*)::int as n from t')
      .catch(() => pool.query('select count(*)::int as n from t'));
    expect(after.rows[0].n).toBe(2);
    await pool.end();
  });

  it('Redis restarts with its AOF: acknowledged writes survive a SIGKILL', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: null });
    client.on('error', () => {});
    await client.set('k', 'v');
    await redis.restart();
    expect(await client.get('k')).toBe('v');
    client.disconnect();
  });
});
