import { randomUUID } from 'node:crypto';
import {
  ACTIVE_STATUS_SQL_LIST,
  type Algorithm,
  BACKLOG_COUNT_CAP,
  type CertificateAuthority,
  domainSetKey,
  type OrderKind,
  PRIORITY,
  PRIORITY_LANE_WIDTH,
  type PriorityLane,
  type RenewalReason,
} from '@certq/core';
import { eq, getTableColumns, lt, type SQL, sql } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Database, Queryable } from './client';
import { claimDomains, DomainOwnedError, lockDomainNames, ownershipRefusalOf } from './ownership';
import { idempotencyKeys, type Order, orders, tenants } from './schema';

export interface OrderRequest {
  tenantId: string;
  domains: string[];
  algorithm?: Algorithm;
  /** The CA; with `caChoices`, its first entry. Neither given: the tenant's default list, else google. */
  ca?: CertificateAuthority;
  /** CAs in order of preference, tried one after the other (CAA refusal, application failed). */
  caChoices?: CertificateAuthority[];
  kind?: OrderKind;
  renewalOfCertificateId?: string;
  renewalBatchId?: string;
  /** Why a renewal was created (default: `manual` with a batch, else `nearing_expiry`); none for a new order. */
  renewalReason?: RenewalReason;
  /**
   * The queue lane (default: `renewal` for a renewal, else `interactive`); bulk requests say `bulk`.
   * The stored priority is the lane's base plus the order's place in its tenant's backlog in that lane.
   */
  lane?: PriorityLane;
  /** When the first job may run (renewals are spread out a little); default now. */
  notBefore?: Date;
}

export interface InsertOrdersResult {
  /** One entry per request, in request order. */
  orders: { order: Order; created: boolean }[];
}

/**
 * A conflicting active order kept ending between our insert and our look-up of it (three times in a
 * row): the caller may try the whole request again.
 */
export class OrderInsertRaceError extends Error {
  constructor(readonly domainsKey: string) {
    super(`the active order for ${domainsKey} kept changing while inserting; try again`);
    this.name = 'OrderInsertRaceError';
  }
}

/** The SQL condition "the order is active", from core's active set. */
export const isActiveOrder = sql`${orders.status} in (${sql.raw(ACTIVE_STATUS_SQL_LIST)})`;

const INSERT_ATTEMPTS = 3;

/** A renewal says why it was created (a scan's unless told); a new order has no reason. */
const renewalReasonOf = (r: OrderRequest): RenewalReason | null =>
  r.kind === 'renewal' ? (r.renewalReason ?? (r.renewalBatchId ? 'manual' : 'nearing_expiry')) : null;
const pairKey = (tenantId: string, domainsKey: string) => `${tenantId}|${domainsKey}`;

/**
 * The one way orders are created (single, bulk, renewals). A tenant may have only one active order
 * per domain set (a partial unique index): a request for a set that already has one — or that
 * appeared earlier in the same call — gets that order back with `created: false` instead of failing
 * the whole call. Call inside a transaction for all-or-nothing.
 *
 * Each new order's priority puts it in its lane after its tenant's active orders there (PRIORITY in
 * @certq/core), computed in the same statement: one tenant's 10,000 queued orders interleave with
 * another tenant's one instead of queueing ahead of it.
 *
 * The whole call is one `INSERT … SELECT FROM unnest(…)` with one array parameter per column, so its
 * cost is Postgres's own whatever the size (a multi-row VALUES built by drizzle spent ~70 µs per row
 * building SQL: 10,000 orders ≈ 1.4 s against ≈ 0.45 s here).
 */
export async function insertOrders(
  db: Queryable,
  requests: readonly OrderRequest[],
): Promise<InsertOrdersResult> {
  try {
    return await insertClaimed(db, requests);
  } catch (error) {
    const refused = ownershipRefusalOf(error);
    throw refused ? new DomainOwnedError(refused) : error;
  }
}

/**
 * Each new order claims its names for its tenant (@certq/db ownership): a single order in its own
 * insert statement (certq_claim_for_order), several first in one call per tenant after taking every
 * name's lock in one sorted order — so call those inside a transaction, as createOrders does, for the
 * claims to commit with their orders. Renewals claim nothing (their names are their tenant's already).
 */
