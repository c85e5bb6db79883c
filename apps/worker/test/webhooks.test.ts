import { createHmac } from 'node:crypto';
import { certificates, recordWebhookEvent, tenants, type WebhookPayload, webhookDeliveries } from '@certq/db';
import { freePort, waitFor } from '@certq/testing';
import { eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyExpiring, scanRenewals, verifyWebhookSignature, type WorkerHandle } from '../src';
import { createWorkbench, type Workbench } from './helpers';
import { createTenant, DAY_MS, seedCertificates, startRenewalWorker, unique } from './renewal-helpers';
import { type ReceivedWebhook, startReceiver } from './webhook-receiver';

const SECRET = 'whsec_test-secret-for-signatures';

async function setWebhook(
  bench: Workbench,
  worker: WorkerHandle,
  tenantId: string,
  url: string,
  secret = SECRET,
) {
  await bench.db.db
    .update(tenants)
    .set({ webhookUrl: url, webhookSecretSealed: worker.ctx.secrets.seal(secret) })
    .where(eq(tenants.id, tenantId));
}

const payloadOf = (hook: ReceivedWebhook) => JSON.parse(hook.body) as WebhookPayload;

async function receivedFor(
  received: ReceivedWebhook[],
  match: (payload: WebhookPayload) => boolean,
  message: string,
): Promise<ReceivedWebhook> {
  return waitFor(() => received.find((hook) => match(payloadOf(hook))), { message, timeoutMs: 20_000 });
}

