import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createBenchEnvironment } from '../../bench/lib';
import autocannon from 'autocannon';
const env = await createBenchEnvironment();
const adminToken = 'bench-admin-' + randomBytes(16).toString('hex');
const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir=/tmp/apitest/prof', '--import', 'tsx', '../../bench/api.bench.ts'], {
  env: { ...process.env, CERTQ_BENCH_ROLE: 'api', DATABASE_URL: env.databaseUrl, REDIS_URL: env.redisUrl, REDIS_PREFIX: env.prefix, ADMIN_TOKEN: adminToken, ENCRYPTION_KEY: randomBytes(32).toString('base64'), RATE_LIMIT_PER_MINUTE: '1000000000', LOG_LEVEL: 'silent' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const url: string = await new Promise((r) => child.stdout!.on('data', (d) => r(JSON.parse(String(d)).url)));
const t = await (await fetch(url + '/v1/tenants', { method: 'POST', headers: { authorization: 'Bearer ' + adminToken, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'p' }) })).json() as any;
const bulk = await (await fetch(url + '/v1/orders/bulk', { method: 'POST', headers: { authorization: 'Bearer ' + t.token, 'content-type': 'application/json' }, body: JSON.stringify({ orders: Array.from({ length: 300 }, (_, i) => ({ domains: [`p${i}.example.com`] })) }) })).json() as any;
const ids = bulk.orders.map((o: any) => o.id);
let g = 0;
const mode = process.argv[2] ?? 'get';
let n = 0;
const r = await autocannon({ url, connections: 50, duration: 8, headers: { authorization: 'Bearer ' + t.token, 'content-type': 'application/json' },
  requests: [mode === 'get' ? { method: 'GET', setupRequest: (q: any) => ({ ...q, path: `/v1/orders/${ids[g++ % ids.length]}` }) } : { method: 'POST', path: '/v1/orders', setupRequest: (q: any) => ({ ...q, body: JSON.stringify({ domains: [`x${n++}.example.com`] }) }) }] });
console.log(mode, r.requests.average, r.latency.p50, r.non2xx);
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
await env.cleanup();
