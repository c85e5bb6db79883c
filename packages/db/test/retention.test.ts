import { it } from '@certq/testing';
import { describe, expect } from 'vitest';
import { type DbHandle, purgeExpiredRows } from '../src';

const DAY = 86_400_000;

/** One order of `status`, last changed `daysAgo` days ago, with three events from then. */
async function order(handle: DbHandle, tenantId: string, status: string, daysAgo: number): Promise<string> {
  const domain = `o${Math.random().toString(36).slice(2)}.example.com`;
  const { rows } = await handle.pool.query(
    `insert into orders (tenant_id, domains, domains_key, status, apply_id, updated_at, created_at)
     values ($1, array[$2::text], $2::text, $3::order_status, case when $3::text in ('issuing', 'issued') then 'apply-' || $2::text end,
             now() - make_interval(days => $4), now() - make_interval(days => $4))
     returning id`,
    [tenantId, domain, status, daysAgo],
  );
  const id = rows[0].id as string;
  await handle.pool.query(
    `insert into order_events (order_id, type, at)
     select $1, 'transition', now() - make_interval(days => $2) from generate_series(1, 3)`,
    [id, daysAgo],
  );
  return id;
}

async function certificate(handle: DbHandle, orderId: string, current: boolean, expiredDaysAgo: number) {
  const { rows } = await handle.pool.query(
    `insert into certificates (tenant_id, order_id, domains, domains_key, apply_id, algorithm, ca,
       not_before, not_after, fingerprint, certificate_pem, private_key_sealed, is_current)
     select tenant_id, id, domains, domains_key || $4, 'a', 'ECC', 'google', now() - interval '200 days',
       now() - make_interval(days => $3), 'fp', 'pem', 'sealed', $2
     from orders where id = $1 returning id`,
    [orderId, current, expiredDaysAgo, current ? '' : '-old'],
  );
  return rows[0].id as string;
}

const count = async (handle: DbHandle, query: string, params: unknown[]) =>
  (await handle.pool.query(query, params)).rows[0].n as number;

describe('retention sweep', () => {
  it('deletes old finished orders’ events, settled deliveries and expired history, in batches, and nothing else', async ({
    db: handle,
  }) => {
    const { rows } = await handle.pool.query(
      `insert into tenants (name, token_hash) values ('retention', 'retention-hash') returning id`,
    );
    const tenantId = rows[0].id as string;
    const oldIssued = await order(handle, tenantId, 'issued', 120);
    const oldFailed = await order(handle, tenantId, 'failed', 91);
    const recentIssued = await order(handle, tenantId, 'issued', 30);
    // Created long ago, still running: its history stays whatever its age.
    const oldActive = await order(handle, tenantId, 'issuing', 120);
    await handle.pool.query(
      `insert into webhook_deliveries (tenant_id, event, payload, status, created_at) values
         ($1, 'order.issued', '{}', 'delivered', now() - interval '100 days'),
         ($1, 'order.failed', '{}', 'failed', now() - interval '100 days'),
         ($1, 'order.issued', '{}', 'pending', now() - interval '100 days'),
         ($1, 'order.issued', '{}', 'delivered', now() - interval '10 days')`,
      [tenantId],
    );
    // Expired long ago but current (the tenant's only one): kept. Superseded and expired past the
    // retention: deleted. Superseded but expired recently: kept.
    const currentExpired = await certificate(handle, oldIssued, true, 400);
    const supersededOld = await certificate(handle, oldFailed, false, 100);
    const supersededRecent = await certificate(handle, recentIssued, false, 10);

    const result = await purgeExpiredRows(handle.db, new Date(), {
      retentionDays: 90,
      certificateRetentionDays: 90,
      batchSize: 2,
    });
    expect(result).toEqual({ orderEvents: 6, webhookDeliveries: 2, certificates: 1 });

    const events = async (id: string) =>
      count(handle, 'select count(*)::int as n from order_events where order_id = $1', [id]);
    expect(await events(oldIssued)).toBe(0);
    expect(await events(oldFailed)).toBe(0);
    expect(await events(recentIssued)).toBe(3);
    expect(await events(oldActive)).toBe(3);
    // The orders themselves stay.
    expect(
      await count(handle, 'select count(*)::int as n from orders where tenant_id = $1', [tenantId]),
    ).toBe(4);
    const deliveries = await handle.pool.query(
      'select status from webhook_deliveries where tenant_id = $1 order by status',
      [tenantId],
    );
    expect(deliveries.rows.map((r) => r.status)).toEqual(['pending', 'delivered']);
    const kept = await handle.pool.query('select id from certificates where tenant_id = $1', [tenantId]);
    expect(kept.rows.map((r) => r.id).sort()).toEqual([currentExpired, supersededRecent].sort());
    expect(kept.rows.map((r) => r.id)).not.toContain(supersededOld);

    // Nothing left to do: a second sweep deletes nothing.
    expect(
      await purgeExpiredRows(handle.db, new Date(Date.now() + DAY), {
        retentionDays: 90,
        certificateRetentionDays: 90,
        batchSize: 2,
      }),
    ).toEqual({ orderEvents: 0, webhookDeliveries: 0, certificates: 0 });
  });
});
