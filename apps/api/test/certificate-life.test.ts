import { randomBytes } from 'node:crypto';
import {
  auditLog,
  certificateChanges,
  certificates,
  edgeTokens,
  orders,
  tenants,
  webhookDeliveries,
} from '@certq/db';
import { selfSigned } from '@certq/testing';
import { and, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiTest, insertCertificate, uniqueDomain } from './helpers';

/**
 * A certificate's end of life through the API: retirement (again → unchanged, active order cancelled,
 * removal in the change feed, certificate.retired, audited), statuses and ?status=, and a tenant's
 * suspension, resumption and deletion with their counts.
 */
const viewerToken = `viewer-${randomBytes(16).toString('hex')}`;
const it = apiTest({ extraConfig: { VIEWER_TOKEN: viewerToken } });

const ids = (body: { certificates: { id: string }[] }) => body.certificates.map((c) => c.id);

describe('DELETE /v1/certificates/{id}', () => {
  it('retires once, cancels the active order, feeds a removal, and a new order starts again', async ({
    api,
    tenant,
  }) => {
    const db = api.env.handle.db;
    await api.tenantRequest(tenant.token, 'PUT', '/v1/webhook', { url: 'https://hooks.example.com/certq' });
    const domain = uniqueDomain('retire');
    const cert = await insertCertificate(api, tenant, { domains: [domain] });
    const renewing = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [domain] });
    expect(renewing.status).toBe(202);
    const before = await api.tenantRequest(tenant.token, 'GET', `/v1/certificates/${cert.id}`);
    expect(before.body.status).toBe('renewing');

    const viewer = await api.request('DELETE', `/v1/certificates/${cert.id}`, { token: viewerToken });
    expect(viewer.status).toBe(403);
    const other = await api.createTenant();
    expect((await api.tenantRequest(other.token, 'DELETE', `/v1/certificates/${cert.id}`)).status).toBe(404);

    const retired = await api.tenantRequest(tenant.token, 'DELETE', `/v1/certificates/${cert.id}`);
    expect(retired.status).toBe(200);
    expect(retired.body).toMatchObject({
      id: cert.id,
      status: 'retired',
      isCurrent: false,
      cancelledOrderId: renewing.body.id,
    });
    expect(retired.body.retiredAt).toEqual(expect.any(String));
    const [order] = await db.select().from(orders).where(eq(orders.id, renewing.body.id));
    expect(order!.status).toBe('cancelled');

    const again = await api.adminRequest('DELETE', `/v1/certificates/${cert.id}`);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({
      status: 'retired',
      retiredAt: retired.body.retiredAt,
      cancelledOrderId: null,
    });

    const changes = await db
      .select()
      .from(certificateChanges)
      .where(eq(certificateChanges.certificateId, cert.id));
    expect(changes.map((c) => c.becameCurrent)).toEqual([true, false]);
    const hooks = await db
      .select()
      .from(webhookDeliveries)
      .where(
        and(eq(webhookDeliveries.tenantId, tenant.id), eq(webhookDeliveries.event, 'certificate.retired')),
      );
    expect(hooks).toHaveLength(1);
    expect(hooks[0]!.payload).toMatchObject({
      data: { certificateId: cert.id, cancelledOrderId: renewing.body.id },
    });
    const audit = await db.select().from(auditLog).where(eq(auditLog.subjectId, cert.id));
    expect(audit.filter((a) => a.action === 'certificate.retire')).toHaveLength(1);

    // Not served, not listed as current; a new order for the same domains is accepted.
    expect(
      ids((await api.tenantRequest(tenant.token, 'GET', `/v1/certificates?domain=${domain}`)).body),
    ).toEqual([]);
    const tls = await api.adminRequest('GET', `/v1/tls/certificate?server_name=${domain}`);
    expect(tls.status).toBe(204);
    const fresh = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [domain] });
    expect(fresh.status).toBe(202);
    expect(fresh.body.id).not.toBe(renewing.body.id);
  });
});

