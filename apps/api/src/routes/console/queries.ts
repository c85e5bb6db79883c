import { X509Certificate } from 'node:crypto';
import {
  ACTIVE_STATUSES,
  type CertificateState,
  normalizeDomain,
  type OrderStatus,
  type RetiredReason,
} from '@certq/core';
import { cursorTimestamp, type Database } from '@certq/db';
import { type SQL, sql } from 'drizzle-orm';
import { type Cursor, decodeCursor, encodeCursor } from '../../pagination';

/**
 * Every read of the console, as SQL that an index answers at a million rows (see migration 0008 and
 * bench/console.ts): keyset pages of PAGE_SIZE, counts bounded by a cap, charts over index ranges.
 */
export const PAGE_SIZE = 50;

export class BadFilter extends Error {
  override name = 'BadFilter';
}

export interface OrderFilter {
  /** A domain: `name` (exact, or covered by its wildcard), `prefix*`, or `*.domain` (every name under). */
  q?: string;
  tenantId?: string;
  status?: OrderStatus;
  kind?: 'new' | 'renewal';
  /** created_at ≥ from, < to. */
  from?: Date;
  to?: Date;
}

export interface CertificateFilter {
  q?: string;
  tenantId?: string;
  /** notAfter within this many days from now (expired ones included). */
  expiringWithinDays?: number;
  /** Only moved certificates (their renewal found the CNAME gone). */
  moved?: boolean;
}

const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * The domain search on a table with `domains` (text[], GIN) and `domains_key` (sorted names joined by
 * commas, trigram GIN). Exact names use the array index and also find the wildcard that covers the
 * name; prefixes and "under a domain" are LIKE patterns on domains_key, which pg_trgm answers.
 *
 * The trigram index is asked only for the pattern's most distinctive part (the prefix, or the longest
 * label of the domain), and the exact pattern is checked on the rows it returns: a pattern such as
 * `%.acme.example` also holds the trigrams of `.example`, which every row shares, and intersecting
 * those posting lists costs 100× more than the rows found (see bench/console.bench.ts).
 * `(domains_key || '')` keeps the planner from handing the exact pattern to the index too.
 */
export function domainCondition(alias: string, raw: string): SQL {
  const q = raw.trim().toLowerCase();
  const domains = sql.raw(`${alias}.domains`);
  const key = sql.raw(`${alias}.domains_key`);
  const exactKey = sql.raw(`(${alias}.domains_key || '')`);
  const narrowed = (distinctive: string | undefined, exact: SQL) =>
    distinctive && distinctive.length >= 3
      ? sql`(${key} like ${`%${likeEscape(distinctive)}%`} and ${exact})`
      : exact;
  if (q.startsWith('*.')) {
    const base = normalizeDomain(q.slice(2));
    if (!base.ok) throw new BadFilter(`domain: ${base.reason}`);
    const under = `%.${likeEscape(base.domain)}`;
    const longest = base.domain.split('.').reduce((a, b) => (b.length > a.length ? b : a), '');
    return narrowed(longest, sql`(${exactKey} like ${under} or ${exactKey} like ${`${under},%`})`);
  }
  if (q.endsWith('*')) {
    const prefix = q.slice(0, -1);
    if (!/^[a-z0-9.-]{1,253}$/.test(prefix))
      throw new BadFilter('domain prefix: letters, digits, dots and hyphens before the final *');
    if (prefix.length < 3) throw new BadFilter('domain prefix: at least 3 characters before the *');
    const p = likeEscape(prefix);
    return narrowed(prefix, sql`(${exactKey} like ${`${p}%`} or ${exactKey} like ${`%,${p}%`})`);
  }
  const name = normalizeDomain(q);
  if (!name.ok) throw new BadFilter(`domain: ${name.reason}`);
  const names = [name.domain];
  const dot = name.domain.indexOf('.');
  if (!name.domain.startsWith('*.') && dot > 0 && name.domain.indexOf('.', dot + 1) > 0)
    names.push(`*.${name.domain.slice(dot + 1)}`);
  return sql`${domains} && ${sql.raw('ARRAY[')}${sql.join(
    names.map((n) => sql`${n}`),
    sql`, `,
  )}${sql.raw(']::text[]')}`;
}

