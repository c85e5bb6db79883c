import { Writable } from 'node:stream';
import { startApi } from '@certq/api';
import { REDACT_CENSOR, REDACT_PATHS } from '@certq/core';
import { waitFor } from '@certq/testing';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack, uniqueName } from './stack';

let stack: Stack;
let tenantA: { id: string; token: string };
let tenantB: { id: string; token: string };
const a = uniqueName('api-a');
const b = uniqueName('api-b');
let certA: { id: string; fingerprint: string };
let certB: { id: string; fingerprint: string };
let allToken: string;
let onlyA: string;

const get = (token: string, path: string) => stack.request(token, 'GET', path);

beforeAll(async () => {
  stack = await startStack();
  tenantA = await stack.createTenant();
  tenantB = await stack.createTenant();
  [certA, certB] = await Promise.all([
    stack.issue(tenantA.token, [a]),
    stack.issue(tenantB.token, [`*.${b}`, b]),
  ]);
  allToken = await stack.edgeToken();
  onlyA = await stack.edgeToken([tenantA.id]);
});
afterAll(async () => {
  await stack?.close();
});

describe('edge tokens', () => {
  it('are created, listed without secrets and revoked by the operator only', async () => {
    const created = await stack.admin('POST', '/v1/edge-tokens', {
      name: 'edge-fra-1',
      tenantIds: [tenantB.id],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'edge-fra-1',
      tenantIds: [tenantB.id],
      revokedAt: null,
      useCount: 0,
    });
    expect(created.body.token).toMatch(/^cqe_/);
    const list = await stack.admin('GET', '/v1/edge-tokens');
    expect(list.status).toBe(200);
    expect(list.text).not.toContain(created.body.token);
    expect(list.body.edgeTokens.map((t: { id: string }) => t.id)).toContain(created.body.id);
    expect((await stack.request(tenantA.token, 'GET', '/v1/edge-tokens')).status).toBe(404);
    expect((await stack.request(tenantA.token, 'POST', '/v1/edge-tokens', { name: 'x' })).status).toBe(404);

    expect((await get(created.body.token, `/v1/tls/certificate?server_name=${b}`)).status).toBe(200);
    const revoked = await stack.admin('DELETE', `/v1/edge-tokens/${created.body.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).not.toBeNull();
    expect((await get(created.body.token, `/v1/tls/certificate?server_name=${b}`)).status).toBe(401);
    expect((await stack.admin('DELETE', '/v1/edge-tokens/00000000-0000-4000-8000-000000000000')).status).toBe(
      404,
    );
  });

  it('refuses bad input with a 400 and stores nothing', async () => {
    const before = (await stack.admin('GET', '/v1/edge-tokens')).body.edgeTokens.length;
    const unknownTenant = await stack.admin('POST', '/v1/edge-tokens', {
      name: 'x',
      tenantIds: ['00000000-0000-4000-8000-000000000000'],
    });
    expect(unknownTenant.status).toBe(400);
    expect(unknownTenant.body.error.code).toBe('validation_failed');
    expect((await stack.admin('POST', '/v1/edge-tokens', { name: '' })).status).toBe(400);
    expect((await stack.admin('POST', '/v1/edge-tokens', { name: 'x', tenantIds: [] })).status).toBe(400);
    expect((await stack.admin('POST', '/v1/edge-tokens', { name: 'x', extra: 1 })).status).toBe(400);
    // A name people read: no invisible or bidirectional-control characters (as for tenant names).
    const hidden = await stack.admin('POST', '/v1/edge-tokens', { name: 'edge\u200bfra' });
    expect(hidden.status).toBe(400);
    expect(hidden.body.error.message).toContain('U+200B');
    expect((await stack.admin('GET', '/v1/edge-tokens')).body.edgeTokens.length).toBe(before);
  });

  it('cannot list orders, create anything, or read keys and certificates outside the delivery routes', async () => {
    for (const token of [allToken, onlyA]) {
      const attempts = [
        await get(token, '/v1/orders'),
        await stack.request(token, 'POST', '/v1/orders', { domains: [uniqueName('edge')] }),
        await stack.request(token, 'POST', '/v1/tenants', { name: 'edge-made' }),
        await stack.request(token, 'POST', '/v1/edge-tokens', { name: 'edge-made' }),
        await get(token, '/v1/certificates'),
        await get(token, `/v1/certificates/${certA.id}`),
        await get(token, `/v1/certificates/${certA.id}/private-key`),
        await stack.request(token, 'POST', '/v1/renewals', {}),
      ];
      for (const res of attempts) {
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
      }
    }
  });

  it('limited to tenants, sees only their certificates; a tenant token cannot use the TLS route', async () => {
    expect((await get(onlyA, `/v1/tls/certificate?server_name=${a}`)).status).toBe(200);
    expect((await get(onlyA, `/v1/tls/certificate?server_name=${b}`)).status).toBe(204);
    expect((await get(onlyA, `/v1/tls/certificate?certificate_id=${certB.id}`)).status).toBe(204);
    const feed = await get(onlyA, '/v1/certificates/changes?cursor=0');
    expect(feed.status).toBe(200);
    expect(new Set(feed.body.changes.map((c: { tenantId: string }) => c.tenantId))).toEqual(
      new Set([tenantA.id]),
    );

    const tenantTls = await get(tenantA.token, `/v1/tls/certificate?server_name=${a}`);
    expect(tenantTls.status).toBe(403);
    const tenantFeed = await get(tenantB.token, '/v1/certificates/changes');
    expect(tenantFeed.status).toBe(200);
    expect(tenantFeed.body.changes.map((c: { certificateId: string }) => c.certificateId)).toEqual([
      certB.id,
    ]);
  });
});

describe('GET /v1/tls/certificate', () => {
  it('answers the PEM bundle (leaf, intermediate, key) for exact and one-label wildcard names, 204 otherwise', async () => {
    const exact = await get(allToken, `/v1/tls/certificate?server_name=${a.toUpperCase()}`);
    expect(exact.status).toBe(200);
    expect(exact.text.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(exact.text).toMatch(/BEGIN (EC |RSA )?PRIVATE KEY[\s\S]*END (EC |RSA )?PRIVATE KEY-----\n$/);
    expect(exact.text.indexOf('CERTIFICATE')).toBeLessThan(exact.text.indexOf('PRIVATE KEY'));
    const wildcard = await get(allToken, `/v1/tls/certificate?server_name=www.${b}`);
    expect(wildcard.status).toBe(200);
    expect(wildcard.text).toBe((await get(allToken, `/v1/tls/certificate?server_name=${b}`)).text);
    expect((await get(allToken, `/v1/tls/certificate?server_name=a.b.${b}`)).status).toBe(204);
    expect((await get(allToken, `/v1/tls/certificate?server_name=${uniqueName('none')}`)).status).toBe(204);
  });

  it('takes the token as a query parameter (Caddy) and never logs it', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ level: 'info', redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR } }, sink);
    const logged = await startApi({ config: stack.config, logger, host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(
        `${logged.url}/v1/tls/certificate?server_name=${a}&signature_schemes=1027&cipher_suites=4865&token=${allToken}`,
      );
      expect(res.status).toBe(200);
      const bad = await fetch(`${logged.url}/v1/tls/certificate?server_name=&token=${allToken}`);
      expect(bad.status).toBe(400);
    } finally {
      await logged.close();
    }
    const all = lines.join('');
    expect(all).toContain('token=[redacted]');
    expect(all).not.toContain(allToken);
    expect(all).not.toContain(allToken.slice(4));
  });

  it('documents 4xx for bad input', async () => {
    expect((await get(allToken, '/v1/tls/certificate')).status).toBe(400);
    expect(
      (await get(allToken, `/v1/tls/certificate?server_name=${a}&certificate_id=${certA.id}`)).status,
    ).toBe(400);
    expect((await get(allToken, '/v1/tls/certificate?server_name=*.example.com')).status).toBe(400);
    expect((await get(allToken, '/v1/tls/certificate?server_name=127.0.0.1')).status).toBe(400);
    expect((await get(allToken, '/v1/tls/certificate?certificate_id=nope')).status).toBe(400);
    expect((await fetch(`${stack.apiUrl}/v1/tls/certificate?server_name=${a}`)).status).toBe(401);
    // biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is inspected field by field
    const doc: any = await (await fetch(`${stack.apiUrl}/docs/json`)).json();
    const ops = [
      doc.paths['/v1/tls/certificate'].get,
      doc.paths['/v1/certificates/changes'].get,
      doc.paths['/v1/edge-tokens'].get,
      doc.paths['/v1/edge-tokens'].post,
      doc.paths['/v1/edge-tokens/{id}'].delete,
    ];
    expect(ops.map((o) => o.operationId)).toEqual([
      'getTlsCertificate',
      'listCertificateChanges',
      'listEdgeTokens',
      'createEdgeToken',
      'revokeEdgeToken',
    ]);
    for (const op of ops) expect(Object.keys(op.responses).some((s) => s.startsWith('4'))).toBe(true);
  });

  it('counts uses per token: a Prometheus counter at once, use count and last use within seconds', async () => {
    const created = await stack.admin('POST', '/v1/edge-tokens', { name: 'counted' });
    for (let i = 0; i < 3; i++) await get(created.body.token, `/v1/tls/certificate?server_name=${a}`);
    const line = new RegExp(
      `certq_edge_token_requests_total\\{token_id="${created.body.id}",route="/v1/tls/certificate"\\} 3`,
    );
    expect(await stack.api!.app.delivery.edgeTokens.registry.metrics()).toMatch(line);
    // Served at /metrics too. A scrape also counts queue jobs in Redis with a 1 s command timeout and
    // answers 500 when Redis is that slow (a loaded machine); retry, and judge only answered scrapes.
    let scraped: string | undefined;
    await waitFor(
      async () => {
        const res = await fetch(`${stack.apiUrl}/metrics`);
        const text = await res.text();
        if (res.status === 200) scraped = text;
        return res.status === 200;
      },
      { timeoutMs: 30_000, intervalMs: 500, message: 'a /metrics scrape' },
    ).catch(() => {});
    if (scraped !== undefined) expect(scraped).toMatch(line);
    const row = await waitFor(
      async () => {
        const list = await stack.admin('GET', '/v1/edge-tokens');
        const t = list.body.edgeTokens.find((x: { id: string }) => x.id === created.body.id);
        return t.useCount === 3 && t.lastUsedAt ? t : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250, message: 'the use count to be written' },
    );
    expect(Date.parse(row.lastUsedAt)).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe('GET /v1/certificates/changes', () => {
  it('pages oldest first with a nextCursor, and validates its input', async () => {
    const first = await get(allToken, '/v1/certificates/changes?cursor=0&limit=1');
    expect(first.status).toBe(200);
    expect(first.body.changes).toHaveLength(1);
    const rest = await get(allToken, `/v1/certificates/changes?cursor=${first.body.nextCursor}`);
    const cursors = [...first.body.changes, ...rest.body.changes].map((c: { cursor: string }) =>
      Number(c.cursor),
    );
    expect(cursors).toEqual([...cursors].sort((x, y) => x - y));
    expect(rest.body.changes[0]).toMatchObject({ change: 'current', fingerprint: expect.any(String) });
    for (const query of ['wait=61', 'wait=-1', 'cursor=abc', 'limit=0', 'limit=1001', 'bogus=1'])
      expect((await get(allToken, `/v1/certificates/changes?${query}`)).status, query).toBe(400);
  });

  it('long-polls: answers a change committed during the wait, through any API replica', async () => {
    const replica = await stack.startReplica();
    const head = (await get(allToken, '/v1/certificates/changes?cursor=0&limit=1000')).body.nextCursor;
    const started = Date.now();
    const idle = await get(allToken, `/v1/certificates/changes?cursor=${head}`);
    expect(idle.body).toEqual({ changes: [], nextCursor: head });
    const waiting = stack.request(
      allToken,
      'GET',
      `/v1/certificates/changes?cursor=${head}&wait=30`,
      undefined,
      replica.url,
    );
    const renewed = await stack.issue(tenantA.token, [a]);
    const seenAt = Date.now();
    const answered = await waiting;
    expect(answered.status).toBe(200);
    expect(
      answered.body.changes.map((c: { change: string; certificateId: string }) => [
        c.change,
        c.certificateId,
      ]),
    ).toEqual([
      ['replaced', certA.id],
      ['current', renewed.id],
    ]);
    expect(Date.now() - seenAt).toBeLessThan(5_000);
    expect(Date.now() - started).toBeLessThan(30_000);
    certA = renewed;
  });

  it('hands out change ids in commit order: concurrent change-writers wait for each other', async () => {
    const [x, y] = await Promise.all([
      stack.issue(tenantB.token, [uniqueName('order-x')]),
      stack.issue(tenantB.token, [uniqueName('order-y')]),
    ]);
    const first = new pg.Client({ connectionString: stack.config.DATABASE_URL });
    const second = new pg.Client({ connectionString: stack.config.DATABASE_URL });
    await first.connect();
    await second.connect();
    try {
      await first.query('begin');
      await first.query('update certificates set is_current = false where id = $1', [x.id]);
      await second.query('begin');
      let secondDone = false;
      const secondUpdate = second
        .query('update certificates set is_current = false where id = $1', [y.id])
        .then(() => {
          secondDone = true;
        });
      await new Promise((r) => setTimeout(r, 300));
      // With a plain sequence the second writer would already hold a higher id and could commit first.
      expect(secondDone).toBe(false);
      await first.query('commit');
      await secondUpdate;
      await second.query('commit');
      const { rows } = await first.query(
        'select certificate_id, id from certificate_changes where certificate_id = any($1) and not became_current order by id',
        [[x.id, y.id]],
      );
      expect(rows.map((r) => r.certificate_id)).toEqual([x.id, y.id]);
      expect(Number(rows[1].id)).toBe(Number(rows[0].id) + 1);
    } finally {
      await first.end();
      await second.end();
    }
    // The replaced certificates stop being served at once (the cache follows the feed).
    await waitFor(
      async () => (await get(allToken, `/v1/tls/certificate?certificate_id=${x.id}`)).status === 204,
      {
        timeoutMs: 5_000,
        message: 'the cache to drop the replaced certificate',
      },
    );
  });
});
