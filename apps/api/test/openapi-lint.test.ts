import { createConfig, lintFromString } from '@redocly/openapi-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApiDocument, type OpenApiDoc } from '../src/openapi-document';
import { createTestEnv, startTestApi, type TestApi, type TestEnv } from './helpers';

let env: TestEnv;
let api: TestApi;
let served: OpenApiDoc;

beforeAll(async () => {
  env = await createTestEnv();
  api = await startTestApi(env);
  const response = await api.request('GET', '/docs/json');
  expect(response.status).toBe(200);
  served = response.body;
});

afterAll(async () => {
  await api?.close();
  await env?.close();
});

/** Problems of redocly's recommended ruleset, one line each. */
async function lint(document: OpenApiDoc): Promise<string[]> {
  const config = await createConfig({
    extends: ['recommended'],
    rules: {
      // The repository grants no licence and the document must not invent one: the only
      // recommended rules turned off.
      'info-license': 'off',
      'info-license-strict': 'off',
    },
  });
  const problems = await lintFromString({
    source: JSON.stringify(document),
    absoluteRef: `${api.url}/docs/json`,
    config,
  });
  return problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`);
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options']);

function operations(doc: OpenApiDoc) {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.has(method))
      .map(([method, operation]) => ({ where: `${method.toUpperCase()} ${path}`, operation })),
  );
}

describe('the OpenAPI document at /docs/json', () => {
  it("passes redocly's recommended rules with no error and no warning", async () => {
    expect(await lint(served)).toEqual([]);
  });

  it('the check notices a missing operationId, a missing 4xx and missing servers', async () => {
    const broken = structuredClone(served);
    delete broken.servers;
    const getOrder = broken.paths['/v1/orders/{id}']!.get!;
    delete getOrder.operationId;
    getOrder.responses = { 200: getOrder.responses![200] };
    const rules = (await lint(broken)).map((line) => line.split(':')[0]);
    expect(rules).toEqual(
      expect.arrayContaining([
        'error no-empty-servers',
        'warn operation-operationId',
        'warn operation-4xx-response',
      ]),
    );
  });

  it('names every operation with a unique camelCase operationId and documents a 4xx for each', () => {
    const all = operations(served);
    expect(all.length).toBeGreaterThan(15);
    const ids = all.map(({ operation }) => operation.operationId);
    for (const { where, operation } of all) {
      expect(operation.operationId, where).toMatch(/^[a-z][a-zA-Z0-9]+$/);
      expect(
        Object.keys(operation.responses ?? {}).some((s) => /^4(\d\d|XX)$/.test(s)),
        where,
      ).toBe(true);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(served.servers?.length).toBeGreaterThan(0);
  });

  it('is the same document the SDK generator builds in-process, without a listening API', async () => {
    expect(await buildOpenApiDocument({ redisUrl: env.testRedis.url })).toEqual(served);
  });
});
