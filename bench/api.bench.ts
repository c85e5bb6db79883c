import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { type BenchRow, createBenchEnvironment, percentile } from './lib';
import {
  autocannon,
  type BenchServer,
  type CannonResult,
  serveBenchRole,
  startApiServer,
  startBenchServer,
} from './servers';

/**
 * The HTTP API under load. The servers under test run in their own processes (this file, started
 * again with --certq-bench-serve=<role>), so the load generator does not share their event loop:
 *   - our API on a fresh bench database (no worker running: jobs just accumulate in Redis);
 *   - a bare Fastify answering a constant, measured the same way, as the ceiling of this machine.
 * autocannon: 50 connections, ~10 s per scenario. Also: single-connection latency of one order, and
 * the wall time to accept one 10,000-order bulk request.
 */

const SUITE = 'api';
const CONNECTIONS = 50;
const DURATION_S = 10;
/** POST with and without an Idempotency-Key alternate in this many rounds of DURATION_S / ROUNDS each. */
const ROUNDS = 5;

// ─── server roles (child processes) ───────────────────────────────────────────────────────────────

await serveBenchRole(async (role) => {
  const app =
    role === 'minimal'
      ? await (await import('./baselines/minimal-enqueue')).buildMinimalEnqueue({
          databaseUrl: process.env.DATABASE_URL!,
          redisUrl: process.env.REDIS_URL!,
          prefix: `${process.env.REDIS_PREFIX}-minimal`,
        })
      : await bareFastify();
  return { url: await app.listen({ host: '127.0.0.1', port: 0 }), close: () => app.close() };
});

/** The ceiling: a bare Fastify answering a constant. */
async function bareFastify() {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false });
  app.get('/', async () => ({ ok: true }));
  return app;
}

function startServer(which: 'bare' | 'minimal', env: Record<string, string>): Promise<BenchServer> {
  return startBenchServer(import.meta.url, which, env);
}

// ─── load generation ──────────────────────────────────────────────────────────────────────────────

interface CannonRequest {
  method?: string;
  path?: string;
  body?: string;
  headers?: Record<string, string>;
  setupRequest?: (request: CannonRequest) => CannonRequest;
}

function load(
  url: string,
  token: string | undefined,
  requests: CannonRequest[],
  duration = DURATION_S,
): Promise<CannonResult> {
  return autocannon({
    url,
    connections: CONNECTIONS,
    duration,
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    requests,
  });
}

