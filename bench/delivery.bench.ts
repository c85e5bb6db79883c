import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { startCaddy } from '@certq/testing/servers';
import { freePort, waitFor } from '@certq/testing/standalone';
import pg from 'pg';
import { type BenchRow, createBenchEnvironment, percentile } from './lib';
import { autocannon, serveBenchRole, startApiServer, startBenchServer } from './servers';

/**
 * Delivery to TLS servers.
 *  1. `GET /v1/tls/certificate` (what Caddy asks at every handshake) over 10,000 current certificates
 *     generated with SQL, at a steady 200 requests/s (p50/p99) and flat out (req/s), side by side
 *     with a baseline: a bare Fastify route answering the same bundles from a Map. Names are drawn at
 *     random from all 10,000, after one warm-up pass over them (a warm cache, as on a busy edge).
 *  3. Caddy's full handshake asking certq directly vs asking certq-agent --format caddy (loopback).
 *  2. The change feed's delay: from a renewal's commit (a certificate becoming current, written the
 *     way issuance writes it) to certq-agent's reload command running, over 200 renewals one at a
 *     time, with `--debounce-ms 100` (the agent's default is 500).
 * Servers run in child processes (this file with --certq-bench-serve=<role>), apart from the load.
 */

const SUITE = 'delivery';
// CERTQ_BENCH_QUICK=1: a smoke run while developing (numbers not comparable).
const QUICK = process.env.CERTQ_BENCH_QUICK === '1';
const CERTIFICATES = QUICK ? 500 : 10_000;
const RENEWALS = QUICK ? 20 : 200;
const SECONDS = QUICK ? 2 : 15;
const DEBOUNCE_MS = 100;
const HANDSHAKE_SLICES = QUICK ? 2 : 10;

/** One full TLS handshake (a new connection, no session), in ms; throws if it fails. */
function handshakeMs(port: number, servername: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve(performance.now() - started);
    });
    socket.once('error', reject);
  });
}

await serveBenchRole(async (_role) => {
  // The baseline: the least a server can do to answer the same question.
  const { default: Fastify } = await import('fastify');
  const bundle = readFileSync(process.env.BENCH_BUNDLE_FILE!, 'utf8');
  const map = new Map<string, string>();
  for (let i = 0; i < CERTIFICATES; i++) map.set(`c${i}.bench.example.com`, bundle);
  const app = Fastify({ logger: false });
  app.get('/v1/tls/certificate', async (request, reply) => {
    const found = map.get((request.query as { server_name: string }).server_name);
    if (!found) return reply.code(204).send();
    return reply.type('application/x-pem-file').send(found);
  });
  return { url: await app.listen({ host: '127.0.0.1', port: 0 }), close: () => app.close() };
});