export function orderConditions(filter: OrderFilter): SQL[] {
  const conditions: SQL[] = [];
  if (filter.q) conditions.push(domainCondition('o', filter.q));
  if (filter.tenantId) conditions.push(sql`o.tenant_id = ${filter.tenantId}`);
  if (filter.status) conditions.push(sql`o.status = ${filter.status}`);
  if (filter.kind) conditions.push(sql`o.kind = ${filter.kind}`);
  if (filter.from) conditions.push(sql`o.created_at >= ${filter.from.toISOString()}::timestamptz`);
  if (filter.to) conditions.push(sql`o.created_at < ${filter.to.toISOString()}::timestamptz`);
  return conditions;
}

const where = (conditions: SQL[]) =>
  conditions.length ? sql`where ${sql.join(conditions, sql` and `)}` : sql``;

export type OrderRow = {
  id: string;
  tenant_id: string;
  tenant_name: string;
  kind: 'new' | 'renewal';
  domains: string[];
  status: OrderStatus;
  run: number;
  last_error: string | null;
  certificate_id: string | null;
  created_at: Date;
  updated_at: Date;
  cursor_ts: string;
};

const cursorTs = (column: string) => cursorTimestamp(sql.raw(column));

/**
 * One page of orders, newest first (keyset on created_at, id). Plain `desc` (nulls first), the order
 * the keyset indexes are built in (0007, 0009): the planner reads the first 51 in index order instead
 * of sorting every matching row.
 */
export async function searchOrders(
  db: Database,
  filter: OrderFilter,
  cursor?: string,
): Promise<{ rows: OrderRow[]; nextCursor: string | null }> {
  const conditions = orderConditions(filter);
  if (cursor) {
    const c = decodeCursor(cursor);
    conditions.push(sql`(o.created_at, o.id) < (${c.t}::timestamptz, ${c.id}::uuid)`);
  }
  const result = await db.execute<OrderRow>(sql`
    select o.*, t.name as tenant_name from (
      select o.id, o.tenant_id, o.kind, o.domains, o.status, o.run, o.last_error,
             o.certificate_id, o.created_at, o.updated_at, ${cursorTs('o.created_at')} as cursor_ts
      from orders o ${where(conditions)}
      order by o.created_at desc, o.id desc
      limit ${PAGE_SIZE + 1}) o
    join tenants t on t.id = o.tenant_id
    order by o.created_at desc, o.id desc`);
  return pageOf(result.rows, (r) => ({ t: r.cursor_ts, id: r.id }));
}

function pageOf<Row>(rows: Row[], cursorOf: (row: Row) => Cursor) {
  const more = rows.length > PAGE_SIZE;
  const items = more ? rows.slice(0, PAGE_SIZE) : rows;
  const last = items[items.length - 1];
  return { rows: items, nextCursor: more && last ? encodeCursor(cursorOf(last)) : null };
}

/** How many orders match, counting at most `cap + 1` (so a count never scans a million rows). */
export async function countOrders(db: Database, filter: OrderFilter, extra: SQL[] = [], cap = 10_000) {
  const result = await db.execute<{ n: number }>(sql`
    select count(*)::int as n from (select 1 from orders o ${where([...orderConditions(filter), ...extra])} limit ${cap + 1}) s`);
  const n = result.rows[0]?.n ?? 0;
  return { count: Math.min(n, cap), more: n > cap };
}

