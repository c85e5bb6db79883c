import { ACTIVE_STATUSES, BACKLOG_COUNT_CAP, PRIORITY } from '@certq/core';
import { createTestDatabase, it } from '@certq/testing';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import {
  createDb,
  type DbHandle,
  idempotencyKeys,
  insertOrders,
  lockOrder,
  migrate,
  orderEvents,
  orders,
  purgeIdempotencyKeys,
  takeRecordedWebhookDeliveries,
  tenants,
  transitionOrder,
  transitionOrderIfUnchanged,
  violatedConstraint,
  webhookDeliveries,
} from '../src';

async function constraintOf(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    return violatedConstraint(error);
  }
  throw new Error('statement succeeded');
}

async function newTenant(handle: DbHandle, name = `t-${Math.random()}`) {
  const [tenant] = await handle.db
    .insert(tenants)
    .values({ name, tokenHash: `hash-${name}` })
    .returning();
  return tenant!;
}

/** An order of one domain, inserted directly (no state machine involved). */
async function newOrder(handle: DbHandle, tenantId: string, domain: string) {
  const [order] = await handle.db
    .insert(orders)
    .values({ tenantId, domains: [domain], domainsKey: domain })
    .returning();
  return order!;
}

describe('@certq/db', () => {
  it('migrating an up-to-date database again changes nothing', async ({ database }) => {
    await expect(migrate(database.url)).resolves.toBeUndefined();
  });

  it("writes the active partial indexes from core's active set", async ({ db: handle }) => {
    // drizzle writes the schema's WHERE from ACTIVE_STATUSES; the committed migrations must agree.
    const { rows } = await handle.db.execute<{ indexname: string; indexdef: string }>(
      sql`select indexname, indexdef from pg_indexes where tablename = 'orders' and indexdef like '%WHERE%status%'`,
    );
    expect(rows.map((r) => r.indexname).sort()).toEqual([
      'orders_active_by_next_attempt',
      'orders_active_by_tenant_priority',
      'orders_one_active_per_domain_set',
    ]);
    for (const { indexdef } of rows) {
      const listed = [...indexdef.matchAll(/'(\w+)'::order_status/g)].map((m) => m[1]);
      expect(listed.sort()).toEqual([...ACTIVE_STATUSES].sort());
    }
  });

  it('allows one active order per tenant and domain set, and another once it ends', async ({
    db: handle,
  }) => {
    const tenant = await newTenant(handle);
    const values = { tenantId: tenant.id, domains: ['a.com', 'b.com'], domainsKey: 'a.com,b.com' };
    const [first] = await handle.db.insert(orders).values(values).returning();
    expect(await constraintOf(handle.db.insert(orders).values(values))).toBe(
      'orders_one_active_per_domain_set',
    );
    await handle.db.update(orders).set({ status: 'cancelled' }).where(eq(orders.id, first!.id));
    await expect(handle.db.insert(orders).values(values)).resolves.toBeDefined();
  });

  it('refuses an issuing order without an application id, and a duplicate application id', async ({
    db: handle,
  }) => {
    const tenant = await newTenant(handle);
    const insertOrder = (domain: string, fields: { status?: 'issuing'; applyId?: string }) =>
      handle.db
        .insert(orders)
        .values({ tenantId: tenant.id, domains: [domain], domainsKey: domain, ...fields });
    expect(await constraintOf(insertOrder('x.com', { status: 'issuing' }))).toBe(
      'orders_issuing_has_apply_id',
    );
    await insertOrder('y.com', { applyId: '1' });
    expect(await constraintOf(insertOrder('z.com', { applyId: '1' }))).toBe('orders_apply_id_unique');
    expect(
      await constraintOf(
        handle.db.insert(orders).values({ tenantId: tenant.id, domains: [], domainsKey: '' }),
      ),
    ).toBe('orders_domains_count');
  });

  it('changes status only along the state machine, logging each transition', async ({ db: handle }) => {
    const tenant = await newTenant(handle);
    const order = await newOrder(handle, tenant.id, 's.com');
    await handle.db.transaction(async (tx) => {
      const locked = await lockOrder(tx, order!.id);
      const next = await transitionOrder(tx, {
        order: locked!,
        to: 'applying',
        event: { detail: { note: 'dns ok' } },
      });
      expect(next.status).toBe('applying');
    });
    await expect(
      handle.db.transaction(async (tx) => {
        const locked = await lockOrder(tx, order!.id);
        await transitionOrder(tx, { order: locked!, to: 'issued' });
      }),
    ).rejects.toThrow(/illegal order transition applying → issued/);
    const events = await handle.db.select().from(orderEvents).where(eq(orderEvents.orderId, order!.id));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      fromStatus: 'verifying',
      toStatus: 'applying',
      type: 'status_changed',
    });
  });

  it('without a lock, changes an order only if it is still as read: one statement, its event included', async ({
    db: handle,
  }) => {
    const tenant = await newTenant(handle);
    const read = await newOrder(handle, tenant.id, 'u.com');
    // Someone else moves the order on (a new run) after it was read.
    await handle.db.update(orders).set({ attempts: 2 }).where(eq(orders.id, read!.id));
    expect(await transitionOrderIfUnchanged(handle.db, { order: read!, to: 'applying' })).toBeUndefined();
    const [current] = await handle.db.select().from(orders).where(eq(orders.id, read!.id));
    const moved = await transitionOrderIfUnchanged(handle.db, {
      order: current!,
      to: 'applying',
      event: { detail: { note: 'dns ok' } },
    });
    expect(moved).toMatchObject({ status: 'applying', attempts: 2 });
    expect(moved!.updatedAt).toBeInstanceOf(Date);
    const events = await handle.db.select().from(orderEvents).where(eq(orderEvents.orderId, read!.id));
    expect(events).toMatchObject([
      { fromStatus: 'verifying', toStatus: 'applying', detail: { note: 'dns ok' } },
    ]);
    // The order it returns is the row as drizzle reads it, column for column (dates, enum arrays, jsonb).
    const at = new Date('2030-01-02T03:04:05.678Z');
    const failures = [{ ca: 'google', reason: 'CAA says no' }];
    const changed = await transitionOrderIfUnchanged(handle.db, {
      order: moved!,
      to: 'applying',
      set: {
        caChoices: ['google', 'letsencrypt'],
        caFailures: failures,
        nextAttemptAt: at,
        lastPolledAt: sql`${at.toISOString()}::timestamptz + make_interval(secs => ${10})`,
        lastError: null,
        applyId: undefined,
      },
    });
    const [reread] = await handle.db.select().from(orders).where(eq(orders.id, read!.id));
    expect(changed).toEqual(reread);
    expect(reread).toMatchObject({
      caChoices: ['google', 'letsencrypt'],
      caFailures: failures,
      nextAttemptAt: at,
      lastPolledAt: new Date(at.getTime() + 10_000),
    });
    // A terminal outcome writes more (webhook outbox, renewal backoff): it must come with a transaction.
    await expect(transitionOrderIfUnchanged(handle.db, { order: moved!, to: 'failed' })).rejects.toThrow(
      /needs a transaction/,
    );
  });

  it('issued with its certificate known: one statement, no transaction, the webhook outbox row in it', async ({
    db: handle,
  }) => {
    const issue = async (tenantId: string, domain: string) => {
      const [order] = await handle.db
        .insert(orders)
        .values({
          tenantId,
          domains: [domain],
          domainsKey: domain,
          status: 'issuing',
          applyId: `a-${domain}`,
        })
        .returning();
      const certificate = {
        certificateId: crypto.randomUUID(),
        notAfter: new Date('2031-01-01T00:00:00Z'),
        fingerprint: 'ab'.repeat(32),
      };
      const issued = await transitionOrderIfUnchanged(handle.db, {
        order: order!,
        to: 'issued',
        set: { certificateId: certificate.certificateId },
        issued: certificate,
      });
      return { issued, certificate, recorded: takeRecordedWebhookDeliveries(handle.db) };
    };
    const quiet = await newTenant(handle);
    const plain = await issue(quiet.id, 'quiet.example.com');
    expect(plain.issued).toMatchObject({ status: 'issued', certificateId: plain.certificate.certificateId });
    expect(plain.recorded).toEqual([]);
    // Without its certificate the webhook would be written by a second statement: a transaction is needed.
    const [bare] = await handle.db
      .insert(orders)
      .values({
        tenantId: quiet.id,
        domains: ['bare.example.com'],
        domainsKey: 'bare',
        status: 'issuing',
        applyId: 'a-bare',
      })
      .returning();
    await expect(transitionOrderIfUnchanged(handle.db, { order: bare!, to: 'issued' })).rejects.toThrow(
      /needs a transaction/,
    );

    const [hooked] = await handle.db
      .insert(tenants)
      .values({
        name: `h-${Math.random()}`,
        tokenHash: `h-${Math.random()}`,
        webhookUrl: 'https://hooks.example.com/',
      })
      .returning();
    const withHook = await issue(hooked!.id, 'hooked.example.com');
    const rows = await handle.db
      .select()
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.tenantId, hooked!.id));
    // Committed with the transition, and noted for whoever enqueues (takeRecordedWebhookDeliveries).
    expect(withHook.recorded).toEqual([rows[0]!.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      orderId: withHook.issued!.id,
      event: 'certificate.issued',
      payload: {
        id: rows[0]!.id,
        event: 'certificate.issued',
        tenantId: hooked!.id,
        data: {
          orderId: withHook.issued!.id,
          kind: 'new',
          domains: ['hooked.example.com'],
          certificateId: withHook.certificate.certificateId,
          notAfter: '2031-01-01T00:00:00.000Z',
          fingerprint: 'ab'.repeat(32),
        },
      },
    });
  });
});

