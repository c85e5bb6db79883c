import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockOrder, transitionOrder } from '@certq/db';
import { createSimulator, type Simulator } from '@certq/simulator';
import type { WorkerHandle } from '@certq/worker';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, startTestApi, type TestApi, type TestEnv } from '../apps/api/test/helpers';
import { REPO_ROOT } from '../scripts/launcher';
import { startSystemWorker } from './system';

/**
 * The operator console at /admin in a real (headless) Chromium, as an operator uses it: the API, the
 * worker and the simulator run for real; the browser logs in with HTTP Basic (the token as password),
 * searches a domain, opens the order (DNS records and timeline), retries a failed order and watches it
 * get issued, bulk-renews a filtered set and follows its progress; the viewer token sees the same pages
 * and is refused the action. With CERTQ_CONSOLE_SCREENSHOTS=1 the test refreshes the screenshots in
 * docs/console/; otherwise it writes them to a temp folder, so a test run leaves the tree clean.
 * Chromium comes from the machine (Debian's `chromium`; .ci/run installs it).
 */
const executablePath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
const SHOTS = process.env.CERTQ_CONSOLE_SCREENSHOTS
  ? join(REPO_ROOT, 'docs', 'console')
  : join(tmpdir(), `certq-console-${process.pid}`);
const suffix = randomBytes(3).toString('hex');
const BASE = `console-${suffix}.example.com`;

let env: TestEnv;
let api: TestApi;
let sim: Simulator;
let worker: WorkerHandle | undefined;
let browser: Browser;
const viewerToken = `viewer-${randomBytes(16).toString('hex')}`;
let tenant: { id: string; name: string; token: string };
let failedOrderId: string;

/** Waits for an order's status (outside a test, so no expect.poll). */
async function waitForStatus(id: string, status: string, timeout = 60_000) {
  const deadline = Date.now() + timeout;
  let last: string | undefined;
  while (Date.now() < deadline) {
    last = (await api.adminRequest('GET', `/v1/orders/${id}`)).body.status;
    if (last === status) return;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  throw new Error(`order ${id} is ${last}, not ${status}, after ${timeout} ms`);
}

async function order(domains: string[]): Promise<string> {
  const placed = await api.adminRequest('POST', '/v1/orders', { tenantId: tenant.id, domains });
  expect(placed.status).toBe(202);
  return placed.body.id;
}

async function operatorPage(token: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    httpCredentials: { username: 'operator', password: token },
    viewport: { width: 1360, height: 900 },
  });
  const page = await context.newPage();
  // Every action asks for a confirmation (hx-confirm): the operator says yes.
  page.on('dialog', (dialog) => void dialog.accept());
  return { context, page };
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

beforeAll(async () => {
  if (!executablePath) throw new Error('Chromium not found at /usr/bin/chromium: apt-get install chromium');
  mkdirSync(SHOTS, { recursive: true });
  env = await createTestEnv();
  sim = createSimulator({ issueSeconds: 1 });
  const simUrl = await sim.listen();
  const upstream = { HTTPSOK_BASE_URL: simUrl, HTTPSOK_API_KEY: 'console-operator-key' };
  api = await startTestApi(env, { env: upstream, extraConfig: { VIEWER_TOKEN: viewerToken } });
  tenant = await api.createTenant(`acme-${suffix}`);

  // A failed order to retry, failed before any worker runs (its queued job then finds it failed).
  failedOrderId = await order([`retry.${BASE}`]);
  await env.handle.db.transaction(async (tx) => {
    const locked = await lockOrder(tx, failedOrderId);
    await transitionOrder(tx, {
      order: locked!,
      to: 'failed',
      set: { lastError: 'dns: the CNAME records were not found within the verification window' },
      event: { type: 'failed', detail: { error: 'DNS not in place', traceId: 'trace-seed-0001' } },
    });
  });

  worker = await startSystemWorker(api, upstream);

  const issued = [
    await order([`*.shop.${BASE}`, `shop.${BASE}`]),
    ...(await Promise.all([1, 2, 3].map((i) => order([`site${i}.bulk.${BASE}`])))),
  ];
  for (const id of issued) await waitForStatus(id, 'issued');
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}, 180_000);

afterAll(async () => {
  // In the reverse order of starting: the browser before the API it talks to, the API before its database.
  for (const part of [browser, worker, api, sim, env]) await part?.close();
});

