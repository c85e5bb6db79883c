import { afterEach, describe, expect, it } from 'vitest';
import {
  classifyFailure,
  HttpsokClient,
  HttpsokError,
  provesNoApplication,
  type UpstreamFailure,
} from '../src/index';
import { type CannedReply, closedPortUrl, startCannedServer } from './support/canned-server';

const KEY = 'test-key-0123456789';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** The error the real client throws for one apply answered with `reply`. */
async function applyError(reply: CannedReply, baseUrl?: string): Promise<unknown> {
  let url = baseUrl;
  if (!url) {
    const server = await startCannedServer(() => reply);
    cleanups.push(() => server.close());
    url = server.url;
  }
  // Short only where the timeout is the point: under load a real answer may take a while.
  const client = new HttpsokClient({ apiKey: KEY, baseUrl: url, timeoutMs: reply.hang ? 150 : 10_000 });
  cleanups.push(() => client.close());
  return client.apply({ domainList: ['a.example.com'] }).then(
    () => {
      throw new Error('expected the apply to fail');
    },
    (error: unknown) => error,
  );
}

describe('classifyFailure: what a failed apply proves', () => {
  const envelope = (code: number, msg: string): CannedReply => ({ body: { code, msg, traceId: 't' } });
  const cases: [string, CannedReply, UpstreamFailure][] = [
    ['an envelope "domain not verified"', envelope(400, 'domain not verified: a.example.com'), 'unverified'],
    ['an envelope "invalid domain"', envelope(400, 'invalid domain: a..com'), 'rejected'],
    ['an envelope with an unknown code', envelope(500123, 'system busy'), 'refused'],
    ['an envelope 429', envelope(429, 'too frequent'), 'rate_limited'],
    ['an envelope 401', envelope(401, 'OpenApiKey invalid'), 'auth_failed'],
    ['a gateway 502 page', { status: 502, body: '<html>502 Bad Gateway</html>' }, 'unknown'],
    ['a gateway 504 page', { status: 504, body: '<html>504 Gateway Time-out</html>' }, 'unknown'],
    ['an HTTP 500 with an envelope', { status: 500, body: { code: 500, msg: 'oops' } }, 'unknown'],
    ['an HTTP 429 from something on the way', { status: 429, body: 'slow down' }, 'unknown'],
    ['an HTTP 404', { status: 404, body: 'not found' }, 'unknown'],
    ['an HTTP 401', { status: 401, body: 'no' }, 'auth_failed'],
    ['a 200 whose body is not JSON', { body: '<html>ok</html>' }, 'unknown'],
    ['a 200 whose data does not parse', { body: { code: 0, msg: 'ok', data: { id: [] } } }, 'unknown'],
    ['no answer in time', { hang: true }, 'unknown'],
  ];
  for (const [name, reply, expected] of cases) {
    it(`${name}: ${expected}`, async () => {
      const failure = classifyFailure(await applyError(reply));
      expect(failure).toBe(expected);
      expect(provesNoApplication(failure)).toBe(expected !== 'unknown');
    });
  }

  it('a refused connection: unknown (the request may have left); anything not from the client: unknown', async () => {
    expect(classifyFailure(await applyError({}, await closedPortUrl()))).toBe('unknown');
    expect(classifyFailure(new Error('boom'))).toBe('unknown');
  });

  it('reads are safe to repeat: an HTTP 429 on the way is a rate limit for a verify or a poll', () => {
    const http429 = (endpoint: 'verify' | 'getApply' | 'apply') =>
      new HttpsokError({
        kind: 'http',
        endpoint,
        httpStatus: 429,
        msg: 'x',
        retryable: true,
        rateLimited: true,
      });
    expect(classifyFailure(http429('verify'))).toBe('rate_limited');
    expect(classifyFailure(http429('getApply'))).toBe('rate_limited');
    expect(classifyFailure(http429('apply'))).toBe('unknown');
  });

  it('the client does not call a refusal retryable (a verify is not retried on it)', async () => {
    const error = (await applyError(envelope(400, 'domain not verified: a.example.com'))) as HttpsokError;
    expect(error).toMatchObject({ kind: 'upstream', code: 400, retryable: false });
    expect(((await applyError(envelope(500123, 'busy'))) as HttpsokError).retryable).toBe(true);
    expect(((await applyError(envelope(429, 'too frequent'))) as HttpsokError).retryable).toBe(true);
  });
});