describe('priority lanes', () => {
  const place = async (handle: DbHandle, tenantId: string, name: string, lane?: 'bulk') =>
    (await insertOrders(handle.db, [{ tenantId, domains: [`${name}.lanes.example.com`], lane }])).orders[0]!
      .order;

  it("places a tenant's order after its own active ones in the lane, whatever other tenants queued", async ({
    db: handle,
  }) => {
    const [big, small] = [await newTenant(handle), await newTenant(handle)];
    const many = Array.from({ length: BACKLOG_COUNT_CAP + 5 }, (_, i) => ({
      tenantId: big.id,
      domains: [`b${i}.lanes.example.com`],
      lane: 'bulk' as const,
    }));
    const { orders: queued } = await insertOrders(handle.db, many);
    expect(queued.map((o) => o.order.priority)).toEqual(many.map((_, i) => PRIORITY.bulk + i));
    // Another tenant's first bulk order and first single order go at the head of their lanes.
    expect((await place(handle, small.id, 's-bulk', 'bulk')).priority).toBe(PRIORITY.bulk);
    expect((await place(handle, small.id, 's-single')).priority).toBe(PRIORITY.interactive);
    expect((await place(handle, big.id, 'b-single')).priority).toBe(PRIORITY.interactive);
    // Past the counting cap, after the tenant's last (FIFO within its own backlog).
    expect((await place(handle, big.id, 'b-next', 'bulk')).priority).toBe(PRIORITY.bulk + many.length);
    // Ended orders no longer count: with two of them left active, the next goes third.
    const ending = queued.slice(0, -2).map((o) => o.order.id);
    await handle.db.update(orders).set({ status: 'cancelled' }).where(inArray(orders.id, ending));
    await handle.db
      .update(orders)
      .set({ status: 'cancelled' })
      .where(and(eq(orders.tenantId, big.id), eq(orders.domains, ['b-next.lanes.example.com'])));
    expect((await place(handle, big.id, 'b-later', 'bulk')).priority).toBe(PRIORITY.bulk + 2);
  });
});