describe('the console at /admin in a browser', () => {
  it('asks a browser without the token for it (HTTP Basic challenge)', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await expect(page.goto(`${api.url}/admin`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
    const response = await context.request.get(`${api.url}/admin/orders`);
    expect(response.status()).toBe(401);
    expect(response.headers()['www-authenticate']).toMatch(/^Basic realm=/);
    await context.close();
  });

  it('shows the overview with its charts, drawn by Chart.js from certq’s own assets', async () => {
    const { context, page } = await operatorPage(api.config.ADMIN_TOKEN!);
    const external: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(api.url)) external.push(request.url());
    });
    await page.goto(`${api.url}/admin`);
    await page.locator('section.charts[data-ready="true"]').waitFor({ timeout: 20_000 });
    // Chart.js registered a chart on each canvas.
    const charts = await page.evaluate(() =>
      ['chart-expiring', 'chart-outcomes', 'chart-queues'].map(
        (id) =>
          (globalThis as unknown as { Chart: { getChart(id: string): unknown } }).Chart.getChart(id) !==
          undefined,
      ),
    );
    expect(charts).toEqual([true, true, true]);
    expect(await page.locator('.counts').first().textContent()).toMatch(/issued\s*4/);
    expect(external).toEqual([]);
    await shot(page, 'overview');
    await context.close();
  }, 60_000);

  it('finds an order by domain, opens it and shows its DNS records and timeline with trace ids', async () => {
    const { context, page } = await operatorPage(api.config.ADMIN_TOKEN!);
    await page.goto(`${api.url}/admin`);
    // A name the order covers through its wildcard: found by the wildcard-aware search.
    await page.fill('input[name="q"]', `www.shop.${BASE}`);
    await page.click('button:has-text("Search orders")');
    const row = page.locator('table.orders tbody tr');
    await expect.poll(() => row.count()).toBe(1);
    // And by prefix.
    await page.fill('input[name="q"]', `shop.console-${suffix}*`);
    await page.click('button:has-text("Search orders")');
    await expect.poll(() => row.count()).toBe(1);
    await shot(page, 'search');
    await row.locator('a').first().click();
    await page.waitForURL(/\/admin\/orders\/[0-9a-f-]{36}$/);
    await page.locator('#order-live .s-issued').waitFor();
    const dns = page.locator('table.dns tbody tr');
    expect(await dns.count()).toBe(2);
    for (const domain of [`*.shop.${BASE}`, `shop.${BASE}`]) {
      const text = await page.locator(`table.dns tr[data-domain="${domain}"]`).textContent();
      expect(text).toContain('_acme-challenge');
      expect(text).toMatch(/valid/);
    }
    const timeline = await page.locator('ol.timeline').textContent();
    expect(timeline).toMatch(
      /created[\s\S]*verifying → applying[\s\S]*applying → issuing[\s\S]*issuing → issued/,
    );
    expect(await page.locator('ol.timeline .trace').count()).toBeGreaterThan(0);
    expect(await page.locator('dd.certificate a').count()).toBe(1);
    await shot(page, 'order');

    // Its certificate: SANs, issuer, validity, fingerprint; never the private key.
    await page.locator('dd.certificate a').click();
    await page.waitForURL(/\/admin\/certificates\//);
    const facts = await page.locator('dl.facts').textContent();
    expect(facts).toContain(`DNS:shop.${BASE}`);
    expect(facts).toMatch(/Fingerprint \(SHA-256\)[0-9a-f]{64}/);
    expect(await page.content()).not.toContain('PRIVATE KEY');
    await shot(page, 'certificate');
    await context.close();
  }, 60_000);

  it('retries a failed order and shows it move to issued', async () => {
    const { context, page } = await operatorPage(api.config.ADMIN_TOKEN!);
    await page.goto(`${api.url}/admin/orders?status=failed&tenant=${tenant.name}`);
    await page.locator(`tr[data-order="${failedOrderId}"] a`).first().click();
    await page.locator('#order-live .s-failed').waitFor();
    expect(await page.locator('.last-error').textContent()).toContain('CNAME records were not found');
    expect(await page.locator('ol.timeline').textContent()).toContain('trace-seed-0001');
    await shot(page, 'order-failed');
    await page.click('button.action-retry');
    await page.locator('#flash .flash.ok').waitFor();
    expect(await page.locator('#flash').textContent()).toMatch(/Retried/);
    // The page polls its status: verifying … issued, without a reload.
    await page.locator('#order-live .s-issued').waitFor({ timeout: 60_000 });
    // The timeline refreshes on its own schedule (every 3 s), the status may get there first.
    await expect
      .poll(() => page.locator('ol.timeline').textContent(), { timeout: 10_000 })
      .toMatch(/retried[\s\S]*failed → verifying/);
    await context.close();
  }, 90_000);

  it('bulk-renews the orders matching a filter: a count before, progress after', async () => {
    const { context, page } = await operatorPage(api.config.ADMIN_TOKEN!);
    await page.goto(`${api.url}/admin/orders?q=${encodeURIComponent(`*.bulk.${BASE}`)}&status=issued`);
    await expect.poll(() => page.locator('table.orders tbody tr').count()).toBe(3);
    await page.click('button.bulk-renew');
    await page.locator('#bulk-panel .bulk-count').waitFor();
    expect(await page.locator('#bulk-panel .bulk-count').textContent()).toMatch(
      /3 orders match: 3 current certificates/,
    );
    await shot(page, 'bulk-confirm');
    await page.click('#bulk-panel button.confirm');
    await page.locator('#bulk-panel .progress').waitFor();
    expect(await page.locator('#bulk-panel .progress .total').textContent()).toBe('3');
    // The progress panel polls until every renewal order ended.
    await page
      .locator('#bulk-panel .st[data-status="issued"]')
      .filter({ hasText: '3' })
      .waitFor({ timeout: 90_000 });
    await shot(page, 'bulk-progress');
    const renewals = await api.adminRequest('GET', `/v1/certificates?domain=site1.bulk.${BASE}`);
    expect(renewals.status).toBe(200);
    await context.close();
  }, 120_000);

  it('shows the viewer every page and refuses its actions (403)', async () => {
    const { context, page } = await operatorPage(viewerToken);
    await page.goto(`${api.url}/admin/orders/${failedOrderId}`);
    expect(await page.locator('header .who').textContent()).toContain('viewer');
    const before = (await api.adminRequest('GET', `/v1/orders/${failedOrderId}`)).body;
    await page.click('button.action-cancel');
    await page.locator('#flash .flash.error').waitFor();
    expect(await page.locator('#flash').textContent()).toContain('403');
    await shot(page, 'viewer-refused');
    const refused = await context.request.post(`${api.url}/admin/orders/${failedOrderId}/retry`, {
      headers: { 'hx-request': 'true' },
    });
    expect(refused.status()).toBe(403);
    const after = (await api.adminRequest('GET', `/v1/orders/${failedOrderId}`)).body;
    expect(after.updatedAt).toBe(before.updatedAt);
    await context.close();
  }, 60_000);
});