/** Ids of the matching orders that `extra` narrows further (at most `cap`), oldest first. */
export async function matchingOrderIds(db: Database, filter: OrderFilter, extra: SQL[], cap: number) {
  const result = await db.execute<{ id: string }>(sql`
    select o.id from orders o ${where([...orderConditions(filter), ...extra])} limit ${cap}`);
  return result.rows.map((r) => r.id);
}

/** The current certificates of the matching orders' domain sets (what "renew" renews), at most `cap`. */
export async function currentCertificatesOfOrders(db: Database, filter: OrderFilter, cap: number) {
  const result = await db.execute<{ id: string }>(sql`
    select distinct c.id from orders o
    join certificates c on c.tenant_id = o.tenant_id and c.domains_key = o.domains_key and c.is_current
    ${where(orderConditions(filter))} limit ${cap}`);
  return result.rows.map((r) => r.id);
}

export const ACTIVE = sql.raw(`o.status in (${ACTIVE_STATUSES.map((s) => `'${s}'`).join(', ')})`);

// ─── certificates ─────────────────────────────────────────────────────────────────────────────────

export type CertificateRow = {
  id: string;
  tenant_id: string;
  tenant_name: string;
  domains: string[];
  ca: string;
  algorithm: string;
  not_before: Date;
  not_after: Date;
  fingerprint: string;
  is_current: boolean;
  /** Null for an uploaded certificate. */
  order_id: string | null;
  created_at: Date;
  cursor_ts: string;
  /** What certificateStatus (@certq/core) derives the status from. */
  state: CertificateState;
  retired_reason: RetiredReason | null;
  order_active: boolean;
};

/** The columns of `certificates c` a CertificateRow needs besides the plain ones. */
const LIFE_COLUMNS = sql.raw(`c.state, c.retired_reason, exists (select 1 from orders a
  where a.tenant_id = c.tenant_id and a.domains_key = c.domains_key
    and a.status in (${ACTIVE_STATUSES.map((s) => `'${s}'`).join(', ')})) as order_active`);

/** One page of current certificates, soonest expiry first (keyset on not_after, id). */
export async function searchCertificates(
  db: Database,
  filter: CertificateFilter,
  cursor?: string,
  now = new Date(),
): Promise<{ rows: CertificateRow[]; nextCursor: string | null }> {
  const conditions: SQL[] = [sql`c.is_current`];
  if (filter.q) conditions.push(domainCondition('c', filter.q));
  if (filter.tenantId) conditions.push(sql`c.tenant_id = ${filter.tenantId}`);
  if (filter.moved) conditions.push(sql`c.state = 'moved'`);
  if (filter.expiringWithinDays !== undefined)
    conditions.push(
      sql`c.not_after <= ${new Date(now.getTime() + filter.expiringWithinDays * 86_400_000).toISOString()}::timestamptz`,
    );
  if (cursor) {
    const c = decodeCursor(cursor);
    conditions.push(sql`(c.not_after, c.id) > (${c.t}::timestamptz, ${c.id}::uuid)`);
  }
  const result = await db.execute<CertificateRow>(sql`
    select c.*, t.name as tenant_name from (
      select c.id, c.tenant_id, c.domains, c.ca, c.algorithm, c.not_before, c.not_after,
             c.fingerprint, c.is_current, c.order_id, c.created_at, ${cursorTs('c.not_after')} as cursor_ts,
             ${LIFE_COLUMNS}
      from certificates c ${where(conditions)}
      order by c.not_after, c.id
      limit ${PAGE_SIZE + 1}) c
    join tenants t on t.id = c.tenant_id
    order by c.not_after, c.id`);
  return pageOf(result.rows, (r) => ({ t: r.cursor_ts, id: r.id }));
}

// ─── one order ────────────────────────────────────────────────────────────────────────────────────