describe('insertOrders', () => {
  it('gives a single new order as a select reads it (it comes back from its insert, not read again)', async ({
    db: handle,
  }) => {
    const tenant = await newTenant(handle);
    const [created] = (
      await insertOrders(handle.db, [
        {
          tenantId: tenant.id,
          domains: ['one.example.com'],
          ca: 'zerossl',
          caChoices: ['zerossl', 'google'],
        },
      ])
    ).orders;
    expect(created!.created).toBe(true);
    const [read] = await handle.db.select().from(orders).where(eq(orders.id, created!.order.id));
    expect(created!.order).toEqual(read);
    expect(created!.order.caChoices).toEqual(['zerossl', 'google']);
    expect(created!.order.createdAt).toBeInstanceOf(Date);
  });

  it("keeps a single order's generic plan on ordered backlog reads, even when made on an empty table", async () => {
    // A fresh database (an empty, never analysed orders table), one connection, generic plans at once:
    // the plan Postgres would settle on after five executions and keep as the table grows.
    const database = await createTestDatabase();
    const one = createDb(database.url, { max: 1 });
    try {
      await one.pool.query('set plan_cache_mode = force_generic_plan');
      const tenant = await newTenant(one);
      await insertOrders(one.db, [{ tenantId: tenant.id, domains: ['plan.example.com'] }]);
      const [{ count }] = (
        await one.pool.query(
          "select cardinality(parameter_types) as count from pg_prepared_statements where name = 'certq_insert_order'",
        )
      ).rows;
      const nulls = Array.from({ length: count }, () => 'null').join(', ');
      const { rows } = await one.pool.query(`explain (format json) execute certq_insert_order(${nulls})`);
      type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };
      const scans: string[] = [];
      const walk = (node: PlanNode, parent?: PlanNode) => {
        if (node['Relation Name'] === 'orders' && node['Node Type'] !== 'ModifyTable')
          scans.push(
            `${parent?.['Node Type']} > ${node['Node Type']} ${node['Scan Direction']} ${node['Index Name']}`,
          );
        for (const child of node.Plans ?? []) walk(child, node);
      };
      walk(rows[0]['QUERY PLAN'][0].Plan);
      // The probe after the tenant's last order and the capped count of its lane: each stops early on
      // the backlog index, never an aggregate over the tenant's whole backlog.
      expect(scans.sort()).toEqual([
        'Limit > Index Only Scan Backward orders_active_by_tenant_priority',
        'Limit > Index Only Scan Forward orders_active_by_tenant_priority',
      ]);
    } finally {
      await one.close();
      await database.drop();
    }
  });
});

