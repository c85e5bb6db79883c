import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:tls';
import { type RunningApi, startApi } from '@certq/api';
import { type Config, loadConfig } from '@certq/core';
import { createSimulator, type Simulator } from '@certq/simulator';
import { createTestDatabase, createTestRedis, type HttpResult, requestJson, waitFor } from '@certq/testing';
import { startWorker, type WorkerHandle } from '@certq/worker';
import { pino } from 'pino';

/** The standalone agent `pnpm build` writes; every delivery test runs that file. */
export const AGENT_BUNDLE = new URL('../../apps/agent/dist/certq-agent.mjs', import.meta.url).pathname;
let bundled = false;

/** Builds the bundle (as `pnpm build` does) once per test file, so tests never run a stale one. */
export function buildAgentBundle(): string {
  if (!bundled)
    execFileSync(process.execPath, [new URL('../../apps/agent/scripts/build.mjs', import.meta.url).pathname]);
  bundled = true;
  return AGENT_BUNDLE;
}

/**
 * The whole delivery path with real parts: Postgres, Redis, the simulator issuing real X.509
 * certificates, the worker, and the API over HTTP (restartable on the same port).
 */
export interface Stack {
  config: Config;
  sim: Simulator;
  rootPem: string;
  apiUrl: string;
  api: RunningApi | undefined;
  request(token: string, method: string, path: string, body?: unknown, base?: string): Promise<HttpResult>;
  admin(method: string, path: string, body?: unknown): Promise<HttpResult>;
  createTenant(): Promise<{ id: string; token: string }>;
  edgeToken(tenantIds?: string[]): Promise<string>;
  /** Orders `domains` for a tenant and waits until the worker issued it; answers the new current certificate. */
  issue(tenantToken: string, domains: string[]): Promise<{ id: string; fingerprint: string }>;
  /** The same through another API replica (base URL). */
  issueVia(
    apiUrl: string,
    tenantToken: string,
    domains: string[],
  ): Promise<{ id: string; fingerprint: string }>;
  /** Another API replica over the same database and Redis (its own process state). */
  startReplica(): Promise<RunningApi>;
  stopApi(): Promise<void>;
  startApi(): Promise<void>;
  close(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const database = await createTestDatabase();
  const redis = createTestRedis();
  const sim = createSimulator({ issueSeconds: 0 });
  const simUrl = await sim.listen();
  const rootPem = await (await fetch(`${simUrl}/_sim/ca`)).text();
  const config = loadConfig({
    DATABASE_URL: database.url,
    REDIS_URL: redis.url,
    REDIS_PREFIX: redis.prefix,
    HTTPSOK_BASE_URL: simUrl,
    HTTPSOK_API_KEY: 'delivery-test-key',
    ADMIN_TOKEN: `admin-${randomBytes(12).toString('hex')}`,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    UPSTREAM_MAX_RPS: '500',
    RATE_LIMIT_PER_MINUTE: '1000000',
    LOG_LEVEL: 'silent',
    WORKER_METRICS_PORT: '0',
  });
  let port = 0;
  const replicas: RunningApi[] = [];
  const stack: Stack = {
    config,
    sim,
    rootPem,
    apiUrl: '',
    api: undefined,
    request(token, method, path, body, base = stack.apiUrl) {
      return requestJson(method, `${base}${path}`, { token, body });
    },
    admin: (method, path, body) => stack.request(config.ADMIN_TOKEN!, method, path, body),
    async createTenant() {
      const res = await stack.admin('POST', '/v1/tenants', { name: `t-${randomBytes(5).toString('hex')}` });
      if (res.status !== 201) throw new Error(`tenant: ${res.status} ${res.text}`);
      return res.body;
    },
    async edgeToken(tenantIds) {
      const res = await stack.admin('POST', '/v1/edge-tokens', { name: 'test edge', tenantIds });
      if (res.status !== 201) throw new Error(`edge token: ${res.status} ${res.text}`);
      return res.body.token;
    },
    issue: (tenantToken, domains) => stack.issueVia(stack.apiUrl, tenantToken, domains),
    async issueVia(base, tenantToken, domains) {
      const placed = await stack.request(tenantToken, 'POST', '/v1/orders', { domains }, base);
      if (placed.status !== 202) throw new Error(`order: ${placed.status} ${placed.text}`);
      const order = await waitFor(
        async () => {
          const res = await stack.request(
            tenantToken,
            'GET',
            `/v1/orders/${placed.body.id}`,
            undefined,
            base,
          );
          if (res.body?.status === 'failed') throw new Error(`order failed: ${res.body.lastError}`);
          return res.body?.status === 'issued' ? res.body : undefined;
        },
        { timeoutMs: 45_000, intervalMs: 100, message: `issuance of ${domains.join(',')}` },
      );
      const cert = await stack.request(
        tenantToken,
        'GET',
        `/v1/certificates/${order.certificateId}`,
        undefined,
        base,
      );
      return { id: cert.body.id, fingerprint: cert.body.fingerprint };
    },
    async startReplica() {
      const replica = await startApi({ config, logger: false, host: '127.0.0.1', port: 0 });
      replicas.push(replica);
      return replica;
    },
    async stopApi() {
      await stack.api?.close();
      stack.api = undefined;
    },
    async startApi() {
      // CERTQ_TEST_LOG=error shows the API's own log lines when a test fails.
      const logger = process.env.CERTQ_TEST_LOG ? pino({ level: process.env.CERTQ_TEST_LOG }) : false;
      stack.api = await startApi({ config, logger, host: '127.0.0.1', port });
      port = Number(new URL(stack.api.url).port);
      stack.apiUrl = stack.api.url;
    },
    async close() {
      await worker.close();
      await stack.stopApi();
      for (const replica of replicas) await replica.close();
      await sim.close();
      await redis.flush();
      await database.drop();
    },
  };
  await stack.startApi();
  const worker: WorkerHandle = await startWorker({ config, logger: pino({ level: 'silent' }) });
  return stack;
}

/** SHA-256 of the leaf a server presents for `servername`, verified against `ca` only; or the error. */
export function handshake(
  port: number,
  servername: string,
  ca: string,
): Promise<{ ok: true; fingerprint: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername,
      ca,
      rejectUnauthorized: true,
      timeout: 5000,
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      resolve({ ok: true, fingerprint: cert!.fingerprint256.replaceAll(':', '').toLowerCase() });
    });
    socket.once('error', (error) => {
      socket.destroy();
      resolve({ ok: false, error: error.message });
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve({ ok: false, error: 'timeout' });
    });
  });
}

