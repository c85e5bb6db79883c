import type { Order } from '@certq/db';
import { recordWebhookEvent, takeRecordedWebhookDeliveries } from '@certq/db';
import type { DnsDiagnosis } from '@certq/dns';
import { sql } from 'drizzle-orm';
import type { WorkerContext } from '../context';
import { enqueueWebhooksAfterCommit } from '../webhooks/delivery';

const DAY_MS = 86_400_000;

/**
 * What one DNS check of a renewal says about the domain having moved away: `gone` when a domain reads
 * missing or wrong_target and none could not be looked up; `ok` when every domain reads ok; `unsure`
 * otherwise. A lookup failure says nothing about where the name points, so it never counts and breaks
 * a run of `gone` readings: only an unbroken run longer than MOVED_GRACE_DAYS marks a certificate moved.
 */
export function movedReading(diagnoses: readonly Pick<DnsDiagnosis, 'status'>[]): 'gone' | 'ok' | 'unsure' {
  if (diagnoses.length === 0) return 'unsure';
  if (diagnoses.every((d) => d.status === 'ok')) return 'ok';
  if (diagnoses.some((d) => d.status === 'lookup_failed')) return 'unsure';
  return diagnoses.some((d) => d.status === 'missing' || d.status === 'wrong_target') ? 'gone' : 'unsure';
}

/**
 * Records one DNS check of a renewal against the certificate it renews: a `gone` reading starts (or
 * continues) the run in `dns_lost_since`, and once the run is longer than MOVED_GRACE_DAYS the
 * certificate becomes `moved` (the renewal scan skips it; it is still served) and the tenant's webhook
 * gets `certificate.moved` with the diagnosis, once per move. Any other reading ends the run; `ok`
 * also brings a moved certificate back (its renewal goes on and replaces it).
 */
export async function noteRenewalDns(
  ctx: WorkerContext,
  order: Pick<Order, 'renewalOfCertificateId' | 'id'>,
  diagnoses: readonly DnsDiagnosis[],
): Promise<void> {
  const certificateId = order.renewalOfCertificateId;
  if (!certificateId) return;
  const reading = movedReading(diagnoses);
  const now = ctx.clock.now().toISOString();
  if (reading !== 'gone') {
    await ctx.db.execute(sql`update certificates
      set dns_lost_since = null,
        state = case when state = 'moved' and ${reading === 'ok'} then 'active' else state end,
        moved_at = case when state = 'moved' and ${reading === 'ok'} then null else moved_at end
      where id = ${certificateId} and (dns_lost_since is not null or (state = 'moved' and ${reading === 'ok'}))`);
    return;
  }
  const graceStart = new Date(ctx.clock.now().getTime() - ctx.config.MOVED_GRACE_DAYS * DAY_MS).toISOString();
  const diagnosis = diagnoses.map((d) => ({
    domain: d.domain,
    status: d.status,
    found: d.found,
    reason: d.reason,
  }));
  const deliveries = await ctx.db.transaction(async (tx) => {
    // The right-hand sides read the row as it was: the run's start before this reading.
    const moved = await tx.execute<{
      id: string;
      tenant_id: string;
      domains: string[];
      since: Date;
      newly_moved: boolean;
    }>(sql`
      update certificates
      set dns_lost_since = coalesce(dns_lost_since, ${now}::timestamptz),
        state = case when dns_lost_since <= ${graceStart}::timestamptz then 'moved' else state end,
        moved_at = case when dns_lost_since <= ${graceStart}::timestamptz then ${now}::timestamptz else moved_at end,
        moved_diagnosis = case when dns_lost_since <= ${graceStart}::timestamptz
          then ${JSON.stringify(diagnosis)}::jsonb else moved_diagnosis end
      where id = ${certificateId} and is_current and state = 'active'
      returning id, tenant_id, domains, dns_lost_since as since, state = 'moved' as newly_moved`);
    const row = moved.rows[0];
    if (row?.newly_moved) {
      await recordWebhookEvent(tx, {
        tenantId: row.tenant_id,
        event: 'certificate.moved',
        orderId: order.id,
        at: ctx.clock.now(),
        data: {
          certificateId: row.id,
          domains: row.domains,
          dnsLostSince: new Date(row.since).toISOString(),
          graceDays: ctx.config.MOVED_GRACE_DAYS,
          renewalOrderId: order.id,
          dns: diagnosis,
        },
      });
      ctx.logger.info({ certificateId: row.id, orderId: order.id }, 'certificate moved away');
    }
    return takeRecordedWebhookDeliveries(tx);
  });
  await enqueueWebhooksAfterCommit(ctx, deliveries);
}
