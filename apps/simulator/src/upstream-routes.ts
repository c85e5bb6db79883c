import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Issuance } from './callbacks';
import type { SimulatorOptions } from './config';
import type { DnsCheck } from './dns-check';
import { applicationDomain, isFailTest } from './domains';
import { fail, firstIssue, ok } from './http';
import type { Application, SimState } from './state';
import { CAS, type CaName, type IssuingData } from './types';

/** The three httpsok OpenAPI endpoints: `POST /v1/cert/dv`, `POST /v1/cert/apply`, `GET /v1/cert/apply/{id}`. */

export interface UpstreamContext {
  options: SimulatorOptions;
  state: SimState;
  issuance: Issuance;
  dnsCheck: DnsCheck;
}

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

/** Normalizes the domain list; answers the first invalid domain as an error message. */
function normalizeDomains(list: string[]): { domains: string[] } | { error: string } {
  const domains: string[] = [];
  for (const raw of list) {
    const domain = applicationDomain(raw);
    if (domain === null) return { error: `invalid domain: ${raw}` };
    domains.push(domain);
  }
  return { domains };
}

/** Why an application for these domains from this CA ends with status 3, or undefined. */
function failureOf(domains: string[], ca: CaName, caFailures: readonly CaName[]): string | undefined {
  const culprit = domains.find(isFailTest);
  if (culprit) return `DNS validation failed for ${culprit}: the CA rejected the order`;
  if (caFailures.includes(ca))
    return `the CA ${ca} refused to issue for ${domains[0]}: order rejected by the CA`;
  return undefined;
}

function idKey(raw: string): string {
  return /^\d+$/.test(raw) ? raw.replace(/^0+(?=\d)/, '') : raw;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function registerUpstreamRoutes(app: FastifyInstance, ctx: UpstreamContext): void {
  const { options, state, issuance, dnsCheck } = ctx;
  const { now } = options;

  function authenticate(req: FastifyRequest): string | undefined {
    const header = req.headers['openapikey'];
    const key = Array.isArray(header) ? header[0] : header;
    if (!key) return undefined;
    if (options.apiKeys.length > 0 && !options.apiKeys.includes(key)) return undefined;
    return key;
  }

  /**
   * The caller's key, the body and its normalised domains of a dv or apply request; or what httpsok
   * answers instead, in its order: 401 for the key first, then 400 for the body, then for a domain.
   */
  function readDomainRequest<Body extends { domainList: string[] }>(
    req: FastifyRequest,
    schema: z.ZodType<Body>,
  ): { apiKey: string; body: Body; domains: string[] } | { failure: ReturnType<typeof fail> } {
    const apiKey = authenticate(req);
    if (!apiKey) return { failure: fail(401, 'OpenApiKey invalid') };
    const parsed = schema.safeParse(req.body);
    if (!parsed.success) return { failure: fail(400, firstIssue(parsed.error)) };
    const normalized = normalizeDomains(parsed.data.domainList);
    if ('error' in normalized) return { failure: fail(400, normalized.error) };
    return { apiKey, body: parsed.data, domains: normalized.domains };
  }

  /** Latency and failure injection of the upstream endpoints, before anything else happens. */
  function gate(kind: 'dv' | 'apply' | 'get') {
    return async (req: FastifyRequest, reply: FastifyReply) => {
      if (options.latencyMs > 0) await sleep(options.latencyMs);
      if (options.failRate > 0 && options.random() < options.failRate) {
        if (kind === 'dv') state.counters.dv++;
        if (kind === 'get') {
          state.counters.get++;
          state.lastRequest.set(idKey((req.params as { id: string }).id), now());
        }
        return reply.code(500).type('text/html').send(INTERNAL_ERROR_BODY);
      }
    };
  }

  app.post('/v1/cert/dv', { onRequest: gate('dv') }, async (req) => {
    state.counters.dv++;
    const request = readDomainRequest(req, dvBody);
    if ('failure' in request) return request.failure;
    const { apiKey, domains } = request;
    const configs = await Promise.all(domains.map((d) => dnsCheck.dvConfig(apiKey, d)));
    return ok({ configs, valid: configs.every((c) => c.valid) });
  });

  app.post('/v1/cert/apply', { onRequest: gate('apply') }, async (req) => {
    const request = readDomainRequest(req, applyBody);
    if ('failure' in request) return request.failure;
    const { apiKey, body, domains } = request;
    const configs = await Promise.all(domains.map((d) => dnsCheck.dvConfig(apiKey, d)));
    const unverified = configs.find((c) => !c.valid);
    if (unverified) return fail(400, `domain not verified: ${unverified.domain}`);

    const createdAt = now();
    const application: Application = {
      id: state.takeId(),
      owner: apiKey,
      domains,
      algorithm: body.algorithm,
      ca: body.ca,
      notifyUrl: body.notifyUrl,
      createdAt,
      dueAt: createdAt + options.issueSeconds * 1000,
      failure: failureOf(domains, body.ca, options.caFailures),
      completed: false,
      cert: undefined,
    };
    state.recordApply(application);
    if (application.notifyUrl)
      state.schedule(options.issueSeconds * 1000, () => issuance.complete(application));
    return ok(String(application.id));
  });

  app.get<{ Params: { id: string } }>('/v1/cert/apply/:id', { onRequest: gate('get') }, async (req) => {
    state.counters.get++;
    const at = now();
    const key = idKey(req.params.id);
    const previous = state.lastRequest.get(key);
    state.lastRequest.set(key, at);
    const apiKey = authenticate(req);
    if (!apiKey) return fail(401, 'OpenApiKey invalid');
    if (previous !== undefined && at - previous < options.pollFloorMs) {
      state.counters.tooFrequent++;
      return fail(429, 'too frequent');
    }
    const application = /^\d+$/.test(key) ? state.applications.get(Number(key)) : undefined;
    if (!application || application.owner !== apiKey) return fail(404, 'application not found');

    if (!application.completed && at >= application.dueAt) issuance.complete(application);
    if (application.completed) {
      return application.failure !== undefined
        ? ok(issuance.failedData(application))
        : ok(await issuance.issuedData(application));
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
}
