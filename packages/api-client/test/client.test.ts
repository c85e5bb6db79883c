import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY,
  fullJitterDelay,
  HttpsokClient,
  type HttpsokClientOptions,
  HttpsokError,
  type ResponseInfo,
} from '../src/index';
import {
  type CannedReply,
  type CannedServer,
  closedPortUrl,
  ok,
  type Responder,
  startCannedServer,
} from './support/canned-server';
import {
  issuedData,
  issuedEnvelope,
  issuingEnvelope,
  verifyInvalidEnvelope,
  verifyValidEnvelope,
} from './support/fixtures';

const KEY = 'test-key-0123456789';
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function setup(respond: Responder, options: Partial<HttpsokClientOptions> = {}) {
  const server = await startCannedServer(respond);
  const client = new HttpsokClient({
    apiKey: KEY,
    baseUrl: server.url,
    retry: { baseMs: 1, maxMs: 5 },
    ...options,
  });
  cleanups.push(
    () => server.close(),
    () => client.close(),
  );
  return { server, client };
}

async function failure(promise: Promise<unknown>): Promise<HttpsokError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HttpsokError);
  return error as HttpsokError;
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('happy paths', () => {
  it('verify posts the domain list with the documented headers', async () => {
    const { server, client } = await setup(() => ({ body: verifyValidEnvelope }));
    const result = await client.verify(['*.httpsok.com']);
    expect(result).toEqual({ ...verifyValidEnvelope.data, traceId: verifyValidEnvelope.traceId });
    const [req] = server.requests;
    expect(req?.method).toBe('POST');
    expect(req?.path).toBe('/v1/cert/dv');
    expect(req?.headers['openapikey']).toBe(KEY);
    expect(req?.headers['content-type']).toBe('application/json');
    expect(req?.body).toEqual({ domainList: ['*.httpsok.com'] });
  });

  it('verify reports an unverified domain without throwing', async () => {
    const { client } = await setup(() => ({ body: verifyInvalidEnvelope }));
    const result = await client.verify(['*.baidu.com']);
    expect(result.valid).toBe(false);
    expect(result.configs[0]?.valid).toBe(false);
  });

  it('apply sends only the given options and returns the id as a string', async () => {
    const { server, client } = await setup((_req, i) => ok(i === 0 ? '236417' : 236418, `t${i}`));
    expect(await client.apply({ domainList: ['a.com'] })).toEqual({ applyId: '236417', traceId: 't0' });
    expect(
      await client.apply({
        domainList: ['a.com', '*.a.com'],
        algorithm: 'RSA',
        ca: 'zerossl',
        notifyUrl: 'https://x/cb',
      }),
    ).toEqual({ applyId: '236418', traceId: 't1' });
    expect(server.requests.map((r) => [r.path, r.body])).toEqual([
      ['/v1/cert/apply', { domainList: ['a.com'] }],
      [
        '/v1/cert/apply',
        { domainList: ['a.com', '*.a.com'], algorithm: 'RSA', ca: 'zerossl', notifyUrl: 'https://x/cb' },
      ],
    ]);
  });

  it('getApply returns each status as a typed union', async () => {
    const replies: CannedReply[] = [
      { body: issuingEnvelope },
      { body: issuedEnvelope },
      ok({ id: '236417', status: 3, domains: 'x.fail.test', msg: 'CAA record forbids issuance' }, 'tf'),
    ];
    const { server, client } = await setup((_r, i) => replies[i]!);

    const issuing = await client.getApply('236417');
    expect(issuing).toEqual({
      status: 'issuing',
      id: '236417',
      domains: ['*.httpsok.com', 'httpsok.com'],
      progress: 75,
      traceId: '9f26694a6045a300a63b3bde621184a9',
    });

    const issued = await client.getApply('236417');
    if (issued.status !== 'issued') throw new Error('expected issued');
    expect(issued.certificate).toBe(issuedData.certificate);
    expect(issued.notBefore).toEqual(new Date('2024-12-10T16:24:32Z'));
    expect(issued.traceId).toBe('90cbafed99058a23c8cd08553701164d');

    expect(await client.getApply('236417')).toEqual({
      status: 'failed',
      id: '236417',
      domains: ['x.fail.test'],
      reason: 'CAA record forbids issuance',
      traceId: 'tf',
    });
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual(
      Array(3).fill('GET /v1/cert/apply/236417'),
    );
    expect(server.requests[0]?.headers['openapikey']).toBe(KEY);
  });

  it('keeps a path prefix of the base URL', async () => {
    const server = await startCannedServer(() => ({ body: verifyValidEnvelope }));
    const client = new HttpsokClient({ apiKey: KEY, baseUrl: `${server.url}/proxy/httpsok/` });
    cleanups.push(
      () => server.close(),
      () => client.close(),
    );
    await client.verify(['a.com']);
    expect(server.requests[0]?.path).toBe('/proxy/httpsok/v1/cert/dv');
  });
});

