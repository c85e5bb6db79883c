import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Launched, launch } from '../scripts/launcher';
import { findPostgresBinaries } from '../scripts/local-services';

/**
 * The dashboards `pnpm start` prints, opened in a real (headless) Chromium the way an operator would:
 * the browser asks for the operator token through HTTP Basic auth, then /admin shows the order counts
 * and /admin/queues (bull-board, rendered client-side) lists certq's queues. Chromium comes from the
 * machine (Debian's `chromium`; .ci/run installs it); without it this file fails saying so.
 */
const executablePath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
const haveServices = findPostgresBinaries() !== undefined && commandExists('redis-server');

function commandExists(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent' };
  for (const key of [
    'DATABASE_URL',
    'REDIS_URL',
    'REDIS_PREFIX',
    'HTTPSOK_BASE_URL',
    'ADMIN_TOKEN',
    'ENCRYPTION_KEY',
  ])
    delete env[key];
  return env;
}

describe('the dashboards in a browser', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'certq-dash-'));
  let launched: Launched;
  let browser: Browser;

  beforeAll(async () => {
    if (!executablePath) throw new Error('Chromium not found at /usr/bin/chromium: apt-get install chromium');
    if (!haveServices)
      throw new Error(
        'PostgreSQL server binaries or redis-server missing: apt-get install postgresql redis-server',
      );
    launched = await launch({
      dataDir,
      env: cleanEnv(),
      port: 0,
      simPort: 0,
      useLocalRedis: false,
      log: () => {},
    });
    // Something to show: one order for the demo tenant.
    const response = await fetch(`${launched.apiUrl}/v1/orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${launched.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tenantId: launched.demoTenantId, domains: ['dashboard.example.com'] }),
    });
    expect(response.status).toBe(202);
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await launched?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('challenges a browser without the token (HTTP Basic), so it asks for it', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Headless Chromium has nobody to ask, so it gives up on the challenge.
    await expect(page.goto(`${launched.apiUrl}/admin`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    const response = await context.request.get(`${launched.apiUrl}/admin/queues`);
    expect(response.status()).toBe(401);
    expect(response.headers()['www-authenticate']).toMatch(/^Basic realm=/);
    await context.close();
  });

  it('shows the operator page and the queue dashboard with the admin token as password', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: 'operator', password: launched.adminToken },
    });
    const page = await context.newPage();
    const admin = await page.goto(`${launched.apiUrl}/admin`);
    expect(admin?.status()).toBe(200);
    await expect(page.locator('h1').textContent()).resolves.toBe('certq');
    expect(await page.locator('body').textContent()).toMatch(/Orders by tenant[\s\S]*demo/);

    await page.click('a[href="/admin/queues"]');
    // bull-board renders in the browser from its JSON API: wait for the queues to appear.
    for (const queue of ['certq-verify', 'certq-apply', 'certq-poll'])
      await page.getByText(queue, { exact: false }).first().waitFor({ timeout: 30_000 });
    await page.getByText('certq-verify').first().click();
    await page.waitForURL(/\/admin\/queues\/queue\/certq-verify/);
    await page
      .getByText(/completed/i)
      .first()
      .waitFor({ timeout: 30_000 });
    await context.close();
  }, 60_000);
});
