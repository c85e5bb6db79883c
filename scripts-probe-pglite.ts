import { rmSync } from 'node:fs';
import { migrate } from '@certq/db';
import pg from 'pg';

const { PGlite } = await import('/tmp/pglite-probe/node_modules/@electric-sql/pglite/dist/index.js');
const { PGLiteSocketServer } = await import('/tmp/pglite-probe/node_modules/@electric-sql/pglite-socket/dist/index.js');

const dir = '/tmp/pglite-probe/data';
rmSync(dir, { recursive: true, force: true });
let t = Date.now();
const db = await PGlite.create(dir);
console.log('create ms', Date.now() - t);
const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 100 });
await server.start();
const url = `postgres://postgres:postgres@${server.getServerConn()}/postgres`;
console.log('url', url);
t = Date.now();
await migrate(url);
console.log('migrate ms', Date.now() - t);
const pool = new pg.Pool({ connectionString: url, max: 20 });

// 1. extended-protocol isolation
let wrong = 0;
t = Date.now();
await Promise.all(
  Array.from({ length: 2000 }, async (_, i) => {
    const r = await pool.query('select $1::int as v, $2::text as s', [i, `x${i}`]);
    if (r.rows[0].v !== i || r.rows[0].s !== `x${i}`) wrong++;
  }),
);
console.log('1. parameterized concurrent queries: wrong =', wrong, 'ms', Date.now() - t);

// 2. FOR UPDATE counters
await pool.query('create table if not exists probe_counter (id int primary key, n int not null)');
await pool.query('insert into probe_counter values (1, 0) on conflict (id) do update set n = 0');
t = Date.now();
const errs: string[] = [];
await Promise.all(
  Array.from({ length: 200 }, async () => {
    const c = await pool.connect();
    try {
      await c.query('begin');
      const r = await c.query('select n from probe_counter where id = $1 for update', [1]);
      await new Promise((res) => setTimeout(res, 1));
      await c.query('update probe_counter set n = $1 where id = $2', [r.rows[0].n + 1, 1]);
      await c.query('commit');
    } catch (e) {
      errs.push(String(e));
      await c.query('rollback').catch(() => {});
    } finally {
      c.release();
    }
  }),
);
const n = (await pool.query('select n from probe_counter where id = 1')).rows[0].n;
console.log('2. 200 read-modify-write tx with FOR UPDATE: n =', n, 'errors', errs.length, errs[0], 'ms', Date.now() - t);

// 3. session advisory lock exclusivity
const a = await pool.connect();
const b = await pool.connect();
await a.query('select pg_advisory_lock(42)');
const tryB = (await b.query('select pg_try_advisory_lock(42) as got')).rows[0].got;
console.log('3. session advisory lock held by A; B try_advisory_lock =', tryB, '(real PostgreSQL: false)');
await a.query('select pg_advisory_unlock_all()');
// backend pid
const pa = (await a.query('select pg_backend_pid() as p')).rows[0].p;
const pb = (await b.query('select pg_backend_pid() as p')).rows[0].p;
console.log('   backend pids A/B', pa, pb);
// 4. isolation: uncommitted write visible to other connection?
await a.query('begin');
await a.query('update probe_counter set n = -1 where id = 1');
const seen = b.query('select n from probe_counter where id = 1');
const timeout = new Promise((res) => setTimeout(() => res('blocked (waits for A)'), 1000));
console.log('4. B reads while A has an open tx:', await Promise.race([seen.then((r) => r.rows[0].n), timeout]));
await a.query('rollback');
console.log('   after A rollback B got', (await seen).rows[0].n);
// 5. client killed mid-transaction
const c = new pg.Client({ connectionString: url });
c.on('error', () => {});
await c.connect();
await c.query('begin');
await c.query('update probe_counter set n = -5 where id = 1');
(c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
await new Promise((r) => setTimeout(r, 200));
const after = await Promise.race([
  b.query('select n from probe_counter where id = 1').then((r) => r.rows[0].n),
  new Promise((res) => setTimeout(() => res('HANG'), 3000)),
]);
console.log('5. after a client died mid-tx, another reads n =', after);
// 6. deadlock: tx on A awaits query on B
await a.query('begin');
await a.query('select 1');
const r6 = await Promise.race([
  b.query('select 2 as x').then(() => 'ok'),
  new Promise((res) => setTimeout(() => res('HANG while A holds a tx (a tx that awaits another connection would deadlock)'), 2000)),
]);
console.log('6.', r6);
await a.query('commit');
a.release();
b.release();
await pool.end();
await server.stop();
await db.close();
console.log('closed');
