import { request } from 'undici';
import { afterEach } from 'vitest';
import { createSimulator, type Envelope, type Simulator, type SimulatorInit } from '../src/index';

export const KEY = 'test-key';

export interface Running {
  sim: Simulator;
  url: string;
  clock: { t: number; advance(ms: number): void };
  call<T = unknown>(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    body?: unknown,
    key?: string | null,
  ): Promise<Reply<T>>;
}

export interface Reply<T> {
  status: number;
  contentType: string;
  text: string;
  json: Envelope<T>;
}

const started: Simulator[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

/** Starts a simulator on a random port with an injected clock; closed after each test. */
export async function start(init: SimulatorInit = {}): Promise<Running> {
  const clock = {
    t: Date.now(),
    advance(ms: number) {
      clock.t += ms;
    },
  };
  const sim = createSimulator({ now: () => clock.t, issueSeconds: 0, ...init });
  started.push(sim);
  const url = await sim.listen();
  async function call<T>(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    body?: unknown,
    key: string | null = KEY,
  ): Promise<Reply<T>> {
    const headers: Record<string, string> = {};
    if (key !== null) headers['openapikey'] = key;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await request(url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    let json: Envelope<T>;
    try {
      json = JSON.parse(text) as Envelope<T>;
    } catch {
      json = undefined as unknown as Envelope<T>;
    }
    return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text, json };
  }
  return { sim, url, clock, call };
}
