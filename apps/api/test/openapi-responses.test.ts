import { randomUUID } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import { describe, expect } from 'vitest';
import type { OpenApiDoc } from '../src/openapi-document';
import { type HttpResult, it, type RequestOptions, type TestApi, uniqueDomain } from './helpers';

/**
 * Every operation of /docs/json is driven (unauthenticated, with an edge token, as a tenant, as the
 * operator; bodies that are not JSON, malformed, too large) and each answer is checked against the
 * document: a documented status, a documented content type, a body that validates against its schema
 * (ajv). An operation this file does not know fails the test: add it to COVERED with its success request.
 */

type Operation = {
  operationId?: string;
  requestBody?: unknown;
  parameters?: { in: string; name: string; required?: boolean }[];
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
};

interface Ctx {
  api: TestApi;
  tenant: { id: string; token: string };
  orderId: string;
}
interface Call {
  token?: 'admin' | 'tenant' | 'edge' | 'none';
  path?: string;
  options?: RequestOptions;
}

/** The success request of each operation (or none: the probes below reach it), keyed by operationId. */
const COVERED: Record<string, ((c: Ctx) => Call) | null> = {
  getLiveness: () => ({ token: 'none' }),
  getReadiness: () => ({ token: 'none' }),
  createTenant: () => ({ options: { body: { name: `t-${randomUUID().slice(0, 8)}` } } }),
  listTenants: () => ({}),
  setTenantCaChoices: (c) => ({
    path: `/v1/tenants/${c.tenant.id}/ca-choices`,
    options: { body: { ca: ['letsencrypt'] } },
  }),
  createOrder: () => ({ token: 'tenant', options: { body: { domains: [uniqueDomain()] } } }),
  listOrders: () => ({ token: 'tenant' }),
  createOrdersBulk: () => ({
    token: 'tenant',
    options: { body: { orders: [{ domains: [uniqueDomain()] }] } },
  }),
  getOrder: (c) => ({ token: 'tenant', path: `/v1/orders/${c.orderId}` }),
  cancelOrder: null,
  retryOrder: null,
  checkOrderDns: null,
  listCertificates: () => ({ token: 'tenant' }),
  getCertificate: null,
  getCertificatePrivateKey: null,
  receiveHttpsokCallback: null,
  getStats: () => ({}),
  requestRenewals: null,
  getRenewalBatch: null,
  setWebhook: null,
  deleteWebhook: () => ({ token: 'tenant' }),
  setTenantWebhook: null,
  deleteTenantWebhook: (c) => ({ path: `/v1/tenants/${c.tenant.id}/webhook` }),
  listWebhookDeliveries: () => ({ token: 'tenant' }),
  createEdgeToken: () => ({ options: { body: { name: 'edge-probe' } } }),
  listEdgeTokens: () => ({}),
  revokeEdgeToken: null,
  getTlsCertificate: () => ({ path: `/v1/tls/certificate?server_name=${uniqueDomain()}` }),
  listCertificateChanges: () => ({ path: '/v1/certificates/changes?cursor=0&wait=0' }),
  rotateOwnToken: null,
  rotateTenantToken: null,
  revokeTenantToken: null,
  listAuditEntries: () => ({}),
  getDomainOwnership: () => ({ token: 'tenant', path: `/v1/domains/${uniqueDomain()}/ownership` }),
  transferDomain: null,
  // Resuming a tenant that is not suspended changes nothing (200, changed false); the others would
  // end the shared tenant's life or need a real certificate (apps/api/test/certificate-life.test.ts).
  resumeTenant: (c) => ({ path: `/v1/tenants/${c.tenant.id}/resume` }),
  suspendTenant: null,
  deleteTenant: null,
  retireCertificate: null,
  uploadCertificate: null,
};

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** OpenAPI 3.0's `nullable` as JSON Schema: `type: [t, 'null']`, or `anyOf` with null around a `$ref`. */
function jsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(jsonSchema);
  if (node === null || typeof node !== 'object') return node;
  const { nullable, ...rest } = node as Record<string, unknown>;
  const out = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, jsonSchema(v)]));
  if (nullable !== true) return out;
  if (typeof out.type === 'string')
    return {
      ...out,
      type: [out.type, 'null'],
      ...(out.enum ? { enum: [...(out.enum as unknown[]), null] } : {}),
    };
  return { anyOf: [out, { type: 'null' }] };
}