async function insertClaimed(db: Queryable, requests: readonly OrderRequest[]): Promise<InsertOrdersResult> {
  if (requests.length === 0) return { orders: [] };
  if (requests.length > 1) {
    const byTenant = new Map<string, Set<string>>();
    for (const r of requests) {
      if (r.kind === 'renewal') continue;
      const names = byTenant.get(r.tenantId) ?? new Set<string>();
      byTenant.set(r.tenantId, names);
      for (const d of r.domains) names.add(d);
    }
    if (byTenant.size > 0) {
      await lockDomainNames(
        db,
        [...byTenant.values()].flatMap((n) => [...n]),
      );
      for (const [tenantId, names] of byTenant) await claimDomains(db, tenantId, [...names]);
    }
  }
  const keys = requests.map((r) => domainSetKey(r.domains));
  const picks: ({ id: string; created: boolean } | undefined)[] = new Array(requests.length);
  const claimed = new Set<string>();
  // Orders whose insert returned them whole (a single request): not read again below.
  const inserted = new Map<string, Order>();
  let pending = requests.map((_, i) => i);
  for (let attempt = 1; pending.length > 0; attempt++) {
    // Under READ COMMITTED each statement sees what committed before it: a conflicting order that ended
    // between our insert and our look-up leaves a request with neither, and inserting it again succeeds.
    if (attempt > INSERT_ATTEMPTS) throw new OrderInsertRaceError(keys[pending[0]!]!);
    const rows = pending.map((i) => ({ request: requests[i]!, key: keys[i]! }));
    const fresh = rows.length === 1 ? await insertRow(db, rows[0]!, inserted) : await insertRows(db, rows);
    const missing = pending.filter((i) => !fresh.has(pairKey(requests[i]!.tenantId, keys[i]!)));
    const existing = missing.length
      ? await activeOrderIds(
          db,
          missing.map((i) => ({ tenantId: requests[i]!.tenantId, key: keys[i]! })),
        )
      : new Map<string, string>();
    const next: number[] = [];
    for (const i of pending) {
      const k = pairKey(requests[i]!.tenantId, keys[i]!);
      const mine = fresh.get(k);
      if (mine && !claimed.has(k)) {
        claimed.add(k);
        picks[i] = { id: mine, created: true };
        continue;
      }
      // An earlier request in this call took the set (`mine`), or another order holds it (`existing`).
      const other = existing.get(k) ?? mine;
      if (other) picks[i] = { id: other, created: false };
      else next.push(i);
    }
    pending = next;
  }
  const ids = [...new Set(picks.map((p) => p!.id))].filter((id) => !inserted.has(id));
  const rows = ids.length
    ? await db
        .select()
        .from(orders)
        .where(sql`${orders.id} = any(${sql.param(ids)}::uuid[])`)
    : [];
  const byId = new Map<string, Order>([...inserted, ...rows.map((o) => [o.id, o] as const)]);
  return { orders: picks.map((p) => ({ order: byId.get(p!.id)!, created: p!.created })) };
}