describe('certificate status', () => {
  it('derives each status and filters by it', async ({ api, tenant }) => {
    const db = api.env.handle.db;
    const active = await insertCertificate(api, tenant);
    const expired = await insertCertificate(api, tenant, { notAfterDays: -1 });
    const replaced = await insertCertificate(api, tenant, { isCurrent: false });
    const renewingDomain = uniqueDomain('renewing');
    const renewing = await insertCertificate(api, tenant, { domains: [renewingDomain] });
    await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [renewingDomain] });
    const moved = await insertCertificate(api, tenant);
    await db
      .update(certificates)
      .set({ state: 'moved', movedAt: new Date() })
      .where(eq(certificates.id, moved.id));

    const expected: Record<string, string> = {
      [active.id]: 'active',
      [expired.id]: 'expired',
      [replaced.id]: 'retired',
      [renewing.id]: 'renewing',
      [moved.id]: 'moved',
    };
    const all = await api.tenantRequest(
      tenant.token,
      'GET',
      '/v1/certificates?includeHistory=true&limit=100',
    );
    for (const c of all.body.certificates)
      expect([c.id, c.status, c.statusReason]).toEqual([c.id, expected[c.id], c.statusReason]);
    expect(all.body.certificates.find((c: { id: string }) => c.id === replaced.id).statusReason).toMatch(
      /replaced/,
    );
    for (const status of ['active', 'expired', 'retired', 'renewing', 'moved', 'uploaded']) {
      const page = await api.tenantRequest(
        tenant.token,
        'GET',
        `/v1/certificates?status=${status}&limit=100`,
      );
      expect(page.status).toBe(200);
      expect(ids(page.body).sort()).toEqual(
        Object.keys(expected)
          .filter((id) => expected[id] === status)
          .sort(),
      );
    }
    expect((await api.tenantRequest(tenant.token, 'GET', '/v1/certificates?status=gone')).status).toBe(400);
  });
});

describe('tenant suspension and deletion', () => {
  it('suspends (writes 403 tenant_suspended, still served), resumes, and counts what it touched', async ({
    api,
    tenant,
  }) => {
    const domain = uniqueDomain('suspend');
    const cert = await insertCertificate(api, tenant, { domains: [domain] });
    const pending = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', {
      domains: [uniqueDomain('p')],
    });

    expect((await api.tenantRequest(tenant.token, 'POST', `/v1/tenants/${tenant.id}/suspend`)).status).toBe(
      404,
    );
    expect(
      (await api.request('POST', `/v1/tenants/${tenant.id}/suspend`, { token: viewerToken })).status,
    ).toBe(403);
    const suspended = await api.adminRequest('POST', `/v1/tenants/${tenant.id}/suspend`, {});
    expect(suspended.status).toBe(200);
    expect(suspended.body).toMatchObject({
      tenant: { id: tenant.id, status: 'suspended', stopServing: false },
      changed: true,
      affected: { ordersCancelled: 1, certificatesServed: 1, certificatesWithdrawn: 0 },
    });
    const write = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', {
      domains: [uniqueDomain('w')],
    });
    expect(write.status).toBe(403);
    expect(write.body.error.code).toBe('tenant_suspended');
    expect(write.body.error.message).toMatch(/suspended/);
    const byAdmin = await api.adminRequest('POST', '/v1/orders', {
      domains: [uniqueDomain('w')],
      tenantId: tenant.id,
    });
    expect(byAdmin.status).toBe(403);
    expect((await api.tenantRequest(tenant.token, 'GET', `/v1/orders/${pending.body.id}`)).body.status).toBe(
      'cancelled',
    );
    expect((await api.adminRequest('GET', `/v1/tls/certificate?server_name=${domain}`)).status).toBe(200);
    const again = await api.adminRequest('POST', `/v1/tenants/${tenant.id}/suspend`, { stopServing: true });
    expect(again.body.changed).toBe(false);

    const resumed = await api.adminRequest('POST', `/v1/tenants/${tenant.id}/resume`);
    expect(resumed.body).toMatchObject({ tenant: { status: 'active' }, changed: true });
    expect(
      (await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [uniqueDomain('w')] })).status,
    ).toBe(202);

    // stopServing: out of delivery until resumed, then served again.
    const stop = await api.adminRequest('POST', `/v1/tenants/${tenant.id}/suspend`, { stopServing: true });
    expect(stop.body.affected).toMatchObject({ certificatesWithdrawn: 1, certificatesServed: 0 });
    expect((await api.adminRequest('GET', `/v1/tls/certificate?server_name=${domain}`)).status).toBe(204);
    const shown = await api.tenantRequest(tenant.token, 'GET', `/v1/certificates/${cert.id}`);
    expect(shown.body.status).toBe('retired');
    expect(shown.body.statusReason).toMatch(/suspended/);
    const back = await api.adminRequest('POST', `/v1/tenants/${tenant.id}/resume`);
    expect(back.body.affected).toEqual({ certificatesRestored: 1 });
    expect((await api.adminRequest('GET', `/v1/tls/certificate?server_name=${domain}`)).status).toBe(200);

    const audit = await api.env.handle.db.select().from(auditLog).where(eq(auditLog.subjectId, tenant.id));
    expect(audit.map((a) => a.action)).toEqual(
      expect.arrayContaining(['tenant.suspend', 'tenant.resume', 'tenant.suspend', 'tenant.resume']),
    );
  });

  it('deletes: certificates retired, tokens and its own edge tokens revoked, others untouched', async ({
    api,
  }) => {
    const db = api.env.handle.db;
    const doomed = await api.createTenant();
    const kept = await api.createTenant();
    const doomedDomain = uniqueDomain('doomed');
    const keptDomain = uniqueDomain('kept');
    await insertCertificate(api, doomed, { domains: [doomedDomain] });
    await insertCertificate(api, kept, { domains: [keptDomain] });
    const own = await api.adminRequest('POST', '/v1/edge-tokens', {
      name: 'doomed only',
      tenantIds: [doomed.id],
    });
    const shared = await api.adminRequest('POST', '/v1/edge-tokens', {
      name: 'both',
      tenantIds: [doomed.id, kept.id],
    });

    const deleted = await api.adminRequest('DELETE', `/v1/tenants/${doomed.id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({
      tenant: { status: 'deleted' },
      changed: true,
      affected: { certificatesRetired: 1, edgeTokensRevoked: 1 },
    });
    expect((await api.tenantRequest(doomed.token, 'GET', '/v1/orders')).status).toBe(401);
    expect(
      (await api.request('GET', `/v1/tls/certificate?server_name=${doomedDomain}&token=${own.body.token}`))
        .status,
    ).toBe(401);
    expect(
      (await api.request('GET', `/v1/tls/certificate?server_name=${doomedDomain}&token=${shared.body.token}`))
        .status,
    ).toBe(204);
    expect(
      (await api.request('GET', `/v1/tls/certificate?server_name=${keptDomain}&token=${shared.body.token}`))
        .status,
    ).toBe(200);
    expect((await api.tenantRequest(kept.token, 'GET', '/v1/orders')).status).toBe(200);
    expect((await api.adminRequest('POST', `/v1/tenants/${doomed.id}/resume`)).status).toBe(409);
    expect((await api.adminRequest('DELETE', `/v1/tenants/${doomed.id}`)).body.changed).toBe(false);
    const [row] = await db.select().from(tenants).where(eq(tenants.id, doomed.id));
    expect(row!.deletedAt).not.toBeNull();
    const [token] = await db.select().from(edgeTokens).where(eq(edgeTokens.id, shared.body.id));
    expect(token!.revokedAt).toBeNull();
    expect((await db.select().from(auditLog).where(eq(auditLog.action, 'tenant.delete'))).length).toBe(1);
    expect(
      (
        await api.adminRequest(
          'DELETE',
          `/v1/tenants/${randomBytes(16)
            .toString('hex')
            .replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5')}`,
        )
      ).status,
    ).toBe(404);
  });
});