export interface OrderDetail {
  order: Record<string, unknown> & {
    id: string;
    tenant_id: string;
    tenant_name: string;
    status: OrderStatus;
    kind: string;
    domains: string[];
    last_error: string | null;
    certificate_id: string | null;
    renewal_of_certificate_id: string | null;
    renewal_batch_id: string | null;
  };
  /** Every column of order_dns (whatever another release added: status, found, reason…). */
  dns: Record<string, unknown>[];
  events: {
    id: number;
    type: string;
    from_status: string | null;
    to_status: string | null;
    detail: Record<string, unknown> | null;
    at: Date;
  }[];
  certificate: CertificateRow | undefined;
}

export async function orderDetail(db: Database, id: string): Promise<OrderDetail | undefined> {
  const [order] = (
    await db.execute<OrderDetail['order']>(sql`
      select o.id, o.tenant_id, t.name as tenant_name, o.kind, o.domains, o.algorithm, o.ca, o.status, o.apply_id,
             o.progress, o.run, o.stage_attempts, o.stage_started_at, o.next_attempt_at, o.last_polled_at,
             o.last_error, o.certificate_id, o.renewal_of_certificate_id, o.renewal_batch_id, o.created_at, o.updated_at
      from orders o join tenants t on t.id = o.tenant_id where o.id = ${id}`)
  ).rows;
  if (!order) return undefined;
  const dns = (
    await db.execute<{ row: Record<string, unknown> }>(sql`
      select to_jsonb(d) - 'order_id' as row from order_dns d join orders o on o.id = d.order_id
      where d.order_id = ${id} order by array_position(o.domains, d.domain), d.domain`)
  ).rows.map((r) => r.row);
  const events = await orderEvents(db, id);
  const certificate = order.certificate_id ? await certificateRow(db, order.certificate_id) : undefined;
  return { order, dns, events, certificate };
}

/** The order's live part, polled by its page: status, progress, error, events. */
export async function orderLiveState(db: Database, id: string) {
  const [row] = (
    await db.execute<{
      status: OrderStatus;
      progress: number;
      last_error: string | null;
      updated_at: Date;
      created_at: Date;
    }>(sql`select status, progress, last_error, updated_at, created_at from orders where id = ${id}`)
  ).rows;
  if (!row) return undefined;
  return { order: row, events: await orderEvents(db, id) };
}

function orderEvents(db: Database, id: string) {
  return db
    .execute<OrderDetail['events'][number]>(
      sql`select id, type, from_status, to_status, detail, at from order_events where order_id = ${id} order by id`,
    )
    .then((r) => r.rows);
}

async function certificateRow(db: Database, id: string): Promise<CertificateRow | undefined> {
  const [row] = (
    await db.execute<CertificateRow>(sql`
      select c.id, c.tenant_id, t.name as tenant_name, c.domains, c.ca, c.algorithm, c.not_before, c.not_after,
             c.fingerprint, c.is_current, c.order_id, c.created_at, '' as cursor_ts
      from certificates c join tenants t on t.id = c.tenant_id where c.id = ${id}`)
  ).rows;
  return row;
}

// ─── one certificate ──────────────────────────────────────────────────────────────────────────────

export interface CertificateDetail {
  certificate: CertificateRow & { domains_key: string; moved_at: Date | null };
  /** Parsed from the leaf of the stored chain; the private key is never read. */
  leaf: {
    subject: string;
    issuer: string;
    subjectAltName: string[];
    validFrom: string;
    validTo: string;
    serialNumber: string;
    fingerprint256: string;
  } | null;
  chainLength: number;
  /** Every certificate of this domain set, newest first, with the order that produced it. */
  history: (CertificateRow & { order_kind: string | null })[];
}