/** Inserts the requests whose tenant has no active order for the set; returns `tenant|key` → new id. */
async function insertRows(
  db: Queryable,
  rows: readonly { request: OrderRequest; key: string }[],
): Promise<Map<string, string>> {
  const column = <T>(pick: (r: OrderRequest, key: string) => T) => rows.map((r) => pick(r.request, r.key));
  // Hostnames never contain a comma, so a comma-joined list round-trips through string_to_array.
  const inLane = (o: string, base: string) =>
    sql.raw(`${o}.tenant_id = k.tenant_id and ${o}.status in (${ACTIVE_STATUS_SQL_LIST})
      and ${o}.priority >= ${base} and ${o}.priority < ${base} + ${PRIORITY_LANE_WIDTH}`);
  const inserted = await db.execute<{ id: string; tenant_id: string; domains_key: string }>(sql`
    with t as (select * from unnest(
      ${sql.param(column((r) => r.tenantId))}::uuid[],
      ${sql.param(column((r) => r.domains.join(',')))}::text[],
      ${sql.param(column((_, key) => key))}::text[],
      ${sql.param(column((r) => r.algorithm ?? 'ECC'))}::algorithm[],
      ${sql.param(column((r) => r.ca ?? null))}::certificate_authority[],
      ${sql.param(column((r) => (r.caChoices?.length ? r.caChoices.join(',') : null)))}::text[],
      ${sql.param(column((r) => r.kind ?? 'new'))}::order_kind[],
      ${sql.param(column((r) => PRIORITY[r.lane ?? (r.kind === 'renewal' ? 'renewal' : 'interactive')]))}::int[],
      ${sql.param(column((r) => r.renewalOfCertificateId ?? null))}::uuid[],
      ${sql.param(column((r) => r.renewalBatchId ?? null))}::uuid[],
      ${sql.param(column(renewalReasonOf))}::renewal_reason[],
      ${sql.param(column((r) => r.notBefore?.toISOString() ?? null))}::timestamptz[]
    ) with ordinality as t(tenant_id, domains, domains_key, algorithm, ca, ca_choices, kind, lane, renewal_of, batch_id, reason, not_before, ord)),
    -- Where each tenant's backlog in each lane asked for ends: its active orders there, counted up to
    -- the cap through orders_active_by_tenant_priority; past the cap, just after its last one.
    -- Materialized: once per tenant and lane, not once per request row (10,000 counts for one bulk).
    backlog as materialized (
      select k.tenant_id, k.lane, case when c.n < ${BACKLOG_COUNT_CAP} then c.n else coalesce(
        (select max(l.priority) from ${orders} l where ${inLane('l', 'k.lane')}) - k.lane + 1, c.n) end as start
      from (select distinct tenant_id, lane from t) k
      cross join lateral (select count(*)::int as n from (
        select 1 from ${orders} a where ${inLane('a', 'k.lane')} limit ${BACKLOG_COUNT_CAP}) x) c)
    insert into ${orders} (tenant_id, domains, domains_key, algorithm, ca, ca_choices, kind, priority,
                           renewal_of_certificate_id, renewal_batch_id, renewal_reason, next_attempt_at)
    select t.tenant_id, string_to_array(t.domains, ','), t.domains_key, t.algorithm,
           coalesce((string_to_array(t.ca_choices, ','))[1]::certificate_authority, t.ca, td.choices[1], 'google'),
           case when t.ca_choices is not null then string_to_array(t.ca_choices, ',')::certificate_authority[]
                when t.ca is null then td.choices end,
           t.kind,
           -- This call's requests of one tenant and lane take the next places, in request order.
           t.lane + least(${PRIORITY_LANE_WIDTH - 1},
             b.start + row_number() over (partition by t.tenant_id, t.lane order by t.ord) - 1),
           t.renewal_of, t.batch_id, t.reason, coalesce(t.not_before, now())
    from t join backlog b on b.tenant_id = t.tenant_id and b.lane = t.lane
    -- A request naming no CA takes its tenant's default list.
    left join lateral (select default_ca_choices as choices from ${tenants} where id = t.tenant_id) td on true
    order by t.ord
    on conflict (tenant_id, domains_key) where ${sql.raw(`status in (${ACTIVE_STATUS_SQL_LIST})`)} do nothing
    returning id, tenant_id, domains_key`);
  // Two requests in one call for the same tenant and set: the first row wins, the others find it.
  return new Map(inserted.rows.map((r) => [pairKey(r.tenant_id, r.domains_key), r.id]));
}

/**
 * The statement of insertRow (and, under an Idempotency-Key, of insertOrderWithKey): one order, its
 * values all parameters, `guard` a condition on whether to insert at all. Its text never changes, so it
 * is built once and goes by name: Postgres parses it once per connection and, after five executions,
 * keeps a generic plan instead of planning each insert (measured: 1.1 ms → 0.4 ms per insert). The
 * backlog reads are written as ordered index scans (`order by priority … limit`), which only
 * orders_active_by_tenant_priority serves without a sort, so a generic plan cannot settle on reading
 * the tenant's whole backlog: written as `max(priority)`, with a table emptied after holding one
 * tenant's large backlog, the generic plan aggregated that tenant's rows through the unique index
 * (5 ms per insert at 20,000 rows).
 */
