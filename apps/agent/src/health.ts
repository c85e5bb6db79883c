import type { Address } from './args';
import { listenOn } from './caddy';
import type { AgentMetrics } from './metrics';

/** `GET /healthz`: 200 while the last successful sync is under `staleAfterSeconds` old, else 503; `GET /metrics`. */
export function startHealthServer(
  address: Address,
  metrics: AgentMetrics,
  staleAfterSeconds: number,
): Promise<() => Promise<void>> {
  return listenOn(address, (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method === 'GET' && path === '/healthz') {
      const age = metrics.syncAgeSeconds();
      const fresh = metrics.lastSuccessAt !== undefined && age < staleAfterSeconds;
      response.writeHead(fresh ? 200 : 503, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          status: fresh ? 'ok' : 'stale',
          lastSuccessAt: metrics.lastSuccessAt ? new Date(metrics.lastSuccessAt).toISOString() : null,
          syncAgeSeconds: Math.round(age),
          cursor: String(metrics.cursor),
          cursorLag: Math.max(0, metrics.head - metrics.cursor),
          skippedCertificates: metrics.skipped,
        }),
      );
      return;
    }
    if (request.method === 'GET' && path === '/metrics') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      response.end(metrics.render());
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
}
