import { type Database, type Order, orderDns, orders } from '@certq/db';
import { and, eq, sql } from 'drizzle-orm';
import { cursorTimestamp } from '../../pagination';
import type { DnsRecord, OrderView } from './schemas';

export const viewColumns = {
  id: orders.id,
  tenantId: orders.tenantId,
  kind: orders.kind,
  renewalReason: orders.renewalReason,
  domains: orders.domains,
  algorithm: orders.algorithm,
  ca: orders.ca,
  caChoices: orders.caChoices,
  status: orders.status,
  applyId: orders.applyId,
  progress: orders.progress,
  attempts: orders.attempts,
  lastError: orders.lastError,
  certificateId: orders.certificateId,
  createdAt: orders.createdAt,
  updatedAt: orders.updatedAt,
  cursorTs: cursorTimestamp(orders.createdAt),
  dns: sql<DnsRecord[]>`coalesce((
    select json_agg(json_build_object('domain', d.domain, 'host', d.host, 'hostValue', d.host_value, 'valid', d.valid,
                      'status', d.status, 'found', d.found, 'reason', d.reason,
                      'checkedAt', to_char(d.checked_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                    order by array_position(${orders.domains}, d.domain), d.domain)
    from ${orderDns} d where d.order_id = ${orders.id}), '[]'::json)`,
};

type ViewRow = Pick<
  Order,
  | 'id'
  | 'tenantId'
  | 'kind'
  | 'renewalReason'
  | 'domains'
  | 'algorithm'
  | 'ca'
  | 'caChoices'
  | 'status'
  | 'applyId'
  | 'progress'
  | 'attempts'
  | 'lastError'
  | 'certificateId'
  | 'createdAt'
  | 'updatedAt'
>;

export function toOrderView(row: ViewRow, dns: DnsRecord[] = []): OrderView {
  return {
    id: row.id,
    tenantId: row.tenantId,
    kind: row.kind,
    renewalReason: row.renewalReason,
    domains: row.domains,
    algorithm: row.algorithm,
    ca: row.ca,
    caChoices: row.caChoices?.length ? row.caChoices : [row.ca],
    status: row.status,
    applyId: row.applyId,
    progress: row.progress,
    dns,
    attempts: row.attempts,
    lastError: row.lastError,
    certificateId: row.certificateId,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/**
 * Reads orders as the API shows them. The two lookups by id are prepared statements: they are the
 * hottest queries (clients poll their orders), and preparing skips both drizzle's query building and
 * Postgres's parse/plan on every call.
 */
export function createOrderViews(db: Database) {
  const byId = db
    .select(viewColumns)
    .from(orders)
    .where(eq(orders.id, sql.placeholder('id')))
    .prepare('certq_api_order_view');
  const byIdInTenant = db
    .select(viewColumns)
    .from(orders)
    .where(and(eq(orders.id, sql.placeholder('id')), eq(orders.tenantId, sql.placeholder('tenantId'))))
    .prepare('certq_api_order_view_in_tenant');
  return {
    /** The order, or undefined when it does not exist or is outside `scope` (a tenant id). */
    async get(id: string, scope: string | undefined): Promise<OrderView | undefined> {
      const [row] = scope ? await byIdInTenant.execute({ id, tenantId: scope }) : await byId.execute({ id });
      return row && toOrderView(row, row.dns);
    },
  };
}