function insertOneSql(guard: SQL): SQL {
  const p = sql.placeholder;
  const active = sql.raw(`status in (${ACTIVE_STATUS_SQL_LIST})`);
  const inLane = (o: string) =>
    sql`${sql.raw(o)}.tenant_id = ${p('tenantId')}::uuid and ${sql.raw(o)}.${active}
      and ${sql.raw(o)}.priority >= ${p('lane')}::int and ${sql.raw(o)}.priority < ${p('laneEnd')}::int`;
  const tenantDefaults = sql`(select default_ca_choices from ${tenants} where id = ${p('tenantId')}::uuid)`;
  return sql`insert into ${orders} (id, tenant_id, domains, domains_key, algorithm, ca, ca_choices, kind,
      priority, renewal_of_certificate_id, renewal_batch_id, renewal_reason, next_attempt_at)
    select ${p('id')}::uuid,
      -- The tenant id, once the names are claimed for it (it raises when another tenant uses one).
      certq_claim_for_order(${p('tenantId')}::uuid, ${p('domains')}::text[], ${p('kind')}::order_kind),
      ${p('domains')}::text[], ${p('key')}::text,
      ${p('algorithm')}::algorithm,
      -- A request naming no CA takes its tenant's default list.
      coalesce(${p('ca')}::certificate_authority, ${tenantDefaults}[1], 'google'),
      case when ${p('hasChoices')}::boolean then ${p('caChoices')}::certificate_authority[]
        when ${p('ca')}::certificate_authority is null then ${tenantDefaults} end,
      ${p('kind')}::order_kind,
      -- After the tenant's active orders in the lane, as insertRows places them.
      ${p('lane')}::int + least(${PRIORITY_LANE_WIDTH - 1}, (
        select case when c.n < ${BACKLOG_COUNT_CAP} then c.n else coalesce((
          select l.priority from ${orders} l where ${inLane('l')} order by l.priority desc limit 1
        ) - ${p('lane')}::int + 1, c.n) end
        from (select count(*)::int as n from (
          select 1 from ${orders} a where ${inLane('a')} order by a.priority limit ${BACKLOG_COUNT_CAP}) x) c)),
      ${p('renewalOf')}::uuid, ${p('batchId')}::uuid, ${p('reason')}::renewal_reason,
      coalesce(${p('notBefore')}::timestamptz, now())
    where ${guard}
    on conflict (tenant_id, domains_key) where ${active} do nothing
    returning *`;
}

/**
 * Under an Idempotency-Key: the key's row and the order in one statement. The key is claimed first
 * (its primary key makes a concurrent request with the same key wait for this one's commit, then do
 * nothing), pointing at the tenant's active order for the set if there is one, else at the new order,
 * which is inserted only then. Should another order take the set in between, the key points at an
 * order that does not exist: the foreign key refuses the whole statement and the caller tries again.
 * No row when the key was already taken: the caller reads it (a new statement sees the winner's commit).
 */
function insertWithKeySql(): SQL {
  const p = sql.placeholder;
  const active = sql.raw(`status in (${ACTIVE_STATUS_SQL_LIST})`);
  return sql`with claim as (
      insert into ${idempotencyKeys} (tenant_id, key, request_hash, order_id)
      values (${p('tenantId')}::uuid, ${p('idempotencyKey')}::text, ${p('requestHash')}::text, coalesce(
        (select id from ${orders} where tenant_id = ${p('tenantId')}::uuid and domains_key = ${p('key')}::text and ${active}),
        ${p('id')}::uuid))
      on conflict (tenant_id, key) do nothing
      returning order_id),
    placed as (${insertOneSql(sql`exists (select 1 from claim where claim.order_id = ${p('id')}::uuid)`)})
    select claim.order_id as claimed_order_id, placed.* from claim left join placed on true`;
}

const dialect = new PgDialect();
const statements = new Map<string, { sql: string; params: unknown[] }>();
/** A statement built once (see insertOneSql) and prepared by `name` on the caller's session. */
function prepared(db: Queryable, name: string, build: () => SQL) {
  let query = statements.get(name);
  if (!query) {
    query = dialect.sqlToQuery(build());
    statements.set(name, query);
  }
  return db._.session.prepareQuery(query, undefined, name, false);
}

const orderColumns = Object.entries(getTableColumns(orders));

