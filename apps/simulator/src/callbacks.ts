import type { EventEmitter } from 'node:events';
import { Agent, request } from 'undici';
import { type CertificateAuthority, formatChinaTime, type IssuedCertificate } from './ca';
import type { SimulatorOptions } from './config';
import type { Application, SimState } from './state';
import type { FailedData, IssuedData, SimulatorEvents } from './types';

/**
 * The end of an application: the certificate (made once), the issued/failed payloads, and the issued
 * callback POSTed to `notifyUrl` with retries.
 */
export interface Issuance {
  issuedData(app: Application): Promise<IssuedData>;
  failedData(app: Application): FailedData;
  /** The application reached its end: make the certificate and send the callback, once. */
  complete(app: Application): void;
  close(): Promise<void>;
}

export function createIssuance(
  options: SimulatorOptions,
  state: SimState,
  caReady: Promise<CertificateAuthority>,
  events: EventEmitter<SimulatorEvents>,
): Issuance {
  // At most 64 concurrent callback connections per receiver; more deliveries queue.
  const agent = new Agent({
    connections: 64,
    connect: { timeout: 5_000 },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });

  function certificateOf(app: Application): Promise<IssuedCertificate> {
    if (!app.cert) {
      const pending = caReady.then((authority) =>
        authority.issue({
          domains: app.domains,
          algorithm: app.algorithm,
          issuedAt: app.dueAt,
          lifetimeMs: options.certLifetimeMs[app.ca],
        }),
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
    const reason = app.failure ?? 'the CA rejected the order';
    return { id: app.id, status: 3, domains: app.domains.join(','), progress: 100, msg: reason, reason };
  }

  function complete(app: Application): void {
    if (app.completed) return;
    app.completed = true;
    const fails = app.failure !== undefined;
    events.emit('completed', { id: app.id, status: fails ? 3 : 1 });
    if (fails) return;
    const cert = certificateOf(app);
    if (app.notifyUrl) void deliver(app, app.notifyUrl, state.generation);
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
      if (gen !== state.generation) return;
      try {
        const res = await request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'httpsok-simulator' },
          body,
          signal: state.signal,
          dispatcher: agent,
        });
        await res.body.dump();
        if (gen !== state.generation) return;
        if (res.statusCode >= 200 && res.statusCode < 300) {
          state.counters.callbacks++;
          events.emit('callback', { id: app.id, url, attempt, statusCode: res.statusCode });
          return;
        }
        lastError = `HTTP ${res.statusCode}`;
      } catch (err) {
        if (gen !== state.generation) return;
        lastError = err instanceof Error ? err.message : String(err);
      }
      events.emit('callback-error', { id: app.id, url, attempt, error: lastError });
      if (attempt < attempts && !(await state.wait(baseMs * 2 ** (attempt - 1)))) return;
    }
    events.emit('callback-abandoned', { id: app.id, url, attempts, error: lastError });
  }

  return { issuedData, failedData, complete, close: () => agent.destroy() };
}