describe('error mapping', () => {
  const trace = 'trace-err';
  const cases: {
    name: string;
    reply: CannedReply;
    expected: Partial<Record<keyof HttpsokError, unknown>>;
  }[] = [
    {
      name: 'unknown non-zero code',
      reply: { body: { code: 500123, msg: 'system busy', traceId: trace } },
      expected: {
        kind: 'upstream',
        code: 500123,
        msg: 'system busy',
        traceId: trace,
        httpStatus: 200,
        retryable: true,
      },
    },
    {
      name: 'code 401 (bad key)',
      reply: { body: { code: 401, msg: 'OpenApiKey invalid', traceId: trace } },
      expected: { kind: 'upstream', code: 401, retryable: false, authFailed: true, rateLimited: false },
    },
    {
      name: 'code 429 (too frequent)',
      reply: { body: { code: 429, msg: 'too frequent' } },
      expected: {
        kind: 'upstream',
        code: 429,
        retryable: true,
        rateLimited: true,
        authFailed: false,
        traceId: null,
      },
    },
    {
      name: 'HTTP 500 with a text body',
      reply: { status: 500, body: 'Internal Server Error' },
      expected: { kind: 'http', httpStatus: 500, code: null, msg: 'HTTP status 500', retryable: true },
    },
    {
      name: 'HTTP 502 with an envelope',
      reply: { status: 502, body: { code: 502, msg: 'bad gateway', traceId: trace } },
      expected: {
        kind: 'http',
        httpStatus: 502,
        code: 502,
        msg: 'bad gateway',
        traceId: trace,
        retryable: true,
      },
    },
    {
      name: 'HTTP 404',
      reply: { status: 404, body: 'Not Found' },
      expected: { kind: 'http', httpStatus: 404, retryable: false, authFailed: false },
    },
    {
      name: 'HTTP 401',
      reply: { status: 401, body: '' },
      expected: { kind: 'http', httpStatus: 401, retryable: false, authFailed: true },
    },
    {
      name: 'HTTP 429 with Retry-After',
      reply: { status: 429, body: 'slow down', headers: { 'retry-after': '3' } },
      expected: { kind: 'http', httpStatus: 429, retryable: true, rateLimited: true, retryAfterMs: 3000 },
    },
    {
      name: 'a non-JSON body',
      reply: { body: '<html>gateway</html>' },
      expected: { kind: 'invalid_response', httpStatus: 200, code: null, retryable: true },
    },
    {
      name: 'JSON that is not an envelope',
      reply: { body: { ok: true } },
      expected: { kind: 'invalid_response', retryable: true },
    },
    {
      name: 'an envelope whose data does not match',
      reply: {
        body: { code: 0, msg: 'success', data: { id: 1, status: 7, domains: 'a.com' }, traceId: trace },
      },
      expected: { kind: 'invalid_response', traceId: trace, retryable: true },
    },
    {
      name: 'an issued answer without a private key',
      reply: ok({ ...issuedData, privateKey: undefined }, trace),
      expected: { kind: 'invalid_response', traceId: trace, retryable: true },
    },
  ];

  for (const c of cases) {
    it(`maps ${c.name}`, async () => {
      const { server, client } = await setup(() => c.reply);
      const error = await failure(client.getApply('42'));
      expect(error).toMatchObject({ endpoint: 'getApply', ...c.expected });
      expect(error.message).toContain('httpsok getApply');
      expect(server.requests).toHaveLength(1);
    });
  }

  it('names the failing field of a schema mismatch without quoting values', async () => {
    const { client } = await setup(() => ok({ ...issuedData, privateKey: 'not a key at all' }));
    const error = await failure(client.getApply('42'));
    expect(error.msg).toContain('privateKey');
    expect(error.msg).not.toContain('not a key at all');
  });

  it('quotes the start of a non-JSON body but never of truncated JSON', async () => {
    const replies: CannedReply[] = [
      { body: '<html>gateway</html>' },
      { body: '{"code":0,"data":{"privateKey":"---' },
    ];
    const { client } = await setup((_r, i) => replies[i]!);
    expect((await failure(client.getApply('1'))).msg).toContain('<html>gateway</html>');
    expect((await failure(client.getApply('1'))).msg).not.toContain('privateKey');
  });

  it('maps a server that never answers to a timeout', async () => {
    const { client } = await setup(() => ({ hang: true }), { timeoutMs: 150 });
    const error = await failure(client.getApply('42'));
    expect(error).toMatchObject({ kind: 'timeout', retryable: true, httpStatus: null, code: null });
  });

  it('maps a body that stalls mid-way to a timeout', async () => {
    const { client } = await setup(() => ({ stallBody: true }), { timeoutMs: 150 });
    const error = await failure(client.getApply('42'));
    expect(error).toMatchObject({ kind: 'timeout', retryable: true, httpStatus: 200 });
  });

  it('maps a refused connection to a network error', async () => {
    const client = new HttpsokClient({ apiKey: KEY, baseUrl: await closedPortUrl() });
    cleanups.push(() => client.close());
    const error = await failure(client.getApply('42'));
    expect(error).toMatchObject({ kind: 'network', retryable: true, httpStatus: null, code: null });
    expect(error.msg).toContain('ECONNREFUSED');
  });
});

