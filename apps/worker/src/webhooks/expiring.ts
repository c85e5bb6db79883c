import { expiringAt } from '@certq/workflow';
import { sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { enqueueWebhooksAfterCommit } from './delivery';

const BATCH = 1000;

/**
 * Records `certificate.expiring` once per certificate: a current certificate (so no renewal of it has
 * succeeded) with less than a sixth of its lifetime left (expiringAt), of a tenant with a webhook. The certificate is marked
 * (`expiring_notified_at`) in the same statement that writes the outbox row. Certificates of tenants
 * without a webhook are left unmarked: a webhook configured later still hears about them.
 */
export async function notifyExpiring(
  ctx: WorkerContext,
  options: { now?: Date } = {},
): Promise<{ recorded: number }> {
  const now = options.now ?? ctx.clock.now();
  let recorded = 0;
  for (;;) {
    const result = await ctx.db.execute<{ id: string }>(sql`
      with due as materialized (
        select c.id, c.tenant_id, c.domains, c.not_after, gen_random_uuid() as delivery_id
        from certificates c join tenants t on t.id = c.tenant_id
        where c.is_current and c.expiring_notified_at is null and t.webhook_url is not null
          and ${expiringAt(now)}
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