/** Rounds of one scenario as one: mean throughput, the slowest round's latencies, failures summed. */
function combine(rounds: readonly CannonResult[]): CannonResult {
  const sum = (pick: (r: CannonResult) => number) => rounds.reduce((n, r) => n + pick(r), 0);
  return {
    requests: {
      average: sum((r) => r.requests.average) / rounds.length,
      total: sum((r) => r.requests.total),
    },
    latency: {
      p50: Math.max(...rounds.map((r) => r.latency.p50)),
      p99: Math.max(...rounds.map((r) => r.latency.p99)),
    },
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/** One request over a keep-alive connection; resolves status, body and elapsed ms. */
function call(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: string,
): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = httpRequest(
      `${url}${path}`,
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - started,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function expectStatus(what: string, got: number, want: number, body: string) {
  if (got !== want) throw new Error(`${what}: expected ${want}, got ${got}: ${body.slice(0, 300)}`);
}

// ─── the benchmark ────────────────────────────────────────────────────────────────────────────────

export async function run(): Promise<BenchRow[]> {
  const environment = await createBenchEnvironment();
  const adminToken = `bench-admin-${randomBytes(16).toString('hex')}`;
  const servers: BenchServer[] = [];
  try {
    const api = await startApiServer(import.meta.url, environment, {
      ADMIN_TOKEN: adminToken,
      RATE_LIMIT_PER_MINUTE: String(1_000_000_000),
    });
    servers.push(api);
    const tenantRes = await call(
      api.url,
      'POST',
      '/v1/tenants',
      adminToken,
      JSON.stringify({ name: 'bench' }),
    );
    expectStatus('create tenant', tenantRes.status, 201, tenantRes.body);
    const token = (JSON.parse(tenantRes.body) as { token: string }).token;

    // Single-connection latency of POST /v1/orders (after a warm-up).
    let n = 0;
    const nextOrder = (tag: string) => JSON.stringify({ domains: [`${tag}${n++}.bench.example.com`] });
    for (let i = 0; i < 200; i++) await call(api.url, 'POST', '/v1/orders', token, nextOrder('warm'));
    const single: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const res = await call(api.url, 'POST', '/v1/orders', token, nextOrder('seq'));
      expectStatus('single order', res.status, 202, res.body);
      single.push(res.ms);
    }
    single.sort((a, b) => a - b);

    // POST /v1/orders under load, every request a new domain set; and the idempotency path, every
    // request a new order under its own Idempotency-Key. Interleaved in short rounds, so both see the
    // same machine (a shared one drifts over a minute) and the same table size.
    let k = 0;
    const plainRequest: CannonRequest = {
      method: 'POST',
      path: '/v1/orders',
      setupRequest: (req) => ({ ...req, body: nextOrder('load') }),
    };
    const keyedRequest: CannonRequest = {
      method: 'POST',
      path: '/v1/orders',
      setupRequest: (req) => ({
        ...req,
        headers: {
          ...req.headers,
          'content-type': 'application/json',
          authorization: `Bearer ${token}`,
          'idempotency-key': `bench-${k++}-${randomBytes(4).toString('hex')}`,
        },
        body: nextOrder('idem'),
      }),
    };
    const plainRounds: CannonResult[] = [];
    const keyedRounds: CannonResult[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      plainRounds.push(await load(api.url, token, [plainRequest], DURATION_S / ROUNDS));
      keyedRounds.push(await load(api.url, token, [keyedRequest], DURATION_S / ROUNDS));
    }
    const post = combine(plainRounds);
    const postIdempotent = combine(keyedRounds);

    // GET /v1/orders/{id} under load, over a few hundred orders.
    const seeded = await call(
      api.url,
      'POST',
      '/v1/orders/bulk',
      token,
      JSON.stringify({
        orders: Array.from({ length: 500 }, () => ({ domains: [`get${n++}.bench.example.com`] })),
      }),
    );
    expectStatus('seed orders', seeded.status, 202, seeded.body);
    const ids = (JSON.parse(seeded.body) as { orders: { id: string }[] }).orders.map((o) => o.id);
    let g = 0;
    const get = await load(api.url, token, [
      { method: 'GET', setupRequest: (req) => ({ ...req, path: `/v1/orders/${ids[g++ % ids.length]}` }) },
    ]);

    // One 10,000-order bulk request: a 1,000-order warm-up, then the median of three.
    const bulkBody = (size: number) =>
      JSON.stringify({
        orders: Array.from({ length: size }, () => ({
          domains: [`bulk${n}.bench.example.com`, `www.bulk${n++}.bench.example.com`],
        })),
      });
    await call(api.url, 'POST', '/v1/orders/bulk', token, bulkBody(1000));
    const bulk: number[] = [];
    for (let i = 0; i < 3; i++) {
      const body = bulkBody(10_000);
      const res = await call(api.url, 'POST', '/v1/orders/bulk', token, body);
      expectStatus('bulk 10,000', res.status, 202, res.body);
      bulk.push(res.ms);
    }
    bulk.sort((a, b) => a - b);
    await api.stop();

    // The fair anchor: the minimal enqueue route (token lookup, one transaction, one BullMQ add) on
    // the same database and Redis, same load, same token.
    const minimalServer = await startServer('minimal', {
      DATABASE_URL: environment.databaseUrl,
      REDIS_URL: environment.redisUrl,
      REDIS_PREFIX: environment.prefix,
    });
    servers.push(minimalServer);
    const minimal = await load(minimalServer.url, token, [
      {
        method: 'POST',
        path: '/v1/orders',
        setupRequest: (req) => ({ ...req, body: nextOrder('minimal') }),
      },
    ]);
    await minimalServer.stop();

    // The ceiling: bare Fastify, same load.
    const bareServer = await startServer('bare', {});
    servers.push(bareServer);
    const bare = await load(bareServer.url, undefined, [{ method: 'GET', path: '/' }]);
    await bareServer.stop();

    const failures = (r: CannonResult) => r.non2xx + r.errors + r.timeouts;
    const p50Single = percentile(single, 50);
    const bulkMedian = bulk[1]!;
    /** A throughput ratio whose goal is at least 0.8. */
    const atLeastFourFifths = (metric: string, value: number): BenchRow => ({
      suite: SUITE,
      metric,
      value,
      unit: 'x',
      goal: '>= 0.8',
      met: value >= 0.8,
    });
    return [
      {
        suite: SUITE,
        metric: 'POST /v1/orders, 1 connection: p50',
        value: p50Single,
        unit: 'ms',
        goal: '< 5 ms',
        met: p50Single < 5,
      },
      {
        suite: SUITE,
        metric: 'POST /v1/orders, 1 connection: p99',
        value: percentile(single, 99),
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: `POST /v1/orders, ${CONNECTIONS} conns: throughput`,
        value: post.requests.average,
        unit: 'req/s',
      },
      {
        suite: SUITE,
        metric: `POST /v1/orders, ${CONNECTIONS} conns: p50`,
        value: post.latency.p50,
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: `POST /v1/orders, ${CONNECTIONS} conns: p99`,
        value: post.latency.p99,
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: 'POST /v1/orders: failed requests',
        value: failures(post),
        unit: 'count',
        goal: '0',
        met: failures(post) === 0,
      },
      {
        suite: SUITE,
        metric: `POST /v1/orders + Idempotency-Key, ${CONNECTIONS} conns: throughput`,
        value: postIdempotent.requests.average,
        unit: 'req/s',
      },
      {
        suite: SUITE,
        metric: 'POST /v1/orders + Idempotency-Key: failed requests',
        value: failures(postIdempotent),
        unit: 'count',
        goal: '0',
        met: failures(postIdempotent) === 0,
      },
      atLeastFourFifths(
        'POST + Idempotency-Key / POST without (interleaved)',
        postIdempotent.requests.average / post.requests.average,
      ),
      {
        suite: SUITE,
        metric: `minimal enqueue route, ${CONNECTIONS} conns: throughput`,
        value: minimal.requests.average,
        unit: 'req/s',
      },
      {
        suite: SUITE,
        metric: 'minimal enqueue route: failed requests',
        value: failures(minimal),
        unit: 'count',
      },
      atLeastFourFifths(
        'POST /v1/orders / minimal enqueue route',
        post.requests.average / minimal.requests.average,
      ),
      {
        suite: SUITE,
        metric: 'POST + Idempotency-Key / minimal enqueue route',
        value: postIdempotent.requests.average / minimal.requests.average,
        unit: 'x',
      },
      {
        suite: SUITE,
        metric: `GET /v1/orders/{id}, ${CONNECTIONS} conns: throughput`,
        value: get.requests.average,
        unit: 'req/s',
      },
      {
        suite: SUITE,
        metric: `GET /v1/orders/{id}, ${CONNECTIONS} conns: p50`,
        value: get.latency.p50,
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: `GET /v1/orders/{id}, ${CONNECTIONS} conns: p99`,
        value: get.latency.p99,
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: 'GET /v1/orders/{id}: failed requests',
        value: failures(get),
        unit: 'count',
        goal: '0',
        met: failures(get) === 0,
      },
      {
        suite: SUITE,
        metric: `bare Fastify, ${CONNECTIONS} conns: throughput`,
        value: bare.requests.average,
        unit: 'req/s',
      },
      {
        suite: SUITE,
        metric: `bare Fastify, ${CONNECTIONS} conns: p50`,
        value: bare.latency.p50,
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: `bare Fastify, ${CONNECTIONS} conns: p99`,
        value: bare.latency.p99,
        unit: 'ms',
      },
      {
        suite: SUITE,
        metric: 'GET order throughput / bare',
        value: get.requests.average / bare.requests.average,
        unit: 'ratio',
      },
      {
        suite: SUITE,
        metric: 'POST order throughput / bare',
        value: post.requests.average / bare.requests.average,
        unit: 'ratio',
      },
      {
        suite: SUITE,
        metric: 'bulk of 10,000 orders accepted (median of 3)',
        value: bulkMedian,
        unit: 'ms',
        goal: '< 2000 ms',
        met: bulkMedian < 2000,
      },
      { suite: SUITE, metric: 'bulk of 10,000 orders accepted (slowest of 3)', value: bulk[2]!, unit: 'ms' },
    ];
  } finally {
    for (const server of servers) await server.stop().catch(() => {});
    agent.destroy();
    await environment.cleanup();
  }
}
