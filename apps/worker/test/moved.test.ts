import { certificates, orderDns, orders, tenants, type WebhookPayload, webhookDeliveries } from '@certq/db';
import type { DnsDiagnosis } from '@certq/dns';
import { type NamedServer, startNamed, waitFor } from '@certq/testing';
import { RENEWABLE, requestDnsCheck, requestRenewals } from '@certq/workflow';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifyExpiring, verifyWebhookSignature, type WorkerHandle } from '../src';
import { movedReading } from '../src/renewals/moved';
import { createWorkbench, type Workbench } from './helpers';
import { DAY_MS, seedCertificates, startRenewalWorker } from './renewal-helpers';
import { startReceiver } from './webhook-receiver';

/*
 * Moved away, against a real DNS server (bind9 named, asked by certq and by the simulator as httpsok
 * asks public DNS): a renewal whose CNAME is gone for longer than MOVED_GRACE_DAYS (the worker's clock
 * moved forward instead of waiting a week) marks its certificate moved, sends certificate.moved once,
 * stops renewals; the CNAME restored and a DNS check asked → renewed. And certificate.expiring, the one
 * warning an uploaded certificate gets, relative to its lifetime.
 */
const SECRET = 'whsec_moved-test-secret';
let named: NamedServer;
let bench: Workbench;
let worker: WorkerHandle;
let receiver: Awaited<ReturnType<typeof startReceiver>>;

beforeAll(async () => {
  named = await startNamed();
  bench = await createWorkbench({
    sim: { verify: 'dns', dnsResolver: named.address },
    env: {
      DNS_RESOLVERS: named.address,
      DNS_CHECK_INTERVAL_MS: '200',
      // The renewal order waits on DNS for longer than the grace, as several renewals would in a week.
      VERIFY_WINDOW_HOURS: String(30 * 24),
      WEBHOOK_ALLOW_PRIVATE: 'true',
    },
  });
  receiver = await startReceiver();
  worker = await startRenewalWorker(bench);
  await bench.db.db
    .update(tenants)
    .set({ webhookUrl: receiver.url, webhookSecretSealed: worker.ctx.secrets.seal(SECRET) })
    .where(eq(tenants.id, bench.tenantId));
});
afterAll(async () => {
  await bench?.close();
  await receiver?.close();
  await named?.stop();
});

const diagnosis = (status: DnsDiagnosis['status']) => ({ status });

describe('the moved-away rule', () => {
  it('counts only missing and wrong_target; a lookup failure never counts', () => {
    expect(movedReading([diagnosis('missing')])).toBe('gone');
    expect(movedReading([diagnosis('ok'), diagnosis('wrong_target')])).toBe('gone');
    expect(movedReading([diagnosis('missing'), diagnosis('lookup_failed')])).toBe('unsure');
    expect(movedReading([diagnosis('lookup_failed')])).toBe('unsure');
    expect(movedReading([diagnosis('caa_forbidden')])).toBe('unsure');
    expect(movedReading([diagnosis('ok'), diagnosis('ok')])).toBe('ok');
    expect(movedReading([])).toBe('unsure');
  });
});