async function load(url: string, token: string, options: { connections: number; seconds: number }) {
  const result = await autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    headers: { authorization: `Bearer ${token}` },
    requests: [
      {
        setupRequest: (request: Record<string, unknown>) => ({
          ...request,
          path: `/v1/tls/certificate?server_name=c${Math.floor(Math.random() * CERTIFICATES)}.bench.example.com`,
        }),
      },
    ],
  });
  if (result.non2xx || result.errors)
    throw new Error(`load on ${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return result;
}

/**
 * A steady `rate` of requests for `seconds`, each timed on its own (microseconds, not autocannon's
 * whole milliseconds), over up to 10 keep-alive connections; sorted latencies in ms.
 */
async function paced(url: string, token: string, rate: number, seconds: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 10 });
  const latencies: number[] = [];
  const one = (path: string) =>
    new Promise<void>((resolve, reject) => {
      const started = performance.now();
      const req = httpRequest(
        `${url}${path}`,
        { agent, headers: { authorization: `Bearer ${token}` } },
        (res) => {
          res.on('data', () => {});
          res.on('end', () => {
            if (res.statusCode !== 200) reject(new Error(`${url}${path}: ${res.statusCode}`));
            latencies.push(performance.now() - started);
            resolve();
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < rate * seconds; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inflight.push(
      one(`/v1/tls/certificate?server_name=c${Math.floor(Math.random() * CERTIFICATES)}.bench.example.com`),
    );
  }
  await Promise.all(inflight);
  agent.destroy();
  return latencies.sort((a, b) => a - b);
}

async function json(url: string, method: string, token: string, body?: unknown) {
  const response = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** Renews one domain set the way issuance does: the old certificate replaced, a new one current. */
async function renew(client: pg.Client, tenantId: string, domain: string, pem: string, sealed: string) {
  await client.query('begin');
  const order = await client.query(
    `insert into orders (tenant_id, kind, domains, domains_key, status, progress, apply_id)
     values ($1, 'renewal', array[$2], $2, 'issued', 100, gen_random_uuid()::text) returning id`,
    [tenantId, domain],
  );
  await client.query(
    'update certificates set is_current = false where tenant_id = $1 and domains_key = $2 and is_current',
    [tenantId, domain],
  );
  await client.query(
    `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
       not_before, not_after, fingerprint, certificate_pem, private_key_sealed, is_current)
     values ($1, $2::uuid, array[$3], $3, 'bench-' || $2::text, 'ECC', 'google', now(), now() + interval '90 days',
       md5(random()::text), $4, $5, true)`,
    [tenantId, order.rows[0].id, domain, pem, sealed],
  );
  await client.query('commit');
}

export async function run(): Promise<BenchRow[]> {
  const environment = await createBenchEnvironment();
  const adminToken = `bench-admin-${randomBytes(16).toString('hex')}`;
  const encryptionKey = randomBytes(32).toString('base64');
  const tmp = mkdtempSync(join(tmpdir(), 'certq-bench-delivery-'));
  const stops: (() => Promise<void>)[] = [];
  const client = new pg.Client({ connectionString: environment.databaseUrl });
  await client.connect();
  try {
    // One real certificate from the simulator's CA; its chain and sealed key fill every row.
    const { createCertificateAuthority } = await import('@certq/simulator');
    const { createSecretBox, parseEncryptionKey } = await import('@certq/core');
    const ca = await createCertificateAuthority();
    const issued = await ca.issue({ domains: ['bench.example.com'], algorithm: 'ECC', issuedAt: Date.now() });
    const sealed = createSecretBox(parseEncryptionKey(encryptionKey)).seal(issued.privateKey);
    const bundleFile = join(tmp, 'bundle.pem');
    (await import('node:fs')).writeFileSync(bundleFile, `${issued.certificate}${issued.privateKey}`);

    const tenants = await client.query(
      `insert into tenants (name, token_hash) values ('bench-fleet', md5(random()::text)), ('bench-agent', md5(random()::text))
       returning id`,
    );
    const [fleet, agentTenant] = tenants.rows.map((r) => r.id as string);
    await client.query(
      `insert into orders (tenant_id, domains, domains_key, status, progress, apply_id)
       select $1, array['c' || g || '.bench.example.com'], 'c' || g || '.bench.example.com', 'issued', 100,
         gen_random_uuid()::text
       from generate_series(0, ${CERTIFICATES - 1}) g`,
      [fleet],
    );
    await client.query(
      `insert into orders (tenant_id, domains, domains_key, status, progress, apply_id)
       select $1, array['a' || g || '.agent.example.com'], 'a' || g || '.agent.example.com', 'issued', 100,
         gen_random_uuid()::text
       from generate_series(0, 4) g`,
      [agentTenant],
    );
    await client.query(
      `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
         not_before, not_after, fingerprint, certificate_pem, private_key_sealed, is_current)
       select tenant_id, id, domains, domains_key, 'bench-' || id, 'ECC', 'google', now(), now() + interval '90 days',
         $1, $2, $3, true from orders`,
      [issued.fingerprints, issued.certificate, sealed],
    );
    // Each tenant holds its names (the TLS route serves a name only to the tenant holding it).
    await client.query(
      `insert into domain_claims (name, parent, tenant_id)
       select d, substr(d, strpos(d, '.') + 1), tenant_id from orders, unnest(domains) d`,
    );

    const api = await startApiServer(import.meta.url, environment, {
      ADMIN_TOKEN: adminToken,
      ENCRYPTION_KEY: encryptionKey,
    });
    stops.push(api.stop);
    const baseline = await startBenchServer(import.meta.url, 'baseline', { BENCH_BUNDLE_FILE: bundleFile });
    stops.push(baseline.stop);
    const edge = (await json(`${api.url}/v1/edge-tokens`, 'POST', adminToken, { name: 'bench' }))
      .token as string;

    // Warm-up: every name once (fills the API's cache), then a short run on each server.
    for (let i = 0; i < CERTIFICATES; i += 100)
      await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          fetch(`${api.url}/v1/tls/certificate?server_name=c${i + j}.bench.example.com`, {
            headers: { authorization: `Bearer ${edge}` },
          }).then((r) => r.arrayBuffer()),
        ),
      );
    await load(api.url, edge, { connections: 4, seconds: 2 });
    await load(baseline.url, edge, { connections: 4, seconds: 2 });

    // Interleaved in slices, so both see the same background load on a shared machine.
    const steadyApi: number[] = [];
    const steadyBase: number[] = [];
    for (let slice = 0; slice < SECONDS; slice += 3) {
      steadyApi.push(...(await paced(api.url, edge, 200, 3)));
      steadyBase.push(...(await paced(baseline.url, edge, 200, 3)));
    }
    steadyApi.sort((a, b) => a - b);
    steadyBase.sort((a, b) => a - b);
    // Flat out, interleaved too: three slices each, averaged.
    const flat = { api: 0, base: 0 };
    for (let slice = 0; slice < 3; slice++) {
      flat.api +=
        (await load(api.url, edge, { connections: 20, seconds: Math.ceil(SECONDS / 6) })).requests.average /
        3;
      flat.base +=
        (await load(baseline.url, edge, { connections: 20, seconds: Math.ceil(SECONDS / 6) })).requests
          .average / 3;
    }

    // ── change feed → agent reload ──
    const agentToken = (
      await json(`${api.url}/v1/edge-tokens`, 'POST', adminToken, {
        name: 'bench-agent',
        tenantIds: [agentTenant],
      })
    ).token as string;
    const reloads = join(tmp, 'reloads.txt');
    // The standalone agent, built as `pnpm build` builds it.
    spawnSync(
      process.execPath,
      [fileURLToPath(new URL('../apps/agent/scripts/build.mjs', import.meta.url))],
      {
        stdio: 'inherit',
      },
    );
    const agentBin = fileURLToPath(new URL('../apps/agent/dist/certq-agent.mjs', import.meta.url));
    /** certq-agent on this API, its files in `tmp/<dir>`, stopped with the bench. */
    const spawnAgent = (dir: string, args: string[]) => {
      const child = spawn(
        process.execPath,
        [agentBin, '--api', api.url, '--token', agentToken, '--dir', join(tmp, dir), ...args],
        { stdio: 'ignore' },
      );
      stops.push(async () => {
        child.kill('SIGTERM');
      });
      return child;
    };
    spawnAgent('agent', [
      '--reload',
      `date +%s%N >> ${reloads}`,
      '--debounce-ms',
      String(DEBOUNCE_MS),
      '--wait',
      '30',
    ]);
    const reloadTimes = () => {
      try {
        return readFileSync(reloads, 'utf8')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((ns) => Number(BigInt(ns) / 1000n) / 1000);
      } catch {
        return [];
      }
    };
    const waitForReload = async (count: number) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const times = reloadTimes();
        if (times.length >= count) return times[count - 1]!;
        if (Date.now() > deadline) throw new Error(`the agent did not reload (${times.length} < ${count})`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    await waitForReload(1); // the full sync
    const delays: number[] = [];
    for (let i = 0; i < RENEWALS; i++) {
      await renew(client, agentTenant!, `a${i % 5}.agent.example.com`, issued.certificate, sealed);
      const committed = Date.now();
      delays.push((await waitForReload(i + 2)) - committed);
    }
    delays.sort((x, y) => x - y);

    // 3. Caddy's full handshake, asking certq directly vs asking certq-agent --format caddy.
    const caddyAgentPort = await freePort();
    spawnAgent('caddy-agent', ['--format', 'caddy', '--listen', `127.0.0.1:${caddyAgentPort}`]);
    await waitFor(
      async () =>
        (
          await fetch(`http://127.0.0.1:${caddyAgentPort}/?server_name=a0.agent.example.com`).catch(
            () => undefined,
          )
        )?.status === 200,
      { timeoutMs: 30_000, message: 'the caddy agent' },
    );
    const viaAgent = await startCaddy({ certificateUrl: `http://127.0.0.1:${caddyAgentPort}/` });
    stops.push(viaAgent.stop);
    const direct = await startCaddy({ certificateUrl: `${api.url}/v1/tls/certificate?token=${agentToken}` });
    stops.push(direct.stop);
    const handshakes = { agent: [] as number[], direct: [] as number[] };
    for (let slice = 0; slice < HANDSHAKE_SLICES; slice++)
      for (const [which, port] of [
        ['agent', viaAgent.port],
        ['direct', direct.port],
      ] as const)
        for (let i = 0; i < 100; i++)
          handshakes[which].push(await handshakeMs(port, `a${i % 5}.agent.example.com`));
    for (const list of Object.values(handshakes)) list.sort((x, y) => x - y);

    const p99 = percentile(steadyApi, 99);
    return [
      {
        suite: SUITE,
        metric: `tls certificate p50 @200 req/s, ${CERTIFICATES} certs`,
        value: percentile(steadyApi, 50),
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: `tls certificate p99 @200 req/s, ${CERTIFICATES} certs`,
        value: p99,
        unit: 'ms',
        goal: '< 5 ms',
        met: p99 < 5,
      },
      {
        suite: SUITE,
        metric: 'baseline (Map) p50 @200 req/s',
        value: percentile(steadyBase, 50),
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: 'baseline (Map) p99 @200 req/s',
        value: percentile(steadyBase, 99),
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: 'tls certificate throughput (20 conns)',
        value: flat.api,
        unit: 'req/s',
      },
      {
        suite: SUITE,
        metric: 'baseline (Map) throughput (20 conns)',
        value: flat.base,
        unit: 'req/s',
      },
      {
        suite: SUITE,
        metric: 'tls certificate throughput / baseline',
        value: flat.api / flat.base,
        goal: '≥ 0.8',
        met: flat.api / flat.base >= 0.8,
        unit: 'ratio',
      },
      ...(['agent', 'direct'] as const).flatMap((which) =>
        [50, 99].map((p) => ({
          suite: SUITE,
          metric: `caddy full handshake p${p}, ${which === 'agent' ? 'via certq-agent' : 'asking certq directly'}`,
          value: percentile(handshakes[which], p),
          unit: 'ms',
        })),
      ),
      {
        suite: SUITE,
        metric: `feed → agent reload median (${RENEWALS} renewals, debounce ${DEBOUNCE_MS} ms)`,
        value: percentile(delays, 50),
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: `feed → agent reload p99 (${RENEWALS} renewals, debounce ${DEBOUNCE_MS} ms)`,
        value: percentile(delays, 99),
        unit: 'ms',
      },
    ];
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await client.end();
    rmSync(tmp, { recursive: true, force: true });
    await environment.cleanup();
  }
}
