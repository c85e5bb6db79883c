import { sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { enqueueWebhooksAfterCommit } from './delivery';

/** `certificate.expiring` is sent for a current certificate this close to expiry… */
export const EXPIRING_WITHIN_DAYS = 7;
/**
 * …and within this share of its lifetime: a 6-day certificate hears one day before, not at issuance.
 * Uploaded certificates, which certq never renews, rely on it as their only warning.
 */
export const LIFETIME_SHARE = 6;
const BATCH = 1000;

/**
 * Records `certificate.expiring` once per certificate: a current certificate (so no renewal of it has
 * succeeded) that expires within 7 days and within a sixth of its lifetime, of a tenant with a webhook. The certificate is marked
 * (`expiring_notified_at`) in the same statement that writes the outbox row. Certificates of tenants
 * without a webhook are left unmarked: a webhook configured later still hears about them.
 */
export async function notifyExpiring(
  ctx: WorkerContext,
  options: { now?: Date } = {},
): Promise<{ recorded: number }> {
  const now = options.now ?? ctx.clock.now();
  const end = new Date(now.getTime() + EXPIRING_WITHIN_DAYS * 86_400_000);
  let recorded = 0;
  for (;;) {
    const result = await ctx.db.execute<{ id: string }>(sql`
      with due as materialized (
        select c.id, c.tenant_id, c.domains, c.not_after, gen_random_uuid() as delivery_id
        from certificates c join tenants t on t.id = c.tenant_id
        where c.is_current and c.expiring_notified_at is null and t.webhook_url is not null
          and c.not_after > ${now.toISOString()}::timestamptz and c.not_after <= ${end.toISOString()}::timestamptz
          and c.not_after <= ${now.toISOString()}::timestamptz + (c.not_after - c.not_before) / ${LIFETIME_SHARE}
        order by c.not_after, c.id
        limit ${BATCH}
        for update of c skip locked
      ), marked as (
        update certificates c set expiring_notified_at = ${now.toISOString()}::timestamptz
        from due where c.id = due.id
      )
      insert into webhook_deliveries (id, tenant_id, event, payload)
      select delivery_id, tenant_id, 'certificate.expiring', jsonb_build_object(
        'id', delivery_id,
        'event', 'certificate.expiring',
        'tenantId', tenant_id,
        'createdAt', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', jsonb_build_object(
          'certificateId', id,
          'domains', to_jsonb(domains),
          'notAfter', to_char(not_after at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
      from due
      returning id`);
    const ids = result.rows.map((r) => r.id);
    recorded += ids.length;
    await enqueueWebhooksAfterCommit(ctx, ids);
    if (ids.length < BATCH) break;
  }
  if (recorded) ctx.logger.info({ recorded }, 'certificate.expiring webhooks recorded');
  return { recorded };
}