describe('a domain that moved away', () => {
  it('is marked moved after the grace, announced once, not renewed by the scan, and comes back', async () => {
    const domain = 'shop.moved-away.example';
    const host = `_acme-challenge.${domain}`;
    const first = await bench.order([domain]);
    await waitFor(async () => (await bench.reload(first.id)).lastDvAt !== null, { message: 'the first dv' });
    const [row] = await bench.db.db.select().from(orderDns).where(eq(orderDns.orderId, first.id));
    await named.setCname(host, row!.hostValue);
    const [issued] = await bench.waitForStatus([first.id], ['issued']);
    const certificateId = issued!.certificateId!;

    // The tenant moves to another provider: the CNAME goes away.
    await named.deleteRecords(host);
    const renewal = await requestRenewals(bench.db.db, bench.queues, {
      selection: { certificateIds: [certificateId] },
      requestedByTenantId: null,
      maxRps: 500,
    });
    expect(renewal.enqueued).toBe(1);
    const cert = async () =>
      (await bench.db.db.select().from(certificates).where(eq(certificates.id, certificateId)))[0]!;
    await waitFor(async () => (await cert()).dnsLostSince !== null, { message: 'the first missing reading' });
    expect((await cert()).state).toBe('active');

    bench.clock.advance(8 * DAY_MS);
    await waitFor(async () => (await cert()).state === 'moved', { message: 'the certificate to be moved' });
    const moved = await cert();
    expect(moved.isCurrent).toBe(true);
    expect(moved.movedDiagnosis).toEqual([expect.objectContaining({ domain, status: 'missing' })]);
    const hook = await waitFor(
      () =>
        receiver.received.find((h) => (JSON.parse(h.body) as WebhookPayload).event === 'certificate.moved'),
      { message: 'certificate.moved', timeoutMs: 20_000 },
    );
    expect(
      verifyWebhookSignature({
        secret: SECRET,
        body: hook.body,
        timestamp: hook.headers['x-certq-timestamp'] as string,
        signature: hook.headers['x-certq-signature'] as string,
      }),
    ).toBe(true);
    expect(JSON.parse(hook.body).data).toMatchObject({
      certificateId,
      domains: [domain],
      dns: [expect.objectContaining({ status: 'missing' })],
    });

    // Another missing reading a day later: no second announcement.
    const renewalOrder = (
      await bench.db.db.select().from(orders).where(eq(orders.renewalOfCertificateId, certificateId))
    )[0]!;
    const attempts = (await bench.reload(renewalOrder.id)).stageAttempts;
    bench.clock.advance(DAY_MS);
    await waitFor(async () => (await bench.reload(renewalOrder.id)).stageAttempts >= attempts + 1, {
      message: 'another DNS check',
      timeoutMs: 30_000,
    });
    const announced = await bench.db.db
      .select()
      .from(webhookDeliveries)
      .where(
        and(eq(webhookDeliveries.tenantId, bench.tenantId), eq(webhookDeliveries.event, 'certificate.moved')),
      );
    expect(announced).toHaveLength(1);

    // Renewals stop: the scan no longer counts it as renewable.
    const renewable = await bench.db.db.execute<{ n: number }>(
      sql`select count(*)::int as n from certificates c where c.id = ${certificateId} and ${RENEWABLE}`,
    );
    expect(renewable.rows[0]!.n).toBe(0);

    // The CNAME is back and the tenant asks for a check: renewed, the new certificate active.
    await named.setCname(host, row!.hostValue);
    await requestDnsCheck({ db: bench.db.db, queues: bench.queues }, renewalOrder.id, {
      now: bench.clock.now(),
    });
    const [renewed] = await bench.waitForStatus([renewalOrder.id], ['issued']);
    const [fresh] = await bench.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.id, renewed!.certificateId!));
    expect(fresh).toMatchObject({ isCurrent: true, state: 'active' });
    expect((await cert()).isCurrent).toBe(false);
  });
});

describe('certificate.expiring', () => {
  it('comes relative to the lifetime: a 6-day certificate hears a day before, not at once', async () => {
    const now = bench.clock.now();
    const [id] = await seedCertificates(bench.db.db, [
      {
        tenantId: bench.tenantId,
        domains: ['short.expiring.example'],
        notAfter: new Date(now.getTime() + 3 * DAY_MS),
      },
    ]);
    await bench.db.db
      .update(certificates)
      .set({ notBefore: new Date(now.getTime() - 3 * DAY_MS), state: 'uploaded' })
      .where(eq(certificates.id, id!));
    const expiring = () =>
      bench.db.db
        .select()
        .from(webhookDeliveries)
        .where(
          and(
            eq(webhookDeliveries.tenantId, bench.tenantId),
            eq(webhookDeliveries.event, 'certificate.expiring'),
          ),
        );
    await notifyExpiring(worker.ctx, { now });
    expect(await expiring()).toHaveLength(0);
    await notifyExpiring(worker.ctx, { now: new Date(now.getTime() + 2.1 * DAY_MS) });
    const [hook] = await expiring();
    expect(hook?.payload).toMatchObject({ data: { certificateId: id } });
  });
});
