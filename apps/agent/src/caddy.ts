import { readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Address } from './args';
import type { Logger } from './log';
import type { AgentMetrics } from './metrics';
import type { AgentState } from './state';

/** `a.b.example.com` → `*.b.example.com`: the one-label wildcard that would cover it. */
function wildcardOf(name: string): string | undefined {
  const dot = name.indexOf('.');
  return dot > 0 ? `*${name.slice(dot)}` : undefined;
}

/**
 * Caddy's `get_certificate http` answered from the agent's own files: `GET /?server_name=` or
 * `GET /tls/certificate?server_name=` → 200 with the PEM bundle (leaf, intermediates, key) of the
 * certificate covering the name (exact before a one-label wildcard, newest first), 204 when none.
 * Every answer comes from memory and disk, never from certq, so handshakes go on while certq is away.
 */
export class CertificateServer {
  /** Server name (or `*.parent`) → file name. */
  private names = new Map<string, string>();
  /** File name → bundle read from disk, with the fingerprint it was read for. */
  private readonly bundles = new Map<string, { fingerprint: string; pem: string }>();
  private fingerprints = new Map<string, string>();

  constructor(
    private readonly dir: string,
    private readonly metrics: AgentMetrics,
    private readonly log: Logger,
  ) {}

  /** Serves what `state` says is on disk (called after every batch, once the files are written). */
  update(state: AgentState): void {
    const byNewest = Object.entries(state.written).sort(
      ([, a], [, b]) =>
        (state.current[b.certificateId]?.since ?? 0) - (state.current[a.certificateId]?.since ?? 0),
    );
    const names = new Map<string, string>();
    const fingerprints = new Map<string, string>();
    for (const [name, written] of byNewest) {
      fingerprints.set(name, written.fingerprint);
      for (const domain of written.domains) if (!names.has(domain)) names.set(domain, name);
    }
    for (const [name, cached] of this.bundles)
      if (fingerprints.get(name) !== cached.fingerprint) this.bundles.delete(name);
    this.names = names;
    this.fingerprints = fingerprints;
  }

  /** The bundle for a handshake's server name, or undefined. */
  lookup(serverName: string): string | undefined {
    const name = serverName.toLowerCase().replace(/\.$/, '');
    const file = this.names.get(name) ?? this.names.get(wildcardOf(name) ?? '');
    if (!file) return undefined;
    const fingerprint = this.fingerprints.get(file)!;
    const cached = this.bundles.get(file);
    if (cached?.fingerprint === fingerprint) return cached.pem;
    try {
      const pem = readFileSync(join(this.dir, `${file}.pem`), 'utf8');
      this.bundles.set(file, { fingerprint, pem });
      return pem;
    } catch (error) {
      this.log.warn(`cannot read ${file}.pem: ${(error as Error).message}`);
      return undefined;
    }
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://agent');
    if (request.method !== 'GET' || (url.pathname !== '/' && url.pathname !== '/tls/certificate')) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const serverName = url.searchParams.get('server_name');
    if (!serverName) {
      response.writeHead(400, { 'content-type': 'text/plain' }).end('server_name is required\n');
      return;
    }
    const pem = this.lookup(serverName);
    if (!pem) {
      this.metrics.servedTotal.miss++;
      response.writeHead(204).end();
      return;
    }
    this.metrics.servedTotal.hit++;
    response.writeHead(200, { 'content-type': 'application/x-pem-file', 'cache-control': 'no-store' });
    response.end(pem);
  }

  /** Listens on `address` (a Unix socket is replaced if one is left over); resolves with a closer. */
  listen(address: Address): Promise<() => Promise<void>> {
    return listenOn(address, (request, response) => this.handle(request, response));
  }
}

export function listenOn(
  address: Address,
  handler: (request: IncomingMessage, response: ServerResponse) => void,
): Promise<() => Promise<void>> {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const ready = () => {
      server.off('error', reject);
      resolve(
        () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      );
    };
    if ('path' in address) {
      rmSync(address.path, { force: true });
      server.listen(address.path, ready);
    } else server.listen(address.port, address.host, ready);
  });
}
