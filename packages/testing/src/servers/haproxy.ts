import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../probes';
import { launchServer, requireBinary, type TlsServer, tempDir } from './common';

/**
 * A private HAProxy on loopback terminating TLS with the crt-list certq-agent writes
 * (`--format haproxy`) in `certDir` (the frontend docs/delivery.md shows). HAProxy needs at least one
 * certificate when it starts: start it after the agent's first sync.
 */
export async function startHaproxy(options: {
  certDir: string;
  /** Also open the Runtime API (`stats socket … level admin`) at `runtimeSocket`. */
  runtimeApi?: boolean;
}): Promise<TlsServer & { runtimeSocket: string; pid(): number }> {
  const binary = requireBinary('haproxy', 'haproxy');
  const dir = tempDir('haproxy');
  const port = await freePort();
  const runtimeSocket = join(dir, 'admin.sock');
  const conf = `global
	pidfile ${join(dir, 'haproxy.pid')}
${options.runtimeApi ? `\tstats socket ${runtimeSocket} level admin\n` : ''}
defaults
	mode http
	timeout connect 5s
	timeout client 10s
	timeout server 10s

frontend tls
	bind 127.0.0.1:${port} ssl crt-list ${join(options.certDir, 'crt-list.txt')}
	http-request return status 200 content-type text/plain string "served by haproxy"
`;
  const confPath = join(dir, 'haproxy.cfg');
  writeFileSync(confPath, conf);
  // -db: stay in the foreground; -W: master-worker, so a later reload needs no new process from us.
  const { child, ...server } = await launchServer({
    binary,
    args: ['-W', '-db', '-f', confPath],
    port,
    dir,
    what: 'haproxy',
  });
  return { ...server, runtimeSocket, pid: () => child.pid! };
}