function fill(path: string): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) =>
    name === 'name' ? uniqueDomain() : name === 'id' ? randomUUID() : 'x',
  );
}

describe('every answer of every route is what /docs/json says', () => {
  it('drives each operation and finds 0 violations', async ({ api, tenantA }) => {
    const doc = (await api.request('GET', '/docs/json')).body as OpenApiDoc & {
      components: { schemas: Record<string, unknown> };
    };
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    const components = jsonSchema(doc.components) as Record<string, unknown>;
    const validators = new Map<unknown, ValidateFunction>();
    const validate = (schema: unknown, body: unknown) => {
      let v = validators.get(schema);
      if (!v) {
        v = ajv.compile({ ...(jsonSchema(schema) as object), components });
        validators.set(schema, v);
      }
      return v(body) ? null : ajv.errorsText(v.errors);
    };

    const edge = await api.adminRequest('POST', '/v1/edge-tokens', { name: 'edge-openapi' });
    const order = await api.tenantRequest(tenantA.token, 'POST', '/v1/orders', { domains: [uniqueDomain()] });
    const ctx: Ctx = { api, tenant: tenantA, orderId: order.body.id };
    const tokens = {
      admin: api.config.ADMIN_TOKEN,
      tenant: tenantA.token,
      edge: edge.body.token as string,
      none: undefined,
    };

    const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).map((method) => ({ path, method, op: item[method] as Operation })),
    );
    const unknown = operations.map((o) => o.op.operationId!).filter((id) => !(id in COVERED));
    expect(unknown, 'operations this test does not cover: add them to COVERED').toEqual([]);

    const violations: string[] = [];
    let checked = 0;
    const check = (where: string, op: Operation, res: HttpResult) => {
      checked++;
      const documented = op.responses?.[String(res.status)] ?? op.responses?.[`${String(res.status)[0]}XX`];
      if (!documented) return violations.push(`${where}: ${res.status} is not documented`);
      if (res.text.length === 0) return;
      const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
      const media = documented.content?.[type];
      if (!media)
        return violations.push(
          `${where}: ${res.status} as ${type} is not documented (${Object.keys(documented.content ?? {}).join(', ')})`,
        );
      if (media.schema === undefined) return;
      const body = type === 'application/json' ? JSON.parse(res.text) : res.text;
      const problem = validate(media.schema, body);
      if (problem) violations.push(`${where}: ${res.status} body: ${problem}`);
    };

    for (const { path, method, op } of operations) {
      const verb = method.toUpperCase();
      const where = `${verb} ${path}`;
      const send = (token: keyof typeof tokens, url: string, options: RequestOptions = {}) =>
        api.request(verb, url, { ...options, token: tokens[token] });
      const url = fill(path);
      const success = COVERED[op.operationId!];
      if (success) {
        const call = success(ctx);
        check(`${where} (success)`, op, await send(call.token ?? 'admin', call.path ?? url, call.options));
      }
      for (const token of ['none', 'edge', 'tenant', 'admin'] as const)
        check(`${where} (${token}, probe)`, op, await send(token, url, BODY.has(verb) ? { body: {} } : {}));
      if (BODY.has(verb)) {
        check(
          `${where} (text/plain)`,
          op,
          await send('admin', url, { raw: 'x', headers: { 'content-type': 'text/plain' } }),
        );
        check(`${where} (malformed JSON)`, op, await send('admin', url, { raw: '{"a":' }));
      }
    }
    // The body limit is the same parser everywhere: one route answers it for all.
    const big = operations.find((o) => o.op.operationId === 'createOrder')!;
    check(
      'POST /v1/orders (too large)',
      big.op,
      await api.request('POST', '/v1/orders', {
        token: tenantA.token,
        raw: `{"domains":["${'a'.repeat(17 * 1024 * 1024)}"]}`,
      }),
    );
    expect(violations).toEqual([]);
    expect(checked).toBeGreaterThan(operations.length * 4);
  });
});

const BODY = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