describe('retries', () => {
  it('verify retries retryable failures, then succeeds', async () => {
    const replies: CannedReply[] = [
      { status: 503, body: 'busy' },
      { body: { code: 429, msg: 'too frequent' } },
      { body: verifyValidEnvelope },
    ];
    const { server, client } = await setup((_r, i) => replies[i]!);
    expect((await client.verify(['a.com'])).valid).toBe(true);
    expect(server.requests).toHaveLength(3);
  });

  it('verify gives up after the configured retries with the last error', async () => {
    const { server, client } = await setup(() => ({ status: 500, body: 'no' }), {
      retry: { attempts: 3, baseMs: 1, maxMs: 2 },
    });
    const error = await failure(client.verify(['a.com']));
    expect(error).toMatchObject({ kind: 'http', httpStatus: 500 });
    expect(server.requests).toHaveLength(4);
  });

  it('verify retries a timeout', async () => {
    const { server, client } = await setup(
      (_r, i) => (i === 0 ? { hang: true } : { body: verifyValidEnvelope }),
      {
        timeoutMs: 150,
      },
    );
    expect((await client.verify(['a.com'])).valid).toBe(true);
    expect(server.requests).toHaveLength(2);
  });

  it('verify does not retry a non-retryable failure', async () => {
    const { server, client } = await setup(() => ({ body: { code: 401, msg: 'OpenApiKey invalid' } }));
    expect(await failure(client.verify(['a.com']))).toMatchObject({ authFailed: true, retryable: false });
    expect(server.requests).toHaveLength(1);
  });

  it('retry attempts 0 disables verify retries', async () => {
    const { server, client } = await setup(() => ({ status: 500, body: 'no' }), { retry: { attempts: 0 } });
    await failure(client.verify(['a.com']));
    expect(server.requests).toHaveLength(1);
  });

  const neverRetried: [string, CannedReply][] = [
    ['HTTP 500', { status: 500, body: 'no' }],
    ['code 429', { body: { code: 429, msg: 'too frequent' } }],
    ['a non-JSON body', { body: 'oops' }],
    ['a timeout', { hang: true }],
  ];
  for (const [name, reply] of neverRetried) {
    it(`apply is never retried (${name})`, async () => {
      const { server, client } = await setup(() => reply, { timeoutMs: 150, retry: { attempts: 5 } });
      const error = await failure(client.apply({ domainList: ['a.com'] }));
      expect(error.retryable).toBe(true);
      expect(server.requests).toHaveLength(1);
    });

    it(`getApply is not retried automatically (${name})`, async () => {
      const { server, client } = await setup(() => reply, { timeoutMs: 150, retry: { attempts: 5 } });
      await failure(client.getApply('1'));
      expect(server.requests).toHaveLength(1);
    });
  }

  it('full jitter stays within [0, min(cap, base * 2^n)]', () => {
    const policy = { attempts: 9, baseMs: 250, maxMs: 5_000 };
    expect(fullJitterDelay(0, policy, () => 0.999)).toBe(249);
    expect(fullJitterDelay(3, policy, () => 0.5)).toBe(1000);
    expect(fullJitterDelay(10, policy, () => 0.999)).toBe(4995);
    expect(fullJitterDelay(2, policy, () => 0)).toBe(0);
    expect(DEFAULT_RETRY).toEqual({ attempts: 2, baseMs: 250, maxMs: 5_000 });
  });
});

