import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { Agent, request } from 'undici';
import { z } from 'zod';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  formatChinaTime,
  type IssuedCertificate,
} from './ca';
import { resolveOptions, type SimulatorInit, type SimulatorOptions } from './config';
import { dvRecord, isFailTest, isUnderInvalid, isValidDomain, normalizeName } from './domains';

export type Algorithm = 'ECC' | 'RSA';
export type CaName = 'google' | 'letsencrypt' | 'zerossl';

export interface SimStats {
  dv: number;
  apply: number;
  get: number;
  callbacks: number;
  tooFrequent: number;
  appliesByDomains: Record<string, number>;
}

export interface Envelope<T = unknown> {
  code: number;
  msg: string;
  data: T;
  traceId: string;
}

export interface DvConfig {
  domain: string;
  host: string;
  hostValue: string;
  valid: boolean;
}

export interface IssuingData {
  id: number;
  status: 2;
  domains: string;
  progress: number;
}

export interface IssuedData {
  id: number;
  status: 1;
  algorithm: Algorithm;
  ca: CaName;
  name: string;
  domains: string;
  notBefore: string;
  notAfter: string;
  certificate: string;
  privateKey: string;
  fingerprints: string;
  progress: 100;
}

export interface FailedData {
  id: number;
  status: 3;
  domains: string;
  progress: number;
  msg: string;
  reason: string;
}

export type ApplicationData = IssuingData | IssuedData | FailedData;

/** Events on `Simulator.events` (handy in tests: `await once(sim.events, 'callback')`). */
export interface SimulatorEvents {
  /** An application turned issued (status 1) or failed (status 3). */
  completed: [{ id: number; status: 1 | 3 }];
  /** A callback was delivered with a 2xx answer. */
  callback: [{ id: number; url: string; attempt: number; statusCode: number }];
  /** One callback attempt failed (non-2xx or network error). */
  'callback-error': [{ id: number; url: string; attempt: number; error: string }];
  /** Every attempt failed; the callback is given up. */
  'callback-abandoned': [{ id: number; url: string; attempts: number; error: string }];
}

export interface Simulator {
  /** The Fastify instance (routes registered; `inject` works without `listen`). */
  app: FastifyInstance;
  /** Starts listening; resolves to the base URL, e.g. `http://127.0.0.1:4010`. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops the server, the issue timers and pending callbacks. */
  close(): Promise<void>;
  /** Resolves when the CA is ready (`listen` waits for it too). */
  ready(): Promise<void>;
  stats(): SimStats;
  /** Clears applications, DNS records, poll times and counters; keeps the CA and the id sequence. */
  reset(): void;
  /** Sets (or with an empty value removes) the CNAME `name -> value` used by `verify: 'records'`. */
  setDns(name: string, value: string): void;
  /** The root CA certificate PEM (available once `ready()`/`listen()` resolved). */
  readonly caPem: string;
  readonly options: Readonly<SimulatorOptions>;
  readonly events: EventEmitter<SimulatorEvents>;
}

interface Application {
  id: number;
  owner: string;
  domains: string[];
  algorithm: Algorithm;
  ca: CaName;
  notifyUrl: string | undefined;
  createdAt: number;
  dueAt: number;
  fails: boolean;
  /** Turned terminal (by the clock on a read, or by the issue timer). */
  completed: boolean;
  cert: Promise<IssuedCertificate> | undefined;
}

const FIRST_ID = 236417;
const CAS = ['google', 'letsencrypt', 'zerossl'] as const;
const INTERNAL_ERROR_BODY =
  '<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';

const domainList = z
  .array(z.string().max(253, 'domain too long'), 'domainList must be an array of strings')
  .min(1, 'domainList must not be empty')
  .max(100, 'domainList holds at most 100 domains');

const dvBody = z.object({ domainList }, 'body must be a JSON object');

const optionalString = z.preprocess((v) => (v === null || v === '' ? undefined : v), z.string().optional());

const applyBody = z.object(
  {
    domainList,
    algorithm: optionalString.pipe(z.enum(['ECC', 'RSA'], 'algorithm must be ECC or RSA').default('ECC')),
    ca: optionalString.pipe(z.enum(CAS, 'ca must be google, letsencrypt or zerossl').default('google')),
    notifyUrl: optionalString.pipe(
      z.url({ protocol: /^https?$/, error: 'notifyUrl must be an http(s) URL' }).optional(),
    ),
  },
  'body must be a JSON object',
);

