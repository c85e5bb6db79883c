import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { recordWebhookEvent, tenants, webhookDeliveries } from '@certq/db';
import { waitFor } from '@certq/testing';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerHandle } from '../src';
import { createWorkbench, type Workbench } from './helpers';
import { createTenant, startRenewalWorker } from './renewal-helpers';
import { startReceiver } from './webhook-receiver';

/**
 * The connect-time half of the webhook address policy, with WEBHOOK_ALLOW_PRIVATE off (production).
 * Rows are written straight to the database, as if the PUT-time check had been passed (or bypassed by
 * DNS rebinding): the worker alone must refuse. Names resolve through a test resolver (no test may
 * reach real DNS); nothing is ever sent outside loopback, because every refused address is refused
 * before a socket is opened — `lastError` says so, a connection attempt would read differently.
 */
let bench: Workbench;
let worker: WorkerHandle;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let redirector: Server;
let redirectorPort: number;

const NAMES: Record<string, string[]> = {
  'loopback.rebind.test': ['127.0.0.1'],
  'metadata.rebind.test': ['169.254.169.254'],
  'v6.rebind.test': ['::1', '::ffff:127.0.0.1'],
};

beforeAll(async () => {
  bench = await createWorkbench();
  receiver = await startReceiver();
  redirector = createServer((req, res) => {
    req.resume();
    res.writeHead(307, { location: receiver.url }).end();
  });
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
  redirectorPort = (redirector.address() as AddressInfo).port;
  worker = await startRenewalWorker(bench, {
    webhooks: {
      attempts: 1,
      timeoutMs: 2000,
      resolveAll: async (host) => {
        const list = NAMES[host];
        if (!list) throw Object.assign(new Error(`no such name ${host}`), { code: 'ENOTFOUND' });
        return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
      },
      // Only the redirecting server, standing in for a public host: the receiver it points at is not let through.
      allowTarget: (host, port) => host === '127.0.0.1' && port === redirectorPort,
    },
  });
});
afterAll(async () => {
  await bench.close();
  await receiver.close();
  await new Promise((resolve) => redirector.close(resolve));
});

async function deliverTo(url: string) {
  const tenant = await createTenant(bench.db.db);
  await bench.db.db
    .update(tenants)
    .set({ webhookUrl: url, webhookSecretSealed: worker.ctx.secrets.seal('whsec_x') })
    .where(eq(tenants.id, tenant.id));
  const id = await recordWebhookEvent(bench.db.db, { tenantId: tenant.id, event: 'order.failed', data: {} });
  await worker.relayWebhooks();
  return waitFor(
    async () => {
      const [row] = await bench.db.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id!));
      return row?.status === 'failed' ? row : undefined;
    },
    { message: `delivery to ${url} given up` },
  );
}

describe('webhooks cannot reach inside (connect time)', () => {
  const port = () => new URL(receiver.url).port;
  const literal: [string, () => string][] = [
    ['loopback', () => `http://127.0.0.1:${port()}/hooks/certq`],
    ['loopback v6', () => `http://[::1]:${port()}/hooks/certq`],
    ['IPv4-mapped loopback', () => `http://[::ffff:127.0.0.1]:${port()}/hooks/certq`],
    ['unspecified', () => `http://0.0.0.0:${port()}/hooks/certq`],
    ['private 10/8', () => 'http://10.1.2.3/hook'],
    ['private 172.16/12', () => 'http://172.20.0.1/hook'],
    ['private 192.168/16', () => 'http://192.168.0.1/hook'],
    ['link-local (metadata)', () => 'http://169.254.169.254/latest/meta-data'],
    ['CGNAT', () => 'http://100.64.0.1/hook'],
    ['multicast', () => 'http://224.0.0.1/hook'],
    ['broadcast', () => 'http://255.255.255.255/hook'],
    ['IPv6 ULA', () => 'http://[fd00::1]/hook'],
    ['IPv6 link-local', () => 'http://[fe80::1]/hook'],
  ];
  for (const [kind, url] of literal)
    it(`refuses ${kind}`, async () => {
      const row = await deliverTo(url());
      expect(row.lastError).toBe('refused: the webhook host is not a public address');
      expect(row.lastStatusCode).toBeNull();
    });

  it('refuses names that resolve inside (rebinding), IPv6 answers included', async () => {
    for (const host of Object.keys(NAMES)) {
      const row = await deliverTo(`http://${host}:${port()}/hooks/certq`);
      expect(row.lastError, host).toBe('refused: the webhook host is not a public address');
    }
  });

  it('follows no redirect: a "public" server answering 307 to loopback is recorded, never followed', async () => {
    const row = await deliverTo(`http://127.0.0.1:${redirectorPort}/hook`);
    expect(row.lastStatusCode).toBe(307);
    expect(row.lastError).toBe('HTTP 307 (redirects are not followed)');
  });

  it('the loopback receiver got nothing, and no lastError names an address or port', async () => {
    expect(receiver.received).toHaveLength(0);
    const rows = await bench.db.db.select({ lastError: webhookDeliveries.lastError }).from(webhookDeliveries);
    expect(rows.length).toBeGreaterThan(10);
    for (const { lastError } of rows) expect(lastError).not.toMatch(/\d+\.\d+\.\d+\.\d+|::|:\d{2,5}\b|ECONN/);
  });
});
