import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the canned server saw. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
  /** The client's socket port: equal across requests when a keep-alive connection was reused. */
  remotePort: number | undefined;
}

export interface CannedReply {
  status?: number;
  /** An object is sent as JSON; a string is sent verbatim. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Never answer (the client's timeout must fire). */
  hang?: boolean;
  /** Send the status line, headers and part of the body, then stall. */
  stallBody?: boolean;
}

export type Responder = (req: RecordedRequest, index: number) => CannedReply;

export interface CannedServer {
  url: string;
  requests: RecordedRequest[];
  /** Resolves once the server has received its n-th request (1-based). */
  waitForRequests(n: number): Promise<void>;
  close(): Promise<void>;
}

/** A tiny node:http server answering each request with whatever `respond` returns. */
export async function startCannedServer(respond: Responder): Promise<CannedServer> {
  const requests: RecordedRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        // keep the raw text
      }
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        remotePort: req.socket.remotePort,
      };
      requests.push(recorded);
      for (const w of waiters.filter((w) => requests.length >= w.n)) w.resolve();
      const reply = respond(recorded, requests.length - 1);
      if (reply.hang) return;
      if (reply.stallBody) {
        res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"code":0,');
        return;
      }
      const payload = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {});
      res.writeHead(reply.status ?? 200, {
        'content-type': typeof reply.body === 'string' ? 'text/plain' : 'application/json',
        ...reply.headers,
      });
      res.end(payload);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    waitForRequests(n) {
      if (requests.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A port that was just free and is now closed: connecting to it is refused. */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return `http://127.0.0.1:${port}`;
}

export const ok = (data: unknown, traceId = 'trace-ok'): CannedReply => ({
  body: { code: 0, msg: 'success', data, traceId },
});
