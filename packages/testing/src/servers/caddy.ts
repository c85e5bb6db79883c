import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../probes';
import { launchServer, requireBinary, type TlsServer, tempDir } from './common';

/**
 * A private Caddy on loopback whose only site takes every certificate from certq at the handshake
 * (`get_certificate http`), with the Caddyfile docs/delivery.md shows. `certificateUrl` is certq's
 * `/v1/tls/certificate` URL including `?token=`.
 */
export async function startCaddy(options: {
  certificateUrl: string;
}): Promise<TlsServer & { caddyfile: string }> {
  const binary = requireBinary('caddy', 'caddy');
  const dir = tempDir('caddy');
  const [httpPort, port] = [await freePort(), await freePort()];
  const caddyfile = `{
	admin off
	http_port ${httpPort}
	https_port ${port}
	auto_https disable_redirects
	storage file_system ${join(dir, 'data')}
	skip_install_trust
}

https:// {
	tls {
		get_certificate http ${options.certificateUrl}
	}
	respond "served by caddy for {host}"
}
`;
  writeFileSync(join(dir, 'Caddyfile'), caddyfile);
  const server = await launchServer({
    binary,
    args: ['run', '--adapter', 'caddyfile', '--config', join(dir, 'Caddyfile')],
    port,
    dir,
    what: 'caddy',
    env: {
      ...process.env,
      HOME: dir,
      XDG_DATA_HOME: join(dir, 'xdg-data'),
      XDG_CONFIG_HOME: join(dir, 'xdg-config'),
    },
  });
  return { ...server, caddyfile };
}
