import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpsokClient, HttpsokError, type ResponseInfo } from '../src/index';
import {
  type CannedReply,
  type CannedServer,
  closedPortUrl,
  startCannedServer,
} from './support/canned-server';
import { issuedData } from './support/fixtures';

// Distinctive, so a match can only mean a leak.
const KEY = 'LEAKCANARY-9f8e7d6c5b4a-3e2d1c0b';

/** Every rendering of an error a logger or a crash report might produce. */
function renderings(error: unknown): Record<string, string> {
  const e = error as Error;
  return {
    json: JSON.stringify(e),
    string: String(e),
    inspect: inspect(e, { depth: 10 }),
    inspectHidden: inspect(e, { depth: 10, showHidden: true }),
    stack: String(e.stack),
    cause: inspect(e.cause, { depth: 10, showHidden: true }),
    toJSON: JSON.stringify((e as HttpsokError).toJSON()),
  };
}

function expectNoKey(error: unknown) {
  expect(error).toBeInstanceOf(HttpsokError);
  for (const [how, text] of Object.entries(renderings(error))) {
    expect(text, how).not.toContain(KEY);
  }
}

// The hostile upstream echoes the key it received everywhere it can.
const echoing: Record<string, (key: string) => CannedReply> = {
  'non-zero code': (k) => ({ body: { code: 500100, msg: `key ${k} is busy`, traceId: k } }),
  'code 401': (k) => ({ body: { code: 401, msg: `OpenApiKey ${k} invalid`, traceId: `t-${k}` } }),
  'code 429': (k) => ({ body: { code: 429, msg: `too frequent for ${k}` } }),
  'HTTP 500 text': (k) => ({ status: 500, body: `boom ${k}` }),
  'HTTP 500 envelope': (k) => ({ status: 500, body: { code: 500, msg: `boom ${k}`, traceId: k } }),
  'HTTP 404': (k) => ({ status: 404, body: { code: 404, msg: `no route for ${k}` } }),
  'non-JSON': (k) => ({ body: `<html>${k}</html>` }),
  'truncated JSON': (k) => ({ body: `{"code":0,"msg":"${k}"` }),
  'not an envelope': (k) => ({ body: { [k]: k } }),
  'schema mismatch': (k) => ({ body: { code: 0, msg: k, data: { id: k, status: 1 }, traceId: k } }),
  'issued without key block': (k) => ({
    body: { code: 0, msg: k, data: { ...issuedData, privateKey: k, name: k }, traceId: k },
  }),
  timeout: () => ({ hang: true }),
  'stalled body': () => ({ stallBody: true }),
};

describe('the API key never leaks', () => {
  let server: CannedServer;
  let scenario = '';
  const infos: ResponseInfo[] = [];
  let client: HttpsokClient;

  beforeAll(async () => {
    server = await startCannedServer((req) => echoing[scenario]!(String(req.headers['openapikey'])));
    client = new HttpsokClient({
      apiKey: KEY,
      baseUrl: server.url,
      timeoutMs: 150,
      retry: { attempts: 1, baseMs: 1, maxMs: 1 },
      hooks: { onResponse: (info) => infos.push(info) },
    });
  });

  afterAll(async () => {
    await client.close();
    await server.close();
  });

  for (const name of Object.keys(echoing)) {
    it(`not in errors from ${name}`, async () => {
      scenario = name;
      const before = server.requests.length;
      const errors = await Promise.all([
        client.verify(['a.com']).catch((e: unknown) => e),
        client.apply({ domainList: ['a.com'] }).catch((e: unknown) => e),
        client.getApply('1').catch((e: unknown) => e),
      ]);
      // The server really did see (and echo) the key.
      expect(server.requests.length).toBeGreaterThan(before);
      expect(server.requests.at(-1)?.headers['openapikey']).toBe(KEY);
      for (const error of errors) expectNoKey(error);
    });
  }

  it('not in errors from a refused connection', async () => {
    const offline = new HttpsokClient({
      apiKey: KEY,
      baseUrl: await closedPortUrl(),
      retry: { attempts: 0 },
    });
    try {
      expectNoKey(await offline.verify(['a.com']).catch((e: unknown) => e));
      expectNoKey(await offline.apply({ domainList: ['a.com'] }).catch((e: unknown) => e));
    } finally {
      await offline.close();
    }
  });

  it('not in errors from a closed client', async () => {
    const closed = new HttpsokClient({ apiKey: KEY });
    await closed.close();
    expectNoKey(await closed.getApply('1').catch((e: unknown) => e));
  });

  it('not in what the hooks receive', () => {
    expect(infos.length).toBeGreaterThan(0);
    expect(JSON.stringify(infos)).not.toContain(KEY);
  });

  it('not in the client itself', () => {
    expect(inspect(client, { depth: 10, showHidden: true })).not.toContain(KEY);
    expect(JSON.stringify(client)).not.toContain(KEY);
    expect(inspect(client.withApiKey(`${KEY}-2`), { depth: 10, showHidden: true })).not.toContain(KEY);
  });

  it('is scrubbed from an error built with it as a secret, cause included', () => {
    const error = new HttpsokError({
      kind: 'network',
      endpoint: 'verify',
      msg: `socket to ${KEY}`,
      traceId: KEY,
      retryable: true,
      cause: Object.assign(new Error(`inner ${KEY}`, { cause: new Error(`deeper ${KEY}`) }), {
        code: 'ECONNRESET',
        request: { headers: { OpenApiKey: KEY } },
      }),
      secrets: [KEY],
    });
    expectNoKey(error);
    expect(error.msg).toBe('socket to [redacted]');
    expect((error.cause as Error & { code: string }).code).toBe('ECONNRESET');
  });
});