describe('hooks', () => {
  it('awaits beforeRequest before every attempt, retries included', async () => {
    const replies: CannedReply[] = [{ status: 500, body: 'no' }, { body: verifyValidEnvelope }];
    const calls: string[] = [];
    const seen: number[] = [];
    let server!: CannedServer;
    const gate = deferred();
    const hookCalled = deferred();
    const ctx = await setup((_r, i) => replies[i]!, {
      hooks: {
        async beforeRequest(endpoint) {
          calls.push(endpoint);
          seen.push(server.requests.length);
          if (calls.length === 1) {
            hookCalled.resolve();
            await gate.promise;
          }
        },
      },
    });
    server = ctx.server;
    const pending = ctx.client.verify(['a.com']);
    await hookCalled.promise;
    // The limiter has not let the request through yet.
    expect(server.requests).toHaveLength(0);
    gate.resolve();
    await pending;
    expect(calls).toEqual(['verify', 'verify']);
    expect(seen).toEqual([0, 1]);
  });

  it('reports every attempt to onResponse', async () => {
    const infos: ResponseInfo[] = [];
    const replies: CannedReply[] = [
      { body: { code: 429, msg: 'too frequent', traceId: 'tr1' } },
      { body: verifyValidEnvelope },
      { status: 404, body: 'nope' },
    ];
    const { client } = await setup((_r, i) => replies[i]!, {
      hooks: { onResponse: (info) => infos.push(info) },
    });
    await client.verify(['a.com']);
    await failure(client.apply({ domainList: ['a.com'] }));
    expect(infos).toEqual([
      {
        endpoint: 'verify',
        outcome: 'error',
        errorKind: 'upstream',
        httpStatus: 200,
        code: 429,
        traceId: 'tr1',
        attempt: 1,
        durationMs: expect.any(Number),
      },
      {
        endpoint: 'verify',
        outcome: 'ok',
        httpStatus: 200,
        code: 0,
        traceId: '684c741fdb871fdd218c78b8ba438252',
        attempt: 2,
        durationMs: expect.any(Number),
      },
      {
        endpoint: 'apply',
        outcome: 'error',
        errorKind: 'http',
        httpStatus: 404,
        attempt: 1,
        durationMs: expect.any(Number),
      },
    ]);
    for (const info of infos) expect(info.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('reports network failures without an HTTP status', async () => {
    const infos: ResponseInfo[] = [];
    const client = new HttpsokClient({
      apiKey: KEY,
      baseUrl: await closedPortUrl(),
      hooks: { onResponse: (info) => infos.push(info) },
    });
    cleanups.push(() => client.close());
    await failure(client.getApply('1'));
    expect(infos).toEqual([
      {
        endpoint: 'getApply',
        outcome: 'error',
        errorKind: 'network',
        attempt: 1,
        durationMs: expect.any(Number),
      },
    ]);
  });

  it('a throwing onResponse does not break the call', async () => {
    const { client } = await setup(() => ({ body: verifyValidEnvelope }), {
      hooks: {
        onResponse() {
          throw new Error('metrics down');
        },
      },
    });
    expect((await client.verify(['a.com'])).valid).toBe(true);
  });

  it('a throwing beforeRequest fails the call with its own error and sends nothing', async () => {
    const limiterDown = new Error('redis unavailable');
    const { server, client } = await setup(() => ({ body: verifyValidEnvelope }), {
      hooks: {
        beforeRequest() {
          throw limiterDown;
        },
      },
    });
    await expect(client.verify(['a.com'])).rejects.toBe(limiterDown);
    expect(server.requests).toHaveLength(0);
  });
});

describe('dispatchers and lifecycle', () => {
  it('withApiKey sends the other key over the shared dispatcher and inherits hooks', async () => {
    const endpoints: string[] = [];
    const { server, client } = await setup(() => ({ body: verifyValidEnvelope }), {
      hooks: { beforeRequest: (e) => void endpoints.push(e) },
    });
    const tenant = client.withApiKey('tenant-key-abcdef');
    await tenant.verify(['a.com']);
    await client.verify(['a.com']);
    expect(server.requests.map((r) => r.headers['openapikey'])).toEqual(['tenant-key-abcdef', KEY]);
    expect(endpoints).toEqual(['verify', 'verify']);
    expect(tenant.baseUrl).toBe(client.baseUrl);

    // Closing the derived client leaves the shared dispatcher open.
    await tenant.close();
    await client.verify(['a.com']);
    // Closing the owner closes it for everyone.
    const other = client.withApiKey('tenant-key-ghijkl');
    await client.close();
    expect(await failure(other.verify(['a.com']))).toMatchObject({ kind: 'network', retryable: false });
  });

  it('does not close a dispatcher it was given', async () => {
    const agent = new Agent();
    cleanups.push(() => agent.close());
    const { server, client } = await setup(() => ({ body: verifyValidEnvelope }), { dispatcher: agent });
    await client.close();
    const again = new HttpsokClient({ apiKey: KEY, baseUrl: server.url, dispatcher: agent });
    expect((await again.verify(['a.com'])).valid).toBe(true);
  });

  it('close is idempotent and later calls fail cleanly', async () => {
    const { server, client } = await setup(() => ({ body: verifyValidEnvelope }));
    await client.close();
    await client.close();
    expect(await failure(client.verify(['a.com']))).toMatchObject({
      kind: 'network',
      msg: 'client is closed',
      retryable: false,
    });
    expect(server.requests).toHaveLength(0);
  });

  it('reuses keep-alive connections', async () => {
    const { server, client } = await setup(() => ({ body: verifyValidEnvelope }));
    for (let i = 0; i < 6; i++) await client.verify(['a.com']);
    // undici may hand the next request to a second idle socket before the first is marked free,
    // so sequential calls alternate between at most two connections instead of opening six.
    expect(new Set(server.requests.map((r) => r.remotePort)).size).toBeLessThanOrEqual(2);
  });
});

describe('argument validation', () => {
  it('rejects bad options without repeating the key', () => {
    expect(() => new HttpsokClient({ apiKey: '' })).toThrow(TypeError);
    expect(() => new HttpsokClient({ apiKey: 'abc\r\nX-Evil: 1' })).toThrow(/control characters/);
    try {
      new HttpsokClient({ apiKey: 'abcd\nsecretpart' });
    } catch (e) {
      expect(String(e)).not.toContain('secretpart');
    }
    expect(() => new HttpsokClient({ apiKey: KEY, baseUrl: 'ftp://x' })).toThrow(TypeError);
    expect(() => new HttpsokClient({ apiKey: KEY, baseUrl: 'not a url' })).toThrow(TypeError);
    expect(() => new HttpsokClient({ apiKey: KEY, timeoutMs: 0 })).toThrow(RangeError);
    expect(() => new HttpsokClient({ apiKey: KEY, retry: { attempts: -1 } })).toThrow(RangeError);
  });

  it('rejects bad call arguments before sending anything', async () => {
    const { server, client } = await setup(() => ({ body: verifyValidEnvelope }));
    await expect(client.verify([])).rejects.toThrow(TypeError);
    await expect(client.apply({ domainList: ['a.com'], algorithm: 'DSA' as never })).rejects.toThrow(
      TypeError,
    );
    await expect(client.apply({ domainList: ['a.com'], ca: 'other' as never })).rejects.toThrow(TypeError);
    await expect(client.getApply('../../etc')).rejects.toThrow(TypeError);
    await expect(client.getApply('')).rejects.toThrow(TypeError);
    expect(server.requests).toHaveLength(0);
  });
});