/**
 * What a server presents for each of `names`: the leaf's fingerprint, or the handshake error. One
 * `toEqual` against the expected fingerprints then checks every name and shows every mismatch at once.
 */
export async function presented(port: number, ca: string, names: string[]): Promise<Record<string, string>> {
  const results = await Promise.all(names.map((name) => handshake(port, name, ca)));
  return Object.fromEntries(
    names.map((name, i) => {
      const result = results[i]!;
      return [name, result.ok ? result.fingerprint : `error: ${result.error}`];
    }),
  );
}

export interface AgentProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** certq-agent's connection and output arguments for `stack` (add the format, --once, --reload…). */
export function agentArgs(stack: { apiUrl: string }, token: string, dir: string): string[] {
  return ['--api', stack.apiUrl, '--token', token, '--dir', dir];
}

/** certq-agent keeping nginx's files in `dir` current, nginx reloaded after each debounced change. */
export function spawnNginxAgent(
  stack: { apiUrl: string },
  token: string,
  dir: string,
  reloadCommand: string,
  debounceMs: number,
): AgentProcess {
  return spawnAgent([
    ...agentArgs(stack, token, dir),
    '--format',
    'nginx',
    '--reload',
    reloadCommand,
    '--wait',
    '20',
    '--debounce-ms',
    String(debounceMs),
  ]);
}

export function spawnAgent(args: string[]): AgentProcess {
  let output = '';
  const child = spawn(process.execPath, [buildAgentBundle(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

export const uniqueName = (label: string) => `${label}-${randomBytes(4).toString('hex')}.example.com`;
