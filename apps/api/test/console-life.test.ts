import { certificates } from '@certq/db';
import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { insertCertificate, it } from './helpers';

/** The console's view of a certificate's and a tenant's life: statuses, moved domains, the actions and their counts. */
describe('console: end of life', () => {
  it('shows statuses, lists moved domains, retires, and suspends/resumes/deletes with the counts', async ({
    api,
    tenant,
  }) => {
    const get = async (path: string) =>
      (await api.request('GET', path, { token: api.config.ADMIN_TOKEN })).text;
    const act = (path: string) =>
      api.request('POST', path, { token: api.config.ADMIN_TOKEN, headers: { 'hx-request': 'true' } });
    const moved = await insertCertificate(api, tenant);
    const kept = await insertCertificate(api, tenant);
    await api.env.handle.db
      .update(certificates)
      .set({ state: 'moved', movedAt: new Date() })
      .where(eq(certificates.id, moved.id));

    const movedList = await get(`/admin/certificates?tenant=${tenant.id}&moved=true`);
    expect(movedList).toContain(moved.id);
    expect(movedList).not.toContain(kept.id);
    expect(movedList).toContain('s-moved');
    expect(await get(`/admin/certificates/${moved.id}`)).toMatch(
      /Status<\/dt><dd><span class="status s-moved"/,
    );

    const retired = await act(`/admin/certificates/${kept.id}/retire`);
    expect(retired.status).toBe(200);
    expect(retired.text).toContain('Retired');
    expect(await get(`/admin/certificates/${kept.id}`)).toContain('s-retired');

    const page = await get(`/admin/tenants/${tenant.id}`);
    expect(page).toContain('hx-post="/admin/tenants/' + tenant.id + '/suspend"');
    const suspended = await act(`/admin/tenants/${tenant.id}/suspend`);
    expect(suspended.text).toContain(
      'Suspended: ordersCancelled 0, certificatesServed 1, certificatesWithdrawn 0.',
    );
    expect(await get(`/admin/tenants/${tenant.id}`)).toContain('s-suspended');
    expect((await act(`/admin/tenants/${tenant.id}/resume`)).text).toContain('Resumed');
    const deleted = await act(`/admin/tenants/${tenant.id}/delete`);
    expect(deleted.text).toContain('Deleted: certificatesRetired 1, ordersCancelled 0, edgeTokensRevoked 0.');
    expect(await get(`/admin/tenants/${tenant.id}`)).toContain('s-deleted');
    expect((await act(`/admin/tenants/${tenant.id}/resume`)).status).toBe(409);
  });
});
