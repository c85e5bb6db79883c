import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The worker's /metrics (and /healthz) under `pnpm start`, as apps/worker/src/main.ts serves them. */
/** What the server needs of a prom-client Registry. */
export interface MetricsRegistry {
  contentType: string;
  metrics(): Promise<string>;
}

export async function startMetricsServer(
  registry: MetricsRegistry,
  port: number,
  host: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(async (req, res) => {
    if (req.url === '/metrics') {
      res.setHeader('content-type', registry.contentType);
      res.end(await registry.metrics());
    } else if (req.url === '/healthz') {
      res.end('ok');
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