/** An orders row as `returning *` gives it (column names, driver values), mapped as drizzle's select maps it. */
function orderFromRow(row: Record<string, unknown>): Order {
  const order: Record<string, unknown> = {};
  for (const [key, column] of orderColumns) {
    const value = row[column.name];
    order[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return order as Order;
}

/** The parameters of insertOneSql for one request: `id` is the new order's id, if it is inserted. */
function oneOrderValues(r: OrderRequest, key: string, id: string) {
  const lane = PRIORITY[r.lane ?? (r.kind === 'renewal' ? 'renewal' : 'interactive')];
  const caChoices = r.caChoices?.length ? r.caChoices : null;
  return {
    id,
    tenantId: r.tenantId,
    domains: r.domains,
    key,
    algorithm: r.algorithm ?? 'ECC',
    ca: caChoices?.[0] ?? r.ca ?? null,
    hasChoices: caChoices !== null,
    caChoices,
    kind: r.kind ?? 'new',
    lane,
    laneEnd: lane + PRIORITY_LANE_WIDTH,
    renewalOf: r.renewalOfCertificateId ?? null,
    batchId: r.renewalBatchId ?? null,
    reason: renewalReasonOf(r),
    notBefore: r.notBefore?.toISOString() ?? null,
  };
}

/**
 * insertRows for one request (every POST /v1/orders): the same placement, CA and conflict rules as
 * scalars, without unnest or a materialized CTE, in one named statement (see insertOneSql), prepared on
 * the caller's session (the pool, or a transaction's connection) without building it again. It returns
 * the whole row (into `inserted`, by id), so the order is not read again by a second statement.
 */
async function insertRow(
  db: Queryable,
  { request: r, key }: { request: OrderRequest; key: string },
  inserted: Map<string, Order>,
): Promise<Map<string, string>> {
  const statement = prepared(db, 'certq_insert_order', () => insertOneSql(sql`true`));
  const result = (await statement.execute(oneOrderValues(r, key, randomUUID()))) as unknown as {
    rows: Record<string, unknown>[];
  };
  const row = result.rows[0];
  if (!row) return new Map();
  const order = orderFromRow(row);
  inserted.set(order.id, order);
  return new Map([[pairKey(r.tenantId, key), order.id]]);
}

/** What insertOrderWithKey did: the key's order (new, or the set's active one), or the key was taken. */
export type KeyedInsertResult =
  | { claimed: true; order: Order; created: true }
  | { claimed: true; orderId: string; created: false }
  | { claimed: false };

/**
 * One order and its Idempotency-Key row in one statement (see insertWithKeySql). A key already taken
 * comes back `claimed: false`: the caller reads the key's row. A race with another order for the set
 * surfaces as a foreign-key violation on idempotency_keys_order_id_orders_id_fk: try again.
 */
export async function insertOrderWithKey(
  db: Queryable,
  request: OrderRequest,
  idempotency: { key: string; requestHash: string },
): Promise<KeyedInsertResult> {
  const key = domainSetKey(request.domains);
  const statement = prepared(db, 'certq_insert_order_with_key', insertWithKeySql);
  let result: { rows: Record<string, unknown>[] };
  try {
    result = (await statement.execute({
      ...oneOrderValues(request, key, randomUUID()),
      idempotencyKey: idempotency.key,
      requestHash: idempotency.requestHash,
    })) as unknown as { rows: Record<string, unknown>[] };
  } catch (error) {
    const refused = ownershipRefusalOf(error);
    throw refused ? new DomainOwnedError(refused) : error;
  }
  const row = result.rows[0];
  if (!row) return { claimed: false };
  if (row.id === null || row.id === undefined)
    return { claimed: true, orderId: row.claimed_order_id as string, created: false };
  return { claimed: true, order: orderFromRow(row), created: true };
}

async function activeOrderIds(
  db: Queryable,
  pairs: readonly { tenantId: string; key: string }[],
): Promise<Map<string, string>> {
  const found = await db.execute<{ id: string; tenant_id: string; domains_key: string }>(sql`
    select id, tenant_id, domains_key from ${orders}
    where ${isActiveOrder}
      and (tenant_id, domains_key) in (
        select * from unnest(${sql.param(pairs.map((p) => p.tenantId))}::uuid[], ${sql.param(pairs.map((p) => p.key))}::text[]))`);
  return new Map(found.rows.map((r) => [pairKey(r.tenant_id, r.domains_key), r.id]));
}

export async function getOrder(db: Queryable, orderId: string): Promise<Order | undefined> {
  const rows = await db.select().from(orders).where(eq(orders.id, orderId));
  return rows[0];
}

const findOrderStatements = new WeakMap<object, ReturnType<typeof prepareFindOrder>>();

function prepareFindOrder(db: Database) {
  return db
    .select()
    .from(orders)
    .where(eq(orders.id, sql.placeholder('id')))
    .prepare('certq_find_order');
}

/** One order by id through a prepared statement (the worker's hottest read); getOrder on a transaction. */
export async function findOrder(db: Queryable, orderId: string): Promise<Order | undefined> {
  if (!('transaction' in db) || 'rollback' in db) return getOrder(db, orderId);
  let statement = findOrderStatements.get(db);
  if (!statement) {
    statement = prepareFindOrder(db as Database);
    findOrderStatements.set(db, statement);
  }
  const rows = await statement.execute({ id: orderId });
  return rows[0];
}

/** Idempotency keys are honoured for a day (as Stripe does); older ones are deleted by the worker's maintenance job. */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 3600_000;

export async function purgeIdempotencyKeys(db: Queryable, now: Date): Promise<number> {
  const deleted = await db
    .delete(idempotencyKeys)
    .where(lt(idempotencyKeys.createdAt, new Date(now.getTime() - IDEMPOTENCY_KEY_TTL_MS)))
    .returning({ key: idempotencyKeys.key });
  return deleted.length;
}
