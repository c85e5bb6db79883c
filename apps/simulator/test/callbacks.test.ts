import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { IssuedData } from '../src/index';
import { start } from './helpers';

interface Received {
  headers: IncomingHttpHeaders;
  body: unknown;
}

const receivers: { close(): void }[] = [];
afterEach(() => {
  for (const r of receivers.splice(0)) r.close();
});

/** A local callback receiver answering the given status codes in turn (the last one repeats). */
async function receiver(statuses: number[]) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.statusCode = statuses[Math.min(received.length - 1, statuses.length - 1)]!;
      res.end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  receivers.push({ close: () => server.close() });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1/callbacks/httpsok/secret`, received };
}

describe('issued callback', () => {
  it('POSTs the issued data (no envelope) as JSON to notifyUrl and counts it', async () => {
    const hook = await receiver([200]);
    const { call, sim, clock } = await start({ issueSeconds: 0 });
    const delivered = once(sim.events, 'callback');
    const id = (
      await call<string>('POST', '/v1/cert/apply', {
        domainList: ['*.example.com', 'example.com'],
        notifyUrl: hook.url,
      })
    ).json.data;
    const [event] = await delivered;
    expect(event).toMatchObject({ id: Number(id), attempt: 1, statusCode: 200, url: hook.url });
    expect(hook.received).toHaveLength(1);
    expect(hook.received[0]!.headers['content-type']).toBe('application/json');
    const posted = hook.received[0]!.body as IssuedData;
    expect(posted).not.toHaveProperty('code');
    expect(posted).toMatchObject({
      id: Number(id),
      status: 1,
      domains: '*.example.com,example.com',
      progress: 100,
    });

    clock.advance(10_000);
    const got = await call<IssuedData>('GET', `/v1/cert/apply/${id}`);
    expect(posted).toEqual(got.json.data);
    expect(sim.stats().callbacks).toBe(1);
  });

  it('retries with backoff when the receiver answers 500, then counts the delivery', async () => {
    const hook = await receiver([500, 503, 200]);
    const { call, sim } = await start({ issueSeconds: 0, callbackRetry: { attempts: 5, baseMs: 20 } });
    const errors: number[] = [];
    sim.events.on('callback-error', (e) => errors.push(e.attempt));
    const delivered = once(sim.events, 'callback');
    const started = performance.now();
    await call('POST', '/v1/cert/apply', { domainList: ['a.example.com'], notifyUrl: hook.url });
    const [event] = await delivered;
    expect(event.attempt).toBe(3);
    expect(errors).toEqual([1, 2]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(20 + 40 - 5);
    expect(hook.received).toHaveLength(3);
    expect(hook.received[2]!.body).toEqual(hook.received[0]!.body);
    expect(sim.stats().callbacks).toBe(1);
  });

  it('gives up after the configured attempts (network errors included) without counting', async () => {
    const hook = await receiver([500]);
    const { call, sim } = await start({ issueSeconds: 0, callbackRetry: { attempts: 3, baseMs: 5 } });
    const abandoned = once(sim.events, 'callback-abandoned');
    await call('POST', '/v1/cert/apply', { domainList: ['a.example.com'], notifyUrl: hook.url });
    const [event] = await abandoned;
    expect(event).toMatchObject({ attempts: 3, error: 'HTTP 500' });
    expect(hook.received).toHaveLength(3);
    expect(sim.stats().callbacks).toBe(0);

    const unreachable = once(sim.events, 'callback-abandoned');
    await call('POST', '/v1/cert/apply', {
      domainList: ['b.example.com'],
      notifyUrl: 'http://127.0.0.1:1/hook',
    });
    const [gone] = await unreachable;
    expect(gone.attempts).toBe(3);
    expect(sim.stats().callbacks).toBe(0);
  });

  it('sends no callback for a failed (status 3) application', async () => {
    const hook = await receiver([200]);
    const { call, sim } = await start({ issueSeconds: 0 });
    const completed = once(sim.events, 'completed');
    await call('POST', '/v1/cert/apply', { domainList: ['x.fail.test'], notifyUrl: hook.url });
    const [event] = await completed;
    expect(event.status).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(hook.received).toHaveLength(0);
    expect(sim.stats().callbacks).toBe(0);
  });

  it('with an injected clock, the application turning issued on a read triggers the callback', async () => {
    const hook = await receiver([200]);
    const { call, sim, clock } = await start({ issueSeconds: 300 });
    const id = (
      await call<string>('POST', '/v1/cert/apply', { domainList: ['a.example.com'], notifyUrl: hook.url })
    ).json.data;
    expect(hook.received).toHaveLength(0);
    clock.advance(300_000);
    const delivered = once(sim.events, 'callback');
    expect((await call<IssuedData>('GET', `/v1/cert/apply/${id}`)).json.data.status).toBe(1);
    await delivered;
    expect(hook.received).toHaveLength(1);
  });

  it('reset() cancels pending callback retries', async () => {
    const hook = await receiver([500]);
    const { call, sim } = await start({ issueSeconds: 0, callbackRetry: { attempts: 5, baseMs: 10_000 } });
    const firstError = once(sim.events, 'callback-error');
    await call('POST', '/v1/cert/apply', { domainList: ['a.example.com'], notifyUrl: hook.url });
    await firstError;
    sim.reset();
    // close() in afterEach must not hang on the 10 s retry timer either.
    expect(hook.received).toHaveLength(1);
  });
});