describe('POST /v1/certificates', () => {
  it('stores an upload that an order for its domains takes over only when issued', async ({
    api,
    tenant,
  }) => {
    const domain = uniqueDomain('upload');
    const { certificate, privateKey } = selfSigned(domain);
    const up = await api.tenantRequest(tenant.token, 'POST', '/v1/certificates', { certificate, privateKey });
    expect(up.status, up.text).toBe(201);
    expect(up.body).toMatchObject({ status: 'uploaded', domains: [domain], orderId: null, ca: null });
    const served = await api.adminRequest('GET', `/v1/tls/certificate?server_name=${domain}`);
    expect(served.status).toBe(200);
    expect(served.text).toContain(certificate.trim());

    const order = await api.tenantRequest(tenant.token, 'POST', '/v1/orders', { domains: [domain] });
    expect(order.status).toBe(202);
    const during = await api.tenantRequest(tenant.token, 'GET', `/v1/certificates/${up.body.id}`);
    expect(during.body).toMatchObject({ status: 'renewing', isCurrent: true });
    expect(during.body.statusReason).toMatch(/uploaded/);
    expect((await api.adminRequest('GET', `/v1/tls/certificate?server_name=${domain}`)).text).toContain(
      certificate.trim(),
    );
    // Uploading again while that order runs would be undone by its certificate: refused.
    const clash = await api.tenantRequest(tenant.token, 'POST', '/v1/certificates', {
      certificate,
      privateKey,
    });
    expect(clash.status).toBe(409);
    const noTenant = await api.adminRequest('POST', '/v1/certificates', { certificate, privateKey });
    expect(noTenant.status).toBe(400);
    expect(noTenant.body.error.message).toMatch(/tenantId/);
  });
});
