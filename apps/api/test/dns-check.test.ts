import { stageJobId } from '@certq/core';
import { lockOrder, orders, transitionOrder } from '@certq/db';
import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { it, uniqueDomain } from './helpers';

describe('ca as a list', () => {
  it('keeps accepting one CA as a string: caChoices is just that CA', async ({ asA }) => {
    const res = await asA('POST', '/v1/orders', { domains: [uniqueDomain()], ca: 'letsencrypt' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ ca: 'letsencrypt', caChoices: ['letsencrypt'] });
  });

  it('takes CAs in order of preference: ca is the first, caChoices the whole list', async ({ env, asA }) => {
    const res = await asA('POST', '/v1/orders', { domains: [uniqueDomain()], ca: ['zerossl', 'google'] });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ ca: 'zerossl', caChoices: ['zerossl', 'google'] });
    const [row] = await env.handle.db.select().from(orders).where(eq(orders.id, res.body.id));
    expect(row!.caChoices).toEqual(['zerossl', 'google']);
  });

  it('refuses a repeated CA, an empty list and an unknown CA with 400, storing nothing', async ({
    api,
    asA,
  }) => {
    const before = await api.countOrders();
    for (const ca of [['google', 'google'], [], ['google', 'digicert']]) {
      const res = await asA('POST', '/v1/orders', { domains: [uniqueDomain()], ca });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    }
    expect(await api.countOrders()).toBe(before);
  });

  it('uses the tenant default list for orders that name no CA; a tenant sets only its own', async ({
    api,
    tenantA,
    tenantB,
    asB,
  }) => {
    const set = await asB('PUT', `/v1/tenants/${tenantB.id}/ca-choices`, {
      caChoices: ['letsencrypt', 'zerossl'],
    });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({ id: tenantB.id, caChoices: ['letsencrypt', 'zerossl'] });
    expect((await asB('PUT', `/v1/tenants/${tenantA.id}/ca-choices`, { caChoices: ['google'] })).status).toBe(
      404,
    );

    const byDefault = await asB('POST', '/v1/orders', { domains: [uniqueDomain()] });
    expect(byDefault.body).toMatchObject({ ca: 'letsencrypt', caChoices: ['letsencrypt', 'zerossl'] });
    const named = await asB('POST', '/v1/orders', { domains: [uniqueDomain()], ca: 'google' });
    expect(named.body).toMatchObject({ ca: 'google', caChoices: ['google'] });
    const bulk = await asB('POST', '/v1/orders/bulk', { orders: [{ domains: [uniqueDomain()] }] });
    expect(bulk.status).toBeLessThan(300);

    const reset = await api.adminRequest('PUT', `/v1/tenants/${tenantB.id}/ca-choices`, { caChoices: null });
    expect(reset.body).toEqual({ id: tenantB.id, caChoices: null });
    expect((await asB('POST', '/v1/orders', { domains: [uniqueDomain()] })).body).toMatchObject({
      ca: 'google',
      caChoices: ['google'],
    });
  });
});

describe('POST /v1/orders/{id}/dns-check', () => {
  it('makes the verify job due now and answers 202 with the order; again within 10 s is 429', async ({
    api,
    env,
    asA,
  }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    const later = new Date(Date.now() + 3600_000);
    await env.handle.db.update(orders).set({ nextAttemptAt: later }).where(eq(orders.id, created.body.id));

    const res = await asA('POST', `/v1/orders/${created.body.id}/dns-check`);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ id: created.body.id, status: 'verifying' });
    const [row] = await env.handle.db.select().from(orders).where(eq(orders.id, created.body.id));
    expect(row!.nextAttemptAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect(row!.dnsCheckRequestedAt).not.toBeNull();
    const job = await api.queues.verify.getJob(stageJobId('verify', created.body.id, 1));
    expect(job).toBeDefined();
    expect(await job!.isDelayed()).toBe(false);

    const again = await asA('POST', `/v1/orders/${created.body.id}/dns-check`);
    expect(again.status).toBe(429);
    expect(again.body.error.code).toBe('dns_check_too_soon');
    expect(Number(again.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('is for the owner only (404 for another tenant) and for a verifying order only (409)', async ({
    env,
    asA,
    asB,
  }) => {
    const created = await asA('POST', '/v1/orders', { domains: [uniqueDomain()] });
    expect((await asB('POST', `/v1/orders/${created.body.id}/dns-check`)).status).toBe(404);
    await env.handle.db.transaction(async (tx) => {
      const order = await lockOrder(tx, created.body.id);
      await transitionOrder(tx, { order: order!, to: 'cancelled' });
    });
    const res = await asA('POST', `/v1/orders/${created.body.id}/dns-check`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('not_verifying');
  });
});
