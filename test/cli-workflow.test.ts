import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createSimulator, type Simulator } from '@certq/simulator';
import type { WorkerHandle } from '@certq/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestEnv,
  startTestApi,
  type TestApi,
  type TestEnv,
  uniqueDomain,
} from '../apps/api/test/helpers';
import { CERTQ_BIN, runCli } from './cli-run';
import { startSystemWorker } from './system';

const exec = promisify(execFile);

let env: TestEnv;
let api: TestApi;
let sim: Simulator;
let worker: WorkerHandle;
let dir: string;
let admin: { api: string; token: string };
/** Ordered at the start so that it has failed (status 3 upstream) by the time the retry test runs. */
let failing: { id: string; tenantId: string };

/**
 * The real system: API, worker and simulator. An application is ready 2 s after apply and found by
 * the first poll, 10 s later (the floor between two requests for one application).
 */
beforeAll(async () => {
  env = await createTestEnv();
  sim = createSimulator({ issueSeconds: 2 });
  const simUrl = await sim.listen();
  const upstream = { HTTPSOK_BASE_URL: simUrl, HTTPSOK_API_KEY: 'cli-operator-key' };
  api = await startTestApi(env, { env: upstream });
  worker = await startSystemWorker(api, { ...upstream, POLL_INTERVAL_MS: '10000' });
  dir = await mkdtemp(join(tmpdir(), 'certq-cli-'));
  admin = { api: api.url, token: api.config.ADMIN_TOKEN! };
  const owner = await api.createTenant();
  const placed = await api.adminRequest('POST', '/v1/orders', {
    domains: [`x${randomBytes(3).toString('hex')}.fail.test`],
    tenantId: owner.id,
  });
  failing = placed.body;
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await sim?.close();
  await env?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function tmux(socket: string, ...args: string[]): Promise<string> {
  try {
    return (await exec('tmux', ['-L', socket, ...args])).stdout;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(
        'tmux is not installed (Debian package: tmux); the watch test runs the CLI in its pseudo-terminal',
      );
    throw error;
  }
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('certq against the running system', () => {
  let tenant: { id: string; name: string; token: string };
  let issuedOrderId: string;

  it('tenants create prints the new tenant with its token; tenants list shows it without secrets', async () => {
    const name = `cli-${randomBytes(3).toString('hex')}`;
    const created = await runCli(['--json', 'tenants', 'create', name], admin);
    expect(created.code, created.stderr).toBe(0);
    tenant = created.json();
    expect(tenant).toMatchObject({ name, id: expect.any(String), token: expect.any(String) });
    const human = await runCli(['tenants', 'list'], admin);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(name);
    expect(human.stdout).not.toContain(tenant.token);
    const listed = (await runCli(['--json', 'tenants', 'list'], admin)).json();
    expect(listed.find((t: { id: string }) => t.id === tenant.id)).toMatchObject({
      name,
      hasOwnApiKey: false,
    });
  });

  it('orders watch redraws a live table in a terminal until the order is issued', async () => {
    const domain = uniqueDomain('watch');
    const created = await runCli(['--json', 'orders', 'create', domain, `www.${domain}`], {
      api: api.url,
      token: tenant.token,
    });
    expect(created.code, created.stderr).toBe(0);
    const order = created.json();
    expect(order).toMatchObject({ status: 'verifying', domains: [domain, `www.${domain}`] });

    const socket = `certq-cli-${process.pid}-${randomBytes(3).toString('hex')}`;
    const command =
      `CERTQ_API=${shellQuote(api.url)} CERTQ_TOKEN=${shellQuote(tenant.token)} ` +
      `${shellQuote(process.execPath)} ${shellQuote(CERTQ_BIN)} orders watch ${order.id} --interval 300; ` +
      'echo "watch exited $?"; sleep 120';
    await tmux(socket, 'new-session', '-d', '-s', 'watch', '-x', '200', '-y', '40', command);
    try {
      const screens: string[] = [];
      for (const deadline = Date.now() + 45_000; Date.now() < deadline; ) {
        const screen = await tmux(socket, 'capture-pane', '-p', '-t', 'watch');
        screens.push(screen);
        if (screen.includes('watch exited')) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const last = screens.at(-1)!;
      expect(last).toContain('watch exited 0');
      expect(last).toContain('certq orders watch: 1/1 finished');
      expect(last).toMatch(new RegExp(`${order.id}\\s*│\\s*issued`));
      // While it ran, the same table stood at the top of the screen, unfinished: redrawn, not scrolled.
      const running = screens.filter((s) => s.includes('0/1 finished'));
      expect(running.length).toBeGreaterThan(0);
      for (const screen of running) expect(screen.trimStart().startsWith('certq orders watch:')).toBe(true);
      expect(last.match(/certq orders watch:/g)).toHaveLength(1);
    } finally {
      await tmux(socket, 'kill-server').catch(() => {});
    }
    issuedOrderId = order.id;
  }, 60_000);

  it('certs list and certs get --out write the chain and, with --key, the private key', async () => {
    const order = (await runCli(['--json', 'orders', 'get', issuedOrderId], admin)).json();
    expect(order.status).toBe('issued');
    const listed = await runCli(['--json', 'certs', 'list', '--tenant', tenant.id], admin);
    expect(listed.code).toBe(0);
    expect(listed.json().map((c: { id: string }) => c.id)).toContain(order.certificateId);

    const out = join(dir, 'cert');
    const got = await runCli(['--json', 'certs', 'get', order.certificateId, '--out', out, '--key'], {
      api: api.url,
      token: tenant.token,
    });
    expect(got.code, got.stderr).toBe(0);
    expect(got.json()).toMatchObject({
      id: order.certificateId,
      written: { fullchain: join(out, 'fullchain.pem') },
    });
    const chain = await readFile(join(out, 'fullchain.pem'), 'utf8');
    expect(chain.match(/BEGIN CERTIFICATE/g)).toHaveLength(2); // leaf and intermediate
    expect(await readFile(join(out, 'privkey.pem'), 'utf8')).toMatch(/BEGIN (EC |RSA )?PRIVATE KEY/);
    expect((await stat(join(out, 'privkey.pem'))).mode & 0o777).toBe(0o600);
  });

  it('renew shows the batch until its renewals are issued', async () => {
    const renewed = await runCli(
      ['--json', 'renew', '--tenant', tenant.id, '--expiring-within', '90', '--interval', '300'],
      admin,
    );
    expect(renewed.code, renewed.stderr).toBe(0);
    expect(renewed.json()).toMatchObject({
      total: 1,
      issued: 1,
      failed: 0,
      inFlight: 0,
      enqueued: 1,
      skipped: 0,
    });
    expect(renewed.stderr).toMatch(/batch [0-9a-f-]+: 1 renewal\(s\) queued/);
  }, 60_000);

  it('orders retry --status failed starts the failed orders again; one that is not failed is refused', async () => {
    const created = failing;
    await expect
      .poll(async () => (await runCli(['--json', 'orders', 'get', created.id], admin)).json().status, {
        timeout: 30_000,
        interval: 500,
      })
      .toBe('failed');

    const retried = await runCli(
      ['--json', 'orders', 'retry', '--status', 'failed', '--tenant', created.tenantId, '--since', '1h'],
      admin,
    );
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.json()).toEqual({
      retried: 1,
      refused: [],
      orders: [{ id: created.id, status: 'verifying' }],
    });
    const after = (await runCli(['--json', 'orders', 'get', created.id], admin)).json();
    expect(after).toMatchObject({
      status: expect.stringMatching(/verifying|applying|issuing|failed/),
      attempts: 2,
    });

    // An issued order is not retryable: 409, exit 5 when it was the only one asked for.
    const refused = await runCli(['orders', 'retry', issuedOrderId], admin);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/not_retryable/);
    // Nothing failed since a minute in the future.
    const none = await runCli(
      [
        '--json',
        'orders',
        'retry',
        '--status',
        'failed',
        '--since',
        new Date(Date.now() + 60_000).toISOString(),
      ],
      admin,
    );
    expect(none.json()).toMatchObject({ retried: 0 });
  }, 60_000);
});