export async function certificateDetail(db: Database, id: string): Promise<CertificateDetail | undefined> {
  const [row] = (
    await db.execute<CertificateDetail['certificate'] & { certificate_pem: string }>(sql`
      select c.id, c.tenant_id, t.name as tenant_name, c.domains, c.domains_key, c.ca, c.algorithm, c.not_before,
             c.not_after, c.fingerprint, c.is_current, c.order_id, c.created_at, c.certificate_pem, '' as cursor_ts,
             c.moved_at, ${LIFE_COLUMNS}
      from certificates c join tenants t on t.id = c.tenant_id where c.id = ${id}`)
  ).rows;
  if (!row) return undefined;
  const { certificate_pem: pem, ...certificate } = row;
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  let leaf: CertificateDetail['leaf'] = null;
  try {
    const x = new X509Certificate(blocks[0] ?? '');
    leaf = {
      subject: x.subject,
      issuer: x.issuer,
      subjectAltName: (x.subjectAltName ?? '').split(', ').filter(Boolean),
      validFrom: x.validFrom,
      validTo: x.validTo,
      serialNumber: x.serialNumber,
      fingerprint256: x.fingerprint256,
    };
  } catch {
    leaf = null;
  }
  const history = (
    await db.execute<CertificateDetail['history'][number]>(sql`
      select c.id, c.tenant_id, '' as tenant_name, c.domains, c.ca, c.algorithm, c.not_before, c.not_after,
             c.fingerprint, c.is_current, c.order_id, c.created_at, '' as cursor_ts, o.kind as order_kind,
             ${LIFE_COLUMNS}
      from certificates c left join orders o on o.id = c.order_id
      where c.tenant_id = ${certificate.tenant_id} and c.domains_key = ${certificate.domains_key}
      order by c.created_at desc limit 100`)
  ).rows;
  return { certificate, leaf, chainLength: blocks.length, history };
}

// ─── one tenant ───────────────────────────────────────────────────────────────────────────────────

export interface ConsoleTenant extends Record<string, unknown> {
  id: string;
  name: string;
  webhook_url: string | null;
  created_at: Date;
  suspended_at: Date | null;
  stop_serving: boolean;
  deleted_at: Date | null;
}
const TENANT_COLUMNS = sql.raw('id, name, webhook_url, created_at, suspended_at, stop_serving, deleted_at');

export async function tenantByIdOrName(db: Database, value: string) {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
  const [row] = (
    await db.execute<ConsoleTenant>(
      isUuid
        ? sql`select ${TENANT_COLUMNS} from tenants where id = ${value}`
        : sql`select ${TENANT_COLUMNS} from tenants where name = ${value}`,
    )
  ).rows;
  return row;
}

export async function tenantDetail(db: Database, tenantId: string, now = new Date()) {
  const byStatus = (
    await db.execute<{ status: OrderStatus; n: number }>(
      sql`select status, count(*)::int as n from orders where tenant_id = ${tenantId} group by status`,
    )
  ).rows;
  const expiry = (
    await db.execute<{ bucket: string; n: number }>(sql`
      select case
        when not_after <= ${now.toISOString()}::timestamptz then 'expired'
        when not_after <= ${now.toISOString()}::timestamptz + interval '7 days' then '0–7 days'
        when not_after <= ${now.toISOString()}::timestamptz + interval '30 days' then '8–30 days'
        when not_after <= ${now.toISOString()}::timestamptz + interval '60 days' then '31–60 days'
        else '61+ days' end as bucket, count(*)::int as n
      from certificates where tenant_id = ${tenantId} and is_current group by 1`)
  ).rows;
  const soonest = (await searchCertificates(db, { tenantId }, undefined, now)).rows.slice(0, 10);
  const deliveries = (
    await db.execute<{
      id: string;
      event: string;
      status: string;
      attempts: number;
      last_status_code: number | null;
      last_error: string | null;
      created_at: Date;
      delivered_at: Date | null;
    }>(sql`
      select id, event, status, attempts, last_status_code, last_error, created_at, delivered_at
      from webhook_deliveries where tenant_id = ${tenantId} order by created_at desc, id desc limit 20`)
  ).rows;
  const [health] = (
    await db.execute<{ delivered: number; failed: number; pending: number }>(sql`
      select count(*) filter (where status = 'delivered')::int as delivered,
             count(*) filter (where status = 'failed')::int as failed,
             count(*) filter (where status = 'pending')::int as pending
      from webhook_deliveries
      where tenant_id = ${tenantId} and created_at > ${now.toISOString()}::timestamptz - interval '7 days'`)
  ).rows;
  return { byStatus, expiry, soonest, deliveries, health: health ?? { delivered: 0, failed: 0, pending: 0 } };
}

