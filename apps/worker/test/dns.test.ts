import { orderDns, orderEvents, webhookDeliveries } from '@certq/db';
import { createDnsResolver } from '@certq/dns';
import {
  type NamedServer,
  type SilentResolver,
  startNamed,
  startSilentResolver,
  waitFor,
} from '@certq/testing';
import { asc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkbench, type Workbench } from './helpers';

/*
 * certq's own DNS checks against a real DNS server: one bind9 `named` that certq (DNS_RESOLVERS) and
 * the simulator (SIM_VERIFY=dns, as httpsok checks public DNS) both ask. Local checks start at 300 ms here (15 s in
 * production) and grow to their cap of 20 × that.
 */
let named: NamedServer;
let bench: Workbench;
beforeAll(async () => {
  named = await startNamed();
  bench = await createWorkbench({
    sim: { verify: 'dns', dnsResolver: named.address, caFailures: ['zerossl'] },
    env: { DNS_RESOLVERS: named.address, DNS_CHECK_INTERVAL_MS: '300' },
  });
  await bench.startWorker();
});
afterAll(async () => {
  await bench?.close();
  await named?.stop();
});

const dnsRows = (orderId: string, on: Workbench = bench) =>
  on.db.db.select().from(orderDns).where(eq(orderDns.orderId, orderId)).orderBy(asc(orderDns.domain));
const events = (orderId: string) =>
  bench.db.db.select().from(orderEvents).where(eq(orderEvents.orderId, orderId)).orderBy(asc(orderEvents.id));

/** Waits until the order's local checks ran `n` times (each one is a stage attempt). */
async function checksRun(orderId: string, n: number) {
  await waitFor(async () => (await bench.reload(orderId)).stageAttempts >= n, {
    message: `${n} local DNS checks`,
  });
}

describe('diagnosis from real DNS, and the upstream economy', () => {
  it('missing → wrong_target naming the found value → fixed: issued, with one dv before and one after', async () => {
    const dvBefore = bench.sim.stats().dv;
    const order = await bench.order(['shop.economy.example']);
    await checksRun(order.id, 1);
    const [missing] = await dnsRows(order.id);
    expect(missing).toMatchObject({ status: 'missing', found: null, valid: false });
    expect(missing!.reason).toContain(
      `create CNAME _acme-challenge.shop.economy.example → ${missing!.hostValue}`,
    );

    await named.setCname('_acme-challenge.shop.economy.example', 'stale.other-provider.example');
    await waitFor(async () => (await dnsRows(order.id))[0]!.status === 'wrong_target', {
      message: 'wrong_target',
    });
    const [wrong] = await dnsRows(order.id);
    expect(wrong!.found).toBe('stale.other-provider.example');
    expect(wrong!.reason).toContain('is a CNAME to stale.other-provider.example, not to');
    const pending = await bench.reload(order.id);
    expect(pending.status).toBe('verifying');
    await checksRun(order.id, pending.stageAttempts + 3);
    // Several local checks, and httpsok was asked once: the first time, for the record's name.
    expect(bench.sim.stats().dv - dvBefore).toBe(1);

    await named.setCname('_acme-challenge.shop.economy.example', wrong!.hostValue);
    const fixedAt = Date.now();
    const [issued] = await bench.waitForStatus([order.id], ['issued']);
    // Within one check interval (the delay had grown to at most its cap, 6 s) plus the issuance itself.
    expect(Date.now() - fixedAt).toBeLessThan(15_000);
    expect(bench.sim.stats().dv - dvBefore).toBe(2);
    expect(issued!.lastDvAt).not.toBeNull();
    const [ok] = await dnsRows(order.id);
    expect(ok).toMatchObject({ status: 'ok', valid: true });
    const metrics = bench.worker!.ctx.metrics;
    expect((await metrics.upstreamDvSaved.get()).values[0]!.value).toBeGreaterThanOrEqual(3);
    const results = new Set((await metrics.dnsChecks.get()).values.map((v) => v.labels.result));
    expect([...results]).toEqual(expect.arrayContaining(['missing', 'wrong_target', 'ok']));
    // One dns_pending event per change of the diagnosis, not one per check.
    const pendingEvents = (await events(order.id)).filter((e) => e.type === 'dns_pending');
    expect(pendingEvents.length).toBeLessThanOrEqual(3);
  });

  it('a wildcard, a subdomain wildcard and an IDN: records under the registered domain (public suffix list)', async () => {
    const domains = [
      '*.wild.example.co.uk',
      'wild.example.co.uk',
      '*.api.wild.example.co.uk',
      'xn--mnchen-3ya.de',
    ];
    const order = await bench.order(domains);
    await checksRun(order.id, 1);
    const rows = await dnsRows(order.id);
    const byDomain = new Map(rows.map((r) => [r.domain, r]));
    expect(byDomain.get('*.wild.example.co.uk')!.host).toBe('_acme-challenge.wild');
    expect(byDomain.get('*.api.wild.example.co.uk')!.host).toBe('_acme-challenge.api.wild');
    expect(byDomain.get('xn--mnchen-3ya.de')!.host).toBe('_acme-challenge');
    expect(rows.every((r) => r.status === 'missing')).toBe(true);
    for (const r of rows) {
      const registered = r.domain === 'xn--mnchen-3ya.de' ? 'xn--mnchen-3ya.de' : 'example.co.uk';
      await named.setCname(`${r.host}.${registered}`, r.hostValue);
    }
    const [issued] = await bench.waitForStatus([order.id], ['issued']);
    expect(issued!.domains).toEqual(domains);
  });
});