function traceId(): string {
  return randomBytes(16).toString('hex');
}

function envelope<T>(code: number, msg: string, data: T): Envelope<T> {
  return { code, msg, data, traceId: traceId() };
}

const ok = <T>(data: T) => envelope(0, 'success', data);
const fail = (code: number, msg: string) => envelope(code, msg, null);

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid request';
  const path = issue.path.join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** Normalizes the domain list; answers the first invalid domain as an error message. */
function normalizeDomains(list: string[]): { domains: string[] } | { error: string } {
  const domains = list.map(normalizeName);
  for (let i = 0; i < domains.length; i++) {
    if (!isValidDomain(domains[i]!)) return { error: `invalid domain: ${list[i]}` };
  }
  return { domains };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A local httpsok-compatible server: the three OpenAPI endpoints, the issued callback and a
 * control API under `/_sim`. Returns at once; the CA is created in the background (`ready()`).
 */
export function createSimulator(init: SimulatorInit = {}): Simulator {
  const options = resolveOptions(init);
  const { now } = options;
  const events = new EventEmitter<SimulatorEvents>();

  let ca: CertificateAuthority | undefined;
  const caReady = createCertificateAuthority({ dir: options.caDir }).then((created) => {
    ca = created;
    return created;
  });
  // Surface the error on ready()/listen()/requests, not as an unhandled rejection.
  caReady.catch(() => {});

  const applications = new Map<number, Application>();
  const lastRequest = new Map<string, number>();
  const dns = new Map<string, string>();
  let nextId = FIRST_ID;
  let counters = { dv: 0, apply: 0, get: 0, callbacks: 0, tooFrequent: 0 };
  let applies = new Map<string, number>();

  // Timers and callback deliveries belong to a generation; reset() and close() start a new one.
  let generation = 0;
  let closed = false;
  const timers = new Set<NodeJS.Timeout>();
  const waits = new Set<() => void>();
  let abort = new AbortController();
  // At most 64 concurrent callback connections per receiver; more deliveries queue.
  const agent = new Agent({
    connections: 64,
    connect: { timeout: 5_000 },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });

  function schedule(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    timers.add(timer);
  }

  /** An unref'd delay that resolves false when cancelled by reset()/close(). */
  function wait(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = () => {
        waits.delete(done);
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        waits.delete(done);
        timers.delete(timer);
        resolve(true);
      }, ms);
      timer.unref();
      timers.add(timer);
      waits.add(done);
    });
  }

  function cancelAll(): void {
    generation++;
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    for (const done of [...waits]) done();
    abort.abort();
    abort = new AbortController();
  }

  function authenticate(req: FastifyRequest): string | undefined {
    const header = req.headers['openapikey'];
    const key = Array.isArray(header) ? header[0] : header;
    if (!key) return undefined;
    if (options.apiKeys.length > 0 && !options.apiKeys.includes(key)) return undefined;
    return key;
  }

  function dvConfig(apiKey: string, domain: string): DvConfig {
    const record = dvRecord(apiKey, domain);
    let valid: boolean;
    if (options.verify === 'auto') {
      valid = !isUnderInvalid(domain);
    } else {
      valid = dns.get(record.fqdn) === record.hostValue;
    }
    return { domain, host: record.host, hostValue: record.hostValue, valid };
  }

  function certificateOf(app: Application): Promise<IssuedCertificate> {
    if (!app.cert) {
      const pending = caReady.then((authority) =>
        authority.issue({ domains: app.domains, algorithm: app.algorithm, issuedAt: app.dueAt }),
      );
      app.cert = pending;
      pending.catch(() => {
        if (app.cert === pending) app.cert = undefined;
      });
    }
    return app.cert;
  }

  async function issuedData(app: Application): Promise<IssuedData> {
    const cert = await certificateOf(app);
    return {
      id: app.id,
      status: 1,
      algorithm: app.algorithm,
      ca: app.ca,
      name: app.domains[0]!,
      domains: app.domains.join(','),
      notBefore: formatChinaTime(cert.notBefore),
      notAfter: formatChinaTime(cert.notAfter),
      certificate: cert.certificate,
      privateKey: cert.privateKey,
      fingerprints: cert.fingerprints,
      progress: 100,
    };
  }

  function failedData(app: Application): FailedData {
    const culprit = app.domains.find(isFailTest) ?? app.domains[0]!;
    const reason = `DNS validation failed for ${culprit}: the CA rejected the order`;
    return { id: app.id, status: 3, domains: app.domains.join(','), progress: 100, msg: reason, reason };
  }

  /** The application reached its end: make the certificate and send the callback, once. */
  function complete(app: Application): void {
    if (app.completed) return;
    app.completed = true;
    events.emit('completed', { id: app.id, status: app.fails ? 3 : 1 });
    if (app.fails) return;
    const cert = certificateOf(app);
    if (app.notifyUrl) void deliver(app, app.notifyUrl, generation);
    else cert.catch(() => {});
  }

  async function deliver(app: Application, url: string, gen: number): Promise<void> {
    const { attempts, baseMs } = options.callbackRetry;
    let lastError = 'not attempted';
    let body: string;
    try {
      body = JSON.stringify(await issuedData(app));
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      events.emit('callback-abandoned', { id: app.id, url, attempts: 0, error: lastError });
      return;
    }
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (gen !== generation) return;
      try {
        const res = await request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'httpsok-simulator' },
          body,
          signal: abort.signal,
          dispatcher: agent,
        });
        await res.body.dump();
        if (gen !== generation) return;
        if (res.statusCode >= 200 && res.statusCode < 300) {
          counters.callbacks++;
          events.emit('callback', { id: app.id, url, attempt, statusCode: res.statusCode });
          return;
        }
        lastError = `HTTP ${res.statusCode}`;
      } catch (err) {
        if (gen !== generation) return;
        lastError = err instanceof Error ? err.message : String(err);
      }
      events.emit('callback-error', { id: app.id, url, attempt, error: lastError });
      if (attempt < attempts && !(await wait(baseMs * 2 ** (attempt - 1)))) return;
    }
    events.emit('callback-abandoned', { id: app.id, url, attempts, error: lastError });
  }

  function idKey(raw: string): string {
    return /^\d+$/.test(raw) ? raw.replace(/^0+(?=\d)/, '') : raw;
  }

  const app = Fastify({ logger: options.logger ? { level: 'info' } : false });

  // JSON bodies; an empty body is allowed (e.g. POST /_sim/reset with a JSON content type).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      const error = new Error('body is not valid JSON') as FastifyError;
      error.statusCode = 400;
      done(error, undefined);
    }
  });

  app.setErrorHandler((error: FastifyError, req, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) req.log.error({ err: error }, 'request failed');
    if (req.url.startsWith('/v1/')) {
      return status < 500
        ? reply.code(200).send(fail(status, error.message))
        : reply.code(500).send(fail(500, 'internal error'));
    }
    return reply.code(status).send({ error: status < 500 ? error.message : 'internal error' });
  });

  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/v1/')) return reply.code(404).send(fail(404, 'not found'));
    return reply.code(404).send({ error: 'not found' });
  });

  /** Latency and failure injection of the upstream endpoints, before anything else happens. */
  function gate(kind: 'dv' | 'apply' | 'get') {
    return async (req: FastifyRequest, reply: FastifyReply) => {
      if (options.latencyMs > 0) await sleep(options.latencyMs);
      if (options.failRate > 0 && options.random() < options.failRate) {
        if (kind === 'dv') counters.dv++;
        if (kind === 'get') {
          counters.get++;
          lastRequest.set(idKey((req.params as { id: string }).id), now());
        }
        return reply.code(500).type('text/html').send(INTERNAL_ERROR_BODY);
      }
    };
  }

  app.post('/v1/cert/dv', { onRequest: gate('dv') }, async (req) => {
    counters.dv++;
    const apiKey = authenticate(req);
    if (!apiKey) return fail(401, 'OpenApiKey invalid');
    const parsed = dvBody.safeParse(req.body);
    if (!parsed.success) return fail(400, firstIssue(parsed.error));
    const normalized = normalizeDomains(parsed.data.domainList);
    if ('error' in normalized) return fail(400, normalized.error);
    const configs = normalized.domains.map((d) => dvConfig(apiKey, d));
    return ok({ configs, valid: configs.every((c) => c.valid) });
  });

  app.post('/v1/cert/apply', { onRequest: gate('apply') }, async (req) => {
    const apiKey = authenticate(req);
    if (!apiKey) return fail(401, 'OpenApiKey invalid');
    const parsed = applyBody.safeParse(req.body);
    if (!parsed.success) return fail(400, firstIssue(parsed.error));
    const normalized = normalizeDomains(parsed.data.domainList);
    if ('error' in normalized) return fail(400, normalized.error);
    const { domains } = normalized;
    const unverified = domains.find((d) => !dvConfig(apiKey, d).valid);
    if (unverified) return fail(400, `domain not verified: ${unverified}`);

    const createdAt = now();
    const application: Application = {
      id: nextId++,
      owner: apiKey,
      domains,
      algorithm: parsed.data.algorithm,
      ca: parsed.data.ca,
      notifyUrl: parsed.data.notifyUrl,
      createdAt,
      dueAt: createdAt + options.issueSeconds * 1000,
      fails: domains.some(isFailTest),
      completed: false,
      cert: undefined,
    };
    applications.set(application.id, application);
    counters.apply++;
    const key = domains.join(',');
    applies.set(key, (applies.get(key) ?? 0) + 1);
    if (application.notifyUrl) schedule(options.issueSeconds * 1000, () => complete(application));
    return ok(String(application.id));
  });

  app.get<{ Params: { id: string } }>('/v1/cert/apply/:id', { onRequest: gate('get') }, async (req) => {
    counters.get++;
    const at = now();
    const key = idKey(req.params.id);
    const previous = lastRequest.get(key);
    lastRequest.set(key, at);
    const apiKey = authenticate(req);
    if (!apiKey) return fail(401, 'OpenApiKey invalid');
    if (previous !== undefined && at - previous < options.pollFloorMs) {
      counters.tooFrequent++;
      return fail(429, 'too frequent');
    }
    const application = /^\d+$/.test(key) ? applications.get(Number(key)) : undefined;
    if (!application || application.owner !== apiKey) return fail(404, 'application not found');

    if (!application.completed && at >= application.dueAt) complete(application);
    if (application.completed) {
      return application.fails ? ok(failedData(application)) : ok(await issuedData(application));
    }
    const total = application.dueAt - application.createdAt;
    const elapsed = Math.max(0, at - application.createdAt);
    const progress = total > 0 ? Math.min(99, Math.floor((elapsed / total) * 100)) : 0;
    const data: IssuingData = {
      id: application.id,
      status: 2,
      domains: application.domains.join(','),
      progress,
    };
    return ok(data);
  });

  // Control API.
  app.get('/_sim/ca', async (_req, reply) => {
    const authority = await caReady;
    return reply.type('text/plain; charset=utf-8').send(authority.rootPem);
  });

  const dnsBody = z.object({ name: z.string().min(1), value: z.string() }, 'body must be a JSON object');
  app.put('/_sim/dns', async (req, reply) => {
    const parsed = dnsBody.safeParse(req.body);
    if (!parsed.success) return reply.code(400).send({ error: firstIssue(parsed.error) });
    setDns(parsed.data.name, parsed.data.value);
    return reply.code(204).send();
  });

  app.post('/_sim/reset', async (_req, reply) => {
    reset();
    return reply.code(204).send();
  });

  app.get('/_sim/stats', async () => stats());

  app.get('/healthz', async () => ({ status: 'ok' }));

  function stats(): SimStats {
    return { ...counters, appliesByDomains: Object.fromEntries(applies) };
  }

  function reset(): void {
    cancelAll();
    applications.clear();
    lastRequest.clear();
    dns.clear();
    counters = { dv: 0, apply: 0, get: 0, callbacks: 0, tooFrequent: 0 };
    applies = new Map();
  }

  function setDns(name: string, value: string): void {
    const key = normalizeName(name);
    const target = normalizeName(value);
    if (target === '') dns.delete(key);
    else dns.set(key, target);
  }

  async function ready(): Promise<void> {
    await caReady;
  }

  async function listen(port = 0, host = '127.0.0.1'): Promise<string> {
    if (closed) throw new Error('simulator is closed');
    await caReady;
    await app.listen({ port, host });
    const address = app.server.address();
    if (!address || typeof address === 'string') throw new Error('simulator is not listening on TCP');
    const wildcard = address.address === '0.0.0.0' || address.address === '::';
    const shown = wildcard
      ? '127.0.0.1'
      : address.family === 'IPv6'
        ? `[${address.address}]`
        : address.address;
    return `http://${shown}:${address.port}`;
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    cancelAll();
    await app.close();
    await agent.destroy();
    await caReady.catch(() => {});
  }

  return {
    app,
    listen,
    close,
    ready,
    stats,
    reset,
    setDns,
    get caPem(): string {
      if (!ca) throw new Error('simulator CA is not ready yet: await sim.ready() or sim.listen() first');
      return ca.rootPem;
    },
    options,
    events,
  };
}
