import { checkIssuedCertificate } from '@certq/api-client';
import { certificates, orderDns, orderEvents } from '@certq/db';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkbench, type Workbench } from './helpers';

let bench: Workbench;
beforeAll(async () => {
  bench = await createWorkbench();
  await bench.startWorker();
});
afterAll(() => bench.close());

async function issuedCertificate(orderId: string) {
  const [order] = await bench.waitForStatus([orderId], ['issued', 'failed']);
  expect(order!.lastError).toBeNull();
  expect(order!.status).toBe('issued');
  const [certificate] = await bench.db.db
    .select()
    .from(certificates)
    .where(eq(certificates.orderId, orderId));
  return {
    order: order!,
    certificate: certificate!,
    privateKey: bench.worker!.ctx.secrets.open(certificate!.privateKeySealed),
  };
}

describe('an order goes verify → apply → poll → issued', () => {
  it.each([
    ['ECC', ['ecc.example.com'], 'EC PRIVATE KEY'],
    ['RSA', ['rsa.example.com'], 'RSA PRIVATE KEY'],
  ] as const)(
    '%s: stores a chain and a sealed key that match and cover the domain',
    async (algorithm, domains, keyType) => {
      const order = await bench.order([...domains], { algorithm });
      const { order: done, certificate, privateKey } = await issuedCertificate(order.id);
      expect(done.applyId).toMatch(/^\d+$/);
      expect(done.progress).toBe(100);
      expect(done.certificateId).toBe(certificate.id);
      expect(certificate.algorithm).toBe(algorithm);
      expect(certificate.privateKeySealed).not.toContain('PRIVATE KEY');
      expect(privateKey).toContain(`BEGIN ${keyType}`);
      expect(
        checkIssuedCertificate({ certificate: certificate.certificatePem, privateKey, domains: [...domains] })
          .ok,
      ).toBe(true);
      expect(certificate.certificatePem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
      expect(certificate.isCurrent).toBe(true);
      const days = (certificate.notAfter.getTime() - Date.now()) / 86_400_000;
      expect(days).toBeGreaterThan(89);
      expect(days).toBeLessThan(91);
    },
  );

  it('a wildcard with its apex, and several domains, in one certificate', async () => {
    const [wild, many] = await bench.orders([
      ['*.wild.example.com', 'wild.example.com'],
      ['a.multi.example.com', 'b.multi.example.com', 'c.multi.example.org'],
    ]);
    for (const order of [wild!, many!]) {
      const { certificate, privateKey } = await issuedCertificate(order.id);
      expect(
        checkIssuedCertificate({
          certificate: certificate.certificatePem,
          privateKey,
          domains: order.domains,
        }),
      ).toMatchObject({ ok: true });
    }
    const dns = await bench.db.db.select().from(orderDns).where(eq(orderDns.orderId, wild!.id));
    // A wildcard and its apex share one record.
    expect(dns.map((d) => d.host)).toEqual(['_acme-challenge.wild', '_acme-challenge.wild']);
    expect(new Set(dns.map((d) => d.hostValue)).size).toBe(1);
  });

  it('logs every transition and calls the upstream exactly once per stage', async () => {
    const before = bench.sim.stats();
    const order = await bench.order(['once.example.com']);
    await issuedCertificate(order.id);
    const events = await bench.db.db
      .select()
      .from(orderEvents)
      .where(eq(orderEvents.orderId, order.id))
      .orderBy(orderEvents.id);
    expect(events.map((e) => `${e.fromStatus}→${e.toStatus}`)).toEqual([
      'verifying→applying',
      'applying→issuing',
      'issuing→issued',
    ]);
    const after = bench.sim.stats();
    expect(after.apply - before.apply).toBe(1);
    expect(after.appliesByDomains['once.example.com']).toBe(1);
    expect(after.tooFrequent).toBe(0);
    const finished = await bench.worker!.ctx.metrics.ordersFinished.get();
    const issued = finished.values.find((v) => v.labels.status === 'issued' && v.labels.kind === 'new');
    expect(issued?.value).toBeGreaterThanOrEqual(1);
  });

  it('re-adding the same stage job is harmless and a stale job changes nothing', async () => {
    const order = await bench.order(['stale.example.com']);
    const { order: done } = await issuedCertificate(order.id);
    // A late duplicate of every stage's job for an issued order: all are no-ops.
    await bench.queues.verify.add(
      'verify',
      { orderId: order.id, run: 1 },
      { jobId: `dup-verify-${order.id}` },
    );
    await bench.queues.apply.add('apply', { orderId: order.id, run: 1 }, { jobId: `dup-apply-${order.id}` });
    await bench.queues.poll.add('poll', { orderId: order.id, run: 1 }, { jobId: `dup-poll-${order.id}` });
    await expect
      .poll(async () => await bench.queues.poll.getJobCounts('wait', 'active', 'delayed'), {
        timeout: 10_000,
      })
      .toEqual({ wait: 0, active: 0, delayed: 0 });
    expect(await bench.reload(order.id)).toMatchObject({ status: 'issued', updatedAt: done.updatedAt });
    expect(bench.sim.stats().appliesByDomains['stale.example.com']).toBe(1);
  });
});