describe('CAA before apply and CA failover', () => {
  async function verifiedOrder(domain: string, ca: ('google' | 'letsencrypt' | 'zerossl')[]) {
    const order = await bench.order([domain], { ca: ca[0], caChoices: ca });
    await checksRun(order.id, 1);
    const [row] = await dnsRows(order.id);
    await named.setCname(`${row!.host}.${domain.split('.').slice(-2).join('.')}`, row!.hostValue);
    return order;
  }

  it('CAA 0 issue "letsencrypt.org" with ca [google, letsencrypt]: applied with letsencrypt only', async () => {
    await named.setCaa('caa-le.example', ['0 issue "letsencrypt.org"']);
    const order = await verifiedOrder('www.caa-le.example', ['google', 'letsencrypt']);
    const [issued] = await bench.waitForStatus([order.id], ['issued']);
    expect(issued).toMatchObject({ ca: 'letsencrypt', attempts: 2 });
    const change = (await events(order.id)).find((e) => e.type === 'ca_changed');
    expect(change!.detail).toMatchObject({ from: 'google', to: 'letsencrypt', why: 'caa' });
    expect((change!.detail as { reason: string }).reason).toContain(
      'caa-le.example (0 issue "letsencrypt.org")',
    );
    // One application in all: the simulator never saw one for google.
    expect(bench.sim.stats().appliesByDomains['www.caa-le.example']).toBe(1);
  });

  it('CAA forbidding every CA of the list fails the order naming the record for each CA', async () => {
    await named.setCaa('caa-none.example', ['0 issue "pki.goog"']);
    const order = await verifiedOrder('caa-none.example', ['letsencrypt', 'zerossl']);
    const [failed] = await bench.waitForStatus([order.id], ['failed']);
    expect(failed!.lastError).toMatch(/^no CA left to try: letsencrypt: .*zerossl: /);
    expect(failed!.lastError).toContain('caa-none.example (0 issue "pki.goog")');
    expect(bench.sim.stats().appliesByDomains['caa-none.example']).toBeUndefined();
    const [row] = await dnsRows(order.id);
    expect(row!.status).toBe('caa_forbidden');
  });

  it('an application ending with status 3 hands the order to the next CA as a new run, with a webhook', async () => {
    await bench.db.db.execute(
      sql`update tenants set webhook_url = 'http://127.0.0.1:9/hook' where id = ${bench.tenantId}`,
    );
    const order = await verifiedOrder('failover.example', ['zerossl', 'google']);
    const [issued] = await bench.waitForStatus([order.id], ['issued']);
    expect(issued).toMatchObject({ ca: 'google', attempts: 2 });
    expect(issued!.caFailures).toEqual([{ ca: 'zerossl', reason: expect.stringContaining('zerossl') }]);
    expect(bench.sim.stats().appliesByDomains['failover.example']).toBe(2);
    const hooks = await bench.db.db
      .select()
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.orderId, order.id));
    const changed = hooks.find((h) => h.event === 'order.ca_changed');
    expect(changed!.payload).toMatchObject({ data: { from: 'zerossl', to: 'google' } });
    await bench.db.db.execute(sql`update tenants set webhook_url = null where id = ${bench.tenantId}`);
  });

  it('a single CA whose application fails: failed with the reason', async () => {
    const order = await verifiedOrder('only-zerossl.example', ['zerossl']);
    const [failed] = await bench.waitForStatus([order.id], ['failed']);
    expect(failed!.lastError).toMatch(/^httpsok failed the application: the CA zerossl refused/);
  });
});

describe('a resolver that times out', () => {
  let silent: SilentResolver;
  let timeouts: Workbench;
  beforeAll(async () => {
    silent = await startSilentResolver();
    timeouts = await createWorkbench({
      sim: { verify: 'dns', dnsResolver: named.address },
      env: { DNS_RESOLVERS: silent.address, DNS_CHECK_INTERVAL_MS: '300' },
    });
    await timeouts.startWorker({
      dns: createDnsResolver({ servers: silent.address, timeoutMs: 150, tries: 1 }),
    });
  });
  afterAll(async () => {
    await timeouts?.close();
    await silent?.close();
  });

  it('says lookup_failed (not the tenant’s fault) and keeps the order waiting', async () => {
    const order = await timeouts.order(['timeout.example']);
    await waitFor(async () => (await dnsRows(order.id, timeouts))[0]?.status === 'lookup_failed', {
      message: 'lookup_failed',
    });
    const [row] = await dnsRows(order.id, timeouts);
    expect(row!.reason).toContain('timed out');
    expect(row!.reason).toContain('not a problem with your record');
    expect((await timeouts.reload(order.id)).status).toBe('verifying');
    expect(silent.received).toBeGreaterThan(0);
  });
});
