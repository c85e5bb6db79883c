import { it } from '@certq/testing';
import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import {
  certificates,
  type DbHandle,
  lockOrder,
  type Order,
  orders,
  takeRecordedWebhookDeliveries,
  tenants,
  transitionOrder,
  webhookDeliveries,
} from '../src';

const HOUR = 3_600_000;

async function tenant(handle: DbHandle, webhookUrl: string | null = null) {
  const name = `t-${Math.random()}`;
  const [row] = await handle.db
    .insert(tenants)
    .values({ name, tokenHash: `hash-${name}`, webhookUrl, webhookSecretSealed: webhookUrl && 'sealed' })
    .returning();
  return row!;
}

/** An order of one domain; `fields` say what kind and where it is. */
async function order(handle: DbHandle, tenantId: string, domain: string, fields: Partial<Order>) {
  const [row] = await handle.db
    .insert(orders)
    .values({ tenantId, domains: [domain], domainsKey: domain, ...fields })
    .returning();
  return row!;
}

async function certificate(handle: DbHandle, tenantId: string, domain: string) {
  const issued = await order(handle, tenantId, domain, { status: 'issued', applyId: `a-${Math.random()}` });
  const [cert] = await handle.db
    .insert(certificates)
    .values({
      tenantId,
      orderId: issued.id,
      domains: [domain],
      domainsKey: domain,
      applyId: issued.applyId!,
      algorithm: 'ECC',
      ca: 'google',
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 20 * 24 * HOUR),
      fingerprint: 'f',
      certificatePem: 'pem',
      privateKeySealed: 'sealed',
    })
    .returning();
  return cert!;
}

/** A renewal order of `certificateId` moved to failed at `at`, as the worker does. */
async function failRenewal(
  handle: DbHandle,
  tenantId: string,
  domain: string,
  certificateId: string,
  at: Date,
) {
  const renewal = await order(handle, tenantId, domain, {
    kind: 'renewal',
    renewalOfCertificateId: certificateId,
  });
  return handle.db.transaction(async (tx) => {
    const locked = (await lockOrder(tx, renewal.id)) as Order;
    const failed = await transitionOrder(tx, { order: locked, to: 'failed', set: { lastError: 'no' }, at });
    return { failed, outbox: takeRecordedWebhookDeliveries(tx) };
  });
}

describe('transitionOrder: outcomes of renewal orders', () => {
  it('a failed renewal backs off its certificate 1 h, 2 h, 4 h … at most 32 h, from the given moment', async ({
    db: handle,
  }) => {
    const t = await tenant(handle);
    const cert = await certificate(handle, t.id, 'backoff.example.com');
    const at = new Date('2030-01-01T00:00:00Z');
    const expected = [1, 2, 4, 8, 16, 32, 32, 32];
    for (const [i, hours] of expected.entries()) {
      await failRenewal(handle, t.id, 'backoff.example.com', cert.id, at);
      const [row] = await handle.db.select().from(certificates).where(eq(certificates.id, cert.id));
      expect(row!.renewalFailures).toBe(i + 1);
      expect(row!.renewalNotBefore!.getTime() - at.getTime()).toBe(hours * HOUR);
    }
  });

  it('writes the webhook outbox row in the same transaction, only for a tenant with a webhook', async ({
    db: handle,
  }) => {
    const quiet = await tenant(handle);
    const quietCert = await certificate(handle, quiet.id, 'quiet.example.com');
    const none = await failRenewal(handle, quiet.id, 'quiet.example.com', quietCert.id, new Date());
    expect(none.outbox).toEqual([]);

    const hooked = await tenant(handle, 'https://hooks.example.com/x');
    const cert = await certificate(handle, hooked.id, 'hooked.example.com');
    const { failed, outbox } = await failRenewal(
      handle,
      hooked.id,
      'hooked.example.com',
      cert.id,
      new Date(),
    );
    expect(outbox).toHaveLength(1);
    const [row] = await handle.db
      .select()
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.id, outbox[0]!));
    expect(row).toMatchObject({
      tenantId: hooked.id,
      orderId: failed.id,
      event: 'order.failed',
      status: 'pending',
    });
    expect(row!.payload).toMatchObject({
      id: outbox[0],
      event: 'order.failed',
      data: { orderId: failed.id, kind: 'renewal', renewalOfCertificateId: cert.id, error: 'no' },
    });

    // Rolled back with the transition: no row, and nothing left to enqueue.
    const [order] = await handle.db
      .insert(orders)
      .values({ tenantId: hooked.id, domains: ['rollback.example.com'], domainsKey: 'rollback.example.com' })
      .returning();
    await expect(
      handle.db.transaction(async (tx) => {
        await transitionOrder(tx, { order: (await lockOrder(tx, order!.id))!, to: 'failed' });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    const rows = await handle.db
      .select()
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.orderId, order!.id));
    expect(rows).toEqual([]);
  });
});