describe('idempotency keys', () => {
  it('are purged after a day, and only then', async ({ db: handle }) => {
    const tenant = await newTenant(handle);
    const order = await newOrder(handle, tenant.id, 'idem.example.com');
    const now = new Date();
    await handle.db.insert(idempotencyKeys).values([
      {
        tenantId: tenant.id,
        key: 'old',
        requestHash: 'h',
        orderId: order!.id,
        createdAt: new Date(now.getTime() - 25 * 3600_000),
      },
      {
        tenantId: tenant.id,
        key: 'fresh',
        requestHash: 'h',
        orderId: order!.id,
        createdAt: new Date(now.getTime() - 23 * 3600_000),
      },
    ]);
    expect(await purgeIdempotencyKeys(handle.db, now)).toBe(1);
    const left = await handle.db
      .select({ key: idempotencyKeys.key })
      .from(idempotencyKeys)
      .where(eq(idempotencyKeys.tenantId, tenant.id));
    expect(left).toEqual([{ key: 'fresh' }]);
  });
});

describe('hot statements by name', () => {
  it("sends a transition by name (parsed once per connection), and unnamed where prepared statements can't be used", async ({
    database,
  }) => {
    for (const preparedStatements of [true, false]) {
      const handle = createDb(database.url, { max: 1, preparedStatements });
      try {
        const tenant = await newTenant(handle);
        const { orders: placed } = await insertOrders(handle.db, [
          { tenantId: tenant.id, domains: [`named-${preparedStatements}.example.com`] },
        ]);
        const moved = await transitionOrderIfUnchanged(handle.db, {
          order: placed[0]!.order,
          to: 'applying',
        });
        expect(moved?.status).toBe('applying');
        const { rows } = await handle.db.execute<{ statement: string }>(
          sql`select statement from pg_prepared_statements where name like 'certq\_%'`,
        );
        const transitions = rows.filter((r) => r.statement.startsWith('with "transitioned"'));
        expect(transitions).toHaveLength(preparedStatements ? 1 : 0);
      } finally {
        await handle.close();
      }
    }
  });
});