// ─── charts ───────────────────────────────────────────────────────────────────────────────────────

export interface ChartData {
  /** Today and the next 90 days (UTC): certificates whose notAfter falls on each day. */
  expiring: { labels: string[]; counts: number[]; alreadyExpired: number };
  /** The last 7 × 24 hours: orders that reached issued / failed in each hour. */
  outcomes: { labels: string[]; issued: number[]; failed: number[] };
  queues: { name: string; waiting: number; delayed: number; active: number; failed: number }[];
  generatedAt: string;
}

export async function expiringPerDay(db: Database, now = new Date()): Promise<ChartData['expiring']> {
  const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  const end = new Date(today.getTime() + 91 * 86_400_000);
  const rows = (
    await db.execute<{ day: string; n: number }>(sql`
      select to_char(date_trunc('day', not_after at time zone 'UTC'), 'YYYY-MM-DD') as day, count(*)::int as n
      from certificates where is_current and not_after >= ${today.toISOString()}::timestamptz
        and not_after < ${end.toISOString()}::timestamptz
      group by 1`)
  ).rows;
  const [expired] = (
    await db.execute<{ n: number }>(
      sql`select count(*)::int as n from certificates where is_current and not_after < ${now.toISOString()}::timestamptz`,
    )
  ).rows;
  const byDay = new Map(rows.map((r) => [r.day, r.n]));
  const labels: string[] = [];
  for (let d = 0; d <= 90; d++)
    labels.push(new Date(today.getTime() + d * 86_400_000).toISOString().slice(0, 10));
  return { labels, counts: labels.map((l) => byDay.get(l) ?? 0), alreadyExpired: expired?.n ?? 0 };
}

export async function outcomesPerHour(db: Database, now = new Date()): Promise<ChartData['outcomes']> {
  const endHour = Math.floor(now.getTime() / 3_600_000) * 3_600_000 + 3_600_000;
  const start = new Date(endHour - 7 * 24 * 3_600_000);
  const rows = (
    await db.execute<{ hour: string; to_status: string; n: number }>(sql`
      select to_char(date_trunc('hour', at at time zone 'UTC'), 'YYYY-MM-DD"T"HH24') as hour, to_status, count(*)::int as n
      from order_events where to_status in ('issued', 'failed') and at >= ${start.toISOString()}::timestamptz
      group by 1, 2`)
  ).rows;
  const labels: string[] = [];
  for (let t = start.getTime(); t < endHour; t += 3_600_000)
    labels.push(new Date(t).toISOString().slice(0, 13));
  const of = (status: string) => {
    const map = new Map(rows.filter((r) => r.to_status === status).map((r) => [r.hour, r.n]));
    return labels.map((l) => map.get(l) ?? 0);
  };
  return { labels, issued: of('issued'), failed: of('failed') };
}

/** One parameter holding a Postgres array literal (drizzle would spread a JS array into many). */
const pgArray = (ids: string[]) => `{${ids.join(',')}}`;

/** How many of these orders are in each status now (a bulk action's progress). */
export async function statusCounts(db: Database, ids: string[]) {
  if (ids.length === 0) return {} as Record<string, number>;
  const rows = (
    await db.execute<{ status: string; n: number }>(
      sql`select status, count(*)::int as n from orders where id = any(${pgArray(ids)}::uuid[]) group by status`,
    )
  ).rows;
  return Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
}
