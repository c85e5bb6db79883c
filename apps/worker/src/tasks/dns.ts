import { type Order, orderDns, recordWebhookEvent, startRun, type Transaction } from '@certq/db';
import {
  type CaaCa,
  type CaaPolicy,
  caaDiagnosis,
  caaPolicy,
  checkDelayMs,
  type DnsDiagnosis,
  diagnose,
} from '@certq/dns';
import { and, eq } from 'drizzle-orm';
import type { WorkerContext } from '../context';

/**
 * The worker's side of certq's own DNS checks (issue 9): local CNAME checks before asking httpsok, CAA
 * before applying, and handing an order to its next CA.
 */

export interface DnsRow {
  domain: string;
  host: string;
  hostValue: string;
  valid: boolean;
  status: string;
  found: string | null;
}

export async function loadDnsRows(ctx: WorkerContext, orderId: string): Promise<DnsRow[]> {
  return ctx.db
    .select({
      domain: orderDns.domain,
      host: orderDns.host,
      hostValue: orderDns.hostValue,
      valid: orderDns.valid,
      status: orderDns.status,
      found: orderDns.found,
    })
    .from(orderDns)
    .where(eq(orderDns.orderId, orderId));
}

/** Diagnoses every domain's CNAME through DNS_RESOLVERS, counting each result. */
export async function checkCnames(
  ctx: WorkerContext,
  rows: readonly Pick<DnsRow, 'domain' | 'host' | 'hostValue'>[],
): Promise<DnsDiagnosis[]> {
  const diagnoses = await Promise.all(rows.map((row) => diagnose(ctx.dns, row, () => ctx.clock.now())));
  for (const d of diagnoses) ctx.metrics.dnsChecks.inc({ result: d.status });
  return diagnoses;
}

/** Stores the diagnoses on the order's DNS rows (in the caller's transaction). */
export async function saveDiagnoses(tx: Transaction, orderId: string, diagnoses: readonly DnsDiagnosis[]) {
  for (const d of diagnoses) {
    await tx
      .update(orderDns)
      .set({ status: d.status, found: d.found, reason: d.reason, checkedAt: d.checkedAt })
      .where(and(eq(orderDns.orderId, orderId), eq(orderDns.domain, d.domain)));
  }
}

/** The delay before the next local check: DNS_CHECK_INTERVAL_MS, growing with the wait to a cap of a few minutes. */
export function nextCheckDelay(ctx: WorkerContext, order: Order): number {
  const waitedMs = ctx.clock.now().getTime() - order.stageStartedAt.getTime();
  return checkDelayMs(waitedMs, { intervalMs: ctx.config.DNS_CHECK_INTERVAL_MS }, ctx.random);
}

/** The CAs of this order in order of preference (`ca` alone for an order that named one). */
export function caChoicesOf(order: Order): CaaCa[] {
  return order.caChoices && order.caChoices.length > 0 ? [...order.caChoices] : [order.ca];
}

export type CaaVerdict =
  | { kind: 'ok'; unknown: string[] }
  | { kind: 'change'; to: CaaCa; reason: string; diagnoses: DnsDiagnosis[] }
  | { kind: 'exhausted'; reasons: { ca: string; reason: string }[]; diagnoses: DnsDiagnosis[] };

/**
 * CAA before apply (RFC 8659, see @certq/dns): the closest CAA RRset of each domain, judged for the order's
 * CA; when it forbids it, the next CA of the list that every domain allows. A domain whose CAA records
 * could not be read does not hold the order up (the CA checks CAA itself, and a refusal moves the order
 * to its next CA): it is only reported in `unknown`.
 */
export async function checkCaaForOrder(ctx: WorkerContext, order: Order): Promise<CaaVerdict> {
  const policies: CaaPolicy[] = await Promise.all(order.domains.map((d) => caaPolicy(ctx.dns, d)));
  const now = ctx.clock.now();
  const unknown = policies.filter((p) => p.kind === 'failed').map((p) => p.domain);
  for (const _ of unknown) ctx.metrics.dnsChecks.inc({ result: 'caa_lookup_failed' });
  const known = policies.filter((p) => p.kind === 'policy');
  const verdictFor = (ca: CaaCa) =>
    known.map((p) => caaDiagnosis(p, ca, now)).filter((d): d is DnsDiagnosis => d !== null);
  const forbidden = verdictFor(order.ca);
  if (forbidden.length === 0) return { kind: 'ok', unknown };
  for (const _ of forbidden) ctx.metrics.dnsChecks.inc({ result: 'caa_forbidden' });
  const reason = forbidden.map((d) => d.reason).join(' ');
  const tried = new Set([...order.caFailures.map((f) => f.ca), order.ca]);
  const next = caChoicesOf(order).find((ca) => !tried.has(ca) && verdictFor(ca).length === 0);
  if (next) return { kind: 'change', to: next, reason, diagnoses: forbidden };
  // No CA left: say why each one cannot issue.
  const reasons = [...order.caFailures, { ca: order.ca, reason }];
  for (const ca of caChoicesOf(order)) {
    if (reasons.some((r) => r.ca === ca)) continue;
    reasons.push({
      ca,
      reason: verdictFor(ca)
        .map((d) => d.reason)
        .join(' '),
    });
  }
  return { kind: 'exhausted', reasons, diagnoses: forbidden };
}

/** The next CA to try after `order.ca` gave up, or null when the list is used up. */
export function nextCa(order: Order): CaaCa | null {
  const tried = new Set([...order.caFailures.map((f) => f.ca), order.ca]);
  return caChoicesOf(order).find((ca) => !tried.has(ca)) ?? null;
}

export function exhaustedError(reasons: readonly { ca: string; reason: string }[]): string {
  return `no CA left to try: ${reasons.map((r) => `${r.ca}: ${r.reason}`).join('; ')}`;
}

/**
 * Hands the order to its next CA as a new run (`run` + 1, so every job of the old run is stale). From
 * the CAA check (`to: 'applying'`) the new CA is already known to be allowed; after a rejected application
 * (`to: 'verifying'`) the local check, one `dv` and CAA for the new CA come before the new apply.
 * Logs the event and records the `order.ca_changed` webhook in the same transaction.
 */
export async function changeCa(
  ctx: WorkerContext,
  tx: Transaction,
  order: Order,
  change: {
    to: CaaCa;
    reason: string;
    why: 'caa' | 'rejected';
    status: 'applying' | 'verifying';
    applyId?: string | null;
  },
): Promise<Order> {
  const now = ctx.clock.now();
  const failures = [...order.caFailures, { ca: order.ca, reason: change.reason }];
  const updated = await startRun(tx, order, {
    why: 'ca_changed',
    to: change.status,
    at: now,
    set: { ca: change.to, caFailures: failures, lastError: `${order.ca} cannot issue: ${change.reason}` },
    detail: {
      from: order.ca,
      to: change.to,
      why: change.why,
      reason: change.reason,
      applyId: change.applyId ?? null,
    },
  });
  await recordWebhookEvent(tx, {
    tenantId: order.tenantId,
    orderId: order.id,
    event: 'order.ca_changed',
    data: {
      orderId: order.id,
      domains: order.domains,
      from: order.ca,
      to: change.to,
      reason: change.reason,
      caChoices: caChoicesOf(order),
    },
    at: now,
  });
  ctx.metrics.caChanges.inc({ why: change.why });
  return updated;
}