describe('tenant webhooks', () => {
  let bench: Workbench;
  let worker: WorkerHandle;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    bench = await createWorkbench();
    receiver = await startReceiver();
    worker = await startRenewalWorker(bench);
    await setWebhook(bench, worker, bench.tenantId, receiver.url);
  });
  afterAll(async () => {
    await bench.close();
    await receiver.close();
  });

  it('certificate.issued is POSTed, signed with the tenant secret, and verifies on the receiver', async () => {
    const order = await bench.order(['hook.example.com']);
    const [issued] = await bench.waitForStatus([order.id], ['issued', 'failed']);
    expect(issued!.status).toBe('issued');
    const hook = await receivedFor(
      receiver.received,
      (p) => p.event === 'certificate.issued' && p.data.orderId === order.id,
      'certificate.issued',
    );
    const payload = payloadOf(hook);
    expect(hook.headers['content-type']).toBe('application/json');
    expect(hook.headers['x-certq-event']).toBe('certificate.issued');
    expect(hook.headers['x-certq-delivery']).toBe(payload.id);
    const timestamp = hook.headers['x-certq-timestamp'] as string;
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(60);
    // What a receiver does: HMAC-SHA256 over `${timestamp}.${body}` with its secret.
    const expected = `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${hook.body}`).digest('hex')}`;
    expect(hook.headers['x-certq-signature']).toBe(expected);
    const signature = hook.headers['x-certq-signature'] as string;
    expect(verifyWebhookSignature({ secret: SECRET, body: hook.body, timestamp, signature })).toBe(true);
    expect(verifyWebhookSignature({ secret: 'wrong', body: hook.body, timestamp, signature })).toBe(false);
    expect(
      verifyWebhookSignature({
        secret: SECRET,
        body: hook.body.replace('hook', 'hack'),
        timestamp,
        signature,
      }),
    ).toBe(false);
    expect(payload).toMatchObject({
      event: 'certificate.issued',
      tenantId: bench.tenantId,
      data: {
        orderId: order.id,
        kind: 'new',
        domains: ['hook.example.com'],
        certificateId: issued!.certificateId,
      },
    });
    expect(new Date(payload.data.notAfter as string).getTime()).toBeGreaterThan(Date.now() + 89 * DAY_MS);
    await expect
      .poll(
        async () =>
          (await bench.db.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, payload.id)))[0],
      )
      .toMatchObject({ status: 'delivered', attempts: 1, lastStatusCode: 200, orderId: order.id });
  });

  it('order.failed, and certificate.renewed with the old and the new certificate ids', async () => {
    const failing = await bench.order([`${unique('f')}.fail.test`]);
    await bench.waitForStatus([failing.id], ['failed']);
    const failed = payloadOf(
      await receivedFor(receiver.received, (p) => p.data.orderId === failing.id, 'order.failed'),
    );
    expect(failed).toMatchObject({ event: 'order.failed', data: { orderId: failing.id, kind: 'new' } });
    expect(failed.data.error).toMatch(/httpsok failed the application/);

    const first = await bench.order(['renewhook.example.com']);
    const [issued] = await bench.waitForStatus([first.id], ['issued']);
    const oldId = issued!.certificateId!;
    await bench.db.db
      .update(certificates)
      .set({ notAfter: new Date(bench.clock.now().getTime() + 20 * DAY_MS) })
      .where(eq(certificates.id, oldId));
    await scanRenewals(worker.ctx);
    const renewed = payloadOf(
      await receivedFor(
        receiver.received,
        (p) => p.event === 'certificate.renewed' && p.data.previousCertificateId === oldId,
        'certificate.renewed',
      ),
    );
    expect(renewed.data).toMatchObject({ kind: 'renewal', domains: ['renewhook.example.com'] });
    expect(renewed.data.certificateId).not.toBe(oldId);
    const [current] = await bench.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.id, renewed.data.certificateId as string));
    expect(current!.isCurrent).toBe(true);
  });

  it('certificate.expiring: once per current certificate expiring within 7 days, only with a webhook', async () => {
    const now = bench.clock.now().getTime();
    const quiet = await createTenant(bench.db.db);
    const [soon, later, noHook] = await seedCertificates(bench.db.db, [
      { tenantId: bench.tenantId, domains: ['soon.example.com'], notAfter: new Date(now + 5 * DAY_MS) },
      { tenantId: bench.tenantId, domains: ['later.example.com'], notAfter: new Date(now + 10 * DAY_MS) },
      { tenantId: quiet.id, domains: ['quiet.example.com'], notAfter: new Date(now + 5 * DAY_MS) },
    ]);
    expect(await notifyExpiring(worker.ctx)).toEqual({ recorded: 1 });
    const hook = payloadOf(
      await receivedFor(
        receiver.received,
        (p) => p.event === 'certificate.expiring' && p.data.certificateId === soon,
        'certificate.expiring',
      ),
    );
    expect(hook.data).toMatchObject({ domains: ['soon.example.com'] });
    expect(await notifyExpiring(worker.ctx)).toEqual({ recorded: 0 });
    const marks = await bench.db.db
      .select({ id: certificates.id, at: certificates.expiringNotifiedAt })
      .from(certificates)
      .where(inArray(certificates.id, [soon!, later!, noHook!]));
    expect(marks.find((m) => m.id === soon)!.at).not.toBeNull();
    expect(marks.find((m) => m.id === later)!.at).toBeNull();
    // A tenant that configures its webhook later still hears about its expiring certificate.
    expect(marks.find((m) => m.id === noHook)!.at).toBeNull();
  });

  it('the relay puts a pending delivery whose job is missing back on the queue', async () => {
    // An outbox row committed with no job (as after a crash between commit and enqueue, or Redis emptied).
    const id = await recordWebhookEvent(bench.db.db, {
      tenantId: bench.tenantId,
      event: 'order.failed',
      data: { orderId: null, note: 'relay test' },
    });
    expect(id).toBeDefined();
    expect(await bench.queues.webhooks.getJob(id!)).toBeUndefined();
    const relayed = await worker.relayWebhooks();
    expect(relayed.ran).toBe(true);
    expect(relayed.repaired).toBeGreaterThanOrEqual(1);
    await receivedFor(receiver.received, (p) => p.id === id, 'the relayed delivery');
    await expect
      .poll(
        async () =>
          (await bench.db.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id!)))[0]
            ?.status,
      )
      .toBe('delivered');
  });
});

describe('a failing webhook endpoint', () => {
  let bench: Workbench;
  let worker: WorkerHandle;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    bench = await createWorkbench();
    receiver = await startReceiver(() => 500);
    worker = await startRenewalWorker(bench, { webhooks: { attempts: 3, backoffMs: 200 } });
    await setWebhook(bench, worker, bench.tenantId, receiver.url);
  });
  afterAll(async () => {
    await bench.close();
    await receiver.close();
  });

  it('is retried with backoff, then given up; issuance is unaffected', async () => {
    const created = await bench.orders(Array.from({ length: 5 }, (_, i) => [`dead${i}.example.com`]));
    const done = await bench.waitForStatus(
      created.map((o) => o.id),
      ['issued', 'failed'],
    );
    expect(done.every((o) => o.status === 'issued')).toBe(true);
    const rows = await waitFor(
      async () => {
        const all = await bench.db.db
          .select()
          .from(webhookDeliveries)
          .where(eq(webhookDeliveries.tenantId, bench.tenantId));
        return all.length === 5 && all.every((r) => r.status === 'failed') ? all : undefined;
      },
      { message: 'every delivery given up', timeoutMs: 20_000 },
    );
    for (const row of rows) {
      expect(row).toMatchObject({
        status: 'failed',
        attempts: 3,
        lastStatusCode: 500,
        lastError: 'HTTP 500',
      });
      const posts = receiver.received.filter((r) => r.headers['x-certq-delivery'] === row.id);
      expect(posts).toHaveLength(3);
      // Exponential backoff from 200 ms: ≥ 200 ms, then ≥ 400 ms between attempts.
      expect(posts[1]!.at - posts[0]!.at).toBeGreaterThanOrEqual(180);
      expect(posts[2]!.at - posts[1]!.at).toBeGreaterThanOrEqual(380);
    }
    // Given up means given up: the relay leaves failed rows alone.
    await worker.relayWebhooks();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(receiver.received).toHaveLength(15);
  });

  it('an unreachable endpoint is given up the same way', async () => {
    const tenant = await createTenant(bench.db.db);
    await setWebhook(bench, worker, tenant.id, `http://127.0.0.1:${await freePort()}/nobody`);
    const id = await recordWebhookEvent(bench.db.db, {
      tenantId: tenant.id,
      event: 'order.failed',
      data: { note: 'nobody listens' },
    });
    await worker.relayWebhooks();
    const row = await waitFor(
      async () => {
        const [r] = await bench.db.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id!));
        return r?.status === 'failed' ? r : undefined;
      },
      { message: 'the delivery given up', timeoutMs: 20_000 },
    );
    expect(row).toMatchObject({ attempts: 3, lastStatusCode: null });
    expect(row.lastError).toMatch(/ECONNREFUSED|connect/i);
  });
});
