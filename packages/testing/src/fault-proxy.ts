import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/**
 * A TCP proxy for fault injection: put it between a process and Postgres, Redis or the simulator and
 * make the way there fail the way networks do.
 *
 * - `pass` (default): bytes flow both ways, after `latencyMs` each way if set;
 * - `cut()`: every open connection is destroyed (RST-like: the client sees ECONNRESET / "terminated");
 * - `refuse()`: new connections are accepted and destroyed at once (the listener keeps its port, so
 *   a restore is instant and nothing else can take the port meanwhile);
 * - `hang()`: new and existing connections stay open but nothing is forwarded in either direction
 *   (a peer that accepted the connection and never answers);
 * - `restore()`: back to `pass`; held connections resume forwarding what was buffered.
 *
 * Plain `node:net`: a few lines, no library, and the behaviour under test is exactly what is written here.
 */
export type FaultMode = 'pass' | 'refuse' | 'hang';

export interface FaultProxy {
  /** host:port of the proxy's listener. */
  readonly host: string;
  readonly port: number;
  /** `target` with its host:port replaced by the proxy's (works for postgres://, redis://, http://). */
  url(target: string): string;
  readonly mode: FaultMode;
  /** Connections currently open through the proxy. */
  readonly openConnections: number;
  /** Connections accepted since start (refused ones included). */
  readonly acceptedConnections: number;
  /** Chunks held back by `hang()` and not yet forwarded (so a test can wait for a request to be stuck). */
  readonly heldChunks: number;
  cut(): void;
  refuse(): void;
  hang(): void;
  latency(ms: number): void;
  restore(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  /** Chunks held back while hanging, per direction. */
  held: { toUpstream: Buffer[]; toClient: Buffer[] };
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: FaultMode = 'pass';
  let latencyMs = 0;
  let accepted = 0;
  const pairs = new Set<Pair>();

  const forward = (pair: Pair, direction: 'toUpstream' | 'toClient', chunk: Buffer) => {
    const to = direction === 'toUpstream' ? pair.upstream : pair.client;
    if (mode === 'hang') {
      pair.held[direction].push(chunk);
      return;
    }
    if (latencyMs > 0) setTimeout(() => to.destroyed || to.write(chunk), latencyMs);
    else to.write(chunk);
  };

  const server: Server = createServer((client) => {
    accepted++;
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = tcpConnect(target.port, target.host);
    const pair: Pair = { client, upstream, held: { toUpstream: [], toClient: [] } };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => forward(pair, 'toUpstream', chunk));
    upstream.on('data', (chunk: Buffer) => forward(pair, 'toClient', chunk));
    // The client giving up ends the pair; a hanging peer never closes, so while hanging the
    // upstream's end is not passed on (until restore() or cut()).
    client.on('close', end);
    upstream.on('close', () => (mode === 'hang' ? undefined : end()));
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('fault proxy: no address');
  const port = address.port;

  const destroyAll = () => {
    for (const pair of pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    pairs.clear();
  };

  return {
    host: '127.0.0.1',
    port,
    url(targetUrl: string) {
      const u = new URL(targetUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    get mode() {
      return mode;
    },
    get openConnections() {
      return pairs.size;
    },
    get acceptedConnections() {
      return accepted;
    },
    get heldChunks() {
      let held = 0;
      for (const pair of pairs) held += pair.held.toUpstream.length + pair.held.toClient.length;
      return held;
    },
    cut: destroyAll,
    refuse() {
      mode = 'refuse';
      destroyAll();
    },
    hang() {
      mode = 'hang';
    },
    latency(ms: number) {
      latencyMs = ms;
    },
    restore() {
      mode = 'pass';
      for (const pair of [...pairs]) {
        if (pair.client.destroyed || pair.upstream.destroyed) {
          // One side went away while hanging: finish the pair now.
          pair.client.destroy();
          pair.upstream.destroy();
          pairs.delete(pair);
          continue;
        }
        for (const chunk of pair.held.toUpstream.splice(0)) pair.upstream.write(chunk);
        for (const chunk of pair.held.toClient.splice(0)) pair.client.write(chunk);
      }
    },
    async close() {
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `{host, port}` of a URL (postgres://, redis://, http://). */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  const fallback = u.protocol.startsWith('postgres')
    ? 5432
    : u.protocol.startsWith('redis')
      ? 6379
      : u.protocol === 'https:'
        ? 443
        : 80;
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : fallback };
}
