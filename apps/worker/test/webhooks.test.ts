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

/**
 * For one describe block: a workbench with a renewal worker whose tenant's webhook points at a fresh
 * receiver answering `status`. Its parts are set once beforeAll has run.
 */
function hookedWorkbench(
  status?: Parameters<typeof startReceiver>[0],
  workerOptions?: Parameters<typeof startRenewalWorker>[1],
) {
  const hooked = {} as { bench: Workbench; worker: WorkerHandle; receiver: ReceiverHandle };
  beforeAll(async () => {
    // The receivers listen on loopback: development mode lets webhooks reach it (see webhook-ssrf.test.ts).
    hooked.bench = await createWorkbench({ env: { WEBHOOK_ALLOW_PRIVATE: 'true' } });
    hooked.receiver = await startReceiver(status);
    hooked.worker = await startRenewalWorker(hooked.bench, workerOptions);
    await setWebhook(hooked.bench, hooked.worker, hooked.bench.tenantId, hooked.receiver.url);
  });
  afterAll(async () => {
    await hooked.bench.close();
    await hooked.receiver.close();
  });
  return hooked;
}

type ReceiverHandle = Awaited<ReturnType<typeof startReceiver>>;

describe('tenant webhooks', () => {
  const hooked = hookedWorkbench();

  it('certificate.issued is POSTed, signed with the tenant secret, and verifies on the receiver', async () => {
    const order = await hooked.bench.order(['hook.example.com']);
    const [issued] = await hooked.bench.waitForStatus([order.id], ['issued', 'failed']);
    expect(issued!.status).toBe('issued');
    const hook = await receivedFor(
      hooked.receiver.received,
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
      tenantId: hooked.bench.tenantId,
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
          (
            await hooked.bench.db.db
              .select()
              .from(webhookDeliveries)
              .where(eq(webhookDeliveries.id, payload.id))
          )[0],
      )
      .toMatchObject({ status: 'delivered', attempts: 1, lastStatusCode: 200, orderId: order.id });
  });

  it('order.failed, and certificate.renewed with the old and the new certificate ids', async () => {
    const failing = await hooked.bench.order([`${unique('f')}.fail.test`]);
    await hooked.bench.waitForStatus([failing.id], ['failed']);
    const failed = payloadOf(
      await receivedFor(hooked.receiver.received, (p) => p.data.orderId === failing.id, 'order.failed'),
    );
    expect(failed).toMatchObject({ event: 'order.failed', data: { orderId: failing.id, kind: 'new' } });
    expect(failed.data.error).toMatch(/httpsok failed the application/);

    const first = await hooked.bench.order(['renewhook.example.com']);
    const [issued] = await hooked.bench.waitForStatus([first.id], ['issued']);
    const oldId = issued!.certificateId!;
    await hooked.bench.db.db
      .update(certificates)
      .set({
        notAfter: new Date(hooked.bench.clock.now().getTime() + 20 * DAY_MS),
        renewAt: hooked.bench.clock.now(),
      })
      .where(eq(certificates.id, oldId));
    await scanRenewals(hooked.worker.ctx);
    const renewed = payloadOf(
      await receivedFor(
        hooked.receiver.received,
        (p) => p.event === 'certificate.renewed' && p.data.previousCertificateId === oldId,
        'certificate.renewed',
      ),
    );
    expect(renewed.data).toMatchObject({ kind: 'renewal', domains: ['renewhook.example.com'] });
    expect(renewed.data.certificateId).not.toBe(oldId);
    const [current] = await hooked.bench.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.id, renewed.data.certificateId as string));
    expect(current!.isCurrent).toBe(true);
  });

  it('certificate.expiring: once per current certificate with a sixth of its lifetime left, only with a webhook', async () => {
    const now = hooked.bench.clock.now().getTime();
    const quiet = await createTenant(hooked.bench.db.db);
    const [soon, later, noHook] = await seedCertificates(hooked.bench.db.db, [
      // 90 days with 14 left: under a sixth (15 days), although more than a week.
      {
        tenantId: hooked.bench.tenantId,
        domains: ['soon.example.com'],
        notAfter: new Date(now + 14 * DAY_MS),
      },
      // 6 days with 5 left: fresh, although within a week.
      {
        tenantId: hooked.bench.tenantId,
        domains: ['later.example.com'],
        notBefore: new Date(now - DAY_MS),
        notAfter: new Date(now + 5 * DAY_MS),
      },
      { tenantId: quiet.id, domains: ['quiet.example.com'], notAfter: new Date(now + 5 * DAY_MS) },
    ]);
    expect(await notifyExpiring(hooked.worker.ctx)).toEqual({ recorded: 1 });
    const hook = payloadOf(
      await receivedFor(
        hooked.receiver.received,
        (p) => p.event === 'certificate.expiring' && p.data.certificateId === soon,
        'certificate.expiring',
      ),
    );
    expect(hook.data).toMatchObject({ domains: ['soon.example.com'] });
    expect(await notifyExpiring(hooked.worker.ctx)).toEqual({ recorded: 0 });
    const marks = await hooked.bench.db.db
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
    const id = await recordWebhookEvent(hooked.bench.db.db, {
      tenantId: hooked.bench.tenantId,
      event: 'order.failed',
      data: { orderId: null, note: 'relay test' },
    });
    expect(id).toBeDefined();
    expect(await hooked.bench.queues.webhooks.getJob(id!)).toBeUndefined();
    const relayed = await hooked.worker.relayWebhooks();
    expect(relayed.ran).toBe(true);
    expect(relayed.repaired).toBeGreaterThanOrEqual(1);
    await receivedFor(hooked.receiver.received, (p) => p.id === id, 'the relayed delivery');
    await expect
      .poll(
        async () =>
          (await hooked.bench.db.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id!)))[0]
            ?.status,
      )
      .toBe('delivered');
  });
});

