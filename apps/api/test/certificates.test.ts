import { auditLog } from '@certq/db';
import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { insertCertificate, it, PEM, uniqueDomain } from './helpers';

const _DAY = 24 * 3600 * 1000;

const METADATA_KEYS = [
  'algorithm',
  'ca',
  'createdAt',
  'domains',
  'fingerprint',
  'id',
  'isCurrent',
  'movedAt',
  'notAfter',
  'notBefore',
  'orderId',
  'retiredAt',
  'status',
  'statusReason',
  'tenantId',
  'uploaded',
];

describe('GET /v1/certificates', () => {
  it('lists current certificates of the caller, with filters and history on request', async ({
    api,
    tenantA,
    tenantB,
  }) => {
    const domain = uniqueDomain('list');
    const old = await insertCertificate(api, tenantA, {
      domains: [domain],
      isCurrent: false,
      notAfterDays: 5,
    });
    const current = await insertCertificate(api, tenantA, { domains: [domain], notAfterDays: 80 });
    const soon = await insertCertificate(api, tenantA, { notAfterDays: 10 });
    // A name belongs to one tenant at a time: B's certificate is for a name of its own.
    const foreignDomain = uniqueDomain('theirs');
    const foreign = await insertCertificate(api, tenantB, { domains: [foreignDomain] });

    const list = await api.tenantRequest(tenantA.token, 'GET', '/v1/certificates');
    expect(list.status).toBe(200);
    const ids = list.body.certificates.map((c: { id: string }) => c.id);
    expect(ids).toEqual(expect.arrayContaining([current.id, soon.id]));
    expect(ids).not.toContain(old.id);
    expect(ids).not.toContain(foreign.id);
    expect(Object.keys(list.body.certificates[0]).sort()).toEqual(METADATA_KEYS);
    expect(list.text).not.toContain('PRIVATE KEY');
    expect(list.text).not.toContain('BEGIN CERTIFICATE');

    const byDomain = await api.tenantRequest(
      tenantA.token,
      'GET',
      `/v1/certificates?domain=${domain.toUpperCase()}`,
    );
    expect(byDomain.body.certificates.map((c: { id: string }) => c.id)).toEqual([current.id]);
    const history = await api.tenantRequest(
      tenantA.token,
      'GET',
      `/v1/certificates?domain=${domain}&includeHistory=true`,
    );
    expect(history.body.certificates.map((c: { id: string }) => c.id)).toEqual([current.id, old.id]);
    expect(history.body.certificates[1].isCurrent).toBe(false);
    const expiring = await api.tenantRequest(tenantA.token, 'GET', '/v1/certificates?expiringWithinDays=30');
    const expiringIds = expiring.body.certificates.map((c: { id: string }) => c.id);
    expect(expiringIds).toContain(soon.id);
    expect(expiringIds).not.toContain(current.id);

    const admin = await api.adminRequest('GET', `/v1/certificates?domain=${domain}`);
    expect(admin.body.certificates.map((c: { id: string }) => c.id)).toEqual([current.id]);
    const adminB = await api.adminRequest(
      'GET',
      `/v1/certificates?domain=${foreignDomain}&tenantId=${tenantB.id}`,
    );
    expect(adminB.body.certificates.map((c: { id: string }) => c.id)).toEqual([foreign.id]);
    const adminNone = await api.adminRequest(
      'GET',
      `/v1/certificates?domain=${domain}&tenantId=${tenantB.id}`,
    );
    expect(adminNone.body.certificates).toEqual([]);
  });

  it('pages with a cursor without duplicates or omissions', async ({ api }) => {
    const tenant = await api.createTenant();
    const created = new Set<string>();
    for (let i = 0; i < 7; i++) created.add((await insertCertificate(api, tenant)).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await api.tenantRequest(
        tenant.token,
        'GET',
        `/v1/certificates?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(res.status).toBe(200);
      seen.push(...res.body.certificates.map((c: { id: string }) => c.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(7);
    expect(new Set(seen)).toEqual(created);
  });

  it.for([
    ['expiringWithinDays=-1'],
    ['expiringWithinDays=abc'],
    ['includeHistory=yes'],
    ['domain=*.*.example.com'],
    ['cursor=%%%'],
    ['limit=1000'],
    ['foo=bar'],
  ])('answers 400 for %s', async ([query], { api, tenantA }) => {
    const res = await api.tenantRequest(tenantA.token, 'GET', `/v1/certificates?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
  });
});

describe('GET /v1/certificates/{id}', () => {
  it('answers metadata and the PEM chain to the owner, 404 to anyone else', async ({
    api,
    tenantA,
    tenantB,
  }) => {
    const cert = await insertCertificate(api, tenantA);
    const res = await api.tenantRequest(tenantA.token, 'GET', `/v1/certificates/${cert.id}`);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual([...METADATA_KEYS, 'certificatePem'].sort());
    expect(res.body).toMatchObject({
      id: cert.id,
      tenantId: tenantA.id,
      orderId: cert.orderId,
      domains: cert.domains,
      fingerprint: cert.fingerprint,
      certificatePem: PEM + PEM,
      notAfter: cert.notAfter.toISOString(),
      isCurrent: true,
    });
    expect(res.text).not.toContain('PRIVATE KEY');
    expect((await api.tenantRequest(tenantB.token, 'GET', `/v1/certificates/${cert.id}`)).status).toBe(404);
    expect((await api.tenantRequest(tenantA.token, 'GET', '/v1/certificates/nope')).status).toBe(404);
    expect((await api.adminRequest('GET', `/v1/certificates/${cert.id}`)).status).toBe(200);
  });
});

describe('GET /v1/certificates/{id}/private-key', () => {
  it('answers the key with no-store, after writing an audit row in the same request', async ({
    api,
    env,
    tenantA,
  }) => {
    const cert = await insertCertificate(api, tenantA);
    const res = await api.tenantRequest(tenantA.token, 'GET', `/v1/certificates/${cert.id}/private-key`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: cert.id, privateKey: cert.privateKey });
    expect(res.headers.get('cache-control')).toBe('no-store');
    const rows = await env.handle.db.select().from(auditLog).where(eq(auditLog.subjectId, cert.id));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      tenantId: tenantA.id,
      actor: `tenant:${tenantA.id}`,
      action: 'private_key.read',
      subjectId: cert.id,
    });
    expect(JSON.stringify(rows[0])).not.toContain(cert.privateKey);

    const asAdmin = await api.adminRequest('GET', `/v1/certificates/${cert.id}/private-key`);
    expect(asAdmin.body.privateKey).toBe(cert.privateKey);
    const after = await env.handle.db.select().from(auditLog).where(eq(auditLog.subjectId, cert.id));
    expect(after.map((r) => r.actor).sort()).toEqual(['admin', `tenant:${tenantA.id}`]);
  });

  it("answers 404 for another tenant's key and records nothing", async ({ api, env, tenantA, tenantB }) => {
    const cert = await insertCertificate(api, tenantA);
    const res = await api.tenantRequest(tenantB.token, 'GET', `/v1/certificates/${cert.id}/private-key`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    expect(res.text).not.toContain('PRIVATE');
    expect(await env.handle.db.select().from(auditLog).where(eq(auditLog.subjectId, cert.id))).toEqual([]);
    expect((await api.request('GET', `/v1/certificates/${cert.id}/private-key`)).status).toBe(401);
  });
});
