import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AuthThrottle, type Config, metricsAuthorized } from '@certq/core';

/** What the server needs of a prom-client Registry. */
export interface MetricsRegistry {
  contentType: string;
  metrics(): Promise<string>;
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * The worker's `/metrics` (bearer METRICS_TOKEN or the operator token, else 401) and `/healthz`
 * (open: it says only "ok"), on `host` — the API's HOST, so a worker never listens wider than the API.
 */
export async function startMetricsServer(options: {
  registry: MetricsRegistry;
  port: number;
  host: string;
  config: Pick<Config, 'METRICS_TOKEN' | 'ADMIN_TOKEN'>;
  /** The failed-login throttle the API's doors share (per client address, in Redis). */
  throttle?: AuthThrottle;
}): Promise<MetricsServer> {
  const { registry, config } = options;
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/metrics') {
      const ip = req.socket.remoteAddress ?? '';
      const retryAfter = await options.throttle?.retryAfter(ip);
      if (retryAfter !== undefined) {
        res.statusCode = 429;
        res.setHeader('content-type', 'application/json');
        res.setHeader('retry-after', String(retryAfter));
        res.end(
          JSON.stringify({
            error: { code: 'rate_limited', message: 'too many failed authentications from this address' },
          }),
        );
        return;
      }
      if (!metricsAuthorized(req.headers.authorization, config)) {
        if (req.headers.authorization !== undefined) await options.throttle?.fail(ip);
        res.statusCode = 401;
        res.setHeader('content-type', 'application/json');
        res.setHeader('www-authenticate', 'Bearer realm="certq metrics"');
        res.end(
          JSON.stringify({
            error: { code: 'unauthorized', message: 'METRICS_TOKEN or the operator token is required' },
          }),
        );
        return;
      }
      try {
        const text = await registry.metrics();
        res.setHeader('content-type', registry.contentType);
        res.end(text);
      } catch {
        res.statusCode = 503;
        res.end();
      }
    } else if (path === '/healthz') {
      res.end('ok');
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