describe('a failing webhook endpoint', () => {
  const hooked = hookedWorkbench(() => 500, { webhooks: { attempts: 3, backoffMs: 200 } });

  it('is retried with backoff, then given up; issuance is unaffected', async () => {
    const created = await hooked.bench.orders(Array.from({ length: 5 }, (_, i) => [`dead${i}.example.com`]));
    const done = await hooked.bench.waitForStatus(
      created.map((o) => o.id),
      ['issued', 'failed'],
    );
    expect(done.every((o) => o.status === 'issued')).toBe(true);
    const rows = await waitFor(
      async () => {
        const all = await hooked.bench.db.db
          .select()
          .from(webhookDeliveries)
          .where(eq(webhookDeliveries.tenantId, hooked.bench.tenantId));
        return all.length === 5 && all.every((r) => r.status === 'failed') ? all : undefined;
      },
      { message: 'every delivery given up', timeoutMs: 20_000 },
    );
    for (const row of rows) {
      expect(row).toMatchObject({
        status: 'failed',
        attempts: 3,
        lastStatusCode: 500,
        lastError: 'HTTP 500: ok', // the answer's body, as a short sanitized snippet
      });
      const posts = hooked.receiver.received.filter((r) => r.headers['x-certq-delivery'] === row.id);
      expect(posts).toHaveLength(3);
      // Exponential backoff from 200 ms: ≥ 200 ms, then ≥ 400 ms between attempts.
      expect(posts[1]!.at - posts[0]!.at).toBeGreaterThanOrEqual(180);
      expect(posts[2]!.at - posts[1]!.at).toBeGreaterThanOrEqual(380);
    }
    // Given up means given up: the relay leaves failed rows alone.
    await hooked.worker.relayWebhooks();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(hooked.receiver.received).toHaveLength(15);
  });

  it('an unreachable endpoint is given up the same way', async () => {
    const tenant = await createTenant(hooked.bench.db.db);
    await setWebhook(hooked.bench, hooked.worker, tenant.id, `http://127.0.0.1:${await freePort()}/nobody`);
    const id = await recordWebhookEvent(hooked.bench.db.db, {
      tenantId: tenant.id,
      event: 'order.failed',
      data: { note: 'nobody listens' },
    });
    await hooked.worker.relayWebhooks();
    const row = await waitFor(
      async () => {
        const [r] = await hooked.bench.db.db
          .select()
          .from(webhookDeliveries)
          .where(eq(webhookDeliveries.id, id!));
        return r?.status === 'failed' ? r : undefined;
      },
      { message: 'the delivery given up', timeoutMs: 20_000 },
    );
    expect(row).toMatchObject({ attempts: 3, lastStatusCode: null });
    // Classified, never the library's message: no internal address or port in what a tenant reads.
    expect(row.lastError).toBe('connection refused');
  });
});
