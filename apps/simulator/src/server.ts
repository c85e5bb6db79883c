import { EventEmitter } from 'node:events';
import Fastify from 'fastify';
import { type CertificateAuthority, createCertificateAuthority } from './ca';
import { createIssuance } from './callbacks';
import { resolveOptions, type SimulatorInit } from './config';
import { registerControlRoutes } from './control-routes';
import { createDnsCheck } from './dns-check';
import { installHttpBasics } from './http';
import { SimState } from './state';
import type { Simulator, SimulatorEvents } from './types';
import { registerUpstreamRoutes } from './upstream-routes';

/**
 * A local httpsok-compatible server: the three OpenAPI endpoints (upstream-routes.ts), the issued
 * callback (callbacks.ts) and a control API under `/_sim` (control-routes.ts), over one state
 * (state.ts). Returns at once; the CA is created in the background (`ready()`).
 */
export function createSimulator(init: SimulatorInit = {}): Simulator {
  const options = resolveOptions(init);
  const events = new EventEmitter<SimulatorEvents>();
  const state = new SimState();

  let ca: CertificateAuthority | undefined;
  const caReady = createCertificateAuthority({ dir: options.caDir }).then((created) => {
    ca = created;
    return created;
  });
  // Surface the error on ready()/listen()/requests, not as an unhandled rejection.
  caReady.catch(() => {});

  const issuance = createIssuance(options, state, caReady, events);
  const dnsCheck = createDnsCheck(options, state);
  let closed = false;

  const app = Fastify({ logger: options.logger ? { level: 'info' } : false });
  installHttpBasics(app);
  registerUpstreamRoutes(app, { options, state, issuance, dnsCheck });
  const reset = () => state.reset();
  registerControlRoutes(app, { state, caReady, reset });

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
    state.cancelAll();
    dnsCheck.close();
    await app.close();
    await issuance.close();
    await caReady.catch(() => {});
  }

  return {
    app,
    listen,
    close,
    async ready() {
      await caReady;
    },
    stats: () => state.stats(),
    reset,
    setDns: (name, value) => state.setDns(name, value),
    get caPem(): string {
      if (!ca) throw new Error('simulator CA is not ready yet: await sim.ready() or sim.listen() first');
      return ca.rootPem;
    },
    options,
    events,
  };
}
